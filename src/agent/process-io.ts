/** What a caller hands a runtime for the process's streams, and gets back to steer it. */
import type { Readable, Writable } from 'node:stream';

export interface Stdio {
  /** Omitted or null: the process reads end of file at once. */
  stdin?: Readable | null;
  stdout: Writable;
  stderr: Writable;
}

/** What a caller can do to a run in progress. */
export interface RunControl {
  /** Sends a signal (name or number) to the process. */
  signal(signal: NodeJS.Signals | number): void;
  /** Tells the process's terminal its new size (TTY runs). */
  resize(rows: number, cols: number): void;
  /** Tears the VM or container down at once, whatever the process does; the run then fails. */
  stop(): void;
}
