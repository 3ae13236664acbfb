/**
 * Boot benchmark: vmrun against QEMU (`-M microvm -accel kvm`) booting the same kernel and the
 * same probe initramfs, in alternation, in one run. Both boot the ELF vmlinux through its PVH
 * entry (QEMU's microvm firmware does not boot our bzImage); vmrun's bzImage boot is a third row. For each it measures the time from the boot
 * call (or QEMU's spawn) to the probe's marker line on the serial console, and the VMM's own
 * memory: resident memory minus the guest RAM the guest has touched.
 *
 *   node dist/bench/boot.js [--runs N] [--json] [--kernel DIR]
 * --kernel: another build's directory (bzImage and vmlinux), to compare kernels side by side.
 * Where the host has no KVM, run it through the rig: npm run bench:boot
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ensureGuestKernel } from '../src/guest/kernel';
import { packageRoot } from '../src/paths';
import { Machine } from '../src/vm/machine';
import { median, sinceMs } from './stats';

const MARKER = 'VMRUN-PROBE';
const MEMORY_MIB = 128;
const VCPUS = 1;
const CMDLINE = 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check';
// QEMU's microvm has no i8042, so its guest ends by triple fault instead (-no-reboot then exits).
const QEMU_CMDLINE = CMDLINE.replace('reboot=k', 'reboot=t');
const BOOT_TIMEOUT_MS = 120_000;

interface Sample {
  setupMs?: number;        // vmrun: the boot call itself (VM built, kernel loaded, vCPUs started)
  markerMs: number;
  exitMs: number;
  rssKiB: number;          // the VMM process's resident memory at the marker
  guestKiB: number;        // of which guest RAM the guest touched
  overheadKiB: number;     // the VMM process's own: rss - guest
}

/** Resident KiB of a process, total and in mappings exactly `guestBytes` long (QEMU's guest RAM). */
function residentKiB(pid: number | 'self', guestBytes: number): { rss: number; guest: number } {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  let rss = 0, guest = 0, size = 0;
  for (const line of smaps) {
    const m = /^(Size|Rss):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const kib = Number(m[2]);
    if (m[1] === 'Size') size = kib;
    else {
      rss += kib;
      if (size * 1024 === guestBytes) guest += kib;
    }
  }
  return { rss, guest };
}

async function bootVmrun(kernel: string, initrd: string): Promise<Sample> {
  const start = process.hrtime.bigint();
  const vm = await Machine.boot({ kernel, initrd, cmdline: CMDLINE, memoryMiB: MEMORY_MIB, vcpus: VCPUS });
  const setupMs = sinceMs(start);
  let text = '';
  let markerMs = 0;
  let atMarker = { rss: 0, guest: 0 };
  vm.console.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    if (!markerMs && text.includes(MARKER)) {
      markerMs = sinceMs(start);
      // The guest mapping may merge with neighbouring anonymous memory in smaps; ask the VMM (mincore).
      atMarker = { rss: residentKiB(vm.process().pid!, 0).rss, guest: vm.memory().guestResidentBytes / 1024 };
    }
  });
  const timer = setTimeout(() => vm.kill(), BOOT_TIMEOUT_MS);
  const exit = await vm.wait();
  clearTimeout(timer);
  if (exit.kind !== 'reset' || !markerMs) throw new Error(`vmrun boot failed (${exit.kind}: ${exit.detail}):\n${text}`);
  return {
    setupMs,
    markerMs,
    exitMs: sinceMs(start),
    rssKiB: atMarker.rss,
    guestKiB: atMarker.guest,
    overheadKiB: atMarker.rss - atMarker.guest,
  };
}

async function bootQemu(kernel: string, initrd: string): Promise<Sample> {
  const start = process.hrtime.bigint();
  const qemu = spawn(
    'qemu-system-x86_64',
    ['-M', 'microvm,rtc=off', '-accel', 'kvm', '-cpu', 'host', '-m', String(MEMORY_MIB), '-smp', String(VCPUS),
     '-kernel', kernel, '-initrd', initrd, '-append', QEMU_CMDLINE,
     '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  let markerMs = 0;
  let atMarker = { rss: 0, guest: 0 };
  qemu.stderr.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  qemu.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
    if (!markerMs && text.includes(MARKER)) {
      markerMs = sinceMs(start);
      atMarker = residentKiB(qemu.pid!, MEMORY_MIB << 20);
    }
  });
  const timer = setTimeout(() => qemu.kill('SIGKILL'), BOOT_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => qemu.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0 || !markerMs) throw new Error(`QEMU boot failed (exit ${code}):\n${text}`);
  return { markerMs, exitMs: sinceMs(start), rssKiB: atMarker.rss, guestKiB: atMarker.guest, overheadKiB: atMarker.rss - atMarker.guest };
}

function summarise(samples: Sample[]) {
  const pick = (k: Exclude<keyof Sample, 'setupMs'>) => samples.map((s) => s[k]);
  const setups = samples.flatMap((s) => (s.setupMs === undefined ? [] : [s.setupMs]));
  return {
    runs: samples.length,
    setupMs: setups.length ? median(setups) : undefined,
    markerMs: { median: median(pick('markerMs')), min: Math.min(...pick('markerMs')), max: Math.max(...pick('markerMs')) },
    exitMs: { median: median(pick('exitMs')) },
    rssMiB: median(pick('rssKiB')) / 1024,
    guestTouchedMiB: median(pick('guestKiB')) / 1024,
    vmmOverheadMiB: median(pick('overheadKiB')) / 1024,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1] || 5) || 5;
  const json = args.includes('--json');
  const kernelDir = args.includes('--kernel') ? args[args.indexOf('--kernel') + 1] : undefined;
  const kernel = kernelDir
    ? { vmlinux: path.join(kernelDir, 'vmlinux'), bzImage: path.join(kernelDir, 'bzImage') }
    : await ensureGuestKernel();
  const initrd = execFileSync('bash', [path.join(packageRoot, 'images', 'probe', 'build.sh')], { encoding: 'utf8' }).trim();
  const nested = process.env.VMRUN_RIG === '1';

  const runners: Record<string, () => Promise<Sample>> = {
    'vmrun': () => bootVmrun(kernel.vmlinux, initrd),
    'qemu': () => bootQemu(kernel.vmlinux, initrd),
    'vmrun-bz': () => bootVmrun(kernel.bzImage, initrd),
  };
  const samples: Record<string, Sample[]> = {};
  for (const [name, boot] of Object.entries(runners)) {
    await boot(); // warm-up: page cache, addon load
    samples[name] = [];
  }
  for (let i = 0; i < runs; i++) {
    for (const [name, boot] of Object.entries(runners)) samples[name].push(await boot());
  }
  const markerMedian = (name: string) => median(samples[name].map((s) => s.markerMs));
  const result = {
    host: { kernel: os.release(), cpu: os.cpus()[0]?.model, nestedKvm: nested },
    guest: { kernel: 'vmlinux (PVH); vmrun-bz: bzImage', memoryMiB: MEMORY_MIB, vcpus: VCPUS, cmdline: CMDLINE },
    runs,
    results: Object.fromEntries(Object.entries(samples).map(([name, s]) => [name, summarise(s)])),
    ratio: { markerVmrunOverQemu: markerMedian('vmrun') / markerMedian('qemu') },
  };
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const cols = ['runner', 'setup ms', 'marker ms', 'min', 'max', 'exit ms', 'RSS MiB', 'VMM MiB', 'guest MiB'];
  console.log(`boot to init marker, ${MEMORY_MIB} MiB, ${VCPUS} vCPU, ${runs} runs each, alternating; host ${result.host.kernel}${nested ? ', NESTED KVM (20-50x slower than real KVM)' : ''}`);
  console.log(cols.map((c, i) => (i ? c.padStart(9) : c.padEnd(9))).join(' '));
  for (const [name, s] of Object.entries(result.results)) {
    const cells = [s.markerMs.median, s.markerMs.min, s.markerMs.max, s.exitMs.median, s.rssMiB, s.vmmOverheadMiB, s.guestTouchedMiB];
    const setup = s.setupMs === undefined ? '-' : s.setupMs.toFixed(1);
    console.log([name.padEnd(9), setup.padStart(9), ...cells.map((c) => c.toFixed(1).padStart(9))].join(' '));
  }
  console.log(`vmrun/qemu time to marker (both PVH): ${result.ratio.markerVmrunOverQemu.toFixed(2)}`);
  console.log('setup ms: the boot call until the vCPUs run (QEMU: not separable, inside its marker time)');
  console.log('RSS MiB: the VMM process at the marker (vmrun: the Node process it lives in, guest RAM included)');
  console.log('VMM MiB: the VMM process\'s RSS less touched guest RAM');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
