/**
 * The unpacked-image cache: one ext4 disk per stack of layers (keyed by the digests of its blobs
 * with their diff_ids: unpackKey), made by an agent VM that unpacks the layers into an empty
 * filesystem. The host never parses a layer: it
 * hashes the blobs, hands them to the guest on one read-only disk and keeps the result only when the
 * agent reports success. Disks are written under a temporary name and renamed into place, under
 * a lock, so concurrent runs of one image unpack it once and nobody sees a half-made disk.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { ImageError } from '../errors';
import { digestHex } from '../image/digest';
import { verifyLayers, type Image } from '../image/layout';
import { log } from '../log';
import { cacheDir } from '../paths';
import { ensureCacheEntry } from '../cache-entry';
import { unpackTask, withStatusLine } from '../status-line';
import { LAYERS_DEVICE, unpackLayers } from '../agent/specs';
import { withAgentVm, type HostTimings } from './agent-vm';

/** Bump when the disk's format or the unpacker's output changes: old disks are then not reused. */
const DISK_FORMAT = 'ext4-v2';
/** Docker's limit (overlay2 stacks at most 127 layers), so any image docker runs unpacks here. */
export const MAX_LAYERS = 127;
/** Layer blobs start page-aligned on the layers' disk (the device needs 512). */
const LAYER_ALIGN = 4096;

export interface ImageDisk {
  path: string;
  /** Present when this call unpacked the image. */
  unpack?: { hostMs: number; guestMs?: number; timings: HostTimings };
}

export function imageDiskPath(image: Image): string {
  return path.join(cacheDir(), 'rootfs', `${digestHex(image.unpackKey, 'unpack key')}-${DISK_FORMAT}.img`);
}

/** The image's unpacked disk, made first if it is not cached. */
export async function ensureImageDisk(image: Image, options: { kernel?: string } = {}): Promise<ImageDisk> {
  const disk = imageDiskPath(image);
  const { made } = await ensureCacheEntry(disk, (temp) => withStatusLine(unpackTask(image), () => unpackInto(image, temp, options.kernel)));
  if (made) log.info({ image: image.name, disk, hostMs: made.hostMs, guestMs: made.guestMs }, 'image unpacked');
  return { path: disk, unpack: made };
}

async function unpackInto(image: Image, disk: string, kernel?: string): Promise<NonNullable<ImageDisk['unpack']>> {
  if (image.layers.length > MAX_LAYERS) {
    throw new ImageError(`${image.name} has ${image.layers.length} layers; docker and vmrun stack at most ${MAX_LAYERS}`);
  }
  const start = performance.now();
  await verifyLayers(image);
  await makeFilesystem(disk, image);
  // Every blob on one read-only disk, end to end: any number of layers costs one device.
  const offsets = layerOffsets(image);
  const layers = { parts: image.layers.map((l, i) => ({ path: l.path, offset: offsets[i] })) };
  const places = offsets.map((offset) => ({ device: LAYERS_DEVICE, offset }));
  const result = await withAgentVm({ drives: [{ path: disk, readOnly: false }, layers], memoryMiB: 512, vcpus: 1, kernel }, async ({ session, timings }) => {
    return { guestMs: await unpackLayers(session, image, 'vm', places), timings };
  });
  return { hostMs: performance.now() - start, ...result };
}

/** Where each layer's blob starts on the layers' disk. */
function layerOffsets(image: Image): number[] {
  let next = 0;
  return image.layers.map((layer) => {
    const offset = next;
    next = Math.ceil((offset + layer.size) / LAYER_ALIGN) * LAYER_ALIGN;
    return offset;
  });
}

/**
 * An empty ext4 on a sparse file, sized generously (layers unpack to several times their
 * compressed size; unused space costs nothing). No journal: a disk that is not finished is
 * thrown away, never repaired. Inode tables stay uninitialised and the guest mounts with
 * noinit_itable, so nobody spends time zeroing them.
 */
async function makeFilesystem(file: string, image: Image): Promise<void> {
  const compressed = image.layers.reduce((sum, l) => sum + l.size, 0);
  const bytes = Math.max(512 << 20, 8 * compressed + (256 << 20));
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.ftruncateSync(fd, Math.ceil(bytes / (1 << 20)) * (1 << 20));
  } finally {
    fs.closeSync(fd);
  }
  const args = ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', '-m', '0', '-L', 'vmrun-image', file];
  await promisify(execFile)('mkfs.ext4', args).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT') throw new ImageError('mkfs.ext4 is missing: apt-get install e2fsprogs');
    throw new ImageError(`mkfs.ext4 failed: ${(err.stderr ?? err.message).trim()}`);
  });
}
