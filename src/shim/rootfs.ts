/**
 * The container's root as containerd gives it: the mounts of its snapshot (an overlay, as a
 * rule) to be mounted on the spec's root path (BUNDLE/rootfs), in order, as runc's shim does;
 * or none, when that path is a directory already (`ctr run --rootfs DIR`).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';

import { RunSpecError } from '../errors';

const run = promisify(execFile);

export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

/** Mounts `mounts` on `target`. Undone by unmountRootfs. */
export async function mountRootfs(target: string, mounts: RootfsMount[]): Promise<void> {
  if (mounts.length === 0) {
    if (!fs.statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
      throw new RunSpecError(`the container has no root: containerd gave no rootfs mounts and ${target} is not a directory`);
    }
    return;
  }
  fs.mkdirSync(target, { recursive: true });
  const done: RootfsMount[] = [];
  try {
    for (const m of mounts) {
      const args = ['-t', m.type, ...(m.options.length ? ['-o', m.options.join(',')] : []), '--', m.source, target];
      await run('mount', args).catch((err: { stderr?: string }) => {
        throw new RunSpecError(`mounting the container's ${m.type} rootfs failed: ${err.stderr?.trim() || String(err)}`);
      });
      done.push(m);
    }
  } catch (err) {
    for (const _ of done) await unmount(target);
    throw err;
  }
}

/** Unmounts everything on `target` (it may hold more than one mount, or none). */
export async function unmountRootfs(target: string): Promise<void> {
  while (isMountPoint(target)) await unmount(target);
}

function isMountPoint(dir: string): boolean {
  const mine = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const escaped = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return mine.some((line) => line.split(' ')[4] === escaped);
}

async function unmount(target: string): Promise<void> {
  // Lazily when busy: a virtiofsd that is still going away may hold it a moment longer.
  await run('umount', [target]).catch(() => run('umount', ['-l', target]));
}
