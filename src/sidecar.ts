/**
 * Helper processes that a run starts beside its VM or container and stops with it: passt and
 * pasta (src/network/user-net.ts), virtiofsd (src/volumes/virtiofsd.ts). How to wait for one to
 * come up, read why it failed, and stop it once, also when vmrun itself is torn down.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';

import { log } from './log';
import { onTeardown } from './teardown';

/** How long a helper gets to come up. */
export const START_TIMEOUT_MS = 10_000;

/**
 * Polls `ready` until it holds; fails with `fail(message)` when `exited` settles first or the time
 * runs out. `what` names the helper in the message, `detail` adds what it said.
 */
export async function until(
  ready: () => boolean,
  exited: Promise<number | null> | undefined,
  what: string,
  detail: () => string,
  fail: (message: string) => Error,
): Promise<void> {
  let gone = false;
  void exited?.then(() => (gone = true));
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (let wait = 1; !ready(); wait = Math.min(wait * 2, 50)) {
    if (gone) throw fail(`${what} failed to start: ${detail() || 'it exited'}`);
    if (performance.now() > deadline) throw fail(`${what} did not come up within ${START_TIMEOUT_MS / 1000} s${detail() ? `: ${detail()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
}

/** The end of what the child wrote to stderr, one line; lines matching `ignore` left out. */
export function stderrOf(child: ChildProcess, ignore?: RegExp): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => (text = (text + chunk.toString('utf8')).slice(-2000)));
  return () => text.split('\n').map((l) => l.trim()).filter((l) => l && !ignore?.test(l)).join('; ');
}

/**
 * Polls until process `pid` has exited. A zombie has: its sockets are closed, and reaping it is
 * the business of whoever adopted the daemon, however slow.
 */
export async function waitGone(pid: number): Promise<void> {
  for (;;) {
    const stat = readText(`/proc/${pid}/stat`);
    // pid (comm) STATE ...: comm may hold spaces and parentheses, so the state follows the last ')'.
    if (stat === '' || /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Stops the helper once (also when vmrun is torn down), then removes its directory. */
export function stopper(kill: () => void, gone: Promise<unknown>, dir: string, what: string): () => Promise<void> {
  const unregister = onTeardown(kill);
  let stopped: Promise<void> | undefined;
  return () =>
    (stopped ??= (async () => {
      kill();
      await gone;
      unregister();
      fs.rmSync(dir, { recursive: true, force: true });
      log.debug(`${what} stopped`);
    })());
}

/** Whether a Unix socket listens at `socketPath`, as /proc/net/unix says (connecting would take a one-client helper's only connection). */
export function unixListening(socketPath: string): boolean {
  // Num RefCount Protocol Flags Type St Inode Path: Flags 00010000 is __SO_ACCEPTCON, listening.
  return readText('/proc/net/unix').split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields.length >= 8 && fields[3] === '00010000' && fields.slice(7).join(' ') === socketPath;
  });
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
