/**
 * The host terminal during a run: raw mode for TTY runs (always restored, whatever ends the run),
 * the user's signals, and the terminal's size as it changes.
 */
import type { ProcessControl } from '../agent/process-io';

/** The signals `docker run` forwards to the process by default that a terminal user sends. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

export function terminalSize(): { rows: number; cols: number } {
  return { rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 };
}

/** Subscribes `handler` to the forwarded signals (vmrun then no longer dies of them). */
export function onUserSignal(handler: (signal: NodeJS.Signals) => void): () => void {
  for (const signal of FORWARDED) process.on(signal, handler);
  return () => {
    for (const signal of FORWARDED) process.off(signal, handler);
  };
}

/** Forwards SIGWINCH as the process's new terminal size; returns how to stop. */
export function forwardResizes(control: ProcessControl): () => void {
  const resize = () => {
    const { rows, cols } = terminalSize();
    control.resize(rows, cols);
  };
  process.on('SIGWINCH', resize);
  return () => process.off('SIGWINCH', resize);
}

/** Runs `body` with stdin in raw mode when it is a terminal and `raw` is set, and restores it. */
export async function withRawTerminal<T>(raw: boolean, body: () => Promise<T>): Promise<T> {
  const stdin = process.stdin;
  if (!raw || !stdin.isTTY) return body();
  const restore = () => stdin.setRawMode(false);
  stdin.setRawMode(true);
  // Even a crash must not leave the user's terminal raw.
  process.once('exit', restore);
  try {
    return await body();
  } finally {
    restore();
    process.off('exit', restore);
  }
}
