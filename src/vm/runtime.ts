/**
 * The microVM runtime: runs a RunSpec in a VM whose root is the image's cached disk (read-only,
 * shared by every VM of the image) under a writable overlay that dies with the VM. stdio travels
 * on vsock connections of its own, with backpressure end to end; signals and terminal sizes on
 * the control connection.
 */
import { constants } from 'node:os';
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';

import { AgentError } from '../errors';
import type { Image } from '../image/layout';
import type { RunSpec } from '../run/spec';
import { AgentPort } from './agent/listener';
import { FrameType, terminalSize, u32 } from './agent/frames';
import { withAgentVm, type HostTimings } from './agent-vm';
import { ensureImageDisk, type ImageDisk } from './image-disk';
import type { MachineExit } from './machine';

export interface VmResources {
  memoryMiB?: number;
  vcpus?: number;
  /** A kernel other than the cached guest kernel. */
  kernel?: string;
}

export interface Stdio {
  /** Omitted or null: the process reads end of file at once. */
  stdin?: Readable | null;
  stdout: Writable;
  stderr: Writable;
}

export interface VmRunResult {
  exitCode: number;
  /** How the image disk came to be: unpacked by this run, or from the cache. */
  disk: ImageDisk;
  host: HostTimings;
  /** Guest milestones in ms of guest boot time (`agent`, `exec`, ...). */
  guest: Record<string, number>;
}

/** What a caller can do to a run in progress. */
export interface VmRunControl {
  /** Sends a signal (name or number) to the process. */
  signal(signal: NodeJS.Signals | number): void;
  /** Tells the process's terminal its new size (TTY runs). */
  resize(rows: number, cols: number): void;
}

const DEFAULT_MEMORY_MIB = 1024;

export async function runInVm(
  image: Image,
  spec: RunSpec,
  stdio: Stdio,
  resources: VmResources = {},
  onStart?: (control: VmRunControl) => void,
): Promise<VmRunResult> {
  const disk = await ensureImageDisk(image, { kernel: resources.kernel });
  const drives = [{ path: disk.path, readOnly: true }];
  const options = { drives, memoryMiB: resources.memoryMiB ?? DEFAULT_MEMORY_MIB, vcpus: resources.vcpus ?? 1, kernel: resources.kernel };
  return withAgentVm(options, async ({ listener, session, timings, ended }) => {
    sendSpec(session.send.bind(session), spec);
    onStart?.({
      signal: (signal) => session.send(FrameType.Signal, u32(typeof signal === 'number' ? signal : constants.signals[signal])),
      resize: (rows, cols) => session.send(FrameType.Resize, terminalSize(rows, cols)),
    });
    const stdin = listener.accept(AgentPort.Stdin).then((socket) => feedStdin(socket, stdio.stdin));
    const outputs = [
      listener.accept(AgentPort.Stdout).then((socket) => drain(socket, stdio.stdout)),
      listener.accept(AgentPort.Stderr).then((socket) => drain(socket, stdio.stderr)),
    ];
    try {
      const exitCode = await session.outcome;
      // The agent sends EXIT after the last output byte; wait for those bytes to arrive.
      await Promise.race([Promise.all(outputs), ended.then((exit: MachineExit) => {
        throw new AgentError(`the VM ended (${exit.kind}) before the process's output was complete`);
      })]);
      const guest = Object.fromEntries(Object.entries(session.phases).map(([k, ns]) => [k, ns / 1e6]));
      return { exitCode, disk, host: timings, guest };
    } finally {
      void stdin.then((stop) => stop());
    }
  });
}

function sendSpec(send: (type: FrameType, payload?: Buffer | string) => void, spec: RunSpec): void {
  send(FrameType.Mode, 'run');
  send(FrameType.Rootfs, 'vda');
  for (const arg of spec.argv) send(FrameType.Arg, arg);
  for (const entry of spec.env) send(FrameType.Env, entry);
  send(FrameType.Workdir, spec.workdir);
  if (spec.user) send(FrameType.User, spec.user);
  send(FrameType.Hostname, spec.hostname);
  if (spec.tty) send(FrameType.Tty, terminalSize(spec.tty.rows, spec.tty.cols));
  if (spec.readOnly) send(FrameType.ReadOnly);
  send(FrameType.Resolv, spec.resolvConf);
  send(FrameType.End);
}

/** Pipes the caller's stdin to the guest; returns how to stop once the process is gone. */
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

/** Copies a guest output stream to `out` with backpressure, until the guest ends it. */
function drain(socket: net.Socket, out: Writable): Promise<void> {
  socket.pipe(out, { end: false });
  return new Promise((resolve) => socket.once('close', () => resolve()));
}
