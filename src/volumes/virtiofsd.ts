/**
 * virtiofsd, one per host path bound into a VM: the vhost-user back end of a virtio-fs device,
 * serving the guest's FUSE requests from the host's files. Debian 12 ships QEMU's C virtiofsd in
 * qemu-system-common (the Rust one, where installed, takes the same options).
 *
 * Each runs in a sandbox of its own making (new mount, pid and net namespaces, pivot_root into
 * the share, seccomp, fewer capabilities), so a path the guest names, a symlink included, never
 * leads outside the share. The share is a directory holding one entry, `v`: the host path bind-
 * mounted there in a mount namespace private to that virtiofsd, read-only in the host kernel
 * for `:ro` (virtiofsd has no read-only switch of its own, and the guest's good will is no
 * guard). So a single file can be shared as well as a tree, and nothing of the bind outlives
 * the virtiofsd: no mount is ever made in vmrun's own namespace.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { VolumeError } from '../errors';
import { executableOnPath } from '../paths';
import { exitOf, stderrOf, stopper, unixListening, until } from '../sidecar';
import { shareTag, withRealSources, type VolumeSpec } from './options';

type BindVolume = Extract<VolumeSpec, { kind: 'bind' }>;

export interface Share {
  /** What the guest mounts the share by. */
  tag: string;
  /** virtiofsd's vhost-user socket, for the VMM to connect to (once). */
  socket: string;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'];

/** Binds the mount namespace's view of $1 onto $2, read-only unless $3 is rw, then runs the rest. */
const BIND_SCRIPT = 'mount --bind "$1" "$2" && { [ "$3" = rw ] || mount -o remount,bind,ro "$2"; } && shift 3 && exec "$@"';

/** Starts a virtiofsd for each bind among `volumes`, in their order; on failure stops those it started. */
export async function startShares(volumes: VolumeSpec[]): Promise<Share[]> {
  const shares: Share[] = [];
  try {
    for (const v of withRealSources(volumes)) if (v.kind === 'bind') shares.push(await startVirtiofsd(v, shareTag(shares.length)));
    return shares;
  } catch (err) {
    await stopShares(shares);
    throw err;
  }
}

export async function stopShares(shares: Share[]): Promise<void> {
  await Promise.all(shares.map((s) => s.stop()));
}

/**
 * A share that is the VM's root itself (a containerd bundle's rootfs), not a directory holding
 * one entry: the same sandboxed virtiofsd, bound on the share's top directory.
 */
export async function startRootShare(directory: string, readOnly: boolean): Promise<Share> {
  return startVirtiofsd({ kind: 'bind', source: fs.realpathSync(directory), target: '/', readOnly }, 'root', true);
}

/** `volume.source` must be resolved already (withRealSources); `whole`: the share is the source itself. */
async function startVirtiofsd(volume: BindVolume, tag: string, whole = false): Promise<Share> {
  if (process.getuid?.() !== 0) {
    throw new VolumeError(`binding ${volume.source} into a VM needs root (virtiofsd sandboxes itself with namespaces): run vmrun as root, or use --runtime container`);
  }
  const binary = virtiofsdBinary();
  const source = volume.source;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-fs-'));
  const root = path.join(dir, 'share');
  const entry = whole ? root : path.join(root, 'v');
  fs.mkdirSync(root, { mode: 0o755 });
  if (!whole) {
    if (fs.statSync(source).isDirectory()) fs.mkdirSync(entry);
    else fs.writeFileSync(entry, '');
  }
  const socket = path.join(dir, 'fs.sock');
  const args = [
    '--mount', '--propagation', 'private', '--', 'sh', '-c', BIND_SCRIPT, 'sh', source, entry, volume.readOnly ? 'ro' : 'rw',
    binary, `--socket-path=${socket}`, '-o', `source=${root}`, '-o', 'cache=auto', '-o', 'sandbox=namespace', '-o', 'log_level=err',
  ];
  const child = spawn('unshare', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = stopper(() => child.kill('SIGKILL'), exitOf(child), dir, 'virtiofsd');
  try {
    await until(() => unixListening(socket), exitOf(child), `virtiofsd for ${volume.source}`, stderrOf(child), (m) => new VolumeError(m));
  } catch (err) {
    await stop();
    throw err;
  }
  return { tag, socket, stop };
}

function virtiofsdBinary(): string {
  const found = executableOnPath('virtiofsd') ?? CANDIDATES.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (!found) throw new VolumeError('virtiofsd is not installed: apt-get install qemu-system-common (or use --runtime container)');
  return found;
}
