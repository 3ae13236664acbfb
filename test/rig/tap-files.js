#!/usr/bin/env node
// Runs test files one after another with plain node and prints their TAP as subtests of one
// stream, each `ok` when its process exited 0 within the limit. Inside the rig this replaces
// `tap FILES`: tap's runner loads its TypeScript and process-info hooks into every file's
// process, which under emulation cost about 80 s once and 30 s a file (measured in the rig:
// one small file took 21 s under node, 110 s under tap).
//   node test/rig/tap-files.js [--timeout SECONDS] FILE...
'use strict';
const { spawn } = require('node:child_process');

const args = process.argv.slice(2);
let timeoutMs = 1800 * 1000;
if (args[0] === '--timeout') {
  timeoutMs = Number(args[1]) * 1000;
  args.splice(0, 2);
}

/** A plain test process's environment: none of an outer tap runner's hooks, coverage or child ids. */
function childEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TAP($|_)|NODE_OPTIONS$|NODE_V8_COVERAGE$)/.test(k)));
  return { ...env, TAP_TIMEOUT: String(timeoutMs / 1000) };
}

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() });
    let partial = '';
    const indent = (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) if (!/^TAP version/.test(line)) process.stdout.write(line ? `    ${line}\n` : '\n');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', indent);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      indent('\n');
      resolve({ code, signal, timedOut, ms: Date.now() - started });
    });
  });
}

(async () => {
  process.stdout.write('TAP version 14\n');
  let failed = 0;
  for (const [i, file] of args.entries()) {
    process.stdout.write(`# Subtest: ${file}\n`);
    const r = await runFile(file);
    const ok = r.code === 0;
    if (!ok) failed++;
    const why = r.timedOut ? ` (killed after ${timeoutMs / 1000} s)` : ok ? '' : ` (exit ${r.code ?? r.signal})`;
    process.stdout.write(`${ok ? 'ok' : 'not ok'} ${i + 1} - ${file}${why} # time=${r.ms}ms\n\n`);
  }
  process.stdout.write(`1..${args.length}\n`);
  process.exitCode = failed ? 1 : 0;
})();
