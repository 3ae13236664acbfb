import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import t, { type Test } from 'tap';

import type { Layer } from '../../src/image/layout';
import { tarSize } from '../../src/vm/layer-disks';

function blob(t: Test, name: string, bytes: Buffer, compression: Layer['compression']): Layer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-tarsize-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return { path: file, digest: 'sha256:' + '0'.repeat(64), size: bytes.length, compression, diffId: 'sha256:' + '1'.repeat(64) };
}

t.test('the tar size a layer disk is sized from', async (t) => {
  const tar = Buffer.alloc(3 << 20, 'a');
  t.equal(tarSize(blob(t, 'plain', tar, 'none')), tar.length, 'an uncompressed blob is its own size');
  t.equal(tarSize(blob(t, 'gz', zlib.gzipSync(tar), 'gzip')), tar.length, "gzip's record of a highly compressed tar");
  t.equal(tarSize(blob(t, 'zst', Buffer.alloc(100), 'zstd')), 0, 'zstd: unknown, the bound applies');
  t.equal(tarSize(blob(t, 'short', Buffer.alloc(10), 'gzip')), 0, 'a gzip too short to hold a record');
});

t.test("gzip's record wraps at 4 GiB: the blob's own size says how often", async (t) => {
  const layer = blob(t, 'big', Buffer.alloc(0), 'gzip');
  const size = 5 * 2 ** 30;
  fs.truncateSync(layer.path, size);  // sparse
  const fd = fs.openSync(layer.path, 'r+');
  fs.writeSync(fd, Buffer.from([100, 0, 0, 0]), 0, 4, size - 4);
  fs.closeSync(fd);
  t.equal(tarSize({ ...layer, size }), 2 * 2 ** 32 + 100, 'the least size a 5 GiB gzip can hold');
});
