// The host's side of the agent channel, against a fake agent on a real Unix socket: frames split
// anywhere still parse, and whatever a hostile guest sends ends in a clear AgentError.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import t, { type Test } from 'tap';

import { AgentError } from '../../src/errors';
import { encodeFrame, FrameReader, FrameType, MAX_FRAME_BYTES, u32 } from '../../src/agent/frames';
import { AgentPort } from '../../src/agent/channels';
import { AgentListener } from '../../src/vm/agent-listener';
import { AgentSession } from '../../src/agent/session';

t.test('frames split at every byte boundary come out whole', async (t) => {
  const stream = Buffer.concat([encodeFrame(FrameType.Phase, 'agent 12345'), encodeFrame(FrameType.Exit, u32(7))]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const reader = new FrameReader();
    const frames = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))];
    t.same(frames.map((f) => [f.type, f.payload.toString('latin1')]), [[FrameType.Phase, 'agent 12345'], [FrameType.Exit, '\x07\x00\x00\x00']], `cut at ${cut}`);
  }
});

t.test('a frame length out of range is refused before anything is buffered', async (t) => {
  for (const length of [0, MAX_FRAME_BYTES + 1, 0xffffffff]) {
    const header = Buffer.alloc(4);
    header.writeUInt32LE(length);
    t.throws(() => new FrameReader().push(header), AgentError, `length ${length}`);
  }
  t.throws(() => encodeFrame(FrameType.Arg, Buffer.alloc(MAX_FRAME_BYTES)), AgentError);
});

/** A session whose far end is a fake agent; returns both ends. */
async function sessionWithFakeAgent(t: Test): Promise<{ session: AgentSession; agent: net.Socket }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-channel-'));
  const listener = await AgentListener.open(dir);
  t.teardown(() => {
    listener.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const agent = net.connect(`${listener.socketPath}_${AgentPort.Control}`);
  const session = new AgentSession(await listener.accept(AgentPort.Control));
  t.teardown(() => agent.destroy());
  return { session, agent };
}

t.test('EXIT resolves with the exit code and PHASE frames are kept', async (t) => {
  const { session, agent } = await sessionWithFakeAgent(t);
  agent.write(Buffer.concat([encodeFrame(FrameType.Phase, 'agent 1000000'), encodeFrame(FrameType.Phase, 'exec 3000000')]));
  agent.write(encodeFrame(FrameType.Exit, u32(7)));
  t.equal(await session.outcome, 7);
  t.same(session.phases, { agent: 1000000, exec: 3000000 });
});

t.test('PROGRESS frames reach the listener in order', async (t) => {
  const { session, agent } = await sessionWithFakeAgent(t);
  const seen: [number, number][] = [];
  session.onProgress = (number, bytes) => seen.push([number, bytes]);
  agent.write(Buffer.concat([encodeFrame(FrameType.Progress, '1 0'), encodeFrame(FrameType.Progress, '1 4194304'), encodeFrame(FrameType.Progress, '2 131072')]));
  agent.write(encodeFrame(FrameType.Exit, u32(0)));
  t.equal(await session.outcome, 0);
  t.same(seen, [[1, 0], [1, 4194304], [2, 131072]]);
});

t.test('ERROR becomes an AgentError with the exit code and a one-line message', async (t) => {
  const { session, agent } = await sessionWithFakeAgent(t);
  const payload = Buffer.concat([u32(127), Buffer.from('exec: "nope": executable file not found in $PATH\n\x1b[31mred')]);
  agent.write(encodeFrame(FrameType.Error, payload));
  const err = (await session.outcome.catch((e) => e)) as AgentError;
  t.type(err, AgentError);
  t.equal(err.exitCode, 127);
  t.equal(err.message, 'exec: "nope": executable file not found in $PATH [31mred');
});

t.test('hostile frames end the session with a clear error', async (t) => {
  const cases: [string, Buffer, RegExp][] = [
    ['unknown type', encodeFrame(99 as FrameType, 'x'), /unknown type 99/],
    ['short EXIT', encodeFrame(FrameType.Exit, 'ab'), /malformed EXIT/],
    ['malformed PHASE', encodeFrame(FrameType.Phase, 'no-number'), /malformed PHASE/],
    ['malformed PROGRESS', encodeFrame(FrameType.Progress, '1 -5'), /malformed PROGRESS/],
    ['PROGRESS beyond any blob', encodeFrame(FrameType.Progress, `1 ${'9'.repeat(17)}`), /malformed PROGRESS/],
    ['huge length', Buffer.from([0xff, 0xff, 0xff, 0x7f, 33]), /frame of \d+ bytes/],
    ['ERROR with an out-of-range code', encodeFrame(FrameType.Error, Buffer.concat([u32(100000), Buffer.from('bad')])), /^bad$/],
  ];
  for (const [name, bytes, message] of cases) {
    const { session, agent } = await sessionWithFakeAgent(t);
    agent.write(bytes);
    const err = (await session.outcome.catch((e) => e)) as AgentError;
    t.type(err, AgentError, name);
    t.match(err.message, message, name);
    t.equal(err.exitCode, 125, `${name}: vmrun's own exit code`);
  }
});

t.test('a control connection closed before the outcome is an error', async (t) => {
  const { session, agent } = await sessionWithFakeAgent(t);
  agent.end(encodeFrame(FrameType.Phase, 'agent 1'));
  await t.rejects(session.outcome, /closed its control connection before the process ended/);
});
