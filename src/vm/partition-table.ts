/**
 * A GPT partition table around files laid end to end, so that one composite virtio disk shows the
 * guest one partition per file (/dev/vda1, /dev/vda2, ...): how every layer of an image reaches
 * the VM on a single device. The table is two small files, the head (protective MBR, header,
 * entries) and the tail (the backup entries and header), placed around the partitions; the
 * partitions' files are never copied or touched.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

import { VmrunError } from '../errors';

const SECTOR = 512;
const ENTRIES = 128;
const ENTRY_BYTES = 128;
const ENTRIES_SECTORS = (ENTRIES * ENTRY_BYTES) / SECTOR;
/** Protective MBR, header, entries: the partitions may start after this. */
const HEAD_SECTORS = 2 + ENTRIES_SECTORS;
/** Partitions start on 1 MiB boundaries, as partitioning tools place them. */
const ALIGN_SECTORS = 2048;
/** GPT's type for a Linux filesystem, 0FC63DAF-8483-4772-8E79-3D69D8477DE4. */
const LINUX_FILESYSTEM = '0fc63daf-8483-4772-8e79-3d69d8477de4';

/** At most this many partitions (GPT's usual 128 entries). */
export const MAX_PARTITIONS = ENTRIES;

export interface PartitionedDisk {
  /** The disk's files and their byte offsets, as a Drive's parts. */
  parts: { path: string; offset: number }[];
}

/**
 * Writes the table for `files` (partition i + 1 is files[i]; each a whole number of sectors) into
 * `dir` as `<key>.head` and `<key>.tail`, unless they are there already, and returns the disk.
 * The table depends on the files' sizes alone, so one directory serves every disk of those sizes.
 */
export function partitionedDisk(files: string[], dir: string): PartitionedDisk {
  if (files.length === 0 || files.length > MAX_PARTITIONS) throw new VmrunError(`a partitioned disk holds 1 to ${MAX_PARTITIONS} files, not ${files.length}`);
  const partitions: { path: string; first: number; sectors: number }[] = [];
  let next = ALIGN_SECTORS;
  for (const file of files) {
    const bytes = fs.statSync(file).size;
    if (bytes === 0 || bytes % SECTOR !== 0) throw new VmrunError(`${file} cannot be a partition: its size (${bytes} bytes) is not a positive multiple of ${SECTOR}`);
    partitions.push({ path: file, first: next, sectors: bytes / SECTOR });
    next = alignUp(next + bytes / SECTOR, ALIGN_SECTORS);
  }
  const tailFirst = next;
  const lastSector = tailFirst + ENTRIES_SECTORS;  // the backup header
  const key = createHash('sha256').update(`gpt-v1 ${partitions.map((p) => p.sectors).join(' ')}`).digest('hex').slice(0, 32);
  const { head, tail } = gptFiles(partitions, tailFirst, lastSector, key);
  fs.mkdirSync(dir, { recursive: true });
  const headPath = path.join(dir, `${key}.head`);
  const tailPath = path.join(dir, `${key}.tail`);
  writeOnce(headPath, head);
  writeOnce(tailPath, tail);
  return {
    parts: [
      { path: headPath, offset: 0 },
      ...partitions.map((p) => ({ path: p.path, offset: p.first * SECTOR })),
      { path: tailPath, offset: tailFirst * SECTOR },
    ],
  };
}

function gptFiles(partitions: { first: number; sectors: number }[], tailFirst: number, lastSector: number, key: string): { head: Buffer; tail: Buffer } {
  const entries = Buffer.alloc(ENTRIES * ENTRY_BYTES);
  partitions.forEach((p, i) => {
    const entry = entries.subarray(i * ENTRY_BYTES, (i + 1) * ENTRY_BYTES);
    guidBytes(LINUX_FILESYSTEM).copy(entry, 0);
    guidBytes(derivedGuid(`${key} partition ${i + 1}`)).copy(entry, 16);
    entry.writeBigUInt64LE(BigInt(p.first), 32);
    entry.writeBigUInt64LE(BigInt(p.first + p.sectors - 1), 40);
    entry.write(`part ${i + 1}`, 56, 72, 'utf16le');
  });
  const diskGuid = guidBytes(derivedGuid(`${key} disk`));
  const header = (self: number, other: number, entriesAt: number) => {
    const h = Buffer.alloc(SECTOR);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(self), 24);
    h.writeBigUInt64LE(BigInt(other), 32);
    h.writeBigUInt64LE(BigInt(HEAD_SECTORS), 40);
    h.writeBigUInt64LE(BigInt(tailFirst - 1), 48);
    diskGuid.copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesAt), 72);
    h.writeUInt32LE(ENTRIES, 80);
    h.writeUInt32LE(ENTRY_BYTES, 84);
    h.writeUInt32LE(crc32(entries), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  const mbr = Buffer.alloc(SECTOR);
  // One partition of type 0xEE covering the disk: tools that know only MBR leave it alone.
  mbr.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], 446);
  mbr.writeUInt32LE(1, 454);
  mbr.writeUInt32LE(Math.min(lastSector, 0xffffffff), 458);
  mbr.writeUInt16LE(0xaa55, 510);
  return {
    head: Buffer.concat([mbr, header(1, lastSector, 2), entries]),
    tail: Buffer.concat([entries, header(lastSector, 1, tailFirst)]),
  };
}

/** A GUID in GPT's byte order: the first three fields little-endian. */
function guidBytes(guid: string): Buffer {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** A version-4-shaped GUID derived from `seed`: the same table always has the same bytes. */
function derivedGuid(seed: string): string {
  const b = createHash('sha256').update(seed).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A table already written under its key is this one. */
function writeOnce(file: string, bytes: Buffer): void {
  if (fs.existsSync(file)) return;
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(temp, bytes, { mode: 0o644 });
  fs.renameSync(temp, file);
}
