/**
 * The guest kernel: built from Debian's linux-source-6.1 by images/kernel/build.sh and cached
 * outside the repository, keyed by source version and config.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { ImageBuildError } from '../errors';
import { packageRoot } from '../paths';

const BUILD_SCRIPT = path.join(packageRoot, 'images', 'kernel', 'build.sh');

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
  const { stdout } = await promisify(execFile)('bash', [BUILD_SCRIPT, '--path']);
  const kernel = kernelIn(stdout.trim());
  return fs.existsSync(kernel.bzImage) && fs.existsSync(kernel.vmlinux) ? kernel : undefined;
}

/** The cached kernel, built first if needed (minutes; progress on a TTY). */
export async function ensureGuestKernel(): Promise<GuestKernel> {
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new ImageBuildError(`building the guest kernel failed (exit ${code}); see the messages above`);
  return kernelIn(stdout.trim().split('\n').pop() ?? '');
}
