/**
 * The container runtime's unpacked layers, one directory per layer as docker's overlay2 keeps
 * them (layer-dirs/<key>-dir-v2/diff: the layer's files, whiteouts as 0/0 devices, opaque
 * directories by xattr), shared by every image that has the same layers below and including it
 * (Image.layerKeys). Each layer is unpacked by the agent inside a container of its own (no
 * network, its own namespaces) whose root is an overlay the host mounts: the layers below,
 * read-only, under the new one, so overlayfs itself records what the layer deletes and hides.
 * The host never parses a layer.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { digestHex } from '../image/digest';
import { verifyLayers, type Image } from '../image/layout';
import { log } from '../log';
import { cacheDir } from '../paths';
import { ensureCacheEntries, publishCacheEntry } from '../cache-entry';
import { withUnpackStatus } from '../status-line';
import { UNPACK_ROOT, unpackLayers } from '../agent/specs';
import { withAgentContainer } from './agent-container';
import { mountOverlay, type Overlay } from './overlay';

/** Bump when the unpacker's output changes: old directories are then not reused. */
const DIR_FORMAT = 'dir-v2';
/** Where a layer's blob is in its unpacking container. */
const BLOB_DEVICE = 'vdb';

export interface LayerDirs {
  /** Each layer's files, bottom first: the lower directories of the image's overlay. */
  diffs: string[];
  /** Present when this call unpacked layers. */
  unpack?: { hostMs: number; agentMs?: number; layers: number };
}

export function layerDirPath(image: Image, index: number): string {
  return path.join(layerDirsRoot(), `${digestHex(image.layerKeys[index], 'layer key')}-${DIR_FORMAT}`);
}

export function layerDirsRoot(): string {
  return path.join(cacheDir(), 'layer-dirs');
}

/** The image's layer directories, unpacking those the cache lacks. */
export async function ensureLayerDirs(image: Image): Promise<LayerDirs> {
  const entries = image.layers.map((_, i) => layerDirPath(image, i));
  const diffs = entries.map((entry) => path.join(entry, 'diff'));
  const unpack = await ensureCacheEntries(entries, (missing) =>
    withUnpackStatus(image, missing, (progress) => unpackMissing(image, entries, missing, progress)));
  if (unpack) log.info({ image: image.name, ...unpack }, 'image unpacked');
  return { diffs, unpack };
}

async function unpackMissing(
  image: Image,
  entries: string[],
  missing: number[],
  progress: (number: number, bytes: number) => void,
): Promise<NonNullable<LayerDirs['unpack']>> {
  const start = performance.now();
  await verifyLayers(image);
  let agentMs = 0;
  for (const i of missing) {
    const temp = `${entries[i]}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    fs.mkdirSync(temp, { mode: 0o755 });
    try {
      agentMs += (await unpackLayer(image, i, temp, entries.slice(0, i).map((entry) => path.join(entry, 'diff')), progress)) ?? 0;
      publishCacheEntry(temp, entries[i]);
    } finally {
      fs.rmSync(temp, { recursive: true, force: true });
    }
  }
  return { hostMs: performance.now() - start, agentMs, layers: missing.length };
}

/** Unpacks layer `index` into `dir`/diff, through an overlay of `lowers` when it has any. */
async function unpackLayer(
  image: Image,
  index: number,
  dir: string,
  lowers: string[],
  progress: (number: number, bytes: number) => void,
): Promise<number | undefined> {
  const layer = image.layers[index];
  const diff = path.join(dir, 'diff');
  fs.mkdirSync(diff, { mode: 0o755 });
  // Outside the cache: a removal of the cache's temporary must never reach through a mount.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-unpack-'));
  let overlay: Overlay | undefined;
  try {
    if (lowers.length > 0) {
      overlay = await mountOverlay(lowers, { upper: diff, work: path.join(dir, 'work'), root: path.join(scratch, 'merged') });
    }
    // The container's root: an empty directory, read-only; runc makes the mountpoints in it.
    const root = path.join(scratch, 'root');
    fs.mkdirSync(root);
    const binds = [
      { source: overlay?.root ?? diff, destination: UNPACK_ROOT, readOnly: false },
      { source: layer.path, destination: `/dev/${BLOB_DEVICE}`, readOnly: true },
    ];
    const steps = [{ layer, blob: { device: BLOB_DEVICE, offset: 0 }, number: index + 1 }];
    return await withAgentContainer({ root, readOnlyRoot: true, binds, stdio: false }, ({ session }) => unpackLayers(session, image.name, steps, progress));
  } finally {
    await overlay?.unmount();  // when this throws, the mount and its directory stay
    fs.rmSync(scratch, { recursive: true, force: true });
    fs.rmSync(path.join(dir, 'work'), { recursive: true, force: true });
  }
}
