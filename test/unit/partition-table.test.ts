// The GPT that shows a VM one partition per layer file, read back by util-linux's own parser
// (partx, libblkid) from the disk as the guest sees it: every part at its offset.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { VmrunError } from '../../src/errors';
import { partitionedDisk } from '../../src/vm/partition-table';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-gpt-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file of `bytes` whose first bytes say which it is. */
function file(name: string, bytes: number): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, Buffer.alloc(bytes));
  fs.writeFileSync(p, name, { flag: 'r+' });
  return p;
}

/** The disk the guest reads: each part copied to its offset in one sparse file. */
function assemble(parts: { path: string; offset: number }[], out: string): void {
  const fd = fs.openSync(out, 'w');
  for (const part of parts) {
    const bytes = fs.readFileSync(part.path);
    fs.writeSync(fd, bytes, 0, bytes.length, part.offset);
  }
  fs.closeSync(fd);
}

t.test('partx and blkid read the table: one partition per file, in order, where the file is', async (t) => {
  const files = [file('a', 1 << 20), file('b', 3 << 20), file('c', 512 * 3)];
  const disk = partitionedDisk(files, path.join(tmp, 'tables'));
  t.same(disk.parts.slice(1, -1).map((p) => p.path), files, 'the files themselves, never copies');
  const image = path.join(tmp, 'disk.img');
  assemble(disk.parts, image);
  t.match(execFileSync('blkid', ['-p', image], { encoding: 'utf8' }), /PTTYPE="gpt"/);
  const rows = execFileSync('partx', ['--raw', '--noheadings', '--output', 'NR,START,SECTORS', image], { encoding: 'utf8' })
    .trim().split('\n').map((line) => line.split(' ').map(Number)).map(([nr, start, sectors]) => ({ nr, start, sectors }));
  t.same(rows.map((r) => r.nr), [1, 2, 3]);
  t.same(rows.map((r) => r.sectors), [2048, 6144, 3], 'each partition is exactly its file');
  for (const [i, row] of rows.entries()) {
    t.equal(row.start * 512, disk.parts[i + 1].offset, `partition ${i + 1} starts where its file is placed`);
    t.equal(row.start % 2048, 0, 'on a 1 MiB boundary');
    const fd = fs.openSync(image, 'r');
    const head = Buffer.alloc(1);
    fs.readSync(fd, head, 0, 1, row.start * 512);
    fs.closeSync(fd);
    t.equal(head.toString(), 'abc'[i], `partition ${i + 1} holds file ${'abc'[i]}`);
  }
});

t.test('the same sizes give the same table files; other sizes other ones', async (t) => {
  const dir = path.join(tmp, 'shared');
  const one = partitionedDisk([file('d', 1 << 20)], dir);
  const two = partitionedDisk([file('e', 1 << 20)], dir);
  t.same([one.parts[0], one.parts.at(-1)], [two.parts[0], two.parts.at(-1)]);
  const three = partitionedDisk([file('f', 2 << 20)], dir);
  t.not(three.parts[0].path, one.parts[0].path);
  t.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0, 'no temporary left');
});

t.test('files that cannot be partitions are refused with a reason', async (t) => {
  t.throws(() => partitionedDisk([file('odd', 1000)], tmp), { message: /odd cannot be a partition: its size \(1000 bytes\) is not a positive multiple of 512/ });
  t.throws(() => partitionedDisk([file('empty', 0)], tmp), VmrunError);
  t.throws(() => partitionedDisk([], tmp), { message: /1 to 128 files, not 0/ });
  const many = Array.from({ length: 129 }, () => path.join(tmp, 'a'));
  t.throws(() => partitionedDisk(many, tmp), { message: /not 129/ });
});
