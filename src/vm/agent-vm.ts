/**
 * A microVM whose PID 1 is the vmrun agent: boots it with the agent initramfs and a vsock, waits
 * for the agent to call in, hands the conversation to the caller, and always tears everything
 * down (the VM, the sockets, their directory) however the conversation ends.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { AgentError } from '../errors';
import { ensureAgentInitramfs } from '../guest/agent';
import { ensureGuestKernel } from '../guest/kernel';
import { onTeardown } from '../teardown';
import { AgentPort } from '../agent/channels';
import { AgentListener } from './agent-listener';
import { AgentSession } from '../agent/session';
import { consoleTail } from './console-tail';
import { DEFAULT_CMDLINE, Machine, type Drive, type MachineExit } from './machine';
import type { AgentSnapshot } from './snapshot';

/** The guest's CID; each VM has its own vsock, so every VM can use the same one. */
export const GUEST_CID = 3;

export interface AgentVmOptions {
  drives: Drive[];
  memoryMiB: number;
  vcpus: number;
  /** A kernel other than the cached guest kernel (a bzImage or a PVH vmlinux). */
  kernel?: string;
  /** A virtio-net device, passt's socket at the other end. */
  net?: { socketPath: string };
  /** virtio-fs devices, each a virtiofsd's socket and the tag the guest mounts it by. */
  filesystems?: { socketPath: string; tag: string }[];
  /** Start from this snapshot (snapshot.ts) of a VM of the same shape instead of booting. */
  restoreFrom?: AgentSnapshot;
}

/** Host-side milestones of one VM, in milliseconds from the moment it was asked for. */
export interface HostTimings {
  /** The VM was restored from a snapshot, not booted. */
  restored: boolean;
  /** The VMM has built (or restored) the VM and started its vCPUs. */
  booted: number;
  /** The guest's init (the agent) started: the VMM's boot timer. */
  initStarted?: number;
  /** The agent called in. */
  agentConnected: number;
  /** The agent reported the outcome. */
  outcome?: number;
  /** The VM is gone and its resources freed. */
  torndown?: number;
}

export interface AgentVm {
  vm: Machine;
  listener: AgentListener;
  session: AgentSession;
  timings: HostTimings;
  /** The VM's end, for racing against anything that waits on the guest. */
  ended: Promise<MachineExit>;
}

export async function withAgentVm<T>(options: AgentVmOptions, body: (agent: AgentVm) => Promise<T>): Promise<T> {
  const start = performance.now();
  const since = () => Math.round((performance.now() - start) * 1000) / 1000;
  const [kernel, initrd] = await Promise.all([options.kernel ?? ensureGuestKernel().then((k) => k.bzImage), ensureAgentInitramfs()]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-'));
  let listener: AgentListener | undefined;
  let vm: Machine | undefined;
  let session: AgentSession | undefined;
  let unregister: (() => void) | undefined;
  try {
    listener = await AgentListener.open(dir);
    vm = await Machine.boot({
      kernel,
      initrd,
      cmdline: `${DEFAULT_CMDLINE} quiet`,
      memoryMiB: options.memoryMiB,
      vcpus: options.vcpus,
      drives: options.drives,
      vsock: { cid: GUEST_CID, socketPath: listener.socketPath },
      net: options.net,
      filesystems: options.filesystems,
      snapshot: options.restoreFrom && { mode: 'restore', ...options.restoreFrom },
    });
    const booted = vm;
    unregister = onTeardown(() => booted.kill());
    const timings: HostTimings = { restored: options.restoreFrom !== undefined, booted: since(), agentConnected: 0 };
    const console = consoleTail(vm);
    const ended = vm.wait();
    const control = await Promise.race([
      listener.accept(AgentPort.Control),
      ended.then((exit) => {
        throw new AgentError(`the VM ended (${describe(exit)}) before its agent called in; console: ${console()}`);
      }),
    ]);
    timings.agentConnected = since();
    const initStarted = vm.bootTimer();
    if (initStarted !== undefined) timings.initStarted = Math.round((initStarted - start) * 1000) / 1000;
    session = new AgentSession(control);
    const s = session;
    void ended.then((exit) => s.fail(new AgentError(`the VM ended (${describe(exit)}) before the agent reported an outcome; console: ${console()}`)));
    void s.outcome.then(() => (timings.outcome = since()), () => (timings.outcome = since()));
    const result = await body({ vm, listener, session, timings, ended });
    session.close();
    vm.kill();
    await vm.wait();
    timings.torndown = since();
    return result;
  } finally {
    unregister?.();
    session?.close();
    if (vm) {
      vm.kill();
      await vm.wait();
    }
    listener?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function describe(exit: MachineExit): string {
  return exit.detail ? `${exit.kind}: ${exit.detail}` : exit.kind;
}
