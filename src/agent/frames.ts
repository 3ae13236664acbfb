/**
 * Frames of the agent's control connection (guest/agent/PROTOCOL.md): u32 length (LE, counting
 * the type byte and payload), u8 type, payload. The guest writes what we read here, so every
 * length is checked before anything is buffered.
 */
import { AgentError } from '../errors';

export const MAX_FRAME_BYTES = 1 << 20;

export enum FrameType {
  Mode = 1,
  Lower = 2,
  Layer = 3,
  Arg = 4,
  Env = 5,
  Workdir = 6,
  User = 7,
  Hostname = 8,
  Tty = 9,
  ReadOnly = 10,
  Resolv = 11,
  Hosts = 12,
  Network = 13,
  Mount = 14,
  End = 15,
  Signal = 16,
  Resize = 17,
  Exec = 18,
  Idle = 19,
  Fresh = 20,
  Root = 21,
  Rlimit = 22,
  Phase = 32,
  Exit = 33,
  Error = 34,
  Progress = 35,
}

export interface Frame {
  type: number;
  payload: Buffer;
}

/** One frame; `type` is any u8 (the sandboxes' control socket frames its own types the same way). */
export function encodeFrame(type: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (body.length + 1 > MAX_FRAME_BYTES) throw new AgentError(`a ${FrameType[type] ?? `type ${type}`} frame of ${body.length} bytes is over the 1 MiB limit`);
  const header = Buffer.alloc(5);
  header.writeUInt32LE(body.length + 1, 0);
  header.writeUInt8(type, 4);
  return Buffer.concat([header, body]);
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return b;
}

export function terminalSize(rows: number, cols: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(rows, 0);
  b.writeUInt16LE(cols, 2);
  return b;
}

/**
 * Splits a byte stream into frames; throws AgentError on a length out of range. Chunks are joined
 * only once a whole frame has arrived, so a frame sent a byte at a time costs linear time.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    while (this.pendingBytes >= 4) {
      const length = this.peekLength();
      if (length < 1 || length > MAX_FRAME_BYTES) throw new AgentError(`the guest agent sent a frame of ${length} bytes; the limit is ${MAX_FRAME_BYTES}`);
      if (this.pendingBytes < 4 + length) break;
      const data = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
      frames.push({ type: data[4], payload: data.subarray(5, 4 + length) });
      const rest = data.subarray(4 + length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
    }
    return frames;
  }

  /** The little-endian u32 that starts the pending bytes, however they are split into chunks. */
  private peekLength(): number {
    const first = this.pending[0];
    if (first.length >= 4) return first.readUInt32LE(0);
    const head = Buffer.alloc(4);
    let filled = 0;
    for (const chunk of this.pending) {
      filled += chunk.copy(head, filled, 0, Math.min(chunk.length, 4 - filled));
      if (filled === 4) break;
    }
    return head.readUInt32LE(0);
  }
}
