/**
 * One entry of a cache that is expensive to make (an unpacked image disk, an unpacked image
 * directory): made under a temporary name beside its place and renamed into it, under a lock,
 * so that concurrent runs make it once and nobody ever sees half of one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { withLock } from './lock';

/**
 * Returns `entry` (a path) once it exists, calling `make(temp)` to fill a temporary path first
 * when it does not; `made` tells whether this call made it. `temp` is removed if `make` fails.
 */
export async function ensureCacheEntry<T>(entry: string, make: (temp: string) => Promise<T>): Promise<{ made?: T }> {
  if (fs.existsSync(entry)) return {};
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  return withLock(entry, { what: `the cache entry ${entry}` }, async (lock) => {
    if (fs.existsSync(entry)) return {};  // another run made it while we waited
    const temp = `${entry}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const made = await make(temp);
      // Ours is complete either way; but if a process that took our lock for stale has put
      // its own in place meanwhile, that one may be in use already: keep it.
      if (!(await lock.held()) && fs.existsSync(entry)) return {};
      fs.renameSync(temp, entry);
      return { made };
    } finally {
      fs.rmSync(temp, { recursive: true, force: true });
    }
  });
}
