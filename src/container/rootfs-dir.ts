/**
 * The unpacked-image cache of the container runtime: one directory per stack of layers (keyed by
 * the digests of its blobs with their diff_ids: unpackKey), the lower layer of every container of
 * the image. The layers are unpacked by the agent, the same unpacker as in a VM, inside a
 * container of its own (no network, its own namespaces) that sees the layer blobs read-only as /dev/vdb... and the new directory as its
 * unpack root; the host never parses a layer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { digestHex } from '../image/digest';
import { verifyLayers, type Image } from '../image/layout';
import { log } from '../log';
import { cacheDir } from '../paths';
import { ensureCacheEntry } from '../cache-entry';
import { unpackTask, withStatusLine } from '../status-line';
import { deviceName, unpackLayers } from '../agent/specs';
import { withAgentContainer } from './agent-container';

/** Bump when the unpacker's output changes: old directories are then not reused. */
const DIR_FORMAT = 'dir-v1';
/** Where the agent unpacks in container mode (guest/agent/run.c). */
const UNPACK_ROOT = '/mnt/root';

export interface RootfsDir {
  path: string;
  /** Present when this call unpacked the image. */
  unpack?: { hostMs: number; agentMs?: number };
}

export function rootfsDirPath(image: Image): string {
  return path.join(cacheDir(), 'rootfs-dirs', `${digestHex(image.unpackKey, 'unpack key')}-${DIR_FORMAT}`);
}

/** The image's unpacked directory, made first if it is not cached. */
export async function ensureRootfsDir(image: Image): Promise<RootfsDir> {
  const dir = rootfsDirPath(image);
  const { made } = await ensureCacheEntry(dir, (temp) => withStatusLine(unpackTask(image), () => unpackInto(image, temp)));
  if (made) log.info({ image: image.name, dir, ...made }, 'image unpacked');
  return { path: dir, unpack: made };
}

async function unpackInto(image: Image, dir: string): Promise<NonNullable<RootfsDir['unpack']>> {
  const start = performance.now();
  await verifyLayers(image);
  fs.mkdirSync(dir, { mode: 0o755 });
  // The container's root: an empty directory, read-only; runc makes the mountpoints in it.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-unpack-'));
  try {
    const binds = [
      { source: dir, destination: UNPACK_ROOT, readOnly: false },
      ...image.layers.map((layer, i) => ({ source: layer.path, destination: `/dev/${deviceName(i)}`, readOnly: true })),
    ];
    const places = image.layers.map((_, i) => ({ device: deviceName(i), offset: 0 }));
    const agentMs = await withAgentContainer({ root, readOnlyRoot: true, binds, stdio: false }, ({ session }) => unpackLayers(session, image, 'container', places));
    return { hostMs: performance.now() - start, agentMs };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
