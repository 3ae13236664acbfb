/**
 * The guest kernel: built from Debian's linux-source-6.1 by images/kernel/build.sh and cached
 * outside the repository, keyed by source version and config.
 */
import fs from 'node:fs';
import path from 'node:path';

import { cacheDir, packageRoot } from '../paths';
import { buildScript, contentKey, runBuildScript } from './build';

export interface GuestKernel {
  /** Compressed kernel for the 64-bit boot protocol. */
  bzImage: string;
  /** Uncompressed ELF kernel for the PVH entry. */
  vmlinux: string;
  /** The .config it was built from. */
  config: string;
}

function kernelIn(dir: string): GuestKernel {
  return { bzImage: path.join(dir, 'bzImage'), vmlinux: path.join(dir, 'vmlinux'), config: path.join(dir, 'config') };
}

function isBuilt(kernel: GuestKernel): boolean {
  return fs.existsSync(kernel.bzImage) && fs.existsSync(kernel.vmlinux);
}

/** The version dpkg has installed of `pkg`, read from its status file as dpkg-query would. */
function installedVersion(pkg: string): string | undefined {
  let status: string;
  try {
    status = fs.readFileSync('/var/lib/dpkg/status', 'utf8');
  } catch {
    return undefined;
  }
  const stanza = status.split(/\n\n+/).find((s) => s.startsWith(`Package: ${pkg}\n`));
  if (!stanza || !/^Status: install ok installed$/m.test(stanza)) return undefined;
  return /^Version: (.+)$/m.exec(stanza)?.[1];
}

/** The kernel's directory in the cache as build.sh keys it (source version, config, script); undefined without the source package. */
export function kernelCachePath(): string | undefined {
  const version = installedVersion('linux-source-6.1');
  if (!version) return undefined;
  const key = contentKey([path.join(packageRoot, 'images', 'kernel', 'microvm.config'), buildScript('kernel')]);
  return path.join(cacheDir(), 'kernel', `${version}-${key}`);
}

/** Where the current kernel is cached, or undefined when it has not been built yet. */
export async function guestKernel(): Promise<GuestKernel | undefined> {
  const kernel = kernelIn(kernelCachePath() ?? (await runBuildScript('kernel', 'the guest kernel', ['--path'])));
  return isBuilt(kernel) ? kernel : undefined;
}

/** The cached kernel, built first if needed (minutes; progress on a TTY). */
export async function ensureGuestKernel(): Promise<GuestKernel> {
  const dir = kernelCachePath();
  if (dir && isBuilt(kernelIn(dir))) return kernelIn(dir);
  return kernelIn(await runBuildScript('kernel', 'the guest kernel'));
}
