/**
 * The microVM runtime: runs a RunSpec in a VM whose root is the image's cached layers (one
 * read-only disk, a partition per layer, shared by every VM of images that have them) under a
 * writable overlay that dies with the VM, or else a host directory shared whole over virtio-fs
 * (a containerd bundle's rootfs, which containerd's snapshotter mounted). stdio travels
 * on vsock connections of its own, with backpressure end to end; signals and terminal sizes on
 * the control connection. The network, unless the spec has none, is passt's (src/network/).
 */
import { AgentError } from '../errors';
import type { Image } from '../image/layout';
import type { RunControl, Stdio } from '../agent/process-io';
import type { RunSpec } from '../agent/specs';
import { AgentPort } from '../agent/channels';
import { relayProcess, runControl } from '../agent/process';
import { vmExec } from './vm-exec';
import { sendRunSpec } from '../agent/specs';
import { withAgentVm, type HostTimings } from './agent-vm';
import { ensureLayerDisks, layerPartitions, layersDrive, type LayerDisks } from './layer-disks';
import type { MachineExit } from './machine';
import type { PortMapping } from '../network/options';
import { startPasst } from '../network/user-net';
import { startRootShare, startShares, stopShares, type Share } from '../volumes/virtiofsd';
import { ensureAgentSnapshot } from './snapshot';

export interface VmResources {
  memoryMiB?: number;
  vcpus?: number;
  /** A kernel other than the cached guest kernel. */
  kernel?: string;
  /** Boot the VM even where a snapshot could start it (`--cold-boot`). */
  coldBoot?: boolean;
  /** Told the published ports once they listen, with the host ports picked for `-p CONTAINERPORT`. */
  onPublished?: (ports: PortMapping[]) => void;
}

/** A host directory that is the VM's root, in place of an image's layers. */
export interface RootDirectory {
  directory: string;
}

export interface VmRunResult {
  exitCode: number;
  /** How the image's layers came to be: unpacked by this run, or from the cache (none for a RootDirectory). */
  layers?: LayerDisks;
  host: HostTimings;
  /** Guest milestones in ms of guest boot time (`agent`, `exec`, ...). */
  guest: Record<string, number>;
}

const DEFAULT_MEMORY_MIB = 1024;

export async function runInVm(
  root: Image | RootDirectory,
  spec: RunSpec,
  stdio: Stdio,
  resources: VmResources = {},
  onStart?: (control: RunControl) => void,
): Promise<VmRunResult> {
  // First: a port in use or a share that cannot be served is an error to give before a long
  // unpack, not after.
  const network = spec.network.mode === 'bridge' ? await startPasst(spec.network) : undefined;
  let shares: Share[] = [];
  try {
    shares = await startShares(spec.volumes);
    const rootShare = 'directory' in root ? await startRootShare(root.directory, spec.readOnly) : undefined;
    if (rootShare) shares.push(rootShare);
    const layers = 'directory' in root ? undefined : await ensureLayerDisks(root, { kernel: resources.kernel });
    // The only disk: vda, its partitions vda1, vda2, ... the layers.
    const drives = layers && layers.paths.length > 0 ? [layersDrive(layers.paths)] : [];
    if (network) resources.onPublished?.(network.published);
    const memoryMiB = resources.memoryMiB ?? DEFAULT_MEMORY_MIB;
    const vcpus = resources.vcpus ?? 1;
    // A snapshot's RAM is a private mapping, which virtiofsd cannot share: volumes boot.
    const restoreFrom = resources.coldBoot || shares.length > 0
      ? undefined
      : await ensureAgentSnapshot({ memoryMiB, vcpus, kernel: resources.kernel, disk: drives.length > 0, net: network !== undefined });
    const options = {
      drives,
      memoryMiB,
      vcpus,
      kernel: resources.kernel,
      net: network && { socketPath: network.socket },
      filesystems: shares.map((s) => ({ socketPath: s.socket, tag: s.tag })),
      restoreFrom,
    };
    return await withAgentVm(options, async ({ vm, listener, session, timings, ended }) => {
      // Without passt (an offline host) the guest gets no NIC and the agent configures lo alone.
      const guestNetwork: RunSpec['network'] = network && spec.network.mode === 'bridge' ? { ...spec.network, ipv6: network.ipv6 } : { mode: 'none' };
      const vmRoot = rootShare ? { share: rootShare.tag } : { lowers: layerPartitions('vda', layers?.paths.length ?? 0) };
      sendRunSpec(session, { ...spec, network: guestNetwork }, 'vm', vmRoot);
      onStart?.(runControl(session, () => vm.kill(), vmExec(listener, session, ended), () => vm.process().pid ?? undefined));
      const sockets = { stdin: listener.accept(AgentPort.Stdin), stdout: listener.accept(AgentPort.Stdout), stderr: listener.accept(AgentPort.Stderr) };
      const exitCode = await relayProcess(session, sockets, stdio, ended.then((exit: MachineExit) => {
        throw new AgentError(`the VM ended (${exit.kind}) before the process's output was complete`);
      }));
      return { exitCode, layers, host: timings, guest: session.phasesMs() };
    });
  } finally {
    await Promise.all([network?.stop(), stopShares(shares)]);
  }
}
