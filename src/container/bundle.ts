/**
 * The OCI runtime config (runtime-spec config.md) of a vmrun container, as runc reads it from
 * config.json: the namespaces, filesystems, limits and seccomp profile of docker's defaults, no
 * network (like a vmrun VM), and the agent as its first process.
 */
import type { VolumeSpec } from '../volumes/options';
import { PIDS_LIMIT, seccompProfile } from './seccomp';


/** A file or directory of the host, bind-mounted into the container. */
export interface BindMount {
  source: string;
  destination: string;
  readOnly: boolean;
}

export interface ContainerLimits {
  /** The cgroup's memory limit; swap is not allowed past it. */
  memoryBytes?: number;
  /** CPU time as a number of CPUs (a CFS quota per 100 ms period). */
  cpus?: number;
}

export interface BundleConfig {
  /** The root directory, prepared by the caller. */
  root: string;
  readOnlyRoot: boolean;
  hostname?: string;
  /** The first process's argv: the agent. */
  args: string[];
  binds: BindMount[];
  /** The user's binds and tmpfs mounts, mounted after everything else, in this order. */
  volumes?: VolumeSpec[];
  limits?: ContainerLimits;
  /** The cgroup, relative to each hierarchy's root. */
  cgroupsPath: string;
}

/** docker's default capabilities (moby oci/caps/defaults.go). */
const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

const CFS_PERIOD_US = 100_000;

/** What current docker masks (moby oci/defaults.go): runc's defaults, powercap and interrupts. */
const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The filesystems every vmrun container has, as the agent mounts them in a VM (mounts.c). */
const STANDARD_MOUNTS = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
];

function bindMount(b: BindMount): object {
  return { destination: b.destination, type: 'bind', source: b.source, options: ['rbind', 'rprivate', b.readOnly ? 'ro' : 'rw'] };
}

export function bundleConfig(c: BundleConfig): object {
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }], pids: { limit: PIDS_LIMIT } };
  if (c.limits?.memoryBytes !== undefined) resources.memory = { limit: c.limits.memoryBytes, swap: c.limits.memoryBytes };
  if (c.limits?.cpus !== undefined) resources.cpu = { quota: Math.round(c.limits.cpus * CFS_PERIOD_US), period: CFS_PERIOD_US };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: c.args,
      // The process's environment travels in the agent's spec; the agent needs none.
      env: [],
      cwd: '/',
      capabilities: { bounding: CAPABILITIES, effective: CAPABILITIES, permitted: CAPABILITIES },
      // A VM's PID 1 starts with the kernel's defaults; so does the container.
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }],
      noNewPrivileges: false,
    },
    root: { path: c.root, readonly: c.readOnlyRoot },
    hostname: c.hostname,
    mounts: [
      ...STANDARD_MOUNTS,
      ...c.binds.map(bindMount),
      ...(c.volumes ?? []).map((v) =>
        v.kind === 'bind'
          ? bindMount({ source: v.source, destination: v.target, readOnly: v.readOnly })
          : { destination: v.target, type: 'tmpfs', source: 'tmpfs', options: v.options },
      ),
    ],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map((type) => ({ type })),
      resources,
      cgroupsPath: c.cgroupsPath,
      seccomp: seccompProfile(),
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
