/**
 * `vmrun cp`: files between the host and a running sandbox, as a tar stream through the image's
 * own tar (exec'd in the sandbox, as root; node-tar makes the stream that goes in). What comes
 * out of a sandbox is hostile: it is extracted entry by entry (no absolute paths, no `..`, never
 * through a symlink, hard links only to files of the copy; files, directories and links only)
 * into a fresh directory beside the destination, every entry under the one name asked for,
 * within a byte and entry budget; only a complete, checked copy is renamed into place. Nothing of
 * a refused archive is left behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';

import * as tar from 'tar';
import tarStream from 'tar-stream';

import { SandboxError } from '../errors';
import { collector, discard } from '../streams';
import type { ExecOptions } from '../run/spec';
import type { ExecStdio } from './control';

/** Runs a command in the sandbox (an exec through the supervisor, or a Sandbox's). */
export type ExecIn = (exec: ExecOptions, stdio: ExecStdio) => Promise<number>;

export interface CopyLimits {
  /** Of all files' contents. */
  bytes: number;
  entries: number;
}

export const DEFAULT_COPY_LIMITS: CopyLimits = { bytes: 16 * 2 ** 30, entries: 1_000_000 };

const ROOT_USER = '0';

/** Copies `sandboxPath` out to `hostPath` (into it, when it is a directory), as docker cp does. */
export async function copyFromSandbox(exec: ExecIn, sandboxPath: string, hostPath: string, limits = DEFAULT_COPY_LIMITS): Promise<void> {
  const { dir, base } = splitSandboxPath(sandboxPath);
  const into = isDirectory(hostPath);
  const parent = into ? hostPath : path.dirname(path.resolve(hostPath));
  if (!isDirectory(parent)) throw new SandboxError(`${parent} is not a directory here: give an existing directory, or a new name in one`);
  const final = into ? path.join(hostPath, base) : path.resolve(hostPath);
  if (fs.existsSync(final)) throw new SandboxError(`${final} exists: remove it first, or copy to another name`);
  const archive = new PassThrough();
  const stderr = collector();
  const extracted = extractUntrusted(archive, parent, base, path.basename(final), limits);
  extracted.catch(() => archive.resume());  // a refused archive: the rest of the stream is drained
  const code = await exec({ argv: ['tar', '-C', dir, '-cf', '-', `./${base}`], user: ROOT_USER }, { stdin: null, stdout: archive, stderr: stderr.stream });
  archive.end();
  if (code !== 0) {
    await extracted.catch(() => {});
    throw new SandboxError(`copying ${sandboxPath} out of the sandbox failed: ${firstLine(stderr.text()) || `tar exited with ${code}`}`);
  }
  await extracted;
}

/** Copies `hostPath` into the sandbox as `sandboxPath` (into it, when that is a directory there). */
export async function copyToSandbox(exec: ExecIn, hostPath: string, sandboxPath: string): Promise<void> {
  if (!fs.existsSync(hostPath)) throw new SandboxError(`${hostPath} does not exist here: give a file or directory to copy`);
  splitSandboxPath(sandboxPath);  // checked
  const name = path.basename(path.resolve(hostPath));
  const archive = tar.c({ cwd: path.dirname(path.resolve(hostPath)), portable: true, follow: false }, [name]) as unknown as Readable;
  // Into an existing directory, or as a new name: unpacked beside it first, then moved, so a
  // failed copy leaves nothing half-written.
  const script = [
    'dest=$1 name=$2',
    'if [ -d "$dest" ]; then exec tar -C "$dest" -xf -; fi',
    'parent=$(dirname -- "$dest")',
    'tmp=$(mktemp -d "$parent/.vmrun-cp-XXXXXX") || exit 1',
    'tar -C "$tmp" -xf - && mv -- "$tmp/$name" "$dest"; rc=$?',
    'rm -rf -- "$tmp"; exit $rc',
  ].join('\n');
  const stderr = collector();
  const code = await exec({ argv: ['sh', '-c', script, 'sh', sandboxPath, name], user: ROOT_USER }, { stdin: archive, stdout: discard(), stderr: stderr.stream });
  if (code !== 0) throw new SandboxError(`copying ${hostPath} into the sandbox failed: ${firstLine(stderr.text()) || `exit ${code}`}`);
}

/**
 * Extracts an untrusted tar stream whose entries must all lie under `top` into `parent`/`name`:
 * first into a fresh directory in `parent`, then, once every entry passed, renamed into place.
 * Entries are written one at a time by this code (tar-stream parses): node-tar's extractor
 * deadlocks on a one-entry archive (a symlink whose target is its own parent directory), and a
 * guest must not be able to hang `cp`.
 */
export async function extractUntrusted(archive: Readable, parent: string, top: string, name: string, limits: CopyLimits): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(parent, '.vmrun-cp-'));
  try {
    const extract = tarStream.extract();
    let bytes = 0;
    let entries = 0;
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        const write = async () => {
          if (++entries > limits.entries) throw new Refused(`more than ${limits.entries} entries`);
          if ((bytes += header.size ?? 0) > limits.bytes) throw new Refused(`more than ${limits.bytes} bytes`);
          await writeEntry(tmp, top, header, body);
          for await (const _ of body) continue;  // whatever a non-file entry carried
        };
        write().then(
          () => next(),
          (err: Error) => {
            body.resume();
            extract.destroy(err);
          },
        );
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
      archive.on('error', reject);
    });
    archive.pipe(extract);
    await done.catch((err: Error) => {
      throw new SandboxError(`the sandbox sent an archive that is refused: ${err instanceof Refused ? err.message : `not a tar stream (${err.message})`}`);
    });
    const made = path.join(tmp, top);
    if (!lstat(made)) throw new SandboxError(`the sandbox sent an archive without ${top}`);
    fs.renameSync(made, path.join(parent, name));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

class Refused extends Error {}

/** Writes one entry under `root`, never through a symlink and never outside. */
async function writeEntry(root: string, top: string, header: tarStream.Header, body: AsyncIterable<unknown>): Promise<void> {
  const raw = header.name;
  const rel = raw.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  const parts = rel.split('/');
  if (raw.startsWith('/') || parts.some((p) => p === '..' || p === '')) throw new Refused(`the path ${JSON.stringify(raw)} leaves the copy`);
  if (parts[0] !== top || parts.includes('.')) throw new Refused(`the path ${JSON.stringify(raw)} is not under ${top}`);
  const dest = path.join(root, ...parts);
  // Every directory on the way is a real one: made by an earlier entry, or made here.
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = path.join(dir, p);
    const st = lstat(dir);
    if (st && !st.isDirectory()) throw new Refused(`${JSON.stringify(raw)} lies through ${JSON.stringify(path.relative(root, dir))}, which is not a directory`);
    if (!st) fs.mkdirSync(dir, { mode: 0o755 });
  }
  const existing = lstat(dest);
  if (existing && !(existing.isDirectory() && header.type === 'directory')) fs.rmSync(dest, { recursive: true });
  const mode = (header.mode ?? 0o644) & 0o777;
  switch (header.type) {
    case 'directory':
      if (!existing?.isDirectory()) fs.mkdirSync(dest, { mode: mode | 0o700 });
      return;
    case 'file':
    case 'contiguous-file': {
      const fd = fs.openSync(dest, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
      try {
        for await (const chunk of body) fs.writeSync(fd, chunk as Buffer);
      } finally {
        fs.closeSync(fd);
      }
      return;
    }
    case 'symlink':
      // Kept as a link, never followed here: later entries through it are refused above.
      fs.symlinkSync(header.linkname ?? '', dest);
      return;
    case 'link': {
      const target = (header.linkname ?? '').replace(/^(\.\/)+/, '');
      const tparts = target.split('/');
      if (target.startsWith('/') || tparts[0] !== top || tparts.some((p) => p === '..' || p === '' || p === '.')) throw new Refused(`the hard link ${JSON.stringify(raw)} points out of the copy`);
      // Its target must be a file this archive made, reached through real directories only.
      let at = root;
      for (const p of tparts.slice(0, -1)) {
        at = path.join(at, p);
        if (!lstat(at)?.isDirectory()) throw new Refused(`the hard link ${JSON.stringify(raw)} points through a non-directory`);
      }
      const source = path.join(root, ...tparts);
      if (!lstat(source)?.isFile()) throw new Refused(`the hard link ${JSON.stringify(raw)} points to no file of the copy`);
      fs.linkSync(source, dest);
      return;
    }
    default:
      throw new Refused(`${JSON.stringify(raw)} is a ${header.type}, which cp does not copy`);
  }
}

function lstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/** `/a/b/c` as the directory tar runs in and the name it archives. */
function splitSandboxPath(p: string): { dir: string; base: string } {
  const clean = path.posix.normalize(p).replace(/\/+$/, '');
  const base = path.posix.basename(clean);
  if (!p.startsWith('/') || base === '' || base === '.' || base === '..') throw new SandboxError(`invalid sandbox path ${JSON.stringify(p)}: give an absolute path to a file or directory other than /`);
  return { dir: path.posix.dirname(clean), base };
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The first line of a command's error output: enough for a one-line error. */
function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
