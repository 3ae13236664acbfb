// containerd runs its containers in vmrun VMs: Debian's containerd, started here on a private
// socket and state directory, with vmrun's shim (containerd-shim-vmrun-v2) installed on its PATH
// by `vmrun shim install`; images pulled by ctr from a loopback registry; every run through
// `ctr ... --runtime io.containerd.vmrun.v2`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import t, { type Test } from 'tap';

import { RequestSchema, ResponseSchema } from '../../src/shim/gen/ttrpc_pb';
import { StateRequestSchema } from '../../src/shim/gen/github.com/containerd/containerd/runtime/v2/task/shim_pb';
import { encodeFrame, FrameDecoder, FrameKind, HEADER_BYTES, MAX_PAYLOAD, type Frame } from '../../src/shim/ttrpc';
import { startContainerd, RUNTIME, type Containerd, type CtrResult } from '../helpers/containerd';
import { layoutOf, pythonLayout } from '../helpers/images';
import { pushLayout, startRegistry } from '../helpers/registry';

const main = async () => {
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  await pushLayout(registry, await layoutOf('busybox'), 'latest', 'library/busybox:latest');
  await pushLayout(registry, await pythonLayout(), 'latest', 'library/python:3.10');
  const busybox = `${registry.host}/library/busybox:latest`;
  const python = `${registry.host}/library/python:3.10`;

  const containerd = await startContainerd();
  t.teardown(() => containerd.stop());
  for (const image of [busybox, python]) {
    const pulled = await containerd.ctr(['images', 'pull', '--plain-http', image]);
    if (pulled.code !== 0) throw new Error(`ctr pull ${image}: ${pulled.stderr}`);
  }
  const ctr = containerd.ctr;
  const run = (args: string[], options?: { stdin?: string }) => ctr(['run', '--runtime', RUNTIME, ...args], options);
  const said = (r: CtrResult) => `exit ${r.code}; stdout ${JSON.stringify(r.stdout.slice(-400))}; stderr ${JSON.stringify(r.stderr.slice(-400))}`;

  t.test('ctr run: output, stderr and exit code pass through, and nothing is left', async (t) => {
    const r = await run(['--rm', busybox, 'c-exit', 'sh', '-c', 'echo out; echo err >&2; cat /proc/1/comm >/dev/null; exit 3']);
    t.equal(r.code, 3, said(r));
    t.equal(r.stdout, 'out\n');
    t.match(r.stderr, /^err\n/);
    await noTraceOf(t, containerd, 'c-exit');
  });

  t.test('ctr run of the python image: its interpreter, in a VM of its own', async (t) => {
    const r = await run(['--rm', python, 'c-py', 'python3', '-c', 'import sys; print(6 * 7); sys.exit(4)']);
    t.equal(r.code, 4, said(r));
    t.equal(r.stdout, '42\n');
    // The kernel is the VM's own, not the host's.
    const k = await run(['--rm', busybox, 'c-uname', 'uname', '-r']);
    t.equal(k.code, 0, said(k));
    t.not(k.stdout.trim(), execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(), 'the container sees another kernel than the host');
    await noTraceOf(t, containerd, 'c-py');
  });

  t.test('stdin through containerd\'s FIFO reaches the process, and its end is the process\'s EOF', async (t) => {
    const r = await run(['--rm', busybox, 'c-stdin', 'sh', '-c', 'wc -c; echo done'], { stdin: 'x'.repeat(100000) });
    t.equal(r.code, 0, said(r));
    t.equal(r.stdout, '100000\ndone\n');
  });

  t.test('ctr task exec, ps, kill and delete on a running task', async (t) => {
    const r = await run(['-d', busybox, 'c-exec', 'sleep', '600']);
    t.equal(r.code, 0, said(r));
    await statusIs(t, ctr, 'c-exec', 'RUNNING');
    const e = await ctr(['task', 'exec', '--exec-id', 'e1', 'c-exec', 'sh', '-c', 'echo from-exec; hostname; exit 5']);
    t.equal(e.code, 5, said(e));
    t.match(e.stdout, /^from-exec\n\S+\n$/);
    const ps = await ctr(['task', 'ps', 'c-exec']);
    t.equal(ps.code, 0, said(ps));
    t.match(ps.stdout, new RegExp(`\\b${pidOf(await ctr(['task', 'ls']), 'c-exec')}\\b`), 'ps lists the task\'s VMM');
    const k = await ctr(['task', 'kill', '-s', 'SIGTERM', 'c-exec']);
    t.equal(k.code, 0, said(k));
    await statusIs(t, ctr, 'c-exec', 'STOPPED');
    const d = await ctr(['task', 'delete', 'c-exec']);
    t.equal(d.code, 0, said(d));
    t.equal((await ctr(['container', 'delete', 'c-exec'])).code, 0);
    await noTraceOf(t, containerd, 'c-exec');
  });

  t.test('a task whose VM is killed from the host is reported stopped', async (t) => {
    t.equal((await run(['-d', busybox, 'c-host', 'sleep', '600'])).code, 0);
    await statusIs(t, ctr, 'c-host', 'RUNNING');
    const pid = pidOf(await ctr(['task', 'ls']), 'c-host');
    t.ok(pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0, `task pid ${pid} is a live host process (the VMM)`);
    process.kill(pid, 'SIGKILL');
    await statusIs(t, ctr, 'c-host', 'STOPPED');
    t.equal((await ctr(['task', 'delete', 'c-host'])).code, 0);
    t.equal((await ctr(['container', 'delete', 'c-host'])).code, 0);
    await noTraceOf(t, containerd, 'c-host');
  });

  t.test('two containers at once, each with its own output', async (t) => {
    const [a, b] = await Promise.all([
      run(['--rm', busybox, 'c-a', 'sh', '-c', 'sleep 1; echo a; exit 1']),
      run(['--rm', busybox, 'c-b', 'sh', '-c', 'sleep 1; echo b; exit 2']),
    ]);
    t.same([a.code, a.stdout, b.code, b.stdout], [1, 'a\n', 2, 'b\n'], `${said(a)} / ${said(b)}`);
  });

  t.test('containerd restarted while a task runs: the shim is found again, the task still reported right', async (t) => {
    t.equal((await run(['-d', busybox, 'c-restart', 'sleep', '600'])).code, 0);
    await statusIs(t, ctr, 'c-restart', 'RUNNING');
    const before = pidOf(await ctr(['task', 'ls']), 'c-restart');
    await containerd.restart();
    const after = await ctr(['task', 'ls']);
    t.equal(pidOf(after, 'c-restart'), before, 'the same task, the same pid');
    t.match(after.stdout, /c-restart\s+\d+\s+RUNNING/);
    const e = await ctr(['task', 'exec', '--exec-id', 'after', 'c-restart', 'echo', 'still here']);
    t.equal(e.code, 0, said(e));
    t.equal(e.stdout, 'still here\n');
    t.equal((await ctr(['task', 'kill', '-s', 'SIGKILL', 'c-restart'])).code, 0);
    await statusIs(t, ctr, 'c-restart', 'STOPPED');
    t.equal((await ctr(['task', 'delete', 'c-restart'])).code, 0);
    t.equal((await ctr(['container', 'delete', 'c-restart'])).code, 0);
    await noTraceOf(t, containerd, 'c-restart');
  });

  t.test('bad input gets an error, never a hung shim', async (t) => {
    const missing = await ctr(['run', '--rm', '--runtime', RUNTIME, '--rootfs', '/nonexistent-rootfs', 'c-noroot', 'true']);
    t.not(missing.code, 0, said(missing));
    t.match(missing.stderr, /no rootfs mounts and \/nonexistent-rootfs is not a directory/);
    await noTraceOf(t, containerd, 'c-noroot');

    t.equal((await run(['-d', busybox, 'c-raw', 'sleep', '600'])).code, 0);
    await statusIs(t, ctr, 'c-raw', 'RUNNING');
    const address = fs.readFileSync(`${containerd.bundle('c-raw')}/address`, 'utf8').replace(/^unix:\/\//, '');
    const shim = await rawClient(address);
    const state = (payload: Uint8Array) => toBinary(RequestSchema, create(RequestSchema, { service: 'containerd.task.v2.Task', method: 'State', payload }));
    // A payload that is no protobuf (a field of wire type 7).
    t.equal((await shim.call(1, state(Buffer.from([0x0f, 0xff, 0xff])))).status?.code, 3, 'a malformed request: InvalidArgument');
    const unknown = toBinary(RequestSchema, create(RequestSchema, { service: 'containerd.task.v2.Task', method: 'Teleport' }));
    t.equal((await shim.call(3, unknown)).status?.code, 12, 'an unknown method: Unimplemented');
    t.equal((await shim.call(5, Buffer.from('not a request at all'))).status?.code, 3, 'an envelope that is no request: InvalidArgument');
    t.equal((await shim.oversized(7)).status?.code, 8, 'a frame over 4 MiB is skipped and answered ResourceExhausted');
    const good = await shim.call(9, state(toBinary(StateRequestSchema, create(StateRequestSchema, { id: 'c-raw' }))));
    t.equal(good.status?.code ?? 0, 0, 'and the same connection still answers');
    shim.close();
    const e = await ctr(['task', 'exec', '--exec-id', 'ok', 'c-raw', 'true']);
    t.equal(e.code, 0, `the task still works: ${said(e)}`);
    await ctr(['task', 'kill', '-s', 'SIGKILL', 'c-raw']);
    await statusIs(t, ctr, 'c-raw', 'STOPPED');
    t.equal((await ctr(['task', 'delete', 'c-raw'])).code, 0);
    t.equal((await ctr(['container', 'delete', 'c-raw'])).code, 0);
  });
};

function pidOf(ls: CtrResult, id: string): number {
  const line = ls.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
  return Number(line?.split(/\s+/)[1] ?? 0);
}

async function statusIs(t: Test, ctr: Containerd['ctr'], id: string, status: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 600; i++) {
    last = (await ctr(['task', 'ls'])).stdout;
    if (new RegExp(`^${id}\\s+\\d+\\s+${status}\\b`, 'm').test(last)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.fail(`task ${id} did not become ${status}: ${last}`);
}

/** No task, no shim process, no mount of the container's is left. */
async function noTraceOf(t: Test, containerd: Containerd, id: string): Promise<void> {
  const gone = () => !execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').some((l) => l.includes('shim/main.js') && l.includes(` ${id} `));
  for (let i = 0; i < 100 && !gone(); i++) await new Promise((r) => setTimeout(r, 100));
  t.ok(gone(), `no shim process of ${id} is left`);
  t.notMatch(fs.readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(`/${id}/rootfs `), `nothing of ${id} is mounted`);
  t.notMatch((await containerd.ctr(['task', 'ls', '-q'])).stdout, new RegExp(`^${id}$`, 'm'), `containerd lists no task ${id}`);
}

/** A raw ttrpc connection: what containerd would send, and what it never would. */
async function rawClient(socketPath: string) {
  const socket = net.connect(socketPath);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const decoder = new FrameDecoder();
  const waiting = new Map<number, (f: Frame) => void>();
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) waiting.get(f.streamId)?.(f);
  });
  const answer = (id: number) =>
    new Promise<Frame>((resolve) => waiting.set(id, resolve)).then((f) => fromBinary(ResponseSchema, f.payload!));
  return {
    call(id: number, request: Uint8Array) {
      const got = answer(id);
      socket.write(encodeFrame(id, FrameKind.Request, request));
      return got;
    },
    oversized(id: number) {
      const got = answer(id);
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt32BE(MAX_PAYLOAD + 1, 0);
      header.writeUInt32BE(id, 4);
      header.writeUInt8(FrameKind.Request, 8);
      socket.write(Buffer.concat([header, Buffer.alloc(MAX_PAYLOAD + 1)]));
      return got;
    },
    close: () => socket.destroy(),
  };
}

void main().catch((err: unknown) => t.fail(`set-up failed: ${err instanceof Error ? err.stack : String(err)}`));
