/**
 * Entries of a cache that are expensive to make (unpacked layers): made under a temporary name
 * beside their place and moved into it, under a lock, so that concurrent runs make them once and
 * nobody ever sees half of one.
 */
import fs from 'node:fs';
import path from 'node:path';

import { withLock } from './lock';
import { tornDownAlready } from './teardown';

/** Runs `body` holding the lock of cache entry `entry` (a path; its directory is made first). */
export async function withCacheLock<T>(entry: string, body: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  return withLock(entry, { what: `the cache entry ${entry}` }, () => body());
}

/**
 * Makes whichever of `entries` are missing with `make(missing)` (their indexes, in order), under
 * the lock of the last entry, so that runs needing the same entries make them once; `make`
 * publishes each with publishCacheEntry. Resolves with what `make` returned, or undefined when
 * nothing was missing. Runs needing only some of the same entries (two images on one base) may
 * both make those; the first to publish one wins.
 */
export async function ensureCacheEntries<T>(entries: string[], make: (missing: number[]) => Promise<T>): Promise<T | undefined> {
  const missing = () => entries.flatMap((entry, i) => (fs.existsSync(entry) ? [] : [i]));
  if (missing().length === 0) return undefined;
  return withCacheLock(entries.at(-1)!, async () => {
    const still = missing();  // another run may have made them while we waited
    return still.length === 0 ? undefined : make(still);
  });
}

/**
 * Moves the finished `temp` (a file or a directory beside `entry`) into place, unless another
 * process put an entry there first: one that may be in use is never replaced. Returns whether
 * `temp` was moved; when not, or when this throws, it is the caller's to remove.
 */
export function publishCacheEntry(temp: string, entry: string): boolean {
  // After an internal error nothing new is cached: the work that made `temp` may be what failed.
  if (tornDownAlready()) throw new Error(`not caching ${path.basename(entry)}: vmrun is unwinding after an internal error`);
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
