/**
 * ttrpc, the RPC containerd speaks to its shims (github.com/containerd/ttrpc 1.1, channel.go and
 * server.go): protobuf messages over a unix socket, each in a frame of a 10-byte header (u32 BE
 * payload length, u32 BE stream id, u8 type, u8 flags) and at most 4 MiB of payload. A client
 * sends a Request (type 1) on an odd stream id of its choosing; the server answers on that id
 * with a Response (type 2) that carries either the method's output or a google.rpc.Status. Many
 * calls are in flight at once: containerd's Wait is answered only when the task exits.
 *
 * Every byte comes from a peer that may be wrong or hostile: a frame too large is skipped and
 * answered with an error, an unknown method gets Unimplemented, an undecodable payload
 * InvalidArgument. Only a broken header stream (which cannot be resynchronised) closes the
 * connection.
 */
import net from 'node:net';

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

import { RequestSchema, ResponseSchema, type Request } from './gen/ttrpc_pb';

export const HEADER_BYTES = 10;
export const MAX_PAYLOAD = 4 << 20;

export enum FrameKind {
  Request = 1,
  Response = 2,
}

/** google.rpc.Code values, as containerd's errdefs maps them to its errors. */
export enum Code {
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  FailedPrecondition = 9,
  ResourceExhausted = 8,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
}

/** An error a handler throws to answer with this status code (containerd's errdefs reads it). */
export class TtrpcError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
  }
}

export interface Frame {
  streamId: number;
  kind: number;
  flags: number;
  /** Absent when the frame was over MAX_PAYLOAD: its bytes were skipped. */
  payload?: Buffer;
  /** The declared length, for the error when the payload was skipped. */
  length: number;
}

export function encodeFrame(streamId: number, kind: FrameKind, payload: Uint8Array): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new TtrpcError(Code.ResourceExhausted, `message of ${payload.length} bytes exceeds ttrpc's ${MAX_PAYLOAD}`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt8(kind, 8);
  return Buffer.concat([header, payload]);
}

/** Splits a byte stream into frames, whatever the chunking; an oversized payload is skipped, not buffered. */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header?: { length: number; streamId: number; kind: number; flags: number };
  private skipping = 0;

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    if (this.skipping > 0) {
      const skipped = Math.min(this.skipping, chunk.length);
      this.skipping -= skipped;
      chunk = chunk.subarray(skipped);
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    for (;;) {
      if (!this.header) {
        if (this.pendingBytes < HEADER_BYTES) return frames;
        const h = this.take(HEADER_BYTES);
        this.header = { length: h.readUInt32BE(0), streamId: h.readUInt32BE(4), kind: h.readUInt8(8), flags: h.readUInt8(9) };
      }
      const { length } = this.header;
      if (length > MAX_PAYLOAD) {
        frames.push({ ...this.header });
        this.header = undefined;
        const skipped = Math.min(length, this.pendingBytes);
        this.take(skipped);
        this.skipping = length - skipped;
        if (this.skipping > 0) return frames;
        continue;
      }
      if (this.pendingBytes < length) return frames;
      frames.push({ ...this.header, payload: this.take(length) });
      this.header = undefined;
    }
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    this.pending = n < all.length ? [all.subarray(n)] : [];
    this.pendingBytes = all.length - n;
    return all.subarray(0, n);
  }
}

/** A service's methods, by their generated local names: input message in, output message (its fields) out. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [M in keyof S]: (input: MessageShape<S[M]['input']>, request: Request) => Promise<MessageInitShape<S[M]['output']>>;
};

interface Route {
  input: DescMessage;
  output: DescMessage;
  call: (input: unknown, request: Request) => Promise<unknown>;
}

/** A ttrpc server for the given services, each a generated descriptor and its implementation. */
export class TtrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly sockets = new Set<net.Socket>();
  readonly server = net.createServer((socket) => this.serve(socket));

  register<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): this {
    for (const method of service.methods) {
      const call = (impl as Record<string, Route['call']>)[method.localName];
      this.routes.set(`${service.typeName}/${method.name}`, { input: method.input, output: method.output, call: call.bind(impl) });
    }
    return this;
  }

  /** Connections open now: the shim's client is containerd, which may come and go. */
  get connections(): number {
    return this.sockets.size;
  }

  close(): void {
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) void this.answer(socket, frame);
    });
  }

  private async answer(socket: net.Socket, frame: Frame): Promise<void> {
    if (frame.kind !== FrameKind.Request) return; // ttrpc 1.1 ignores other kinds too
    const response = await this.respond(frame).catch((err: unknown) => {
      const code = err instanceof TtrpcError ? err.code : Code.Unknown;
      return create(ResponseSchema, { status: { code, message: err instanceof Error ? err.message : String(err) } });
    });
    if (!socket.destroyed) socket.write(encodeFrame(frame.streamId, FrameKind.Response, toBinary(ResponseSchema, response)));
  }

  private async respond(frame: Frame) {
    if (!frame.payload) throw new TtrpcError(Code.ResourceExhausted, `message length ${frame.length} exceeds the maximum message size of ${MAX_PAYLOAD}`);
    const request = decode(RequestSchema, frame.payload, 'request');
    const route = this.routes.get(`${request.service}/${request.method}`);
    if (!route) throw new TtrpcError(Code.Unimplemented, `${request.service}/${request.method}: no such method`);
    const output = await route.call(decode(route.input, request.payload, `${request.method} request`), request);
    return create(ResponseSchema, { payload: toBinary(route.output, create(route.output, output as MessageInitShape<DescMessage>)) });
  }
}

function decode<D extends DescMessage>(schema: D, bytes: Uint8Array, what: string): MessageShape<D> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, `malformed ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
