/**
 * A runc container whose first process is the vmrun agent (`init container`): the same agent as
 * a VM's PID 1, speaking the same frames, over descriptors runc passes through instead of vsock
 * (AgentFd in src/agent/channels.ts; guest/agent/PROTOCOL.md). The agent is started from a descriptor
 * (/proc/self/fd/N), so nothing of vmrun appears in the container's files. Whatever happens, the
 * container is gone when this returns.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { AgentFd } from '../agent/channels';
import type { ProcessSockets } from '../agent/process';
import { AgentSession } from '../agent/session';
import { ContainerError } from '../errors';
import { ensureAgentBinary } from '../guest/agent';
import { log } from '../log';
import { onTeardown } from '../teardown';
import type { VolumeSpec } from '../volumes/options';
import { bundleConfig, type BindMount, type ContainerLimits } from './bundle';
import { RUNC_ROOT, removeContainer, runc, runcMessage, runcPath } from './runc';

/** runc's own output kept for messages. */
const RUNC_OUTPUT_BYTES = 16 << 10;
/** How long runc gets to end after its container was killed. */
const KILL_WAIT_MS = 10_000;
/** How long a stop keeps asking runc to kill a container it may still be creating. */
const STOP_RETRY_MS = 5_000;

export interface AgentContainerOptions {
  root: string;
  readOnlyRoot: boolean;
  hostname?: string;
  binds: BindMount[];
  volumes?: VolumeSpec[];
  limits?: ContainerLimits;
  /** Pass the process's stdio (run mode); unpacking needs only the control connection. */
  stdio: boolean;
  /** runc's name for the container (default: vmrun-<random>). */
  name?: string;
}

export interface AgentContainer {
  session: AgentSession;
  /** Present with `stdio`. */
  sockets?: ProcessSockets;
  /** Kills the container at once. */
  stop(): void;
  /** The container's first process (the agent), as the host sees it, once runc has made it. */
  pid(): Promise<number>;
  /**
   * Starts the agent once more in the running container (`runc exec`), for another process.
   * `finish` ends the conversation (and the process, if it still runs), waits for runc exec to
   * end and closes its descriptors: call it once the process's outcome and output are in, for
   * runc can exit before they have all been read.
   */
  exec(): { session: AgentSession; sockets: ProcessSockets; finish(): Promise<void> };
}

/** runc started with the agent on its preserved descriptors, and the conversation with it. */
interface AgentProcess {
  child: ReturnType<typeof spawn>;
  session: AgentSession;
  sockets?: ProcessSockets;
  /** Settles once runc has exited. */
  exited: Promise<void>;
  /** Rejects, with what runc said, once runc has exited and its output is in. */
  ended: Promise<never>;
}

/**
 * Runs `runc ARGS...` with the agent's descriptors from AgentFd.Control on, then the agent
 * binary, which ARGS start as /proc/self/fd/N. A lost connection means runc or the agent ended;
 * runc's exit says which and why.
 */
function spawnAgent(runcBinary: string, args: string[], init: string, stdio: boolean, what: string): AgentProcess {
  const initFd = fs.openSync(init, 'r');
  let child: ReturnType<typeof spawn>;
  try {
    const pipes = stdio ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe'];
    // Its own process group: a terminal's Ctrl-C is for vmrun to forward, not for runc.
    child = spawn(runcBinary, ['--root', RUNC_ROOT, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', ...pipes, initFd] as ('pipe' | 'ignore' | number)[],
      detached: true,
    });
  } finally {
    fs.closeSync(initFd);
  }
  const runcProcess = child;
  let output = '';
  const keep = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    log.debug({ runc: text }, 'runc output');
    output = (output + text).slice(-RUNC_OUTPUT_BYTES);
  };
  runcProcess.stdout?.on('data', keep);
  runcProcess.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    runcProcess.once('exit', () => resolve());
    runcProcess.once('error', () => resolve());
  });
  // 'close': runc has exited and everything it printed has arrived.
  const closed = new Promise<void>((resolve) => runcProcess.once('close', () => resolve()));
  const spawnFailed = new Promise<void>((resolve) => runcProcess.once('error', (err) => {
    output += err.message;
    resolve();
  }));
  const ended = Promise.race([closed, spawnFailed]).then((): never => {
    const why = runcMessage(output) || `runc exited with status ${runcProcess.exitCode ?? runcProcess.signalCode}`;
    throw new ContainerError(`${what} ended before its agent reported: ${why}`);
  });
  ended.catch(() => {});  // only the session below asks, and only when it lost the agent
  const session = new AgentSession(runcProcess.stdio[AgentFd.Control] as net.Socket, (lost) => ended.then(() => lost, (err: Error) => err));
  const socket = (fd: number) => Promise.resolve(runcProcess.stdio[fd] as net.Socket);
  const sockets = stdio ? { stdin: socket(AgentFd.Stdin), stdout: socket(AgentFd.Stdout), stderr: socket(AgentFd.Stderr) } : undefined;
  return { child, session, sockets, exited, ended };
}

export async function withAgentContainer<T>(options: AgentContainerOptions, body: (container: AgentContainer) => Promise<T>): Promise<T> {
  const runcBinary = runcPath();
  const agent = await ensureAgentBinary();
  const id = options.name ?? `vmrun-${randomBytes(6).toString('hex')}`;
  if (fs.existsSync(path.join(RUNC_ROOT, id))) throw new ContainerError(`a container named ${id} already exists: choose another --name`);
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-bundle-'));
  let run: AgentProcess | undefined;
  let unregister: (() => void) | undefined;
  const execs = new Set<AgentProcess>();
  try {
    // A copy of its own: what the container could reach through /proc/1/exe is this file alone.
    const init = path.join(bundle, 'init');
    fs.copyFileSync(agent, init);
    const agentFd = (options.stdio ? AgentFd.Stderr : AgentFd.Control) + 1;
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(bundleConfig({
      root: options.root,
      readOnlyRoot: options.readOnlyRoot,
      hostname: options.hostname,
      args: [`/proc/self/fd/${agentFd}`, 'container'],
      binds: options.binds,
      volumes: options.volumes,
      limits: options.limits,
      cgroupsPath: `/vmrun/${id}`,
    })));
    const preserve = ['--preserve-fds', String(agentFd - 2)];
    run = spawnAgent(runcBinary, ['run', '--bundle', bundle, ...preserve, id], init, options.stdio, 'the container');
    const runcProcess = run.child;
    const stop = () => void killContainer(id, runcProcess);
    unregister = onTeardown(stop);
    const ended = run.ended;
    // The same agent, not PID 1 of the container, starting one process among the container's.
    const exec = () => {
      const started = spawnAgent(runcBinary, ['exec', '--preserve-fds', '5', id, `/proc/self/fd/${AgentFd.Stderr + 1}`, 'container'], init, true, 'runc exec');
      execs.add(started);
      const finish = async () => {
        started.session.close();
        await started.exited;
        release(started);
        execs.delete(started);
      };
      return { session: started.session, sockets: started.sockets!, finish };
    };
    return await body({ session: run.session, sockets: run.sockets, stop, pid: () => Promise.race([containerPid(id), ended]), exec });
  } finally {
    unregister?.();
    run?.session.close();
    for (const e of execs) e.session.close();
    if (run) await reap(run.child, run.exited, id);
    await Promise.all([...execs].map((e) => e.exited));
    for (const e of [...execs, ...(run ? [run] : [])]) release(e);
    fs.rmSync(bundle, { recursive: true, force: true });
  }
}

/**
 * Kills the container, even one runc is still creating: `runc kill` fails until the container
 * exists, and killing runc itself then would leave its init waiting with the container's
 * descriptors open, so that nothing of the run ever ended. Tries again until the container is
 * there or runc has exited; only then, or after STOP_RETRY_MS, runc itself.
 */
async function killContainer(id: string, runcProcess: ReturnType<typeof spawn>): Promise<void> {
  const running = () => runcProcess.exitCode === null && runcProcess.signalCode === null;
  const deadline = Date.now() + STOP_RETRY_MS;
  while (running() && Date.now() < deadline) {
    if (await runc(['kill', id, 'KILL']).then(() => true, () => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (running()) runcProcess.kill('SIGKILL');
}

/** Closes what is left of the descriptors shared with a runc that has exited. */
function release(agent: AgentProcess): void {
  for (const stream of agent.child.stdio) stream?.destroy();
}

/** Polls runc until the container exists and has a process. */
async function containerPid(id: string): Promise<number> {
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    const state = await runc(['state', id]).then((text) => JSON.parse(text) as { pid?: number }, () => undefined);
    if (state?.pid && state.pid > 0) return state.pid;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/**
 * Waits for runc to end, killing the container when it does not, then forgets whatever runc left:
 * a runc killed here, or one killed before it finished creating the container, leaves its state
 * and cgroups behind.
 */
async function reap(child: ReturnType<typeof spawn>, exited: Promise<void>, id: string): Promise<void> {
  const within = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(r, ms, false).unref())]);
  if (child.exitCode === null && child.signalCode === null && !(await within(1_000))) {
    await runc(['kill', id, 'KILL']).catch(() => {});
    if (!(await within(KILL_WAIT_MS))) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  await removeContainer(id).catch((err: Error) => log.warn({ container: id, err: err.message }, 'removing the container failed'));
}
