// What the run flags mean before anything runs: sizes, CPUs, env files, image references and
// the supervision of a run (signals, grace, timeout), with a stand-in for a runtime.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { UsageError } from '../../src/errors';
import { environment } from '../../src/run/env-file';
import type { RunControl } from '../../src/agent/process-io';
import { splitLayoutRef } from '../../src/run/resolve-image';
import { parseBytes, parseCpus, parseMemory, vmResources } from '../../src/run/resources';
import { supervise } from '../../src/run/supervise';

t.test('sizes read as docker reads them', async (t) => {
  t.equal(parseBytes('64m'), 64 << 20);
  t.equal(parseBytes('64M'), 64 << 20);
  t.equal(parseBytes('1.5g'), 1.5 * 2 ** 30);
  t.equal(parseBytes('100kb'), 100 << 10);
  t.equal(parseBytes('2GiB'), 2 * 2 ** 30);
  t.equal(parseBytes('4096'), 4096);
  t.equal(parseBytes('512 m'), 512 << 20);
  for (const bad of ['', 'm', '12x', '-1m', '1..5g', '64mm', ' 64m']) t.throws(() => parseBytes(bad), UsageError, `${JSON.stringify(bad)} refused`);
  t.throws(() => parseMemory('4m'), /below the minimum of 6m/);
});

t.test('CPUs, and what each runtime makes of the resources', async (t) => {
  t.equal(parseCpus('1.5'), 1.5);
  for (const bad of ['0', '-1', 'two', '']) t.throws(() => parseCpus(bad), UsageError);
  t.same(vmResources({ memoryBytes: (64 << 20) + 1, cpus: 1.5 }), { memoryMiB: 65, vcpus: 2 }, 'the VM rounds up');
  t.same(vmResources({}), { memoryMiB: undefined, vcpus: undefined });
});

t.test('-e and --env-file: files first, -e wins, bare names take the host value or vanish', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-env-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  const file = path.join(dir, 'env');
  fs.writeFileSync(file, '# comment\n\nA=from-file\n  B=spaced\nHOSTVAR\nUNSET\nQ="quoted"\n');
  t.same(environment([file], ['A=from-flag', 'HOSTVAR', 'MISSING'], { HOSTVAR: 'host' }), [
    'A=from-file', 'B=spaced', 'HOSTVAR=host', 'Q="quoted"', 'A=from-flag', 'HOSTVAR=host',
  ]);
  fs.writeFileSync(file, 'BAD NAME=1\n');
  t.throws(() => environment([file], []), /line 1: variable name "BAD NAME"/);
  t.throws(() => environment([path.join(dir, 'none')], []), /cannot read env file/);
});

t.test('oci:DIR[:REF] splits at the last colon, unless a slash follows it', async (t) => {
  t.same(splitLayoutRef('/images/busybox:latest'), { dir: '/images/busybox', name: 'latest' });
  t.same(splitLayoutRef('/images/busybox'), { dir: '/images/busybox' });
  t.same(splitLayoutRef('/a:b/layout'), { dir: '/a:b/layout' });
  t.same(splitLayoutRef('/a:b/layout:v1'), { dir: '/a:b/layout', name: 'v1' });
});

/** A runtime stand-in: records what it was told; `finish` ends the run with a code. */
function fakeRun() {
  const told: string[] = [];
  let finish!: (code: number) => void;
  let fail!: (err: Error) => void;
  const control: RunControl = {
    signal: (s) => told.push(`signal ${s}`),
    resize: (r, c) => told.push(`resize ${r}x${c}`),
    stop: () => {
      told.push('stop');
      fail(new Error('stopped'));
    },
    exec: () => Promise.reject(new Error('no exec in this stand-in')),
    pid: () => undefined,
    started: Promise.resolve(),
  };
  const run = (onStart: (c: RunControl) => void) =>
    new Promise<{ exitCode: number }>((resolve, reject) => {
      finish = (exitCode) => resolve({ exitCode });
      fail = reject;
      onStart(control);
    });
  return { told, run, finish: (code: number) => finish(code) };
}

t.test('a user signal is forwarded; after the grace, SIGKILL, then the teardown', async (t) => {
  const f = fakeRun();
  let handler!: (s: NodeJS.Signals) => void;
  let unsubscribed = false;
  const result = supervise(f.run, {
    graceMs: 50,
    onSignal: (h) => {
      handler = h;
      return () => (unsubscribed = true);
    },
  });
  handler('SIGTERM');
  await new Promise((r) => setTimeout(r, 80));
  t.same(f.told, ['signal SIGTERM', 'signal SIGKILL']);
  f.finish(137);
  t.equal(await result, 137);
  t.ok(unsubscribed, 'signals are vmrun\'s own again');
});

t.test('a process that obeys within the grace keeps its exit code', async (t) => {
  const f = fakeRun();
  let handler!: (s: NodeJS.Signals) => void;
  const result = supervise(f.run, { graceMs: 1000, onSignal: (h) => ((handler = h), () => {}) });
  handler('SIGINT');
  f.finish(130);
  t.equal(await result, 130);
  t.same(f.told, ['signal SIGINT']);
});

t.test('--timeout kills the run and makes it 124, even when the runtime failed', async (t) => {
  const f = fakeRun();
  const result = supervise(f.run, { timeoutMs: 20 });
  await new Promise((r) => setTimeout(r, 40));
  t.same(f.told, ['signal SIGKILL']);
  f.finish(137);
  t.equal(await result, 124);
});
