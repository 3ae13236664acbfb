// Property-based fuzzing (fast-check) of the parsers that take what a guest sends: the frame
// reader, however a stream of frames is cut into chunks and whatever bytes a hostile guest sends
// instead, returns the frames that were sent or throws AgentError, and nothing else; a large
// frame sent in tiny pieces is reassembled in linear time.
import fc from 'fast-check';
import t from 'tap';

import { AgentError } from '../../src/errors';
import { encodeFrame, FrameReader, MAX_FRAME_BYTES } from '../../src/agent/frames';

const frame = fc.record({ type: fc.integer({ min: 1, max: 255 }), payload: fc.uint8Array({ maxLength: 300 }) });

/** `bytes` cut at `cuts` (positions, in any order). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    out.push(bytes.subarray(from, cut));
    from = cut;
  }
  return out;
}

t.test('frames cut into any chunks come out as they were sent', async (t) => {
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
      const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, Buffer.from(f.payload))));
      const reader = new FrameReader();
      const got = chunks(stream, cuts).flatMap((c) => reader.push(c));
      return JSON.stringify(got.map((f) => [f.type, [...f.payload]])) === JSON.stringify(frames.map((f) => [f.type, [...f.payload]]));
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random streams and cuts');
});

t.test('any bytes at all: frames or AgentError, never another exception', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
      const reader = new FrameReader();
      try {
        for (const c of chunks(Buffer.from(bytes), cuts)) {
          for (const f of reader.push(c)) if (f.payload.length + 1 > MAX_FRAME_BYTES) return false;
        }
      } catch (err) {
        return err instanceof AgentError;
      }
      return true;
    }),
    { numRuns: 5000 },
  );
  t.pass('5000 random byte streams');
});

t.test('a 1 MiB frame sent a byte at a time is reassembled (linear, not quadratic, in its pieces)', { timeout: 60_000 }, async (t) => {
  const stream = encodeFrame(7, Buffer.alloc(MAX_FRAME_BYTES - 1, 0x5a));
  const reader = new FrameReader();
  const got = [];
  for (let i = 0; i < stream.length; i++) got.push(...reader.push(stream.subarray(i, i + 1)));
  t.equal(got.length, 1);
  t.equal(got[0].payload.length, MAX_FRAME_BYTES - 1);
});
