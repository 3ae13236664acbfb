// VMs restored from the agent snapshot (src/vm/snapshot.ts), as `vmrun run` starts them: each
// restored guest is its own (random state, boot id, clock), several vCPUs come back, 20 restore
// from one snapshot at once, and a snapshot that does not fit or is damaged is refused with one
// line that says what to do, never run.
import fs from 'node:fs';
import path from 'node:path';

import t from 'tap';

import { ociRef, vmrun } from '../helpers/cli';
import { runImage } from '../../src/run/run-image';
import { collector } from '../../src/streams';
import { ensureAgentInitramfs } from '../../src/guest/agent';
import { ensureGuestKernel } from '../../src/guest/kernel';
import { Machine } from '../../src/vm/machine';
import { ensureAgentSnapshot } from '../../src/vm/snapshot';

const IDENTITY = 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; cat /proc/sys/kernel/random/boot_id; date +%s';

t.test('restored VMs are each their own: random state, boot id, clock', async (t) => {
  const image = await ociRef('busybox');
  const runs = [];
  for (let i = 0; i < 2; i++) runs.push(await vmrun(['--network', 'none', image, 'sh', '-c', IDENTITY]));
  const cold = await vmrun(['--network', 'none', '--cold-boot', image, 'sh', '-c', IDENTITY]);
  const lines = [...runs, cold].map((o) => {
    t.equal(o.code, 0, `exit code (stderr: ${o.stderr.trim()})`);
    return o.stdout.toString().trim().split('\n');
  });
  t.not(lines[0][0], lines[1][0], '/dev/urandom differs between two restored VMs');
  t.not(lines[0][1], lines[1][1], 'so does the boot id');
  for (const [i, l] of lines.entries()) {
    t.ok(Math.abs(Number(l[2]) - Date.now() / 1000) < 60, `run ${i}: the guest clock is the host's (${l[2]})`);
  }
});

t.test('several vCPUs come back from a snapshot', async (t) => {
  const o = await vmrun(['--network', 'none', '--cpus', '2', await ociRef('busybox'), 'sh', '-c', 'nproc; grep -c ^processor /proc/cpuinfo']);
  t.equal(o.code, 0, `exit code (stderr: ${o.stderr.trim()})`);
  t.equal(o.stdout.toString(), '2\n2\n');
});

t.test('20 VMs restored from one snapshot at once all run', async (t) => {
  const image = await ociRef('busybox');
  const one = async () => {
    const out = collector();
    const result = await runImage({ image, command: ['cat', '/proc/sys/kernel/random/uuid'], network: { mode: 'none' }, memoryMiB: 256, stdio: { stdin: null, stdout: out.stream, stderr: out.stream } });
    return { ...result, text: out.text().trim() };
  };
  await one();  // the snapshot for this shape, taken once
  const results = await Promise.all(Array.from({ length: 20 }, one));
  t.same(results.map((r) => r.exitCode), Array(20).fill(0), 'every one exited 0');
  t.ok(results.every((r) => r.host.restored), 'every one was restored');
  t.ok(results.every((r) => /^[0-9a-f-]{36}$/.test(r.text)), 'each printed a uuid');
  t.equal(new Set(results.map((r) => r.text)).size, 20, 'twenty different uuids');
});

t.test('a snapshot that does not fit, or is damaged, is refused in one line', async (t) => {
  const [kernel, initrd] = await Promise.all([ensureGuestKernel().then((k) => k.bzImage), ensureAgentInitramfs()]);
  const snapshot = await ensureAgentSnapshot({ memoryMiB: 128, vcpus: 1, disk: false, net: false });
  const dir = fs.mkdtempSync(path.join(path.dirname(path.dirname(snapshot.state)), 'test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The devices the snapshot's VM had (a vsock, the entropy device), as a run would give them.
  const restore = (files: typeof snapshot, memoryMiB = 128) =>
    Machine.boot({ kernel, initrd, memoryMiB, vcpus: 1, vsock: { socketPath: path.join(dir, 'vsock') }, snapshot: { mode: 'restore', ...files } });
  const oneLine = (what: RegExp) => ({ message: new RegExp(`^(?=[^\\n]*(${what.source}))[^\\n]*delete (it|the snapshot)[^\\n]*$`) });

  const restored = await restore(snapshot);
  restored.console.resume();
  restored.kill();
  // Built means restored (the VMM reports it built only after); the agent, finding no host, may reset first.
  t.match((await restored.wait()).kind, /^(stopped|reset)$/, 'the same shape restores');
  await t.rejects(restore(snapshot, 256), oneLine(/MiB/), 'other memory: refused');
  await t.rejects(restore({ ...snapshot, fingerprint: `${snapshot.fingerprint} (another kernel)` }), oneLine(/was taken for/), 'another kernel: refused');

  const copy = { ...snapshot, state: path.join(dir, 'state'), memory: path.join(dir, 'memory') };
  fs.copyFileSync(snapshot.state, copy.state);
  fs.copyFileSync(snapshot.memory, copy.memory);
  // One byte changed in the memory file's first data page.
  const fd = fs.openSync(copy.memory, 'r+');
  const page = Buffer.alloc(4096);
  let at = 0;
  while (fs.readSync(fd, page, 0, 4096, at) === 4096 && page.every((b) => b === 0)) at += 4096;
  page[100] ^= 0xff;
  fs.writeSync(fd, page, 100, 1, at + 100);
  fs.closeSync(fd);
  await t.rejects(restore(copy), oneLine(/corrupt/), 'a changed memory page: refused');
  fs.truncateSync(copy.memory, 4096);
  await t.rejects(restore(copy), oneLine(/memory/), 'a truncated memory file: refused');
  fs.truncateSync(copy.state, fs.statSync(copy.state).size - 9);
  await t.rejects(restore(copy), oneLine(/state|snapshot/), 'a truncated state file: refused');
});

t.test('vmrun run with a damaged snapshot in its cache: one line, exit 125, and a new one once deleted', async (t) => {
  const image = await ociRef('busybox');
  const args = ['--network', 'none', '-m', '192m', image, 'true'];
  t.equal((await vmrun(args)).code, 0, 'the snapshot for this shape is taken');
  const snapshot = await ensureAgentSnapshot({ memoryMiB: 192, vcpus: 1, disk: true, net: false });
  fs.truncateSync(snapshot.state, 100);
  const refused = await vmrun(args);
  t.equal(refused.code, 125, 'exit code');
  t.match(refused.stderr, /^vmrun: [^\n]*delete (it|the snapshot)[^\n]*\n$/, 'one line that says what to do');
  fs.rmSync(path.dirname(snapshot.state), { recursive: true });
  t.equal((await vmrun(args)).code, 0, 'deleted: taken anew, and run');
});
