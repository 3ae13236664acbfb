/**
 * The guest kernel: built from Debian's linux-source-6.1 by images/kernel/build.sh and cached
 * outside the repository, keyed by source version and config.
 */
import fs from 'node:fs';
import path from 'node:path';

import { runBuildScript } from './build';

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

/** Where the current kernel is cached, or undefined when it has not been built yet. */
export async function guestKernel(): Promise<GuestKernel | undefined> {
  const kernel = kernelIn(await runBuildScript('kernel', 'the guest kernel', ['--path']));
  return fs.existsSync(kernel.bzImage) && fs.existsSync(kernel.vmlinux) ? kernel : undefined;
}

/** The cached kernel, built first if needed (minutes; progress on a TTY). */
export async function ensureGuestKernel(): Promise<GuestKernel> {
  return kernelIn(await runBuildScript('kernel', 'the guest kernel'));
}
