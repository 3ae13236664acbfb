/**
 * Locks between vmrun processes on one cache or store (`TARGET.lock` beside what they guard).
 *
 * A lock is a small file naming its holder: boot id, pid namespace, pid and the pid's start time.
 * It is made whole under a temporary name and hard-linked into place, so it exists complete or
 * not at all, and only one taker can win. Whether a holder is still there is decided by asking
 * the kernel, never by the clock: a holder on this kernel that is alive (same pid, same start
 * time) is never stale, however long a loaded host stalls it, and one that has died is stale at
 * once. Only a holder this kernel cannot see (another machine or VM sharing the directory, such
 * as the nested-KVM rig over 9p) is judged by a heartbeat: the holder touches its file every few
 * seconds and is stale after VMRUN_LOCK_STALE_MS (5 min) without one. A missed heartbeat never
 * ends the holder's work (proper-lockfile threw from a timer then); the holder asks `held()`
 * before it commits anything that a second holder could spoil.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { LockError } from './errors';
import { log } from './log';

const DEFAULT_FOREIGN_STALE_MS = 5 * 60_000;
/** Waiting for another vmrun's unpack or pull can take long on a slow host. */
const DEFAULT_WAIT_MS = 60 * 60_000;
const MAX_POLL_MS = 500;

interface Owner {
  boot: string;
  pidns: string;
  pid: number;
  start: string;
  token: string;
}

export interface Lock {
  /** Whether this lock is still ours: false only when another process judged us stale and took it. */
  held(): Promise<boolean>;
  /** Gives the lock up (a lock no longer ours is left to its new holder). */
  release(): Promise<void>;
}

export interface LockOptions {
  /** What the lock guards, for the message of a wait that gives up (default: TARGET). */
  what?: string;
  /** How long to wait for another holder (default: an hour). */
  waitMs?: number;
}

export function lockFile(target: string): string {
  return `${target}.lock`;
}

/** Whether a file name is a lock file or one being made or broken (for sweeps of a directory). */
export function isLockFileName(name: string): boolean {
  return /\.lock($|\.)/.test(name);
}

/** Takes the lock on `target`, waiting while a live holder has it and breaking a stale one. */
export async function lock(target: string, options: LockOptions = {}): Promise<Lock> {
  const file = lockFile(target);
  const me = self();
  const deadline = Date.now() + (options.waitMs ?? DEFAULT_WAIT_MS);
  const temp = `${file}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  const writeTemp = () => fs.promises.writeFile(temp, JSON.stringify(me), { mode: 0o644 });
  await writeTemp();
  try {
    for (let poll = 10; ; poll = Math.min(poll * 2, MAX_POLL_MS)) {
      try {
        await fs.promises.link(temp, file);
        return heldLock(file, me.token);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // A prune of the directory may have removed the temporary file: write it again.
        if (code === 'ENOENT' && !fs.existsSync(temp)) {
          await writeTemp();
          continue;
        }
        if (code !== 'EEXIST') throw err;
      }
      const holder = await inspect(file);
      // Taken again at once when it was broken; a lock that changed hands meanwhile is waited for.
      if (holder && !holder.alive && (await breakStale(file, holder.fingerprint))) continue;
      if (Date.now() > deadline) {
        const who = holder?.owner ? `pid ${holder.owner.pid}` : 'another process';
        throw new LockError(`${options.what ?? target} is still locked by ${who} after ${duration(options.waitMs ?? DEFAULT_WAIT_MS)}; if no other vmrun is running, remove ${file}`);
      }
      await new Promise((resolve) => setTimeout(resolve, poll));
    }
  } finally {
    await fs.promises.rm(temp, { force: true });
  }
}

/** Whether `target` is locked by a holder that is not stale. */
export async function isLocked(target: string): Promise<boolean> {
  return (await inspect(lockFile(target)))?.alive ?? false;
}

/** Runs `work` under the lock on `target`. */
export async function withLock<T>(target: string, options: LockOptions, work: (lock: Lock) => Promise<T>): Promise<T> {
  const held = await lock(target, options);
  try {
    return await work(held);
  } finally {
    await held.release();
  }
}

function heldLock(file: string, token: string): Lock {
  const held = async () => (await readOwner(file))?.token === token;
  // Only for holders another kernel cannot see alive; its failure is no failure of the work.
  const heartbeat = setInterval(() => {
    const now = new Date();
    fs.promises.utimes(file, now, now).catch((err: Error) => log.debug({ file, err: err.message }, 'lock heartbeat failed'));
  }, Math.min(10_000, foreignStaleMs() / 3));
  heartbeat.unref();
  let released = false;
  return {
    held,
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      if (await held()) await fs.promises.rm(file, { force: true });
    },
  };
}

/** The lock file's holder and whether it is alive; undefined when there is no lock file. */
async function inspect(file: string): Promise<{ owner?: Owner; alive: boolean; fingerprint: string } | undefined> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const owner = stat.isFile() ? await readOwner(file) : undefined;
  const me = self();
  const fingerprint = owner?.token ?? `${stat.ino}:${stat.mtimeMs}`;
  if (owner && owner.boot === me.boot && owner.pidns === me.pidns) return { owner, alive: startTime(owner.pid) === owner.start, fingerprint };
  // A holder this kernel cannot see (or a lock this version did not write): its heartbeat decides.
  return { owner, alive: Date.now() - stat.mtimeMs < foreignStaleMs(), fingerprint };
}

/**
 * Removes a stale lock file, unless it changed hands since it was judged: it is moved aside
 * (atomic), and put back when what was moved is not what was judged stale. True when it is gone.
 */
async function breakStale(file: string, fingerprint: string): Promise<boolean> {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fs.promises.rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;  // released or broken meanwhile
    throw err;
  }
  try {
    const stat = await fs.promises.lstat(aside);
    const moved = (stat.isFile() ? (await readOwner(aside))?.token : undefined) ?? `${stat.ino}:${stat.mtimeMs}`;
    if (moved !== fingerprint) {
      await fs.promises.link(aside, file).catch(() => {});
      return false;
    }
    log.debug({ file }, 'broke a stale lock');
    return true;
  } finally {
    await fs.promises.rm(aside, { recursive: true, force: true });
  }
}

async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    const owner = JSON.parse(await fs.promises.readFile(file, 'utf8')) as Partial<Owner>;
    const valid = typeof owner.boot === 'string' && typeof owner.pidns === 'string' && Number.isSafeInteger(owner.pid) &&
      typeof owner.start === 'string' && typeof owner.token === 'string';
    return valid ? (owner as Owner) : undefined;
  } catch {
    return undefined;
  }
}

let cachedSelf: Omit<Owner, 'token'> | undefined;

function self(): Owner {
  cachedSelf ??= {
    boot: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    pidns: fs.readlinkSync('/proc/self/ns/pid'),
    pid: process.pid,
    start: startTime(process.pid) ?? '',
  };
  return { ...cachedSelf, token: randomBytes(12).toString('hex') };
}

/**
 * Field 22 of /proc/PID/stat (when the process started, in ticks since boot); undefined when
 * there is no such process or it has died (a zombie).
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(path.join('/proc', String(pid), 'stat'), 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

function foreignStaleMs(): number {
  const value = Number(process.env.VMRUN_LOCK_STALE_MS);
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_FOREIGN_STALE_MS;
}
