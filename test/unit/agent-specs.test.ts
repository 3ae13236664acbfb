// The run spec's frames as the host sends them (src/agent/specs.ts): FRESH goes to a VM only.
import t from 'tap';

import { FrameType } from '../../src/agent/frames';
import type { AgentSession } from '../../src/agent/session';
import { freshPayload, sendRunSpec, type AgentHome, type RunSpec } from '../../src/agent/specs';

const spec: RunSpec = {
  argv: ['sh'],
  env: [],
  workdir: '/',
  user: '',
  hostname: 'host',
  readOnly: false,
  resolvConf: '',
  hosts: [],
  network: { mode: 'none' },
  volumes: [],
};

function sent(home: AgentHome): { type: FrameType; payload?: Buffer | string }[] {
  const frames: { type: FrameType; payload?: Buffer | string }[] = [];
  const session = { send: (type: FrameType, payload?: Buffer | string) => frames.push({ type, payload }) } as unknown as AgentSession;
  sendRunSpec(session, spec, home, { lowers: home === 'vm' ? ['vda1'] : [] });
  return frames;
}

t.test('a VM gets one FRESH: the time and 64 random bytes, between MODE and END', async (t) => {
  const frames = sent('vm');
  const fresh = frames.filter((f) => f.type === FrameType.Fresh);
  t.equal(fresh.length, 1);
  const payload = fresh[0].payload as Buffer;
  t.ok(Buffer.isBuffer(payload));
  t.equal(payload.length, 72);
  const ms = Number(payload.readBigUInt64LE(0) / 1_000_000n);
  t.ok(Math.abs(ms - Date.now()) < 60_000, 'the wall clock in ns since the epoch');
  t.equal(frames[0].type, FrameType.Mode);
  t.equal(frames.at(-1)?.type, FrameType.End);
});

t.test('a container gets no FRESH', async (t) => {
  t.notOk(sent('container').some((f) => f.type === FrameType.Fresh));
});

t.test('two FRESH payloads differ in their random bytes', async (t) => {
  t.notSame(freshPayload().subarray(8), freshPayload().subarray(8));
});
