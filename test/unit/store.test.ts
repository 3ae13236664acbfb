/**
 * The image store: getImage's pull policies, images/rmi/prune, load from docker-archive,
 * oci-archive and layout directories, and the CLI commands over them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { Command } from 'commander';
import t, { type Test } from 'tap';

import { registerImageCommands } from '../../src/cli/image-commands';
import { ImageError } from '../../src/errors';
import { ContentStore } from '../../src/image/content-store';
import { openLayout } from '../../src/image/layout';
import { getImage, listImages, loadArchive, pruneImages, pullImage, removeImage } from '../../src/image/store';
import { layoutOf } from '../helpers/images';
import { freshStore, pushImage, pushLayout, randomLayer, startRegistry, storeState, type Registry } from '../helpers/registry';

const run = promisify(execFile);
const FAST = { attempts: 2, baseDelayMs: 20, maxDelayMs: 1_000 };
const CLEAN = { corrupt: [], ingest: [], leftovers: [] };

let registry: Registry;
let busybox: string;

t.before(async () => {
  registry = await startRegistry();
  busybox = await layoutOf('busybox');
  await pushLayout(registry, busybox, 'latest', 'busybox:latest');
  await pushLayout(registry, busybox, 'entrypoint', 'busybox:entrypoint');
});
t.teardown(() => registry.stop());

function scratch(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-archive-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const blobBytes = (store: string) =>
  fs.readdirSync(path.join(store, 'blobs', 'sha256')).reduce((sum, hex) => sum + fs.statSync(path.join(store, 'blobs', 'sha256', hex)).size, 0);

t.test("getImage pulls what is missing, never pulls with 'never', always pulls with 'always'", async (t) => {
  const store = freshStore(t);
  const ref = `${registry.host}/busybox:entrypoint`;
  await t.rejects(getImage(ref, { pull: 'never' }), { name: ImageError.name, message: `image ${ref} not found locally: run vmrun pull ${ref}` });
  t.same(storeState(store), { refs: [], ...CLEAN });
  const pulled = await getImage(ref);
  t.equal(pulled.name, ref);
  t.same(pulled.config.entrypoint, ['echo', 'ep']);
  const other = await startRegistry();
  await other.stop();
  // The store answers without the registry: point the name at a dead one to prove it.
  t.same(await getImage(ref, { pull: 'never' }), pulled);
  t.same(await getImage(ref, { pull: 'missing' }), pulled);
  t.same(await getImage(ref, { pull: 'always' }), pulled);
});

t.test('images lists names, digests, sizes and dates; rmi untags; prune frees what nothing names', async (t) => {
  const store = freshStore(t);
  const extra = await pushImage(registry, 'extra', 'v1', [await randomLayer(256 << 10)]);
  await pullImage(`${registry.host}/busybox:latest`, { retry: FAST });
  await pullImage(`${registry.host}/busybox:entrypoint`, { retry: FAST });
  await pullImage(`${registry.host}/extra:v1`, { retry: FAST });
  const images = await listImages();
  const latest = await openLayout(busybox, 'latest');
  t.same(
    images.map((i) => [i.repository, i.tag, i.digest]),
    [
      [`${registry.host}/busybox`, 'latest', latest.manifestDigest],
      [`${registry.host}/busybox`, 'entrypoint', (await openLayout(busybox, 'entrypoint')).manifestDigest],
      [`${registry.host}/extra`, 'v1', extra.digest],
    ],
  );
  t.equal(images[0].created, '2020-09-13T12:26:40Z');
  const manifest = JSON.parse(fs.readFileSync(path.join(busybox, 'blobs', 'sha256', latest.manifestDigest.slice(7)), 'utf8')) as { config: { size: number } };
  const size = fs.statSync(path.join(busybox, 'blobs', 'sha256', latest.manifestDigest.slice(7))).size + manifest.config.size + latest.layers[0].size;
  t.equal(images[0].size, size, 'manifest, config and layer');

  await t.rejects(removeImage(`${registry.host}/nothing`), { name: ImageError.name, message: `no such image: ${registry.host}/nothing (vmrun images lists what there is)` });
  t.equal(await removeImage(`${registry.host}/busybox`), `${registry.host}/busybox:latest`);
  const before = blobBytes(store);
  t.equal(await pruneImages(), before - blobBytes(store));
  t.ok(fs.existsSync(path.join(store, 'blobs', 'sha256', latest.layers[0].digest.slice(7))), 'the layer busybox:entrypoint shares stays');
  t.ok(fs.existsSync(path.join(store, 'blobs', 'sha256', latest.manifestDigest.slice(7))) === false, 'the manifest only latest had goes');
  await removeImage(`${registry.host}/extra:v1`);
  const freed = await pruneImages();
  t.ok(freed > 256 << 10, `the extra layer is freed (${freed} bytes)`);
  t.equal(await pruneImages(), 0, 'nothing more to free');
  t.same(storeState(store), { refs: [`${registry.host}/busybox:entrypoint`], ...CLEAN });
  t.ok(await openLayout(store, `${registry.host}/busybox:entrypoint`), 'what is named still opens');
});

t.test('prune leaves blobs a pull in flight holds', async (t) => {
  const store = freshStore(t);
  await pullImage(`${registry.host}/busybox`, { retry: FAST });
  const image = await openLayout(store, `${registry.host}/busybox:latest`);
  const content = await ContentStore.open();
  const release = await content.lease([image.layers[0].digest]);
  await removeImage(`${registry.host}/busybox`);
  await pruneImages();
  t.ok(fs.existsSync(image.layers[0].path), 'the leased layer stays');
  await release();
  await pruneImages();
  t.notOk(fs.existsSync(image.layers[0].path), 'and goes once the lease is released');
});

t.test('load: docker-archive, gzipped or not', async (t) => {
  const store = freshStore(t);
  const dir = scratch(t);
  const archive = path.join(dir, 'busybox.tar');
  await run('skopeo', ['copy', '--quiet', `oci:${busybox}:latest`, `docker-archive:${archive}:example.com/team/busybox:1.0`]);
  t.same(await loadArchive(archive), ['example.com/team/busybox:1.0']);
  const loaded = await openLayout(store, 'example.com/team/busybox:1.0');
  const original = await openLayout(busybox, 'latest');
  t.same(loaded.layers.map((l) => l.diffId), original.layers.map((l) => l.diffId), 'the same layers (uncompressed, as docker save writes them)');
  t.equal(loaded.layers[0].compression, 'none');
  t.same(loaded.config, original.config);
  fs.writeFileSync(`${archive}.gz`, zlib.gzipSync(fs.readFileSync(archive)));
  await removeImage('example.com/team/busybox:1.0');
  await pruneImages();
  t.same(await loadArchive(`${archive}.gz`), ['example.com/team/busybox:1.0']);
  t.same(storeState(store), { refs: ['example.com/team/busybox:1.0'], ...CLEAN });
});

t.test('load: oci-archive and OCI layout directories', async (t) => {
  const store = freshStore(t);
  const dir = scratch(t);
  const archive = path.join(dir, 'busybox-oci.tar');
  await run('skopeo', ['copy', '--quiet', `oci:${busybox}:latest`, `oci-archive:${archive}:localhost/busybox:v2`]);
  t.same(await loadArchive(archive), ['localhost/busybox:v2']);
  t.equal((await openLayout(store, 'localhost/busybox:v2')).manifestDigest, (await openLayout(busybox, 'latest')).manifestDigest);
  await t.rejects(loadArchive(busybox), {
    name: ImageError.name,
    message: new RegExp(`^${busybox}: image sha256:[0-9a-f]{64} is named only by the tag "(latest|entrypoint)": give the repository to load it as \\(--name REPOSITORY\\)$`),
  });
  t.same(await loadArchive(busybox, { name: 'mine/busybox' }), ['docker.io/mine/busybox:latest', 'docker.io/mine/busybox:entrypoint']);
  t.same((await openLayout(store, 'docker.io/mine/busybox:entrypoint')).config.entrypoint, ['echo', 'ep']);
  t.same(storeState(store), { refs: ['localhost/busybox:v2', 'docker.io/mine/busybox:latest', 'docker.io/mine/busybox:entrypoint'], ...CLEAN });
});

t.test('load: a corrupt archive or something that is no archive leaves nothing behind', async (t) => {
  const store = freshStore(t);
  const dir = scratch(t);
  await t.rejects(loadArchive(path.join(dir, 'absent.tar')), { message: `${path.join(dir, 'absent.tar')} does not exist: give a docker-archive or oci-archive tar, or an OCI layout directory` });
  const notTar = path.join(dir, 'not.tar');
  fs.writeFileSync(notTar, 'hello');
  await t.rejects(loadArchive(notTar), { name: ImageError.name, message: new RegExp(`^${notTar} (is not a readable tar archive: .*|is neither a docker-archive \\(no manifest.json\\) nor an oci-archive \\(no oci-layout\\))$`) });
  const corrupt = await layoutOf('corrupt-blob');
  const archive = path.join(dir, 'corrupt.tar');
  await run('tar', ['-cf', archive, '-C', corrupt, '.']);
  const error = await loadArchive(archive, { name: 'corrupt' }).catch((e: Error) => e);
  t.match(error, { name: ImageError.name, message: new RegExp(`^${archive}: blobs/sha256/[0-9a-f]{64} is \\d+ bytes hashing to sha256:[0-9a-f]{64}, but it should be blob sha256:[0-9a-f]{64} of \\d+ bytes$`) });
  await t.rejects(loadArchive(corrupt, { name: 'corrupt' }), { name: ImageError.name });
  const state = storeState(store);
  t.same([state.refs, state.corrupt, state.ingest, state.leftovers], [[], [], [], []], 'no entry, no staging folder, no temp file');
});

t.test('the CLI: pull, images, rmi, image prune, load', async (t) => {
  freshStore(t);
  const output: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => void output.push(args.join(' '));
  t.teardown(() => {
    console.log = log;
  });
  const cli = async (...args: string[]) => {
    const program = new Command('vmrun').exitOverride();
    registerImageCommands(program);
    output.length = 0;
    await program.parseAsync(args, { from: 'user' });
    return output.join('\n').split('\n');
  };
  const ref = `${registry.host}/busybox:latest`;
  t.same(await cli('pull', '-q', `${registry.host}/busybox`), [ref]);
  const digest = (await openLayout(busybox, 'latest')).manifestDigest;
  t.same(await cli('pull', `${registry.host}/busybox`), [`Digest: ${digest}`, `Status: Image is up to date for ${registry.host}/busybox`, ref]);
  const table = await cli('images');
  t.match(table[0], /^REPOSITORY\s+TAG\s+DIGEST\s+CREATED\s+SIZE$/);
  t.match(table[1], new RegExp(`^${registry.host}/busybox\\s+latest\\s+${digest.slice(7, 19)}\\s+\\d+ years ago\\s+1\\.09MB$`));
  t.match((await cli('images', '--digests'))[1], digest);
  t.same(JSON.parse((await cli('images', '--format', 'json'))[0]).reference, ref);
  await t.rejects(cli('images', '--format', 'yaml'), { message: 'unknown --format "yaml": use table or json' });
  t.same(await cli('rmi', ref), [`Untagged: ${ref}`]);
  await t.rejects(cli('rmi', ref, 'a//b'), { message: `no such image: ${ref} (vmrun images lists what there is); invalid reference "a//b": the repository name has an empty path component (a leading, trailing or double /)` });
  t.match((await cli('image', 'prune'))[0], /^Total reclaimed space: 1\.09MB$/);
  t.same(await cli('load', '-i', busybox, '--name', 'x/y', '-q'), ['docker.io/x/y:latest', 'docker.io/x/y:entrypoint']);
});

t.test('progress: a line per layer redrawn in place on a terminal, a line per finished layer elsewhere', async (t) => {
  const { ProgressDisplay, humanSize } = await import('../../src/image/progress');
  t.same([0, 999, 1000, 1_090_000, 64 << 20, 5e12].map(humanSize), ['0B', '999B', '1kB', '1.09MB', '67.1MB', '5TB']);
  const written: string[] = [];
  const out = { write: (s: string) => written.push(s) } as unknown as NodeJS.WritableStream;
  const tty = new ProgressDisplay(out, true);
  const a = tty.layer('sha256:' + 'a'.repeat(64), 2000);
  const b = tty.layer('sha256:' + 'b'.repeat(64), 10);
  a({ state: 'downloading', done: 1000 });
  b({ state: 'exists' });
  a({ state: 'done' });
  tty.finish();
  const last = written.at(-1) as string;
  t.ok(last.startsWith('\x1b[2A'), 'moves up over the lines it drew');
  t.same(last.slice('\x1b[2A'.length).split('\n'), ['\r\x1b[2Kaaaaaaaaaaaa: Pull complete', '\r\x1b[2Kbbbbbbbbbbbb: Already exists', '']);
  t.match(written.join(''), /aaaaaaaaaaaa: Downloading \[={14}> {15}\] 1kB\/2kB/);
  written.length = 0;
  const plain = new ProgressDisplay(out, false);
  const c = plain.layer('sha256:' + 'c'.repeat(64), 10);
  c({ state: 'downloading', done: 5 });
  c({ state: 'done' });
  plain.finish();
  t.same(written, ['cccccccccccc: Pull complete\n']);
});
