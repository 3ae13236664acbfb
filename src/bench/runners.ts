/**
 * The three ways the benchmark runs an image: a runc container and a vmrun microVM through the
 * project's runtimes, and a QEMU microvm booting the same kernel, agent initramfs and image disk.
 * A runner runs a round of K at once and reports one Sample each; it can also hold K idle.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { VmrunError } from '../errors';
import { ensureAgentInitramfs } from '../guest/agent';
import { ensureGuestKernel } from '../guest/kernel';
import type { Image } from '../image/layout';
import type { RunControl } from '../agent/process-io';
import { makeExecSpec, makeRunSpec, type RunSpec } from '../run/spec';
import { discard } from '../streams';
import { ensureLayerDisks } from '../vm/layer-disks';
import { boottimeToNow, DEFAULT_CMDLINE, Machine } from '../vm/machine';
import { emptySample, MIB, type IdleFigures, type RuntimeLabel, type Sample } from './figures';
import { cgroupMemory, mappingMemoryOf, pidsWithArgument, processIds, processMemory, pssSince } from './memory';

/** How often memory is sampled while a run is in flight. */
const SAMPLE_MS = 20;
/** After K idle instances were started, how long before their memory is read. */
const SETTLE_MS = 2_000;
/** `exec true` calls timed into the idle instances, in turn. */
const EXEC_RUNS = 5;
const QEMU_TIMEOUT_MS = 120_000;
/** The agent's console prefix: in QEMU it prints one line when it finds no host, at its start. */
const AGENT_LINE = 'vmrun-agent:';

/** A runtime could not be benchmarked: it is reported as failed, with this message. */
export class BenchError extends VmrunError {}

export interface RunnerContext {
  image: Image;
  command: string[];
  memoryMiB: number;
  /** The QEMU binary (a name on PATH or a path). */
  qemu: string;
}

export interface Runner {
  readonly label: RuntimeLabel;
  /** Checks what the runner needs and makes what it caches; throws when it cannot run here. */
  prepare(): Promise<void>;
  round(k: number): Promise<Sample[]>;
  /** Figures of K idle instances held at once, or null when it cannot hold one idle. */
  idle(k: number): Promise<IdleFigures | null>;
}

export function makeRunner(label: RuntimeLabel, context: RunnerContext): Runner {
  if (label === 'container') return new ContainerRunner(context);
  if (label === 'vmrun' || label === 'vmrun-cold') return new VmrunRunner(context, label);
  return new QemuRunner(context);
}

const stdio = () => ({ stdin: null, stdout: discard(), stderr: discard() });
const mib = (bytes: number | undefined) => (bytes === undefined ? null : bytes / MIB);
const since = (t0: number, t?: number) => (t === undefined ? null : t - t0);

/** Calls `sample` every SAMPLE_MS until the returned function is called. */
function sampling(sample: () => void): () => void {
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return () => {
    clearInterval(timer);
    sample();
  };
}

/**
 * Starts K idle instances (`sleep`); once they run, reads the PSS of every process they brought,
 * then times `exec true` into them in turn; kills them.
 */
async function holdIdle(k: number, start: (spec: RunSpec, onStart: (c: RunControl) => void) => Promise<unknown>, image: Image): Promise<IdleFigures> {
  const spec = makeRunSpec(image.config, { command: ['sleep', '3600'] });
  const before = processIds();
  const controls: RunControl[] = [];
  let started!: () => void;
  const allStarted = new Promise<void>((resolve) => (started = resolve));
  const runs = Array.from({ length: k }, () => start(spec, (c) => {
    controls.push(c);
    if (controls.length === k) started();
  }));
  const failed = Promise.all(runs).then(() => {
    throw new BenchError('an idle instance ended before all were running');
  });
  try {
    await Promise.race([allStarted, failed]);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const densityMiB = pssSince(before) / k / MIB;
    const exec = makeExecSpec(spec, { argv: ['true'] });
    const execMs: number[] = [];
    for (let i = 0; i < EXEC_RUNS; i++) {
      const t0 = performance.now();
      const code = await controls[i % k].exec(exec, stdio());
      if (code !== 0) throw new BenchError(`exec true into an idle instance exited ${code}`);
      execMs.push(performance.now() - t0);
    }
    return { densityMiB, execMs };
  } finally {
    for (const c of controls) c.signal('SIGKILL');
    await Promise.allSettled(runs);
  }
}

class ContainerRunner implements Runner {
  readonly label = 'container' as const;
  constructor(private readonly context: RunnerContext) {}

  async prepare(): Promise<void> {
    (await import('../container/runc')).runcPath();
  }

  async round(k: number): Promise<Sample[]> {
    return Promise.all(Array.from({ length: k }, () => this.one()));
  }

  private async one(): Promise<Sample> {
    const { runInContainer } = await import('../container/runtime');
    const name = `vmrun-bench-${randomBytes(6).toString('hex')}`;
    const spec = makeRunSpec(this.context.image.config, { command: this.context.command });
    let pss: number | undefined;
    let cgroup: number | undefined;
    const stop = sampling(() => {
      const group = cgroupMemory(`/vmrun/${name}`);
      if (!group) return;
      cgroup = Math.max(cgroup ?? 0, group.peak ?? group.usage);
      const pids = [...pidsWithArgument(name), ...group.pids];
      pss = Math.max(pss ?? 0, pids.reduce((sum, pid) => sum + (processMemory(pid)?.pss ?? 0), 0));
    });
    const t0 = performance.now();
    try {
      const result = await runInContainer(this.context.image, spec, stdio(), { name });
      const end = performance.now();
      // The agent's exec phase on the host's CLOCK_BOOTTIME, where the runtime passes it on.
      const exec = (result as { guest?: Record<string, number> }).guest?.exec;
      return {
        ...emptySample(),
        firstInstructionMs: exec === undefined ? null : boottimeToNow(exec * 1e6) - t0,
        exitMs: end - t0,
        pssMiB: mib(pss),
        cgroupMiB: mib(cgroup),
        exitCode: result.exitCode,
      };
    } finally {
      stop();
    }
  }

  async idle(k: number): Promise<IdleFigures> {
    const { runInContainer } = await import('../container/runtime');
    return holdIdle(k, (spec, onStart) => runInContainer(this.context.image, spec, stdio(), {}, onStart), this.context.image);
  }
}

class VmrunRunner implements Runner {
  private kernel = '';
  private readonly coldBoot: boolean;
  constructor(
    private readonly context: RunnerContext,
    readonly label: 'vmrun' | 'vmrun-cold',
  ) {
    this.coldBoot = label === 'vmrun-cold';
  }

  async prepare(): Promise<void> {
    this.kernel = (await ensureGuestKernel()).vmlinux;
  }

  async round(k: number): Promise<Sample[]> {
    const { runInVm } = await import('../vm/runtime');
    const spec = makeRunSpec(this.context.image.config, { command: this.context.command });
    // Each VM's cost is its VMM process (PSS; its guest RAM is private to it) plus what this
    // process grows by while the round runs (agent sessions, streams).
    const before = processMemory('self');
    let peak = { overhead: 0, pss: 0, guest: 0 };
    const guestBytes = this.context.memoryMiB * MIB;
    const stop = sampling(() => {
      let vmmPss = 0, guestPss = 0, guest = 0;
      for (const machine of Machine.running()) {
        const pid = machine.process().pid;
        const memory = pid === null ? undefined : processMemory(pid);
        const ram = pid === null ? undefined : mappingMemoryOf(pid, guestBytes);
        if (!memory || !ram) continue;
        vmmPss += memory.pss;
        guestPss += ram.pss;
        guest += ram.rss;
      }
      const self = processMemory('self');
      const growth = self && before ? Math.max(0, self.pss - before.pss) : 0;
      if (vmmPss + growth > peak.pss) peak = { overhead: vmmPss - guestPss, pss: vmmPss + growth, guest };
    });
    try {
      const runs = Array.from({ length: k }, async () => {
        const t0 = performance.now();
        const result = await runInVm(this.context.image, spec, stdio(), { memoryMiB: this.context.memoryMiB, kernel: this.kernel, coldBoot: this.coldBoot });
        return { t0, end: performance.now(), result };
      });
      return (await Promise.all(runs)).map(({ t0, end, result }) => {
        const { host, guest } = result;
        // Guest CLOCK_BOOTTIME anchored to the host where the boot timer saw the agent start; a
        // restored agent starts with no boot timer, and is anchored where it called the host.
        const anchor = host.restored ? host.agentConnected : host.initStarted;
        const exec = anchor !== undefined && guest.exec !== undefined && guest.agent !== undefined
          ? anchor + guest.exec - guest.agent : undefined;
        return {
          ...emptySample(),
          firstInstructionMs: exec ?? null,
          exitMs: end - t0,
          setupMs: host.booted,
          kernelMs: host.initStarted === undefined ? null : host.initStarted - host.booted,
          initMs: host.initStarted ?? null,
          agentToExecMs: exec === undefined ? null : exec - anchor!,
          processMs: exec === undefined ? null : since(exec, host.outcome),
          teardownMs: host.outcome === undefined ? null : since(host.outcome, host.torndown),
          vmmOverheadMiB: peak.overhead / k / MIB,
          guestTouchedMiB: peak.guest / k / MIB,
          pssMiB: peak.pss / k / MIB,
          exitCode: result.exitCode,
        };
      });
    } finally {
      stop();
    }
  }

  async idle(k: number): Promise<IdleFigures> {
    const { runInVm } = await import('../vm/runtime');
    const resources = { memoryMiB: this.context.memoryMiB, kernel: this.kernel, coldBoot: this.coldBoot };
    return holdIdle(k, (spec, onStart) => runInVm(this.context.image, spec, stdio(), resources, onStart), this.context.image);
  }
}

/**
 * QEMU's microvm with the same kernel (vmlinux: its firmware cannot boot our bzImage), agent
 * initramfs and image disk (read-only). Its vsock is vhost-vsock, which cannot reach vmrun's
 * Unix-socket agent host, so the agent finds no host: it prints one console line and resets.
 * Measured: start to that line (guest init), memory then, and that line to QEMU's exit.
 */
class QemuRunner implements Runner {
  readonly label = 'qemu' as const;
  private args: string[] = [];
  constructor(private readonly context: RunnerContext) {}

  async prepare(): Promise<void> {
    checkExecutable(this.context.qemu);
    const [kernel, initrd, layers] = await Promise.all([ensureGuestKernel(), ensureAgentInitramfs(), ensureLayerDisks(this.context.image)]);
    // One of the image's layer disks: both VMs then have one virtio disk.
    const disk = layers.paths.at(-1);
    if (!disk) throw new Error(`${this.context.image.name} has no layers`);
    // microvm has no i8042: the guest resets by triple fault, and -no-reboot turns that into an exit.
    const cmdline = `${DEFAULT_CMDLINE} quiet`.replace('reboot=k', 'reboot=t');
    this.args = ['-M', 'microvm,rtc=off', '-accel', 'kvm', '-cpu', 'host', '-m', String(this.context.memoryMiB), '-smp', '1',
      '-kernel', kernel.vmlinux, '-initrd', initrd, '-append', cmdline,
      '-drive', `file=${disk},format=raw,if=none,id=rootfs,readonly=on`, '-device', 'virtio-blk-device,drive=rootfs',
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio'];
  }

  round(k: number): Promise<Sample[]> {
    return Promise.all(Array.from({ length: k }, () => this.one()));
  }

  private one(): Promise<Sample> {
    const guestBytes = this.context.memoryMiB * MIB;
    const t0 = performance.now();
    const qemu = spawn(this.context.qemu, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const sample = emptySample();
    let text = '';
    let init: number | undefined;
    const onOutput = (chunk: string) => {
      text = (text + chunk).slice(-8192);
      if (init !== undefined || !text.includes(AGENT_LINE)) return;
      init = performance.now();
      const memory = processMemory(qemu.pid!);
      const guest = mappingMemoryOf(qemu.pid!, guestBytes)?.rss;
      if (memory && guest !== undefined) Object.assign(sample, { vmmOverheadMiB: (memory.rss - guest) / MIB, guestTouchedMiB: guest / MIB, pssMiB: memory.pss / MIB });
    };
    qemu.stdout.setEncoding('utf8').on('data', onOutput);
    qemu.stderr.setEncoding('utf8').on('data', (chunk: string) => (text = (text + chunk).slice(-8192)));
    const timer = setTimeout(() => qemu.kill('SIGKILL'), QEMU_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      qemu.once('error', (err) => reject(new BenchError(`cannot start ${this.context.qemu}: ${err.message}`)));
      qemu.once('close', (code, signal) => {
        clearTimeout(timer);
        const end = performance.now();
        if (code !== 0 || init === undefined) {
          const tail = text.trim().split('\n').slice(-3).join(' | ');
          reject(new BenchError(`QEMU ${signal ? `was killed (${signal})` : `exited ${code}`} ${init === undefined ? 'before the agent started' : ''}: ${tail}`));
          return;
        }
        resolve({ ...sample, initMs: init - t0, teardownMs: end - init });
      });
    });
  }

  async idle(): Promise<null> {
    return null;
  }
}

/** A name on PATH or a path that can be executed; BenchError naming it otherwise. */
function checkExecutable(file: string): void {
  const candidates = file.includes('/') ? [file] : (process.env.PATH ?? '').split(':').map((dir) => path.join(dir || '.', file));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return;
    } catch {
      // not this one
    }
  }
  throw new BenchError(`${file} is not an executable${file.includes('/') ? '' : ' on PATH'}: apt-get install qemu-system-x86 (or pass --qemu PATH)`);
}
