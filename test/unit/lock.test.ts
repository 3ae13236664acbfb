// Locks between vmrun processes (src/lock.ts), taken by real processes: a holder that is alive
// keeps its lock however long it stalls (a blocked event loop, SIGSTOP, a filesystem that is slow
// to take its heartbeat), one that died loses it at once, and one this kernel cannot see is
// judged by its heartbeat. No holder ever dies of its own lock.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { publishCacheEntry, withCacheLock } from '../../src/cache-entry';
import { isLocked, lock, lockFile } from '../../src/lock';

const LOCK_JS = path.join(__dirname, '..', '..', 'dist', 'src', 'lock.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-lock-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
const fresh = () => path.join(tmp, `target-${++n}`);

/**
 * A process that takes the lock on `target`, appends `<name> took` to `journal`, runs `hold`
 * (JavaScript, may stall), appends `<name> done`, and releases.
 */
function holder(name: string, target: string, journal: string, hold = '', env: NodeJS.ProcessEnv = {}) {
  const script = `
    const fs = require('fs');
    const { lock } = require(${JSON.stringify(LOCK_JS)});
    (async () => {
      const held = await lock(${JSON.stringify(target)});
      fs.appendFileSync(${JSON.stringify(journal)}, '${name} took\\n');
      ${hold}
      fs.appendFileSync(${JSON.stringify(journal)}, '${name} done\\n');
      await held.release();
    })();`;
  const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, exited };
}

async function until(what: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const lines = (journal: string) => (fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').trim().split('\n') : []);
// A stale time far below how long the holders below stall: only a clock-based rule would break in.
const SHORT_STALE = { VMRUN_LOCK_STALE_MS: '200' };
// Blocks the event loop: no timer, no heartbeat, nothing runs.
const STALL_LOOP = 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2500);';

t.test('a holder whose event loop is stalled past the stale time keeps its lock', async (t) => {
  const target = fresh();
  const journal = `${target}.journal`;
  const a = holder('A', target, journal, STALL_LOOP, SHORT_STALE);
  await until(() => lines(journal).includes('A took'));
  const b = holder('B', target, journal, '', SHORT_STALE);
  const [ea, eb] = await Promise.all([a.exited, b.exited]);
  t.same([ea.code, eb.code], [0, 0], `${ea.stderr}${eb.stderr}`);
  t.same(lines(journal), ['A took', 'A done', 'B took', 'B done'], 'B waited for A');
  t.notOk(fs.existsSync(lockFile(target)), 'released');
});

t.test('a holder stopped by SIGSTOP past the stale time keeps its lock', async (t) => {
  const target = fresh();
  const journal = `${target}.journal`;
  const a = holder('A', target, journal, 'await new Promise((r) => setTimeout(r, 300));', SHORT_STALE);
  await until(() => lines(journal).includes('A took'));
  a.child.kill('SIGSTOP');
  const b = holder('B', target, journal, '', SHORT_STALE);
  await new Promise((r) => setTimeout(r, 2000));
  t.same(lines(journal), ['A took'], 'B still waits while A is stopped');
  a.child.kill('SIGCONT');
  const [ea, eb] = await Promise.all([a.exited, b.exited]);
  t.same([ea.code, eb.code], [0, 0], `${ea.stderr}${eb.stderr}`);
  t.same(lines(journal), ['A took', 'A done', 'B took', 'B done']);
});

t.test('a holder whose filesystem is slow to take its heartbeat neither crashes nor loses its lock', async (t) => {
  const target = fresh();
  const journal = `${target}.journal`;
  // Every utimes (the heartbeat) answers only after 3 s, far past the stale time.
  const slowFs = path.join(tmp, 'slow-utimes.js');
  fs.writeFileSync(slowFs, `
    const fs = require('fs');
    const utimes = fs.promises.utimes;
    fs.promises.utimes = (...args) => new Promise((r) => setTimeout(r, 3000)).then(() => utimes(...args));`);
  // (The heartbeat comes every third of the stale time.)
  const env = { ...SHORT_STALE, NODE_OPTIONS: `--require=${slowFs}` };
  const a = holder('A', target, journal, 'await new Promise((r) => setTimeout(r, 2500));', env);
  await until(() => lines(journal).includes('A took'));
  const b = holder('B', target, journal, '', SHORT_STALE);
  const [ea, eb] = await Promise.all([a.exited, b.exited]);
  t.same([ea.code, ea.stderr], [0, ''], 'the holder ended normally, saying nothing');
  t.equal(eb.code, 0, eb.stderr);
  t.same(lines(journal), ['A took', 'A done', 'B took', 'B done']);
});

t.test('a holder that died loses its lock at once, long before the stale time', async (t) => {
  const target = fresh();
  const journal = `${target}.journal`;
  const a = holder('A', target, journal, 'await new Promise(() => setInterval(() => {}, 1000));');
  await until(() => lines(journal).includes('A took'));
  a.child.kill('SIGKILL');
  await a.exited;
  t.ok(fs.existsSync(lockFile(target)), 'the dead holder left its lock file');
  const start = Date.now();
  const b = holder('B', target, journal, '', { VMRUN_LOCK_STALE_MS: '600000' });
  t.equal((await b.exited).code, 0);
  t.ok(Date.now() - start < 10_000, 'taken over without waiting for the stale time');
  t.same(lines(journal), ['A took', 'B took', 'B done']);
});

t.test('a holder on another kernel is judged by its heartbeat', async (t) => {
  const target = fresh();
  const file = lockFile(target);
  const foreign = { boot: 'another-kernel', pidns: 'pid:[1]', pid: 1, start: '1', token: 'theirs' };
  fs.writeFileSync(file, JSON.stringify(foreign));
  process.env.VMRUN_LOCK_STALE_MS = '1000';
  t.teardown(() => delete process.env.VMRUN_LOCK_STALE_MS);
  t.ok(await isLocked(target), 'a fresh heartbeat: held');
  const old = new Date(Date.now() - 5000);
  fs.utimesSync(file, old, old);
  t.notOk(await isLocked(target), 'no heartbeat for longer than the stale time: stale');
  const held = await lock(target, { waitMs: 5000 });
  t.ok(await held.held(), 'taken over');
  await held.release();
  t.notOk(fs.existsSync(file));
});

t.test('a lock left by proper-lockfile (a directory) is judged by its age', async (t) => {
  const target = fresh();
  fs.mkdirSync(lockFile(target));
  const old = new Date(Date.now() - 10 * 60_000);
  fs.utimesSync(lockFile(target), old, old);
  const held = await lock(target, { waitMs: 5000 });
  t.ok(await held.held());
  await held.release();
});

t.test('a lock taken from under its holder: held() says so, and release() leaves the new holder alone', async (t) => {
  const target = fresh();
  const held = await lock(target);
  t.ok(await held.held());
  // Another process judged it stale and took it (as one on another kernel may).
  fs.writeFileSync(lockFile(target), JSON.stringify({ boot: 'another-kernel', pidns: 'x', pid: 1, start: '1', token: 'new-holder' }));
  t.notOk(await held.held());
  await held.release();
  t.match(fs.readFileSync(lockFile(target), 'utf8'), /new-holder/, 'the new holder keeps it');
});

t.test('waiting too long for a live holder: one line naming the holder and the way out', async (t) => {
  const target = fresh();
  const held = await lock(target);
  t.teardown(() => held.release());
  await t.rejects(lock(target, { what: 'the test entry', waitMs: 300 }), {
    name: 'LockError',
    message: new RegExp(`^the test entry is still locked by pid ${process.pid} after 300 ms; if no other vmrun is running, remove .*\\.lock$`),
  });
});

t.test('a cache entry is published once: a later one never replaces it, file or directory', async (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'cache-'));
  const file = path.join(dir, 'file');
  await withCacheLock(file, async () => {
    fs.writeFileSync(`${file}.1.tmp`, 'first');
    t.ok(publishCacheEntry(`${file}.1.tmp`, file));
  });
  fs.writeFileSync(`${file}.2.tmp`, 'second');
  t.notOk(publishCacheEntry(`${file}.2.tmp`, file), 'the second is refused');
  t.equal(fs.readFileSync(file, 'utf8'), 'first');
  t.ok(fs.existsSync(`${file}.2.tmp`), 'and left to its maker');
  const entry = path.join(dir, 'dir');
  for (const n of [1, 2]) {
    fs.mkdirSync(`${entry}.${n}.tmp`);
    fs.writeFileSync(path.join(`${entry}.${n}.tmp`, 'diff'), String(n));
  }
  t.ok(publishCacheEntry(`${entry}.1.tmp`, entry));
  t.notOk(publishCacheEntry(`${entry}.2.tmp`, entry));
  t.equal(fs.readFileSync(path.join(entry, 'diff'), 'utf8'), '1');
  t.same(fs.readdirSync(dir).sort(), ['dir', 'dir.2.tmp', 'file', 'file.2.tmp'], 'no lock left');
});
