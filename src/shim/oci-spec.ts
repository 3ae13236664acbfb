/**
 * A containerd bundle's OCI runtime spec (config.json) made into what vmrun runs: the process
 * (args, env, cwd, user, terminal, rlimits), the host name, a read-only root, the mounts that
 * bring host files in (binds become virtio-fs shares, tmpfs stays tmpfs) and the memory and CPU
 * limits, which size the VM. What the agent sets up in every VM anyway (/proc, /sys, /dev and
 * their kin) is left to it; a mount of any other kind is refused, not dropped.
 */
import { RunSpecError } from '../errors';
import type { ProcessSpec, Rlimit, RunSpec } from '../agent/specs';
import type { VolumeSpec } from '../volumes/options';

/** The parts of runtime-spec 1.0's Process that vmrun reads. */
export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user?: { uid?: number; gid?: number; additionalGids?: number[] };
  args?: string[];
  env?: string[];
  cwd?: string;
  rlimits?: { type: string; soft: number; hard: number }[];
}

export interface OciSpec {
  process?: OciProcess;
  root?: { path?: string; readonly?: boolean };
  hostname?: string;
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
  annotations?: Record<string, string>;
  linux?: {
    resources?: {
      memory?: { limit?: number };
      cpu?: { quota?: number; period?: number };
    };
  };
}

/** What the VM gets: the spec's memory limit as its RAM and its CPU quota as whole vCPUs. */
export interface OciResources {
  memoryMiB?: number;
  vcpus?: number;
}

/** Mounts every VM's agent makes itself, as runc makes them from the default spec. */
const AGENT_MOUNTS = new Set(['/proc', '/sys', '/sys/fs/cgroup', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue']);
/** Below this a Linux guest does not boot (an OCI memory limit is meant for one process tree). */
const MIN_VM_MEMORY_MIB = 128;
const DEFAULT_TERMINAL = { rows: 24, cols: 80 };

/** The process of an OCI Process (a task's, or an exec's). */
export function processFromOci(p: OciProcess | undefined, what: string): ProcessSpec {
  if (!p?.args?.length) throw new RunSpecError(`${what} has no process.args: give the container a command`);
  if (p.args.some((a) => a.includes('\0'))) throw new RunSpecError(`${what}: a process argument contains a NUL byte`);
  const cwd = p.cwd || '/';
  if (!cwd.startsWith('/')) throw new RunSpecError(`${what}: process.cwd ${JSON.stringify(cwd)} is not an absolute path`);
  const env = (p.env ?? []).filter((e) => e.includes('=') && !e.startsWith('=') && !e.includes('\0'));
  const uid = p.user?.uid ?? 0;
  const gid = p.user?.gid ?? 0;
  if (![uid, gid].every((n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32)) throw new RunSpecError(`${what}: process.user has an invalid uid or gid`);
  const size = p.consoleSize?.height && p.consoleSize.width ? { rows: p.consoleSize.height, cols: p.consoleSize.width } : DEFAULT_TERMINAL;
  return {
    argv: p.args,
    env,
    workdir: cwd,
    user: `${uid}:${gid}`,
    tty: p.terminal ? size : undefined,
    rlimits: (p.rlimits ?? []).map((r): Rlimit => ({ type: r.type, soft: r.soft, hard: r.hard })),
  };
}

/**
 * The task's RunSpec, whose main process idles, and the task's own process, which Start runs
 * beside it; `terminal` is containerd's word on whether it gets one.
 */
export function runSpecFromOci(spec: OciSpec, terminal = spec.process?.terminal ?? false): { spec: RunSpec; process: ProcessSpec; resources: OciResources } {
  const process = processFromOci({ ...spec.process, terminal }, 'the bundle');
  const hostname = spec.hostname || 'localhost';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(hostname)) throw new RunSpecError(`the bundle's hostname ${JSON.stringify(hostname)} is invalid: use letters, digits, dots and dashes`);
  return {
    spec: {
      ...process,
      argv: [],
      idle: true,
      hostname,
      readOnly: spec.root?.readonly ?? false,
      resolvConf: '',
      hosts: [],
      // containerd gives runc a new, empty network namespace: the VM likewise gets lo alone.
      network: { mode: 'none' },
      volumes: volumesFromOci(spec.mounts ?? []),
      tty: undefined,
    },
    process,
    resources: resourcesFromOci(spec),
  };
}

function volumesFromOci(mounts: NonNullable<OciSpec['mounts']>): VolumeSpec[] {
  const volumes: VolumeSpec[] = [];
  for (const m of mounts) {
    const target = m.destination;
    if (typeof target !== 'string' || !target.startsWith('/')) throw new RunSpecError(`the bundle has a mount with destination ${JSON.stringify(target)}: it must be an absolute path`);
    if (AGENT_MOUNTS.has(target.replace(/\/+$/, ''))) continue;
    const options = m.options ?? [];
    const isBind = m.type === 'bind' || options.includes('bind') || options.includes('rbind');
    if (isBind) {
      if (!m.source?.startsWith('/')) throw new RunSpecError(`the bind mount on ${target} has no absolute source path`);
      volumes.push({ kind: 'bind', source: m.source, target, readOnly: options.includes('ro') });
    } else if (m.type === 'tmpfs') {
      volumes.push({ kind: 'tmpfs', target, options: options.filter((o) => /^(ro|rw|exec|noexec|suid|nosuid|dev|nodev|(size|mode|uid|gid|nr_inodes)=.+)$/.test(o)) });
    } else {
      throw new RunSpecError(`the bundle mounts a ${m.type ?? 'typeless'} filesystem on ${target}: a vmrun VM takes bind and tmpfs mounts only`);
    }
  }
  return volumes;
}

function resourcesFromOci(spec: OciSpec): OciResources {
  const limits = spec.linux?.resources;
  const memory = limits?.memory?.limit;
  const { quota, period } = limits?.cpu ?? {};
  return {
    memoryMiB: memory && memory > 0 ? Math.max(MIN_VM_MEMORY_MIB, Math.ceil(memory / 2 ** 20)) : undefined,
    vcpus: quota && quota > 0 && period && period > 0 ? Math.ceil(quota / period) : undefined,
  };
}
