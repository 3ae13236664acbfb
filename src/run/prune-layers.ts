/**
 * `vmrun image prune`'s second half: the unpacked layers of both runtimes that no image in the
 * store has any more (after `rmi`), and the caches of earlier vmrun versions, are deleted.
 * Left alone: an entry being made (a temporary, a lock); a layer directory under a container's
 * root now (a VM holds its layer files open, so removing them costs it nothing); and everything,
 * when the store is not the cache's own ($VMRUN_STORE_DIR elsewhere): other stores may share
 * the cache, and this one cannot say what they need.
 */
import fs from 'node:fs';
import path from 'node:path';

import { layerDirsRoot } from '../container/layer-dirs';
import { lowersInUse } from '../container/overlay';
import { digestHex } from '../image/digest';
import { openLayout } from '../image/layout';
import { listImages, storeDir } from '../image/store';
import { isLockFileName } from '../lock';
import { log } from '../log';
import { cacheDir } from '../paths';
import { layerDisksRoot } from '../vm/layer-disks';

/** Where earlier versions kept one unpacked copy of each whole image. */
const OLD_CACHES = ['rootfs', 'rootfs-dirs'];

/** Deletes what no image uses; returns the bytes of disk freed. */
export async function pruneUnpackedLayers(): Promise<number> {
  if (path.resolve(storeDir()) !== path.resolve(cacheDir(), 'store')) return 0;
  const keep = new Set<string>();
  for (const summary of await listImages()) {
    const image = await openLayout(storeDir(), summary.reference);
    for (const key of image.layerKeys) keep.add(digestHex(key, 'layer key'));
  }
  const inUse = lowersInUse();
  let freed = 0;
  for (const root of [layerDisksRoot(), layerDirsRoot()]) {
    for (const name of fs.existsSync(root) ? fs.readdirSync(root) : []) {
      if (isLockFileName(name) || name.endsWith('.tmp')) continue;
      if (keep.has(name.slice(0, name.indexOf('-'))) || inUse.has(path.join(root, name, 'diff'))) continue;
      freed += remove(path.join(root, name));
    }
  }
  for (const old of OLD_CACHES) {
    const dir = path.join(cacheDir(), old);
    if (fs.existsSync(dir)) freed += remove(dir);
  }
  return freed;
}

/** Removes a file or tree; returns the bytes of disk it held (sparse files count what they use). */
function remove(entry: string): number {
  const bytes = diskUsage(entry);
  fs.rmSync(entry, { recursive: true, force: true });
  log.debug({ entry, bytes }, 'pruned');
  return bytes;
}

function diskUsage(entry: string): number {
  const st = fs.lstatSync(entry, { bigint: false });
  let bytes = st.blocks * 512;
  if (st.isDirectory()) for (const name of fs.readdirSync(entry)) bytes += diskUsage(path.join(entry, name));
  return bytes;
}
