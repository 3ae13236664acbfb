/**
 * Entries of a cache that are expensive to make (unpacked layers): made under a temporary name
 * beside their place and moved into it, under a lock, so that concurrent runs make them once and
 * nobody ever sees half of one.
 */
import fs from 'node:fs';
import path from 'node:path';

import { withLock } from './lock';

/** Runs `body` holding the lock of cache entry `entry` (a path; its directory is made first). */
export async function withCacheLock<T>(entry: string, body: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  return withLock(entry, { what: `the cache entry ${entry}` }, () => body());
}

/**
 * Moves the finished `temp` (a file or a directory beside `entry`) into place, unless another
 * process put an entry there first: one that may be in use is never replaced. Returns whether
 * `temp` was moved; when not, it is the caller's to remove.
 */
export function publishCacheEntry(temp: string, entry: string): boolean {
  try {
    if (fs.statSync(temp).isDirectory()) {
      fs.renameSync(temp, entry);  // refused when entry is a directory with contents
    } else {
      fs.linkSync(temp, entry);  // refused when entry exists
      fs.unlinkSync(temp);
    }
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTEMPTY') return false;
    throw err;
  }
}
