/**
 * A container's root: the image's unpacked directory as the read-only lower layer of an overlay
 * whose upper layer is a directory of the run's own, mounted by vmrun on the host and unmounted
 * when the run ends.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { ContainerError } from '../errors';

export interface Overlay {
  /** The merged directory: the container's root. */
  root: string;
  unmount(): Promise<void>;
}

/** Mounts `lower` under a writable layer in `dir` (a private, empty directory of the run's). */
export async function mountOverlay(lower: string, dir: string): Promise<Overlay> {
  const [upper, work, root] = ['upper', 'work', 'root'].map((name) => path.join(dir, name));
  for (const d of [upper, work, root]) fs.mkdirSync(d, { mode: 0o755 });
  // overlayfs splits its options on commas and its layer lists on colons.
  for (const p of [lower, upper, work]) {
    if (/[,:\\]/.test(p)) throw new ContainerError(`cannot use ${p} in an overlay: it contains a comma, colon or backslash`);
  }
  // xino=auto: where the layers' inode numbers leave room (the cache and the run's directory on
  // two filesystems, say ext4 and tmpfs), readdir's d_ino then agree with stat's st_ino.
  await mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},xino=auto`, root]);
  return { root, unmount: () => mount([root], 'umount') };
}

async function mount(args: string[], tool = 'mount'): Promise<void> {
  await promisify(execFile)(tool, args, { encoding: 'utf8' }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT') throw new ContainerError(`${tool} is missing: apt-get install mount`);
    throw new ContainerError(`${tool} ${args.at(-1)} failed: ${(err.stderr ?? err.message).trim()}`);
  });
}
