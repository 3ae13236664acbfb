/**
 * The specs the host sends the agent (guest/agent/PROTOCOL.md), the same for a VM and for the
 * agent under runc, except for what runc and the host set up themselves in container mode (the
 * root, the host name, read-only-ness, /etc/hosts and /etc/resolv.conf).
 */
import { randomBytes } from 'node:crypto';

import { AgentError } from '../errors';
import type { Layer } from '../image/layout';
import { GUEST_NETWORK, type HostEntry, type NetworkSpec } from '../network/options';
import { shareTag, type VolumeSpec } from '../volumes/options';
import { etcFiles } from './etc-files';
import { FrameType, terminalSize } from './frames';
import type { AgentSession } from './session';

/**
 * Everything a runtime needs to start the process, decided by src/run/spec.ts from the image
 * config and the user's options; nothing here needs the image's files.
 */
export interface ProcessSpec {
  argv: string[];
  env: string[];
  workdir: string;
  user: string;
  tty?: { rows: number; cols: number };
  /** setrlimit(2) before the process starts: `type` is an OCI name such as RLIMIT_NOFILE. */
  rlimits?: Rlimit[];
}

export interface Rlimit {
  type: string;
  /** At or above 2^63: unlimited (an OCI spec's RLIM_INFINITY does not survive JSON exactly). */
  soft: number;
  hard: number;
}

export interface RunSpec extends ProcessSpec {
  hostname: string;
  /** No process of the image's (argv empty): the main process only waits, for execs. */
  idle?: boolean;
  readOnly: boolean;
  resolvConf: string;
  /** /etc/hosts entries beyond docker's own (`--add-host`). */
  hosts: HostEntry[];
  network: NetworkSpec;
  /** Host paths bound in and tmpfs mounts, parents before what they hold. */
  volumes: VolumeSpec[];
}

/** Where the agent runs: PID 1 of a VM, or the first process of a runc container. */
export type AgentHome = 'vm' | 'container';

/** Where the agent unpacks a layer in container mode: the directory the host mounts there. */
export const UNPACK_ROOT = '/mnt/root';

/**
 * A VM's root: the partitions holding the image's layers, bottom first, which the agent stacks
 * under a writable layer of its own; or a virtio-fs share that is the root itself (a containerd
 * bundle's rootfs), into which nothing of vmrun's is written.
 */
export type VmRootSpec = { lowers: string[] } | { share: string };

/** Starts the process; in a VM, on `root`. */
export function sendRunSpec(session: AgentSession, spec: RunSpec, home: AgentHome, root: VmRootSpec = { lowers: [] }): void {
  session.send(FrameType.Mode, 'run');
  if ('share' in root) session.send(FrameType.Root, `virtiofs ${root.share}`);
  else for (const lower of root.lowers) session.send(FrameType.Lower, lower);
  if (home === 'vm') session.send(FrameType.Fresh, freshPayload());
  sendProcess(session, spec);
  if (spec.idle) session.send(FrameType.Idle);
  if (home === 'vm') {
    session.send(FrameType.Hostname, spec.hostname);
    if (spec.readOnly) session.send(FrameType.ReadOnly);
    if (!('share' in root)) {
      const etc = etcFiles(spec);
      session.send(FrameType.Resolv, etc['resolv.conf']);
      session.send(FrameType.Hosts, etc.hosts);
    }
    // In a container, pasta configures eth0 from outside.
    if (spec.network.mode === 'bridge') {
      const v6 = spec.network.ipv6;
      session.send(FrameType.Network, `${GUEST_NETWORK.address}/${GUEST_NETWORK.prefix} ${GUEST_NETWORK.gateway}${v6 ? ` ${v6.address}/${v6.prefix} ${v6.gateway}` : ''}`);
    }
    // Binds are the VM's virtio-fs devices in this order (src/vm/runtime.ts); runc mounts them all in a container.
    let share = 0;
    for (const v of spec.volumes) {
      if (v.kind === 'bind') session.send(FrameType.Mount, `virtiofs ${shareTag(share++)} ${v.readOnly ? 'ro' : 'rw'} ${v.target}`);
      else session.send(FrameType.Mount, `tmpfs ${v.options.join(',')} ${v.target}`);
    }
  }
  session.send(FrameType.End);
}

/**
 * FRESH's payload: the time (CLOCK_REALTIME in ns since the epoch, u64 LE) and 64 random bytes.
 * Every VM restored from one snapshot wakes with its clock and its kernel's RNG state; these
 * make each one's its own (a cold-booted VM gets its clock set too).
 */
export function freshPayload(): Buffer {
  const time = Buffer.alloc(8);
  time.writeBigUInt64LE(BigInt(Date.now()) * 1_000_000n); // a millisecond's precision is plenty
  return Buffer.concat([time, randomBytes(64)]);
}

/** An exec's spec: the process alone, on its own control connection. */
export function sendExecSpec(session: AgentSession, spec: ProcessSpec): void {
  session.send(FrameType.Mode, 'run');
  sendProcess(session, spec);
  session.send(FrameType.End);
}

function sendProcess(session: AgentSession, spec: ProcessSpec): void {
  for (const arg of spec.argv) session.send(FrameType.Arg, arg);
  for (const entry of spec.env) session.send(FrameType.Env, entry);
  session.send(FrameType.Workdir, spec.workdir);
  if (spec.user) session.send(FrameType.User, spec.user);
  if (spec.tty) session.send(FrameType.Tty, terminalSize(spec.tty.rows, spec.tty.cols));
  for (const r of spec.rlimits ?? []) session.send(FrameType.Rlimit, `${r.type} ${rlimitValue(r.soft)} ${rlimitValue(r.hard)}`);
}

function rlimitValue(n: number): string {
  return n >= 2 ** 63 ? 'unlimited' : String(Math.trunc(n));
}

/** Where the agent reads a layer's blob: `offset` bytes into /dev/<device>. */
export interface LayerPlace {
  device: string;
  offset: number;
}

/**
 * One layer of an unpack, bottom first: one unpacked already (`lower`: its partition, in a VM),
 * or one to unpack (`number`: its place in the image, from 1) from its blob, into `target` (in a
 * VM, an empty ext4 partition; in a container, the directory the host mounted at UNPACK_ROOT).
 */
export type UnpackStep = { lower: string } | { layer: Layer; blob: LayerPlace; target?: string; number: number };

/**
 * Asks for the layers in `steps` to be unpacked, each on top of those before it, passing the
 * agent's PROGRESS reports to `progress`; resolves with the guest's unpacking time in ms, when
 * it said.
 */
export async function unpackLayers(
  session: AgentSession,
  imageName: string,
  steps: UnpackStep[],
  progress?: (number: number, bytes: number) => void,
): Promise<number | undefined> {
  session.onProgress = progress;
  session.send(FrameType.Mode, 'unpack');
  for (const step of steps) {
    if ('lower' in step) {
      session.send(FrameType.Lower, step.lower);
      continue;
    }
    const { layer, blob, target } = step;
    session.send(FrameType.Layer, `${blob.device} ${blob.offset} ${layer.size} ${layer.compression} ${layer.diffId} ${step.number}${target ? ` ${target}` : ''}`);
  }
  session.send(FrameType.End);
  const code = await session.outcome;
  if (code !== 0) throw new AgentError(`unpacking ${imageName} failed (agent exit ${code})`);
  const { unpacking, unpacked } = session.phases;
  return unpacking !== undefined && unpacked !== undefined ? (unpacked - unpacking) / 1e6 : undefined;
}
