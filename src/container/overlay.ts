/**
 * overlayfs mounts on the host, as docker's overlay2 makes them: a container's root (the image's
 * layers, read-only, under a writable layer of the run's own) and the view a layer is unpacked
 * through (the layers below it, under the new layer). Unmounted by whoever mounted them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { ContainerError } from '../errors';

export interface Overlay {
  /** The merged directory. */
  root: string;
  unmount(): Promise<void>;
}

export interface OverlayDirs {
  /** The writable layer, and overlayfs's work directory on the same filesystem. */
  upper: string;
  work: string;
  /** Where the merged directory is mounted; `l` beside it must not exist yet. */
  root: string;
}

/** The short names of a mount's lower layers: `l` beside its root. */
const linksDir = (root: string) => path.join(path.dirname(root), 'l');

/**
 * Mounts `lowers` (bottom first) under `dirs.upper` at `dirs.root`. The lower layers are named
 * by short links (`l/0`, `l/1`, ... beside the root) relative to which it mounts, as overlay2
 * does: mount options fit in a page, and 127 layers' full paths would not.
 */
export async function mountOverlay(lowers: string[], dirs: OverlayDirs): Promise<Overlay> {
  const links = linksDir(dirs.root);
  for (const d of [dirs.upper, dirs.work, dirs.root, links]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  // overlayfs splits its options on commas and its layer lists on colons.
  for (const p of [dirs.upper, dirs.work, links]) {
    if (/[,:\\]/.test(p)) throw new ContainerError(`cannot use ${p} in an overlay: it contains a comma, colon or backslash`);
  }
  lowers.forEach((lower, i) => fs.symlinkSync(lower, path.join(links, String(i))));
  // An image without layers has an empty root.
  if (lowers.length === 0) fs.mkdirSync(path.join(links, '0'));
  const lowerdir = Array.from({ length: Math.max(lowers.length, 1) }, (_, i) => String(i)).reverse().join(':');
  // xino=auto: where the layers' inode numbers leave room (the cache and the run's directory on
  // two filesystems, say ext4 and tmpfs), readdir's d_ino then agree with stat's st_ino.
  const options = `lowerdir=${lowerdir},upperdir=${dirs.upper},workdir=${dirs.work},xino=auto`;
  await mount(['-t', 'overlay', 'overlay', '-o', options, dirs.root], links);
  return { root: dirs.root, unmount: () => mount([dirs.root], links, 'umount') };
}

/** A run's root: `lowers` under a writable layer in `dir` (a private, empty directory of the run's). */
export function mountRunOverlay(lowers: string[], dir: string): Promise<Overlay> {
  const [upper, work, root] = ['upper', 'work', 'root'].map((name) => path.join(dir, name));
  return mountOverlay(lowers, { upper, work, root });
}

/** The lower layers of every overlay this module mounted that is mounted still. */
export function lowersInUse(): Set<string> {
  const used = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-');
    if (separator < 0 || fields[separator + 1] !== 'overlay') continue;
    // Spaces, tabs, newlines and backslashes in the mount point are octal escapes.
    const root = fields[4].replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    const links = linksDir(root);
    let names: string[] = [];
    try {
      names = fs.readdirSync(links);
    } catch {
      continue;  // not one of ours
    }
    for (const name of names) {
      try {
        used.add(fs.readlinkSync(path.join(links, name)));
      } catch {
        // not a link: the empty layer of an image without any
      }
    }
  }
  return used;
}

async function mount(args: string[], cwd: string, tool = 'mount'): Promise<void> {
  await promisify(execFile)(tool, args, { encoding: 'utf8', cwd }).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT') throw new ContainerError(`${tool} is missing: apt-get install mount`);
    throw new ContainerError(`${tool} ${args.at(-1)} failed: ${(err.stderr ?? err.message).trim()}`);
  });
}
