/**
 * One process of a task, as containerd tracks it: the task's own (exec id '') or an exec's.
 * Created first, then started, then stopped with an exit status, each once. Both kinds run as
 * execs in the task's VM, whose main process only idles: so a task is created (its VM booted)
 * before it starts, as runc creates a container before it starts one.
 */
import type { ProcessControl, RunControl } from '../agent/process-io';
import type { ProcessSpec } from '../agent/specs';
import { AgentError } from '../errors';
import { openFifos, type FifoPaths, type OpenedStdio } from './fifos';
import { Code, TtrpcError } from './ttrpc';

export type ProcessStatus = 'created' | 'running' | 'stopped';

export interface Exit {
  status: number;
  at: Date;
}

export class ShimProcess {
  status: ProcessStatus = 'created';
  exit?: Exit;
  private control?: ProcessControl;
  private io?: OpenedStdio;
  private readonly exitedPromise: Promise<Exit>;
  private settle!: (exit: Exit) => void;

  constructor(
    readonly execId: string,
    readonly spec: ProcessSpec,
    readonly fifos: FifoPaths,
  ) {
    this.exitedPromise = new Promise((resolve) => (this.settle = resolve));
  }

  get terminal(): boolean {
    return this.spec.tty !== undefined;
  }

  /** Resolves with the exit once the process has ended (or was killed before it started). */
  exited(): Promise<Exit> {
    return this.exitedPromise;
  }

  /**
   * Starts the process in the run; `onExit` hears its end. Resolves once it runs; rejects (with
   * the agent's one line) when it could not start.
   */
  async start(run: RunControl, onExit: (exit: Exit) => void): Promise<void> {
    if (this.status !== 'created') throw new TtrpcError(Code.FailedPrecondition, `process ${this.name} is ${this.status}: it starts only once`);
    this.io = openFifos(this.fifos);
    this.status = 'running';
    let controlled!: (control: ProcessControl) => void;
    const control = new Promise<ProcessControl>((resolve) => (controlled = resolve));
    const ended = run.exec(this.spec, this.io.stdio, (c) => {
      this.control = c;
      controlled(c);
    });
    ended.then(
      (code) => this.end(code, onExit),
      (err: unknown) => this.end(err instanceof AgentError ? err.exitCode : 255, onExit),
    );
    // The agent's one line (no such command: 127) is the caller's error, as runc's would be.
    try {
      await Promise.race([control.then((c) => c.started), ended]);
    } catch (err) {
      throw new TtrpcError(Code.Unknown, `process ${this.name} could not start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  signal(signal: number): void {
    if (this.status === 'stopped') throw new TtrpcError(Code.NotFound, `process ${this.name} already finished`);
    if (this.status === 'created') throw new TtrpcError(Code.FailedPrecondition, `process ${this.name} is not started`);
    this.control?.signal(signal);
  }

  resize(rows: number, cols: number): void {
    this.control?.resize(rows, cols);
  }

  closeStdin(): void {
    this.io?.closeStdin();
  }

  /** Ends a process that will never run (its task is killed or deleted first): 128 + signal. */
  abandon(signal: number, onExit: (exit: Exit) => void): void {
    if (this.status === 'created') this.end(128 + signal, onExit);
  }

  private end(status: number, onExit: (exit: Exit) => void): void {
    if (this.status === 'stopped') return;
    this.status = 'stopped';
    this.exit = { status, at: new Date() };
    this.io?.close();
    this.settle(this.exit);
    onExit(this.exit);
  }

  private get name(): string {
    return this.execId || 'init';
  }
}
