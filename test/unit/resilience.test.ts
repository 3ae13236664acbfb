// vmrun under the things a loaded host and a careless pipeline do to it: a run stalled in the
// middle of its unpack while another waits on the same cache entry, a reader of its output that
// goes away, and a bug that throws from a timer or a stream handler. Each ends in a clean
// success or a one-line failure, never a stack trace, and leaves the cache and the host clean.
// Runs on this host with the container runtime (root and runc).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { CLI, leftovers, ociRef, until, vmrun } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-resilience-test-'));
const caches = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-resilience-caches-'));
t.teardown(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(caches, { recursive: true, force: true });
});
const env = { ...process.env, TMPDIR: tmp };
const ONE_LINE = /^vmrun: [^\n]+\n$/;
const canContainer = process.getuid?.() === 0 && (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'runc')));

let runs = 0;
const name = () => `vmrun-resilience-${process.pid}-${++runs}`;

/**
 * A preload for vmrun's process (NODE_OPTIONS=--require) that plants a bug. (Under tap, module
 * hooks that tap adds to children run it in a loader thread too: only the main thread's counts.)
 */
function bug(file: string, code: string): NodeJS.ProcessEnv {
  const preload = path.join(caches, file);
  fs.writeFileSync(preload, `if (require('worker_threads').isMainThread) {\n${code}\n}\n`);
  return { ...env, NODE_OPTIONS: `--require=${preload}` };
}

t.test('container runtime', { skip: !canContainer && 'needs root and runc' }, async (t) => {
  const image = await ociRef('busybox');

  t.test('two runs race on one cache entry while the one unpacking is stopped past the stale time', async (t) => {
    const cache = fs.mkdtempSync(path.join(caches, 'race-'));
    // A clock-based lock would be broken after 300 ms; the unpacker is stopped for 3 s.
    const raceEnv = { ...env, VMRUN_CACHE_DIR: cache, VMRUN_LOCK_STALE_MS: '300' };
    const dirs = path.join(cache, 'layer-dirs');
    const a = spawn(process.execPath, [CLI, '--runtime', 'container', '--log-level', 'info', image, 'echo', 'a'], { env: raceEnv });
    const output = (child: typeof a) => {
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
    };
    const aDone = output(a);
    const named = (suffix: string) => (fs.existsSync(dirs) ? fs.readdirSync(dirs).filter((f) => f.endsWith(suffix)) : []);
    const locks = () => named('.lock');
    await until(() => locks().length === 1 && named('.tmp').length === 1, 60_000, 'the first run takes the lock and starts its unpack');
    t.equal(JSON.parse(fs.readFileSync(path.join(dirs, locks()[0]), 'utf8')).pid, a.pid, 'the first run holds it');
    a.kill('SIGSTOP');
    const b = vmrun(['--runtime', 'container', '--log-level', 'info', image, 'echo', 'b'], { env: raceEnv });
    await new Promise((r) => setTimeout(r, 3000));
    t.same(named('.tmp').length, 1, 'the second run did not start an unpack of its own');
    a.kill('SIGCONT');
    const [ra, rb] = await Promise.all([aDone, b]);
    t.same([ra.code, ra.stdout], [0, 'a\n'], ra.stderr);
    t.same([rb.code, rb.stdout.toString()], [0, 'b\n'], rb.stderr);
    t.match(ra.stderr, /image unpacked/, 'the first run unpacked');
    t.notMatch(rb.stderr, /image unpacked/, 'the second used what the first made');
    t.same(fs.readdirSync(dirs).length, 1, 'one directory: no temporary, no lock left');
  });

  t.test('a reader of stdout that goes away: the process meets SIGPIPE, as in a shell pipeline', async (t) => {
    const n = name();
    const child = spawn(process.execPath, [CLI, '--runtime', 'container', '--name', n, image, 'yes'], { env });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // Like `| head -c 1`: read a little, then close the pipe.
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.destroy();
    const code = await new Promise((resolve) => child.on('close', resolve));
    t.equal(code, 141, 'yes was killed by SIGPIPE: 128 + 13');
    t.equal(stderr, '', 'nothing said: a pipeline ending is no error');
    t.same(leftovers(tmp, [n]), []);
  });

  t.test('an error thrown from a timer during a run: one line, 125, and everything torn down', async (t) => {
    const n = name();
    const o = await vmrun(['--runtime', 'container', '--name', n, image, 'sh', '-c', 'echo started; sleep 60'], {
      env: bug('throw-from-timer.js', "setTimeout(() => { throw new Error('planted bug in a timer'); }, 3000);"),
    });
    t.equal(o.code, 125);
    t.match(o.stderr, ONE_LINE);
    t.match(o.stderr, /^vmrun: internal error: planted bug in a timer/);
    t.equal(o.stdout.toString(), 'started\n');
    t.same(leftovers(tmp, [n]), [], 'no container, mount or temporary file left');
  });

  t.test('an error thrown from a stream handler: one line, 125, and everything torn down', async (t) => {
    const n = name();
    const child = spawn(process.execPath, [CLI, '--runtime', 'container', '--name', n, '-i', image, 'sh', '-c', 'echo started; cat; sleep 60'], {
      env: bug('throw-from-stream.js', "process.stdin.on('data', () => { throw new Error('planted bug in a stream handler'); });"),
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // Input only once the run is under way: the bug strikes in the middle of it.
    child.stdout.once('data', () => child.stdin.write('some input\n'));
    const code = await new Promise((resolve) => child.on('close', resolve));
    t.equal(code, 125);
    t.match(stderr, ONE_LINE);
    t.match(stderr, /^vmrun: internal error: planted bug in a stream handler/);
    t.same(leftovers(tmp, [n]), []);
  });

  t.test('a promise rejected with nobody to handle it during an unpack: one line, 125, nothing cached', async (t) => {
    const cache = fs.mkdtempSync(path.join(caches, 'reject-'));
    const rejectEnv = {
      // Strikes once the unpack's temporary directory exists.
      ...bug('reject-during-unpack.js', `
        const fs = require('fs');
        const timer = setInterval(() => {
          let unpacking = false;
          try { unpacking = fs.readdirSync(${JSON.stringify(path.join(cache, 'layer-dirs'))}).some((f) => f.endsWith('.tmp')); } catch {}
          if (!unpacking) return;
          clearInterval(timer);
          Promise.reject(new Error('planted unhandled rejection'));
        }, 5);
        timer.unref();`),
      VMRUN_CACHE_DIR: cache,
    };
    // Make sure the agent is built first, so that the bug strikes during the unpack.
    const warm = await vmrun(['--runtime', 'container', image, 'true'], { env: { ...env, VMRUN_CACHE_DIR: cache } });
    t.equal(warm.code, 0, warm.stderr);
    fs.rmSync(path.join(cache, 'layer-dirs'), { recursive: true, force: true });
    const runcStates = () => (fs.existsSync('/run/vmrun/runc') ? fs.readdirSync('/run/vmrun/runc') : []);
    const before = runcStates();
    const o = await vmrun(['--runtime', 'container', image, 'true'], { env: rejectEnv });
    t.equal(o.code, 125);
    t.same(runcStates().filter((n) => !before.includes(n)), [], 'runc\'s state of the unpack container is gone');
    t.match(o.stderr, /^vmrun: internal error: planted unhandled rejection[^\n]*\n$/);
    const dirs = path.join(cache, 'layer-dirs');
    t.same(fs.existsSync(dirs) ? fs.readdirSync(dirs) : [], [], 'no directory, temporary or lock left in the cache');
    t.same(leftovers(tmp), []);
  });
});
