/** What a caller hands a runtime for the process's streams, and gets back to steer it. */
import type { Readable, Writable } from 'node:stream';

import type { ProcessSpec } from './specs';

export interface Stdio {
  /** Omitted or null: the process reads end of file at once. */
  stdin?: Readable | null;
  stdout: Writable;
  stderr: Writable;
}

/** What a caller can do to a process in progress. */
export interface ProcessControl {
  /** Where known: resolves once the process runs; rejects (125-127) when it could not start. */
  started?: Promise<void>;
  /** Sends a signal (name or number) to the process. */
  signal(signal: NodeJS.Signals | number): void;
  /** Tells the process's terminal its new size (TTY runs). */
  resize(rows: number, cols: number): void;
}

/** What a caller can do to a run in progress. */
export interface RunControl extends ProcessControl {
  /** Resolves once the main process runs; rejects as the run does when it could not start. */
  started: Promise<void>;
  /** Tears the VM or container down at once, whatever the process does; the run then fails. */
  stop(): void;
  /**
   * Starts another process in the run's VM or container, beside the main one (`docker exec`):
   * its exit code, or AgentError (125-127) when it could not start. The main process's end ends
   * it too.
   */
  exec(spec: ProcessSpec, stdio: Stdio, onStart?: (control: ProcessControl) => void): Promise<number>;
  /** The host process that holds the run (the VMM; runc's container init), when it has one. */
  pid(): number | undefined;
}
