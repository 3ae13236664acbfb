/**
 * Snapshots of a booted agent, restored in place of a boot (README, "Snapshots"). A VM booted once
 * with `vmrun.snapshot=1` stops where its agent reaches its snapshot point (guest/agent/main.c),
 * before it calls the host, and the VMM writes it out. Every VM of the same shape (memory, vCPUs,
 * devices) then starts from those files: its memory is the file mapped copy-on-write, so all of
 * them share its clean pages. The agent makes each restored guest its own from the spec's FRESH
 * frame (clock, random state), and finds the image's disk, empty at the snapshot, given at restore.
 *
 * Cached like the kernel, keyed by what the snapshot holds (the VMM, kernel, agent, shape) and
 * this host's CPU; made once under a lock, published whole.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { VmmError } from '../errors';
import { ensureAgentInitramfs } from '../guest/agent';
import { ensureGuestKernel } from '../guest/kernel';
import { ensureCacheEntries, publishCacheEntry } from '../cache-entry';
import { cacheDir } from '../paths';
import { withStatusLine } from '../status-line';
import { GUEST_CID } from './agent-vm';
import { consoleTail } from './console-tail';
import { DEFAULT_CMDLINE, Machine, vmmPath } from './machine';

/** What a VM must match to start from a snapshot: the devices' kinds and order are fixed by these. */
export interface SnapshotShape {
  memoryMiB: number;
  vcpus: number;
  /** A kernel other than the cached guest kernel. */
  kernel?: string;
  /** A disk (vda): the image's layers, given at restore. */
  disk: boolean;
  /** A virtio-net device, its passt given at restore. */
  net: boolean;
}

export interface AgentSnapshot {
  state: string;
  memory: string;
  /** The host's part of what the snapshot fits, given again at restore. */
  fingerprint: string;
}

/** A guest that has not reached its snapshot point by then is stopped: the boot went wrong. */
const TAKE_TIMEOUT_MS = 10 * 60_000;

/** The snapshot for VMs of `shape`, taken first if there is none (a boot; progress on a TTY). */
export async function ensureAgentSnapshot(shape: SnapshotShape): Promise<AgentSnapshot> {
  const [kernel, initrd] = await Promise.all([shape.kernel ?? ensureGuestKernel().then((k) => k.bzImage), ensureAgentInitramfs()]);
  const fingerprint = hostFingerprint(kernel, initrd);
  const key = createHash('sha256')
    .update(JSON.stringify([fingerprint, shape.memoryMiB, shape.vcpus, shape.disk, shape.net]))
    .digest('hex')
    .slice(0, 24);
  const dir = path.join(cacheDir(), 'snapshots', key);
  const snapshot = { state: path.join(dir, 'state'), memory: path.join(dir, 'memory'), fingerprint };
  await ensureCacheEntries([dir], async () => {
    const temp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(temp, { recursive: true, force: true });
    fs.mkdirSync(temp);
    try {
      await withStatusLine('Taking the VM snapshot that later runs start from', () =>
        takeSnapshot(shape, kernel, initrd, { state: path.join(temp, 'state'), memory: path.join(temp, 'memory'), fingerprint }),
      );
      if (!publishCacheEntry(temp, dir)) fs.rmSync(temp, { recursive: true, force: true });
    } catch (err) {
      fs.rmSync(temp, { recursive: true, force: true });
      throw err;
    }
  });
  return snapshot;
}

/**
 * What the snapshot was made with, as the host knows it: the VMM build (its device state), the
 * kernel and agent (their cache paths carry their content keys; size and mtime catch a file
 * rebuilt in place) and the CPU. The VMM adds what
 * it knows (KVM's CPUID, memory, devices) and refuses a restore where any of it differs.
 */
function hostFingerprint(kernel: string, initrd: string): string {
  // A file's size and mtime: a kernel given by path (--kernel) may be rebuilt in place.
  const version = (file: string) => {
    const st = fs.statSync(file);
    return `${file} ${st.size}@${Math.round(st.mtimeMs)}`;
  };
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0].split('\n').filter((l) => /^(vendor_id|cpu family|model|stepping|flags)\s*:/.test(l));
  const cpuKey = createHash('sha256').update(cpu.join('\n')).digest('hex').slice(0, 16);
  return `vmrun snapshot 1; vmm ${version(vmmPath)}; kernel ${version(kernel)}; agent ${version(initrd)}; host cpu ${cpuKey}`;
}

/** Boots the agent to its snapshot point and has the VMM write it to `files`. */
async function takeSnapshot(shape: SnapshotShape, kernel: string, initrd: string, files: AgentSnapshot): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-snapshot-'));
  // Stand-ins for what each restore brings: an empty disk, a network peer that never speaks.
  const emptyDisk = path.join(work, 'empty-disk');
  fs.writeFileSync(emptyDisk, '');
  const peers: net.Socket[] = [];
  const netPeer = shape.net ? net.createServer((socket) => peers.push(socket)) : undefined;
  try {
    if (netPeer) await new Promise<void>((resolve, reject) => netPeer.once('error', reject).listen(path.join(work, 'net'), resolve));
    const vm = await Machine.boot({
      kernel,
      initrd,
      cmdline: `${DEFAULT_CMDLINE} quiet vmrun.snapshot=1`,
      memoryMiB: shape.memoryMiB,
      vcpus: shape.vcpus,
      drives: shape.disk ? [{ parts: [{ path: emptyDisk, offset: 0 }], readOnly: true }] : [],
      vsock: { cid: GUEST_CID, socketPath: path.join(work, 'vsock') },
      net: netPeer && { socketPath: path.join(work, 'net') },
      snapshot: { mode: 'take', ...files },
    });
    const console = consoleTail(vm);
    const timer = setTimeout(() => vm.kill(), TAKE_TIMEOUT_MS);
    const exit = await vm.wait().finally(() => clearTimeout(timer));
    if (exit.kind !== 'snapshotted') {
      throw new VmmError(`taking the VM snapshot failed: the VM ended (${exit.kind}${exit.detail ? `: ${exit.detail}` : ''}) before its agent reached its snapshot point; console: ${console()}`);
    }
  } finally {
    for (const socket of peers) socket.destroy();
    netPeer?.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
