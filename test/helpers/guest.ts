/**
 * What the boot tests boot: the project's guest kernel and the probe initramfs
 * (images/probe), whose init prints `VMRUN-PROBE cpus=N memtotal_kb=M` and resets the machine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { ensureGuestKernel, type GuestKernel } from '../../src/guest/kernel';
import { packageRoot } from '../../src/paths';
import { Machine, type BootOptions, type MachineExit } from '../../src/vm/machine';

const root = packageRoot;

export interface ProbeGuest {
  kernel: GuestKernel;
  initrd: string;
}

export async function probeGuest(): Promise<ProbeGuest> {
  const kernel = await ensureGuestKernel();
  const initrd = execFileSync('bash', [path.join(root, 'images', 'probe', 'build.sh')], { encoding: 'utf8' }).trim();
  return { kernel, initrd };
}

export interface BootResult {
  exit: MachineExit;
  console: string;
  probe?: { cpus: number; memTotalKiB: number };
}

// A boot that takes longer than this (nested KVM included) is a hang: stop it and fail fast.
const BOOT_TIMEOUT_MS = 120_000;

/** Boots a machine, collects its console until it ends, and parses the probe's marker line. */
export async function bootToEnd(options: BootOptions, input?: string): Promise<BootResult> {
  const vm = await Machine.boot(options);
  let text = '';
  vm.console.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  if (input !== undefined) vm.consoleInput.end(input);
  const timer = setTimeout(() => vm.kill(), BOOT_TIMEOUT_MS);
  const exit = await vm.wait();
  clearTimeout(timer);
  if (exit.kind !== 'reset') console.error(`# guest ended as ${exit.kind} (${exit.detail}); its console:\n${text}`);
  const m = /VMRUN-PROBE cpus=(\d+) memtotal_kb=(\d+)/.exec(text);
  return { exit, console: text, probe: m ? { cpus: Number(m[1]), memTotalKiB: Number(m[2]) } : undefined };
}

/** Open file descriptors and threads of this process: what a leak would grow. */
export function processResources(): { fds: number; threads: number } {
  return {
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: fs.readdirSync('/proc/self/task').length,
  };
}
