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
}

export async function withAgentContainer<T>(options: AgentContainerOptions, body: (container: AgentContainer) => Promise<T>): Promise<T> {
  const runcBinary = runcPath();
  const agent = await ensureAgentBinary();
  const id = options.name ?? `vmrun-${randomBytes(6).toString('hex')}`;
  if (fs.existsSync(path.join(RUNC_ROOT, id))) throw new ContainerError(`a container named ${id} already exists: choose another --name`);
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-bundle-'));
  let child: ReturnType<typeof spawn> | undefined;
  let exited: Promise<void> | undefined;
  let session: AgentSession | undefined;
  let unregister: (() => void) | undefined;
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
    const initFd = fs.openSync(init, 'r');
    try {
      const pipes = options.stdio ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['pipe'];
      // Its own process group: a terminal's Ctrl-C is for vmrun to forward, not for runc.
      child = spawn(runcBinary, ['--root', RUNC_ROOT, 'run', '--bundle', bundle, '--preserve-fds', String(agentFd - 2), id], {
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
      log.debug({ container: id, runc: text }, 'runc output');
      output = (output + text).slice(-RUNC_OUTPUT_BYTES);
    };
    runcProcess.stdout?.on('data', keep);
    runcProcess.stderr?.on('data', keep);
    exited = new Promise((resolve) => {
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
      throw new ContainerError(`the container ended before its agent reported: ${why}`);
    });
    ended.catch(() => {});  // only the session below asks, and only when it lost the agent
    // A lost connection means runc or the agent ended; runc's exit says which and why.
    const s = new AgentSession(runcProcess.stdio[AgentFd.Control] as net.Socket, (lost) => ended.then(() => lost, (err: Error) => err));
    session = s;
    const socket = (fd: number) => Promise.resolve(runcProcess.stdio[fd] as net.Socket);
    const sockets = options.stdio ? { stdin: socket(AgentFd.Stdin), stdout: socket(AgentFd.Stdout), stderr: socket(AgentFd.Stderr) } : undefined;
    const stop = () => void runc(['kill', id, 'KILL']).catch(() => runcProcess.kill('SIGKILL'));
    unregister = onTeardown(stop);
    return await body({ session: s, sockets, stop, pid: () => Promise.race([containerPid(id), ended]) });
  } finally {
    unregister?.();
    session?.close();
    if (child && exited) await reap(child, exited, id);
    for (const stream of child?.stdio ?? []) stream?.destroy();
    fs.rmSync(bundle, { recursive: true, force: true });
  }
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
