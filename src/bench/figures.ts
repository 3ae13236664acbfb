/** The figures a benchmark reports, what each means, and the per-run sample that holds them. */

/** `vmrun`: restored from the agent snapshot, as `vmrun run` starts a VM; `vmrun-cold`: booted (`--cold-boot`). */
export const RUNTIME_LABELS = ['container', 'vmrun', 'vmrun-cold', 'qemu'] as const;
export type RuntimeLabel = (typeof RUNTIME_LABELS)[number];

export const FIGURES = {
  firstInstructionMs: { label: 'to first instruction', unit: 'ms', meaning: 'asked to start -> the process execve()d (agent exec phase; VMs: anchored to the host by the boot timer, restored VMs by the agent\'s call to the host, which comes a little after its start)' },
  exitMs: { label: 'to exit', unit: 'ms', meaning: 'asked to start -> the runtime returned, everything torn down' },
  setupMs: { label: 'VMM set-up', unit: 'ms', meaning: 'asked to start -> Machine.boot returned (VM built, kernel loaded or snapshot restored, vCPUs running)' },
  kernelMs: { label: 'kernel to init', unit: 'ms', meaning: 'vCPUs running -> the agent (PID 1) wrote the boot timer' },
  initMs: { label: 'to guest init', unit: 'ms', meaning: 'asked to start -> the guest\'s init started (vmrun: boot timer; QEMU: the agent\'s console line)' },
  agentToExecMs: { label: 'agent to exec', unit: 'ms', meaning: 'init started (restored: the agent called the host) -> the process execve()d' },
  processMs: { label: 'process run', unit: 'ms', meaning: 'execve() -> the agent reported the exit' },
  teardownMs: { label: 'teardown', unit: 'ms', meaning: 'the exit reported (QEMU: the agent\'s line) -> the VM freed (QEMU: its process exited)' },
  vmmOverheadMiB: { label: 'VMM overhead', unit: 'MiB', meaning: 'VMM memory minus guest RAM (vmrun: its VMM process\'s PSS less its RAM mapping\'s PSS; QEMU: RSS less the RAM mapping\'s RSS)' },
  guestTouchedMiB: { label: 'guest RAM touched', unit: 'MiB', meaning: 'guest RAM the VMM has pages of (its RAM mapping\'s RSS; a restored VM\'s include the snapshot pages it shares)' },
  pssMiB: { label: 'PSS', unit: 'MiB', meaning: 'proportional set size of every host process of the run (runc + container processes; QEMU; vmrun: its VMM processes plus the growth of this process)' },
  cgroupMiB: { label: 'cgroup memory', unit: 'MiB', meaning: 'the container cgroup\'s peak usage (v1 max_usage_in_bytes, v2 memory.peak)' },
  densityMiB: { label: 'density, per instance', unit: 'MiB', meaning: 'PSS of every process K idle instances (`sleep`) brought, held at once, / K (a VM: its VMM with the guest RAM it touched, passt; a container: its processes, runc, pasta)' },
  execMs: { label: 'exec into an idle instance', unit: 'ms', meaning: '`exec true` into one of the K idle instances (`docker exec`): the call -> its exit code' },
} as const;
export type FigureKey = keyof typeof FIGURES;
export const FIGURE_KEYS = Object.keys(FIGURES) as FigureKey[];

/** The figures measured on K idle instances held at once, not on each run. */
export const IDLE_KEYS = ['densityMiB', 'execMs'] as const;
export type IdleKey = (typeof IDLE_KEYS)[number];
export const isIdleKey = (key: FigureKey): key is IdleKey => (IDLE_KEYS as readonly FigureKey[]).includes(key);

/** What a runner measures on K idle instances: memory per instance, and exec latencies. */
export interface IdleFigures {
  densityMiB: number;
  execMs: number[];
}

/** One run's figures; null is "not measured", never zero. */
export type Sample = Record<Exclude<FigureKey, IdleKey>, number | null> & { exitCode: number | null };

export function emptySample(): Sample {
  return Object.assign(Object.fromEntries(FIGURE_KEYS.filter((k) => !isIdleKey(k)).map((k) => [k, null])), { exitCode: null }) as Sample;
}

export const MIB = 2 ** 20;
