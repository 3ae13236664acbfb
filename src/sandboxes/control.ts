/**
 * The control socket of a sandbox's supervisor (control.sock in its directory), through which
 * `vmrun exec`, `kill` and `stop` reach the running sandbox. Frames as the agent's (u32 length,
 * u8 type, payload): first a REQUEST (JSON), then, for an exec, the process's streams both ways
 * until EXIT or ERROR. The socket is the owner's alone (its directory is 0700).
 */
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { PassThrough } from 'node:stream';

import { encodeFrame, FrameReader, terminalSize } from '../agent/frames';
import type { ProcessControl, RunControl } from '../agent/process-io';
import type { RunSpec } from '../agent/specs';
import { SandboxError, VmrunError } from '../errors';
import { makeExecSpec, type ExecOptions } from '../run/spec';

enum ControlFrame {
  Request = 1,
  Stdin = 2,
  StdinEnd = 3,
  Signal = 4,
  Resize = 5,
  Stdout = 16,
  Stderr = 17,
  Exit = 18,
  Error = 19,
  Done = 20,
}

export type ControlRequest = { op: 'exec'; exec: ExecOptions; interactive: boolean } | { op: 'signal'; signal: NodeJS.Signals } | { op: 'stop' };

/** Chunks of at most this many bytes in a frame, well under the 1 MiB frame limit. */
const CHUNK = 64 << 10;

/** The supervisor's side: serves requests against the running sandbox, whose spec execs build on. */
export function serveControl(socketPath: string, control: RunControl, spec: RunSpec): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const reader = new FrameReader();
    let stdin: PassThrough | undefined;
    let exec: ProcessControl | undefined;
    let started = false;
    const send = (type: ControlFrame, payload?: Buffer | string) => {
      if (!socket.destroyed) socket.write(encodeFrame(type, payload));
    };
    const fail = (err: unknown) => {
      const exitCode = err instanceof VmrunError ? err.exitCode : 125;
      send(ControlFrame.Error, JSON.stringify({ message: err instanceof Error ? err.message : String(err), exitCode }));
      socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch {
        return socket.destroy();
      }
      for (const { type, payload } of frames) {
        if (!started) {
          started = true;
          if (type !== ControlFrame.Request) return socket.destroy();
          let request: ControlRequest;
          try {
            request = JSON.parse(payload.toString('utf8')) as ControlRequest;
          } catch {
            return socket.destroy();
          }
          if (request.op === 'signal') {
            control.signal(request.signal);
            send(ControlFrame.Done);
            socket.end();
          } else if (request.op === 'stop') {
            control.stop();
            send(ControlFrame.Done);
            socket.end();
          } else if (request.op === 'exec') {
            stdin = request.interactive ? new PassThrough() : undefined;
            const stdout = frameWriter((b) => send(ControlFrame.Stdout, b));
            const stderr = frameWriter((b) => send(ControlFrame.Stderr, b));
            Promise.resolve()
              .then(() => control.exec(makeExecSpec(spec, request.exec), { stdin, stdout, stderr }, (c) => (exec = c)))
              .then(
              (code) => {
                send(ControlFrame.Exit, Buffer.from(Int32Array.of(code).buffer));
                socket.end();
              },
              fail,
            );
          } else {
            return socket.destroy();
          }
          continue;
        }
        if (type === ControlFrame.Stdin) stdin?.write(payload);
        else if (type === ControlFrame.StdinEnd) stdin?.end();
        else if (type === ControlFrame.Signal) exec?.signal(payload.toString('utf8') as NodeJS.Signals);
        else if (type === ControlFrame.Resize && payload.length === 4) exec?.resize(payload.readUInt16LE(0), payload.readUInt16LE(2));
      }
    });
    // The client gone: nobody reads, nothing more to feed.
    socket.on('close', () => stdin?.end());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve(server));
  });
}

function frameWriter(send: (b: Buffer) => void): PassThrough {
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => {
    for (let at = 0; at < b.length; at += CHUNK) send(b.subarray(at, at + CHUNK));
  });
  return stream;
}

export interface ExecStdio {
  stdin: Readable | null;
  stdout: Writable;
  stderr: Writable;
}

/** The client's side of an exec: its exit code, or the error the sandbox gave. */
export function requestExec(socketPath: string, exec: ExecOptions, stdio: ExecStdio, onStart?: (control: ProcessControl) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath, reject);
    const reader = new FrameReader();
    const request: ControlRequest = { op: 'exec', exec, interactive: stdio.stdin !== null };
    socket.write(encodeFrame(ControlFrame.Request, JSON.stringify(request)));
    if (stdio.stdin) {
      stdio.stdin.on('data', (b: Buffer) => {
        for (let at = 0; at < b.length; at += CHUNK) socket.write(encodeFrame(ControlFrame.Stdin, b.subarray(at, at + CHUNK)));
      });
      stdio.stdin.on('end', () => socket.write(encodeFrame(ControlFrame.StdinEnd)));
    }
    onStart?.({
      signal: (signal) => socket.write(encodeFrame(ControlFrame.Signal, String(signal))),
      resize: (rows, cols) => socket.write(encodeFrame(ControlFrame.Resize, terminalSize(rows, cols))),
    });
    let settled = false;
    // Backpressure: a slow reader of the output (cp's extraction) holds the stream back.
    const write = (out: Writable, payload: Buffer) => {
      if (!out.write(payload)) {
        socket.pause();
        out.once('drain', () => socket.resume());
      }
    };
    socket.on('data', (chunk: Buffer) => {
      for (const { type, payload } of reader.push(chunk)) {
        if (type === ControlFrame.Stdout) write(stdio.stdout, payload);
        else if (type === ControlFrame.Stderr) write(stdio.stderr, payload);
        else if (type === ControlFrame.Exit && payload.length === 4) {
          settled = true;
          resolve(payload.readInt32LE(0));
        } else if (type === ControlFrame.Error) {
          settled = true;
          reject(remoteError(payload));
        }
      }
    });
    socket.on('close', () => {
      if (!settled) reject(new SandboxError('the sandbox ended while the command ran'));
    });
  });
}

/** Asks the supervisor to signal the main process or to stop the sandbox. */
export function requestControl(socketPath: string, request: Exclude<ControlRequest, { op: 'exec' }>): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath, reject);
    const reader = new FrameReader();
    socket.write(encodeFrame(ControlFrame.Request, JSON.stringify(request)));
    socket.on('data', (chunk: Buffer) => {
      for (const { type, payload } of reader.push(chunk)) {
        if (type === ControlFrame.Done) resolve();
        else if (type === ControlFrame.Error) reject(remoteError(payload));
      }
    });
    socket.on('close', () => reject(new SandboxError('the sandbox ended before it answered')));
  });
}

function connect(socketPath: string, reject: (err: Error) => void): net.Socket {
  const socket = net.connect(socketPath);
  socket.on('error', (err: NodeJS.ErrnoException) =>
    reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? new SandboxError('the sandbox is not running') : err),
  );
  return socket;
}

function remoteError(payload: Buffer): SandboxError {
  let parsed: { message?: string; exitCode?: number } = {};
  try {
    parsed = JSON.parse(payload.toString('utf8')) as typeof parsed;
  } catch {
    // below
  }
  return new SandboxError(parsed.message ?? 'the sandbox failed without saying why', parsed.exitCode ?? 125);
}
