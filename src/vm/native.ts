/**
 * The typed face of the C++ addon (native/addon.cc). Nothing outside src/vm/ touches it.
 */
import path from 'node:path';

import { packageRoot } from '../paths';

export interface NativeMachineConfig {
  /** The vmrun-vmm executable the addon starts for this VM. */
  vmm: string;
  kernel: string;
  initrd?: string;
  cmdline: string;
  memoryMiB: number;
  vcpus: number;
  drives?: { parts: { path: string; offset: number }[]; readOnly: boolean }[];
  vsock?: { cid: number; path: string };
  net?: { socket: string; mac: Buffer };
  filesystems?: { socket: string; tag: string }[];
  snapshot?: { mode: 'take' | 'restore'; state: string; memory: string; fingerprint: string };
}

export type NativeExitKind = 'reset' | 'stopped' | 'triple-fault' | 'error' | 'snapshotted';

export interface NativeExit {
  kind: NativeExitKind;
  detail: string;
}

export interface NativeMachine {
  start(): void;
  stop(): void;
  destroy(): void;
  takeConsole(): { output: number; input: number };
  memory(): { guestBytes: number; guestResidentBytes: number };
  /** Host CLOCK_MONOTONIC ns of the guest's boot-timer write (its init starting), or null. */
  bootTimer(): number | null;
  /** The jailed VMM process (pid null until it reported) and what its jail applied. */
  process(): { pid: number | null; jail: string };
}

export interface KvmProbe {
  usable: boolean;
  error?: string;
  apiVersion: number;
  maxVcpus: number;
  recommendedVcpus: number;
}

/** An error thrown by the addon: `syscall` and `code` are set when a system call failed. */
export interface NativeError extends Error {
  code?: string;
  syscall?: string;
}

interface Addon {
  NativeMachine: new (config: NativeMachineConfig, onExit: (exit: NativeExit) => void) => NativeMachine;
  probe(): KvmProbe;
  /** CLOCK_BOOTTIME minus CLOCK_MONOTONIC, in ns, on this host now. */
  boottimeOffsetNs(): number;
}

let addon: Addon | undefined;

/** The VMM executable, built beside the addon. */
export const vmmPath = path.join(packageRoot, 'build', 'Release', 'vmrun-vmm');

/** Loads build/Release/vmrun_kvm.node (built by `npm install`) once, on first use. */
export function loadAddon(): Addon {
  addon ??= require(path.join(packageRoot, 'build', 'Release', 'vmrun_kvm.node')) as Addon;
  return addon;
}
