/**
 * The host's side of the agent's process, wherever the agent runs (a VM's vsock connections or
 * the descriptors runc hands a container): stdin fed with backpressure, stdout and stderr drained
 * to their ends, signals and terminal sizes as control frames.
 */
import type net from 'node:net';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

import type { ProcessControl, RunControl, Stdio } from './process-io';
import { FrameType, terminalSize, u32 } from './frames';
import type { AgentSession } from './session';

export interface ProcessSockets {
  stdin: Promise<net.Socket>;
  stdout: Promise<net.Socket>;
  stderr: Promise<net.Socket>;
}

export function processControl(session: AgentSession): ProcessControl {
  return {
    started: session.started,
    signal: (signal) => session.send(FrameType.Signal, u32(typeof signal === 'number' ? signal : constants.signals[signal])),
    resize: (rows, cols) => session.send(FrameType.Resize, terminalSize(rows, cols)),
  };
}

/** The main process's control, with the run's means to stop and to exec, and its host process's pid. */
export function runControl(session: AgentSession, stop: () => void, exec: RunControl['exec'], pid: RunControl['pid']): RunControl {
  return { ...processControl(session), started: session.started, stop, exec, pid };
}

/**
 * Relays the process's streams until the agent reports its exit code and the last output byte
 * has arrived (the agent sends EXIT after it); `gone`, when streams can outlive their writer,
 * rejects when the writer (the VM) ended before that.
 */
export async function relayProcess(session: AgentSession, sockets: ProcessSockets, stdio: Stdio, gone?: Promise<never>): Promise<number> {
  gone?.catch(() => {});  // it may end first; the session's outcome says so then
  const stdin = sockets.stdin.then((socket) => feedStdin(socket, stdio.stdin));
  const outputs = [sockets.stdout.then((socket) => drain(socket, stdio.stdout)), sockets.stderr.then((socket) => drain(socket, stdio.stderr))];
  try {
    const exitCode = await session.outcome;
    await Promise.race([Promise.all(outputs), ...(gone ? [gone] : [])]);
    return exitCode;
  } finally {
    void stdin.then((stop) => stop());
  }
}

/** Pipes the caller's stdin to the agent; returns how to stop once the process is gone. */
function feedStdin(socket: net.Socket, stdin: Readable | null | undefined): () => void {
  socket.on('error', () => {});  // the process may exit without reading its input
  if (!stdin) {
    socket.end();
    return () => socket.destroy();
  }
  stdin.pipe(socket);
  return () => {
    stdin.unpipe(socket);
    socket.destroy();
  };
}

/**
 * Copies an output stream of the process to `out` with backpressure, until the agent ends it.
 * When `out` fails (vmrun's stdout is a pipe whose reader left, as in `vmrun IMAGE yes | head`),
 * the connection is dropped: the agent then closes the process's end, and the process meets
 * SIGPIPE or EPIPE as it would in a shell pipeline.
 */
function drain(socket: net.Socket, out: Writable): Promise<void> {
  // A broken connection ends the stream like any other end: 'close' follows.
  socket.on('error', () => {});
  const readerGone = () => socket.destroy();
  out.once('error', readerGone);
  socket.pipe(out, { end: false });
  return new Promise((resolve) =>
    socket.once('close', () => {
      out.off('error', readerGone);
      resolve();
    }),
  );
}
