/**
 * One entry of a cache that is expensive to make (an unpacked image disk, an unpacked image
 * directory): made under a temporary name beside its place and renamed into it, under a lock,
 * so that concurrent runs make it once and nobody ever sees half of one.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import lockfile from 'proper-lockfile';

/**
 * Returns `entry` (a path) once it exists, calling `make(temp)` to fill a temporary path first
 * when it does not; `made` tells whether this call made it. `temp` is removed if `make` fails.
 */
export async function ensureCacheEntry<T>(entry: string, make: (temp: string) => Promise<T>): Promise<{ made?: T }> {
  if (fs.existsSync(entry)) return {};
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  const release = await lockfile.lock(entry, {
    realpath: false,
    stale: 30_000,
    update: 5_000,
    // Up to an hour of waiting for another run's unpack (retry computes every delay up front,
    // so the count stays modest).
    retries: { retries: 3_600, factor: 1.2, minTimeout: 50, maxTimeout: 1_000 },
  });
  try {
    if (fs.existsSync(entry)) return {};  // another run made it while we waited
    const temp = `${entry}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const made = await make(temp);
      fs.renameSync(temp, entry);
      return { made };
    } finally {
      fs.rmSync(temp, { recursive: true, force: true });
    }
  } finally {
    await release();
  }
}
