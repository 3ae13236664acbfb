/**
 * A process's stdio as containerd hands it to a shim: paths of FIFOs it made and holds open (an
 * empty path: none). They are opened non-blocking and driven by libuv as pipes, never by a
 * thread blocked in read(2).
 */
import fs from 'node:fs';
import net from 'node:net';
import { PassThrough } from 'node:stream';

import type { Stdio } from '../agent/process-io';
import { discard } from '../streams';

export interface FifoPaths {
  stdin: string;
  stdout: string;
  stderr: string;
}

export interface OpenedStdio {
  stdio: Stdio;
  /** CloseIO: the process reads end of file once what was written is through. */
  closeStdin(): void;
  /** Closes every FIFO of ours once the process is gone. */
  close(): void;
}

export function openFifos(paths: FifoPaths): OpenedStdio {
  const sockets: net.Socket[] = [];
  const open = (path: string, flags: number, options: net.SocketConstructorOpts) => {
    const socket = new net.Socket({ fd: fs.openSync(path, flags | fs.constants.O_NONBLOCK), ...options });
    socket.on('error', () => {}); // a reader that went away: the process meets EPIPE, as under runc
    sockets.push(socket);
    return socket;
  };
  try {
    // The client holds the writing end by now (it opened its FIFOs before it asked for the
    // task); when it closes it, or asks CloseIO, the process reads end of file.
    const input = paths.stdin ? open(paths.stdin, fs.constants.O_RDONLY, { readable: true, writable: false }) : undefined;
    const stdin = input && new PassThrough();
    input?.pipe(stdin!);
    const stdout = paths.stdout ? open(paths.stdout, fs.constants.O_WRONLY, { readable: false, writable: true }) : discard();
    const stderr = paths.stderr ? open(paths.stderr, fs.constants.O_WRONLY, { readable: false, writable: true }) : discard();
    return {
      stdio: { stdin: stdin ?? null, stdout, stderr },
      closeStdin: () => {
        if (!input || !stdin || input.destroyed) return;
        // The client asks this once it wrote its last byte, which may still sit in the FIFO:
        // what is there now goes to the process before its end of file.
        input.pause();
        input.unpipe(stdin);
        for (let chunk; (chunk = input.read() as Buffer | null) !== null; ) stdin.write(chunk);
        for (const chunk of readWhatIsThere(paths.stdin)) stdin.write(chunk);
        stdin.end();
        input.destroy();
      },
      close: () => sockets.forEach((s) => s.destroy()),
    };
  } catch (err) {
    sockets.forEach((s) => s.destroy());
    throw err;
  }
}

/** What a FIFO holds now, read through a descriptor of its own without waiting for more. */
function readWhatIsThere(path: string): Buffer[] {
  const chunks: Buffer[] = [];
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    for (;;) {
      const buffer = Buffer.alloc(65536);
      const n = fs.readSync(fd, buffer);
      if (n === 0) break;
      chunks.push(buffer.subarray(0, n));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return chunks;
}
