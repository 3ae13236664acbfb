/**
 * Sandbox: one VM (or container) that lives across many commands, as E2B and microsandbox offer
 * it. Its main process only waits (the agent's IDLE); every command is an exec beside it, with
 * its own stdio, exit code and environment on top of the sandbox's.
 *
 *   await using sb = await Sandbox.create({ image: 'python:3.10' });
 *   const r = await sb.exec(['python3', '-c', 'print(1)']);   // { exitCode: 0, stdout: '1\n', ... }
 */
import { Readable } from 'node:stream';

import type { RunControl } from '../agent/process-io';
import { RunSpecError } from '../errors';
import type { Image } from '../image/layout';
import { collector, discard } from '../streams';
import { resolveImage, type PullPolicy } from './resolve-image';
import { runOn, type RuntimeName } from './runtimes';
import { makeExecSpec, makeRunSpec, type RunOptions, type RunSpec } from './spec';

export interface SandboxOptions extends Omit<RunOptions, 'command' | 'entrypoint' | 'tty' | 'idle'> {
  /** `python:3.10` (a registry), `oci:DIR[:REF]`, a layout directory's path, or an opened image. */
  image: string | Image;
  /** When to pull a registry image (default: missing). */
  pull?: PullPolicy;
  /** `vm` (default) or `container`. */
  runtime?: RuntimeName;
  memoryMiB?: number;
  cpus?: number;
  /** VM only: a kernel other than the cached guest kernel. */
  kernel?: string;
  /** VM only: boot the VM rather than restore it from the agent snapshot (the default). */
  coldBoot?: boolean;
}

export interface SandboxExecOptions {
  /** The process's stdin (default: empty). */
  stdin?: string | Buffer | Readable;
  /** `NAME=value` entries or a record, winning over the sandbox's environment. */
  env?: string[] | Record<string, string>;
  user?: string;
  workdir?: string;
  /** Kills the process (SIGKILL) after this long; the result then has timedOut and code 137. */
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class Sandbox {
  private closing?: Promise<void>;

  private constructor(
    private readonly spec: RunSpec,
    private readonly control: RunControl,
    /** Settles when the sandbox has ended and everything of it is gone. */
    private readonly finished: Promise<unknown>,
  ) {}

  static async create(options: SandboxOptions): Promise<Sandbox> {
    const image = typeof options.image === 'string' ? await resolveImage(options.image, options.pull) : options.image;
    const spec = makeRunSpec(image.config, { ...options, idle: true });
    let started!: (control: RunControl) => void;
    const control = new Promise<RunControl>((resolve) => (started = resolve));
    const runtimeOptions = {
      memoryBytes: options.memoryMiB === undefined ? undefined : options.memoryMiB * 2 ** 20,
      cpus: options.cpus,
      kernel: options.kernel,
      coldBoot: options.coldBoot,
    };
    // The main process says nothing; its streams go nowhere.
    const stdio = { stdin: null, stdout: discard(), stderr: discard() };
    const finished = runOn(options.runtime ?? 'vm', image, spec, stdio, runtimeOptions, started);
    finished.catch(() => {});
    const ended = finished.then((): never => {
      throw new RunSpecError('the sandbox ended before it started');
    });
    return new Sandbox(spec, await Promise.race([control, ended]), finished);
  }

  /** Runs a command in the sandbox and collects its output. */
  async exec(argv: string[], options: SandboxExecOptions = {}): Promise<ExecResult> {
    if (this.closing) throw new RunSpecError('the sandbox is closed: create another');
    const env = Array.isArray(options.env) ? options.env : Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const process = makeExecSpec(this.spec, { argv, env, user: options.user, workdir: options.workdir });
    const stdout = collector();
    const stderr = collector();
    const stdin = options.stdin === undefined ? null : options.stdin instanceof Readable ? options.stdin : Readable.from([Buffer.from(options.stdin)]);
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const exitCode = await this.control
      .exec(process, { stdin, stdout: stdout.stream, stderr: stderr.stream }, (p) => {
        if (options.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            timedOut = true;
            p.signal('SIGKILL');
          }, options.timeoutMs);
        }
      })
      .finally(() => clearTimeout(timer));
    return { exitCode, stdout: stdout.text(), stderr: stderr.text(), timedOut };
  }

  /** Writes `data` to `path` inside the sandbox (through the image's sh and cat). */
  async writeFile(path: string, data: string | Buffer): Promise<void> {
    const r = await this.exec(['sh', '-c', 'cat > "$1"', 'sh', path], { stdin: Buffer.from(data) });
    if (r.exitCode !== 0) throw new RunSpecError(`writing ${path} in the sandbox failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }

  /** The contents of `path` inside the sandbox (through the image's cat). */
  async readFile(path: string): Promise<string> {
    const r = await this.exec(['cat', '--', path]);
    if (r.exitCode !== 0) throw new RunSpecError(`reading ${path} in the sandbox failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    return r.stdout;
  }

  /** Ends the sandbox and everything running in it; resolves once it is all gone. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.control.stop();
      await this.finished.catch(() => {});
    })();
    return this.closing;
  }

  /** Sends `signal` to the sandbox's main process (SIGKILL: the sandbox ends, as `docker kill`). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.control.signal(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

