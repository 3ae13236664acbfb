// ttrpc's framing and server (src/shim/ttrpc.ts) on their own, and containerd's Task service
// behind it as far as it goes without a VM: every answer to a bad request is an error status on
// the request's own stream, and the connection keeps serving.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import t, { type Test } from 'tap';

import type { EventPublisher } from '../../src/shim/events';
import { RequestSchema, ResponseSchema, type Response } from '../../src/shim/gen/ttrpc_pb';
import { ConnectRequestSchema, ConnectResponseSchema, CreateTaskRequestSchema, ShutdownRequestSchema, StateRequestSchema, Task } from '../../src/shim/gen/github.com/containerd/containerd/runtime/v2/task/shim_pb';
import { TaskService } from '../../src/shim/task-service';
import { Code, encodeFrame, FrameDecoder, FrameKind, HEADER_BYTES, MAX_PAYLOAD, TtrpcServer } from '../../src/shim/ttrpc';

t.test('frames come out whole whatever the chunking', async (t) => {
  const frames = [encodeFrame(1, FrameKind.Request, Buffer.from('first')), encodeFrame(3, FrameKind.Response, Buffer.alloc(0)), encodeFrame(5, FrameKind.Request, Buffer.alloc(300, 7))];
  const stream = Buffer.concat(frames);
  for (let a = 0; a <= stream.length; a++) {
    for (const b of [a, Math.min(stream.length, a + 1), Math.min(stream.length, a + 11), stream.length]) {
      const d = new FrameDecoder();
      const got = [...d.push(stream.subarray(0, a)), ...d.push(stream.subarray(a, b)), ...d.push(stream.subarray(b))];
      if (got.length !== 3 || got[0].payload?.toString() !== 'first' || got[1].payload?.length !== 0 || got[2].payload?.length !== 300 || got[2].streamId !== 5 || got[1].kind !== 2) {
        t.fail(`split at ${a} and ${b}: ${JSON.stringify(got.map((f) => [f.streamId, f.kind, f.payload?.length]))}`);
        return;
      }
    }
  }
  t.pass('every split of three frames into three chunks decodes to the same three frames');
});

t.test('a frame over 4 MiB is skipped without being buffered, and the next one still decodes', async (t) => {
  const d = new FrameDecoder();
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(MAX_PAYLOAD + 10, 0);
  header.writeUInt32BE(7, 4);
  header.writeUInt8(1, 8);
  const got = [...d.push(header), ...d.push(Buffer.alloc(MAX_PAYLOAD)), ...d.push(Buffer.concat([Buffer.alloc(10), encodeFrame(9, FrameKind.Request, Buffer.from('next'))]))];
  t.same(got.map((f) => [f.streamId, f.length, f.payload?.toString()]), [[7, MAX_PAYLOAD + 10, undefined], [9, 4, 'next']]);
  t.throws(() => encodeFrame(1, FrameKind.Response, Buffer.alloc(MAX_PAYLOAD + 1)), /exceeds/);
});

/** A Task service with no task yet, behind a real ttrpc server on a unix socket. */
async function serveTask(t: Test) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-ttrpc-'));
  const published: string[] = [];
  let shutdowns = 0;
  const events = { publish: (topic: string) => published.push(topic), flushed: async () => {} } as unknown as EventPublisher;
  const service = new TaskService({ id: 'task-1', events, shutdown: () => shutdowns++ });
  const server = new TtrpcServer().register(Task, service);
  const socketPath = path.join(dir, 'shim.sock');
  await new Promise<void>((resolve) => server.server.listen(socketPath, resolve));
  const socket = net.connect(socketPath);
  await new Promise((resolve) => socket.once('connect', resolve));
  const decoder = new FrameDecoder();
  const answers = new Map<number, (r: Response) => void>();
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) answers.get(f.streamId)?.(fromBinary(ResponseSchema, f.payload!));
  });
  t.teardown(() => {
    socket.destroy();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let nextId = 1;
  const raw = (request: Uint8Array, id = (nextId += 2)) => {
    const answer = new Promise<Response>((resolve) => answers.set(id, resolve));
    socket.write(encodeFrame(id, FrameKind.Request, request));
    return answer;
  };
  const call = <D extends DescMessage>(method: string, schema: D, input: MessageInitShape<D>) =>
    raw(toBinary(RequestSchema, create(RequestSchema, { service: 'containerd.task.v2.Task', method, payload: toBinary(schema, create(schema, input)) })));
  return { raw, call, published, shutdowns: () => shutdowns, dir };
}

t.test('the Task service over ttrpc: answers, and errors as containerd\'s errdefs codes', async (t) => {
  const shim = await serveTask(t);
  const connect = await shim.call('Connect', ConnectRequestSchema, { id: 'task-1' });
  t.equal(connect.status, undefined, 'Connect succeeds');
  t.equal(fromBinary(ConnectResponseSchema, connect.payload).shimPid, process.pid, 'and names the shim\'s pid');
  t.equal((await shim.call('State', StateRequestSchema, { id: 'task-1' })).status?.code, Code.NotFound, 'State before Create: NotFound');
  t.equal((await shim.call('Pause', StateRequestSchema, { id: 'task-1' })).status?.code, Code.Unimplemented, 'Pause: Unimplemented');

  const request = (method: string, payload: Uint8Array) => toBinary(RequestSchema, create(RequestSchema, { service: 'containerd.task.v2.Task', method, payload }));
  t.equal((await shim.raw(request('Teleport', new Uint8Array()))).status?.code, Code.Unimplemented, 'an unknown method');
  t.equal((await shim.raw(request('State', Buffer.from([0x0f, 1, 2])))).status?.code, Code.InvalidArgument, 'a payload that is no protobuf');
  t.equal((await shim.raw(Buffer.from([0xff, 0xff, 0xff]))).status?.code, Code.InvalidArgument, 'an envelope that is no Request');

  // Many requests in one write, each answered on its own stream.
  const ids = [101, 103, 105, 107];
  const pending = ids.map((id) => shim.raw(request('State', toBinary(StateRequestSchema, create(StateRequestSchema, { id: 'other' }))), id));
  const all = await Promise.all(pending);
  t.same(all.map((r) => r.status?.code), ids.map(() => Code.NotFound), 'pipelined requests each get their answer');
});

t.test('Create refuses a bundle it cannot run with InvalidArgument, and leaves the shim able to shut down', async (t) => {
  const shim = await serveTask(t);
  const bundle = path.join(shim.dir, 'bundle');
  fs.mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  const createTask = () => shim.call('Create', CreateTaskRequestSchema, { id: 'task-1', bundle });
  const noConfig = await createTask();
  t.equal(noConfig.status?.code, Code.InvalidArgument);
  t.match(noConfig.status?.message, /config\.json cannot be read as an OCI spec/);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { args: [] } }));
  t.match((await createTask()).status?.message, /no process\.args/);
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify({ process: { args: ['true'] }, mounts: [{ destination: '/x', type: 'nfs', source: 'h:/e' }] }));
  t.match((await createTask()).status?.message, /mounts a nfs filesystem on \/x/);
  const other = await shim.call('Create', CreateTaskRequestSchema, { id: 'task-2', bundle });
  t.equal(other.status?.code, Code.InvalidArgument, 'a task of another id');
  t.same(shim.published, [], 'no event for a task never created');
  t.equal((await shim.call('Shutdown', ShutdownRequestSchema, { id: 'task-1' })).status, undefined);
  t.equal(shim.shutdowns(), 1, 'Shutdown with no task ends the shim');
});
