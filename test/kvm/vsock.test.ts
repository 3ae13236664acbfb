import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

import { MachineConfigError } from '../../src/errors';
import { Machine } from '../../src/vm/machine';
import { bootToEnd, probeGuest, processResources, type BootResult } from '../helpers/guest';

const CMDLINE = 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check probe_mode=vsock';

function inverted(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = ~bytes[i] & 0xff;
  return out;
}

/** Sends `payload` and ends; resolves with all that comes back until the other side ends. */
function exchange(socket: net.Socket, payload: Buffer, skipLine = false): Promise<{ line?: string; reply: Buffer }> {
  return new Promise((resolve, reject) => {
    let pending = Buffer.alloc(0);
    let line: string | undefined;
    const reply: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      if (!skipLine || line !== undefined) {
        reply.push(chunk);
        return;
      }
      // Firecracker's CONNECT protocol: the first line is the VMM's answer, then the stream.
      pending = Buffer.concat([pending, chunk]);
      const newline = pending.indexOf(10);
      if (newline < 0) return;
      line = pending.subarray(0, newline).toString();
      reply.push(pending.subarray(newline + 1));
      socket.end(payload);
    });
    socket.on('end', () => resolve({ line, reply: Buffer.concat(reply) }));
    socket.on('error', reject);
    if (!skipLine) socket.end(payload);
  });
}

/** `work`'s value, or an error carrying the guest's console if the machine ends first. */
async function beforeExit<T>(work: Promise<T>, ended: Promise<BootResult>, what: string): Promise<T> {
  const first = await Promise.race([
    work.then(
      (value) => ({ value }),
      (error: Error) => ({ error }),
    ),
    ended.then((result) => ({ result })),
  ]);
  if ('error' in first) throw first.error;
  if ('result' in first) throw new Error(`the guest ended (${first.result.exit.kind}) before ${what}:\n${first.result.console}`);
  return first.value;
}

t.test('virtio-vsock: 1 MiB round-trips over a guest connection, and a host CONNECT reaches a guest port', async (t) => {
  const guest = await probeGuest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-vsock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'v.sock');
  const before = processResources();

  // The guest connects to host port 1024, that is to <socketPath>_1024.
  const payload = crypto.randomBytes(1 << 20);
  const server = net.createServer();
  const outbound = new Promise<{ reply: Buffer; ms: number }>((resolve, reject) => {
    server.once('connection', (socket) => {
      const start = performance.now();
      exchange(socket, payload).then(({ reply }) => resolve({ reply, ms: performance.now() - start }), reject);
    });
  });
  await new Promise<void>((resolve) => server.listen(`${socketPath}_1024`, resolve));
  t.teardown(() => server.close());

  const ended = bootToEnd({ kernel: guest.kernel.bzImage, initrd: guest.initrd, cmdline: CMDLINE, vsock: { socketPath } });
  const out = await beforeExit(outbound, ended, 'its connection to port 1024 was done');
  t.equal(out.reply.length, payload.length, '1 MiB came back');
  t.ok(out.reply.equals(inverted(payload)), 'every byte came back, inverted by the guest');
  t.comment(`1 MiB each way in ${out.ms.toFixed(0)} ms (${((2 * 1000) / out.ms).toFixed(1)} MiB/s, nested: ${process.env.VMRUN_RIG === '1'})`);

  // The host connects to guest port 5000 through the VMM's own socket.
  const small = crypto.randomBytes(100_000);
  const client = net.createConnection(socketPath);
  client.write('CONNECT 5000\n');
  const inbound = await beforeExit(exchange(client, small, true), ended, 'it took the CONNECT');
  t.match(inbound.line, /^OK \d+$/, 'the VMM answered OK <host port>');
  t.ok(Number(inbound.line?.slice(3)) >= 2 ** 30, 'from an ephemeral host port');
  t.ok(inbound.reply.equals(inverted(small)), 'the host connection round-trips too');

  const result = await ended;
  t.equal(result.exit.kind, 'reset');
  t.match(result.console, /VMRUN-VSOCK connect port=1024 bytes=1048576/);
  t.match(result.console, /VMRUN-VSOCK accept port=5000 bytes=100000/);
  t.match(result.console, /VMRUN-VSOCK status=0/);
  t.notOk(fs.existsSync(socketPath), "the VMM's socket is gone with the machine");
  server.close();
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.same(processResources(), before, 'no fd or thread left behind');
});

t.test('bad vsock settings are refused with a clear error', async (t) => {
  const guest = await probeGuest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-vsock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const taken = path.join(dir, 'taken.sock');
  fs.writeFileSync(taken, '');
  const ok = { kernel: guest.kernel.bzImage, initrd: guest.initrd };
  const cases = [
    { name: 'a reserved CID', vsock: { cid: 2, socketPath: path.join(dir, 'a.sock') }, msg: /vsock\.cid must be an integer from 3/ },
    { name: 'no socket path', vsock: { socketPath: '' }, msg: /vsock\.socketPath must be a file path/ },
    { name: 'a socket path too long', vsock: { socketPath: path.join(dir, 'x'.repeat(120)) }, msg: /must fit a Unix socket address/ },
    { name: 'a socket path already taken', vsock: { socketPath: taken }, msg: /vsock socket .*taken\.sock: Address already in use/ },
  ];
  for (const c of cases) {
    await t.rejects(Machine.boot({ ...ok, vsock: c.vsock }), { name: MachineConfigError.name, message: c.msg }, c.name);
  }
  t.ok(fs.existsSync(taken), 'a path in use is left alone');
});
