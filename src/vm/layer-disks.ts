/**
 * The VM runtime's unpacked layers: one ext4 file per layer (layers/<key>-ext4-v3.img, the layer's
 * files in /diff as overlayfs keeps them: whiteouts as 0/0 devices, opaque directories by xattr),
 * shared by every image that has the same layers below and including it (Image.layerKeys). A VM
 * gets all of an image's layers on one read-only disk, one GPT partition per layer, and stacks
 * them with overlayfs, as docker's overlay2 stacks directories.
 *
 * Missing layers are unpacked by one agent VM: each through an overlay of the layers below it
 * (so overlayfs itself records what the layer deletes and hides), into an empty ext4 of its own
 * on a writable partitioned disk. The host never parses a layer: it hashes the blobs, hands them
 * to the guest on one read-only disk and publishes a layer only when the agent reports success.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { ImageError } from '../errors';
import { digestHex } from '../image/digest';
import { verifyLayers, type Image, type Layer } from '../image/layout';
import { log } from '../log';
import { cacheDir } from '../paths';
import { ensureCacheEntries, publishCacheEntry } from '../cache-entry';
import { withUnpackStatus } from '../status-line';
import { unpackLayers, type UnpackStep } from '../agent/specs';
import { withAgentVm, type HostTimings } from './agent-vm';
import type { Drive } from './machine';
import { partitionedDisk } from './partition-table';

/** Bump when the disk's format or the unpacker's output changes: old disks are then not reused. */
const DISK_FORMAT = 'ext4-v3';
/** Docker's limit (overlay2 stacks at most 127 layers), so any image docker runs unpacks here. */
export const MAX_LAYERS = 127;
/** Layer blobs start page-aligned on the blobs' disk (the device needs 512). */
const BLOB_ALIGN = 4096;
/** Two: the agent decompresses and hashes a layer on one while it writes the files on the other. */
const UNPACK_VCPUS = Math.min(2, os.availableParallelism());
/** The unpacking VM's disks, in the order they are attached. */
const NEW_LAYERS_DEVICE = 'vda';
const BLOBS_DEVICE = 'vdb';
const OLD_LAYERS_DEVICE = 'vdc';

export interface LayerDisks {
  /** Each layer's ext4, bottom first. */
  paths: string[];
  /** Present when this call unpacked layers. */
  unpack?: { hostMs: number; guestMs?: number; layers: number; timings: HostTimings };
}

export function layerDiskPath(image: Image, index: number): string {
  return path.join(layerDisksRoot(), `${digestHex(image.layerKeys[index], 'layer key')}-${DISK_FORMAT}.img`);
}

export function layerDisksRoot(): string {
  return path.join(cacheDir(), 'layers');
}

/** The image's layer disks, unpacking those the cache lacks. */
export async function ensureLayerDisks(image: Image, options: { kernel?: string } = {}): Promise<LayerDisks> {
  if (image.layers.length > MAX_LAYERS) {
    throw new ImageError(`${image.name} has ${image.layers.length} layers; docker and vmrun stack at most ${MAX_LAYERS}`);
  }
  const paths = image.layers.map((_, i) => layerDiskPath(image, i));
  const unpack = await ensureCacheEntries(paths, (missing) =>
    withUnpackStatus(image, missing, (progress) => unpackMissing(image, paths, missing, progress, options.kernel)));
  if (unpack) log.info({ image: image.name, hostMs: unpack.hostMs, guestMs: unpack.guestMs, layers: unpack.layers }, 'image unpacked');
  return { paths, unpack };
}

/** The drive that shows a VM the layers in `paths` as /dev/vda1, /dev/vda2, ... */
export function layersDrive(paths: string[]): Drive {
  return { ...partitionedDisk(paths, path.join(cacheDir(), 'partition-tables')), readOnly: true };
}

/** The partitions of a disk that holds one partition per layer: vda1, vda2, ... */
export function layerPartitions(device: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${device}${i + 1}`);
}

async function unpackMissing(
  image: Image,
  paths: string[],
  missing: number[],
  progress: (number: number, bytes: number) => void,
  kernel?: string,
): Promise<NonNullable<LayerDisks['unpack']>> {
  const start = performance.now();
  await verifyLayers(image);
  // Layers above the topmost missing one are not needed; those below it that exist are read.
  const top = missing.at(-1)!;
  const present = paths.slice(0, top).flatMap((_, i) => (missing.includes(i) ? [] : [i]));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-unpack-'));
  const temps = missing.map((i) => `${paths[i]}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    for (const [n, i] of missing.entries()) await makeFilesystem(temps[n], image.layers[i]);
    const blobOffsets = layerOffsets(missing.map((i) => image.layers[i].size));
    // The table of the writable disk is the guest's to scribble on: it gets a copy of its own.
    const drives: Drive[] = [
      { ...partitionedDisk(temps, scratch), readOnly: false },
      { parts: missing.map((i, n) => ({ path: image.layers[i].path, offset: blobOffsets[n] })) },
    ];
    if (present.length > 0) drives.push(layersDrive(present.map((i) => paths[i])));
    const newParts = layerPartitions(NEW_LAYERS_DEVICE, missing.length);
    const oldParts = layerPartitions(OLD_LAYERS_DEVICE, present.length);
    const steps: UnpackStep[] = paths.slice(0, top + 1).map((_, i) => {
      const n = missing.indexOf(i);
      if (n < 0) return { lower: oldParts[present.indexOf(i)] };
      return { layer: image.layers[i], blob: { device: BLOBS_DEVICE, offset: blobOffsets[n] }, target: newParts[n], number: i + 1 };
    });
    const result = await withAgentVm({ drives, memoryMiB: 512, vcpus: UNPACK_VCPUS, kernel }, async ({ session, timings }) => {
      return { guestMs: await unpackLayers(session, image.name, steps, progress), timings };
    });
    missing.forEach((i, n) => publishCacheEntry(temps[n], paths[i]));
    return { hostMs: performance.now() - start, layers: missing.length, ...result };
  } finally {
    for (const temp of temps) fs.rmSync(temp, { force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** The size of `layer`'s tar, as its blob tells (0 when it does not). */
export function tarSize(layer: Layer): number {
  if (layer.compression === 'none') return layer.size;
  if (layer.compression !== 'gzip' || layer.size < 18) return 0;
  const trailer = Buffer.alloc(4);
  const fd = fs.openSync(layer.path, 'r');
  try {
    fs.readSync(fd, trailer, 0, 4, layer.size - 4);
  } finally {
    fs.closeSync(fd);
  }
  // Modulo 2^32: a tar is at least about as big as its gzip, which says how many times it wrapped.
  const recorded = trailer.readUInt32LE(0);
  const wraps = Math.max(0, Math.ceil((layer.size * 0.99 - recorded) / 2 ** 32));
  return recorded + wraps * 2 ** 32;
}

/** Where each blob starts on the blobs' disk. */
function layerOffsets(sizes: number[]): number[] {
  let next = 0;
  return sizes.map((size) => {
    const offset = next;
    next = Math.ceil((offset + size) / BLOB_ALIGN) * BLOB_ALIGN;
    return offset;
  });
}

/**
 * An empty ext4 on a sparse file, big enough for `layer` unpacked. Its tar's size is known
 * exactly for an uncompressed blob and, for gzip, from the blob's last four bytes (the size mod
 * 2^32 that gzip records; only a size, no layer data is read). A filesystem needs at most 8 times
 * a tar's size: every tar entry is at least 512 bytes, and at most an inode and a 4 KiB block.
 * For zstd, and in case gzip's record is short (a blob of several gzip members records the last
 * one's), the bound is 20 times the compressed size too (text compresses 3-10 times). A layer
 * that lies about its size fails to unpack with ENOSPC: it harms only itself. Space never
 * written costs nothing: the empty filesystem takes 0.7 MiB of disk at 1 GiB, 4.4 MiB at 16 GiB.
 * An inode for every 4 KiB. No journal: a disk that is not finished is thrown away, never
 * repaired. Inode tables stay uninitialised and the guest mounts with noinit_itable, so nobody
 * spends time zeroing them.
 */
async function makeFilesystem(file: string, layer: Layer): Promise<void> {
  const bytes = Math.max(1 << 30, 20 * layer.size + (256 << 20), 8 * tarSize(layer) + (256 << 20));
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.ftruncateSync(fd, Math.ceil(bytes / (1 << 20)) * (1 << 20));
  } finally {
    fs.closeSync(fd);
  }
  const args = ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-i', '4096', '-E', 'lazy_itable_init=1,nodiscard', '-m', '0', '-L', 'vmrun-layer', file];
  await promisify(execFile)('mkfs.ext4', args).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT') throw new ImageError('mkfs.ext4 is missing: apt-get install e2fsprogs');
    throw new ImageError(`mkfs.ext4 failed: ${(err.stderr ?? err.message).trim()}`);
  });
}
