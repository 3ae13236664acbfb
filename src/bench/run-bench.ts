/**
 * `vmrun bench`: an image run as a runc container, a vmrun microVM and a QEMU microvm, after one
 * warm-up each, in alternation (A B C A B C ...) so that drift on the host hits all alike; then
 * K idle instances of each held at once for density and exec latency. A runtime that fails is
 * reported as failed with its error, and the others go on.
 */
import type { Image } from '../image/layout';
import { FIGURE_KEYS, isIdleKey, type FigureKey, type IdleFigures, type IdleKey, type RuntimeLabel, type Sample } from './figures';
import { hostInfo, type HostInfo } from './host';
import { makeRunner, type Runner } from './runners';
import { ratio, summarise, type Summary } from './stats';

export interface BenchOptions {
  image: Image;
  /** IMAGE as the user wrote it. */
  imageRef: string;
  /** Replaces the image's command; empty: the image's own. */
  command: string[];
  runs: number;
  concurrency: number;
  /** Idle instances held at once for density and exec; 0: not measured. */
  density: number;
  memoryMiB: number;
  qemu: string;
  runtimes: RuntimeLabel[];
  /** One line per step, for a person watching. */
  progress?: (line: string) => void;
}

export interface RuntimeReport {
  status: 'ok' | 'failed';
  error?: string;
  samples: Sample[];
  stats: Record<FigureKey, Summary | null>;
  /** Why each figure that is null was not measured. */
  notMeasured: Partial<Record<FigureKey, string>>;
}

export const RATIOS = [['vmrun', 'container'], ['vmrun-cold', 'container'], ['vmrun', 'vmrun-cold'], ['qemu', 'container'], ['vmrun', 'qemu']] as const;

export interface BenchReport {
  host: HostInfo;
  image: string;
  command: string[];
  runs: number;
  concurrency: number;
  density: number;
  memoryMiB: number;
  guestKernel: string;
  runtimes: Partial<Record<RuntimeLabel, RuntimeReport>>;
  /** Ratios of medians, e.g. `vmrun/container`; null where either side was not measured. */
  ratios: Record<string, Record<FigureKey, number | null>>;
}

const NO_VM = 'a container has no VM';
export const BOOT_TIMER_MISSING = 'the guest never wrote the boot timer (the agent\'s ioperm needs CONFIG_X86_IOPL_IOPERM=y in the guest kernel)';
const NO_CGROUP = 'no cgroup: the VMM runs in this Node process';
export const RESTORED = 'restored from the agent snapshot: no kernel boots, no init starts';
const NOT_MEASURED: Record<RuntimeLabel, Partial<Record<FigureKey, string>>> = {
  container: {
    setupMs: NO_VM, kernelMs: NO_VM, initMs: NO_VM, agentToExecMs: NO_VM, processMs: NO_VM, teardownMs: NO_VM,
    vmmOverheadMiB: NO_VM, guestTouchedMiB: NO_VM,
    firstInstructionMs: 'the container runtime does not pass on the agent\'s exec phase',
  },
  vmrun: {
    cgroupMiB: NO_CGROUP,
    kernelMs: RESTORED, initMs: RESTORED,
  },
  'vmrun-cold': {
    cgroupMiB: NO_CGROUP,
    ...Object.fromEntries((['firstInstructionMs', 'kernelMs', 'initMs', 'agentToExecMs', 'processMs'] as const).map((k) => [k, BOOT_TIMER_MISSING])),
  },
  qemu: Object.fromEntries([
    ...(['firstInstructionMs', 'exitMs', 'setupMs', 'kernelMs', 'agentToExecMs', 'processMs'] as const).map((k) => [k, 'QEMU\'s vhost-vsock cannot reach vmrun\'s agent host: the guest stops at the agent\'s start']),
    ['cgroupMiB', 'no cgroup'],
    ['densityMiB', 'an idle QEMU guest needs the agent\'s host'],
    ['execMs', 'an idle QEMU guest needs the agent\'s host'],
  ]),
};

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const progress = options.progress ?? (() => {});
  const context = { image: options.image, command: options.command, memoryMiB: options.memoryMiB, qemu: options.qemu };
  const runners = options.runtimes.map((label) => makeRunner(label, context));
  const samples = new Map<RuntimeLabel, Sample[]>(runners.map((r) => [r.label, []]));
  const failures = new Map<RuntimeLabel, string>();
  const idles = new Map<RuntimeLabel, IdleFigures | null>();
  const live = () => runners.filter((r) => !failures.has(r.label));
  const attempt = async (runner: Runner, what: string, body: () => Promise<void>) => {
    progress(`${runner.label}: ${what}`);
    try {
      await body();
    } catch (err) {
      failures.set(runner.label, (err instanceof Error ? err.message : String(err)).split('\n')[0]);
      progress(`${runner.label}: FAILED: ${failures.get(runner.label)}`);
    }
  };

  for (const runner of runners) {
    await attempt(runner, 'preparing and warming up', async () => {
      await runner.prepare();
      await runner.round(1);
    });
  }
  for (let i = 0; i < options.runs; i++) {
    for (const runner of live()) {
      await attempt(runner, `round ${i + 1}/${options.runs}`, async () => void samples.get(runner.label)!.push(...(await runner.round(options.concurrency))));
    }
  }
  if (options.density > 0) {
    for (const runner of live()) {
      await attempt(runner, `${options.density} idle at once: density, exec`, async () => void idles.set(runner.label, await runner.idle(options.density)));
    }
  }

  const runtimes: BenchReport['runtimes'] = {};
  for (const runner of runners) {
    const mine = samples.get(runner.label)!;
    const idle = idles.get(runner.label);
    const idleValues: Record<IdleKey, number[]> = { densityMiB: idle ? [idle.densityMiB] : [], execMs: idle?.execMs ?? [] };
    const stats = Object.fromEntries(FIGURE_KEYS.map((key) => [key, summarise(isIdleKey(key) ? idleValues[key] : mine.map((s) => s[key]))])) as RuntimeReport['stats'];
    const notMeasured = Object.fromEntries(FIGURE_KEYS.filter((k) => stats[k] === null).map((k) => [k, NOT_MEASURED[runner.label][k] ?? (isIdleKey(k) && options.density === 0 ? 'not asked for (--density 0)' : 'no run measured it')]));
    const error = failures.get(runner.label);
    runtimes[runner.label] = { status: error ? 'failed' : 'ok', ...(error ? { error } : {}), samples: mine, stats, notMeasured };
  }
  const ratios = Object.fromEntries(RATIOS.map(([a, b]) => [`${a}/${b}`, Object.fromEntries(FIGURE_KEYS.map((k) => [k, ratio(runtimes[a]?.stats[k] ?? null, runtimes[b]?.stats[k] ?? null)]))])) as BenchReport['ratios'];
  return {
    host: hostInfo(),
    image: options.imageRef,
    command: options.command,
    runs: options.runs,
    concurrency: options.concurrency,
    density: options.density,
    memoryMiB: options.memoryMiB,
    guestKernel: 'the project guest kernel as vmlinux (PVH), for vmrun and QEMU alike',
    runtimes,
    ratios,
  };
}
