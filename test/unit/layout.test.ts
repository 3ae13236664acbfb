/**
 * The host side of images in OCI layouts (src/image/layout.ts) and the process an image runs
 * (src/run/spec.ts), against the layouts of test/fixtures/build-images.sh.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import t, { type Test } from 'tap';

import { ImageError, RunSpecError } from '../../src/errors';
import { openLayout, verifyLayers, type Image, type Layer } from '../../src/image/layout';
import { DEFAULT_PATH, makeExecSpec, makeRunSpec } from '../../src/run/spec';
import { layoutOf, type TestLayout } from '../helpers/images';

const hash = (data: string | Buffer) => 'sha256:' + createHash('sha256').update(data).digest('hex');

function uncompressed(layer: Layer): Buffer {
  const blob = fs.readFileSync(layer.path);
  if (layer.compression === 'gzip') return zlib.gunzipSync(blob);
  if (layer.compression === 'zstd') return execFileSync('zstd', ['-dc'], { input: blob, maxBuffer: 64 << 20 });
  return blob;
}

/** The entry names of a layer's tar, in order. */
function entries(layer: Layer): string[] {
  return execFileSync('tar', ['-t'], { input: uncompressed(layer), encoding: 'utf8' }).split('\n').filter(Boolean);
}

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-layout-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const open = async (name: TestLayout, ref?: string): Promise<Image> => openLayout(await layoutOf(name), ref);

t.test('a ref picks one image of a layout; without one, a layout of one image needs none', async (t) => {
  const dir = await layoutOf('busybox');
  const latest = await openLayout(dir, 'latest');
  const entrypoint = await openLayout(dir, 'entrypoint');
  t.equal(latest.name, `${dir}:latest`);
  t.not(latest.manifestDigest, entrypoint.manifestDigest, 'two manifests');
  t.same(latest.layers, entrypoint.layers, 'that share their one layer');
  t.same(latest.config.cmd, ['sh', '-c', 'echo hello from busybox']);
  t.same(entrypoint.config.entrypoint, ['echo', 'ep']);
  await t.rejects(openLayout(dir), {
    name: ImageError.name,
    message: `${dir} holds 2 images: name one as ${dir}:REF (latest, entrypoint)`,
  });
  const layered = await openLayout(await layoutOf('layered'));
  t.equal(layered.name, await layoutOf('layered'));
  t.equal(layered.layers.length, 4);
});

t.test('layer compression follows the media type, and the diff_ids and chain stay the same', async (t) => {
  const expected = { layered: 'gzip', 'layered-zstd': 'zstd', 'layered-plain': 'none' } as const;
  const images = await Promise.all(Object.keys(expected).map((name) => open(name as keyof typeof expected)));
  const [gzip] = images;
  let chain = gzip.config.diffIds[0];
  for (const diffId of gzip.config.diffIds.slice(1)) chain = hash(`${chain} ${diffId}`);
  t.equal(gzip.chainId, chain, 'the OCI ChainID');
  t.not(gzip.chainId, gzip.config.diffIds[3]);
  for (const [i, [name, compression]] of Object.entries(expected).entries()) {
    const image = images[i];
    t.same(image.layers.map((l) => l.compression), Array(4).fill(compression), `${name}: ${compression}`);
    t.same(image.layers.map((l) => l.diffId), gzip.config.diffIds, `${name}: the same diff_ids`);
    t.equal(image.chainId, gzip.chainId, `${name}: the same chain`);
    for (const layer of image.layers) {
      t.equal(fs.statSync(layer.path).size, layer.size);
      t.equal(path.basename(layer.path), layer.digest.slice('sha256:'.length));
      t.equal(hash(uncompressed(layer)), layer.diffId, `${name}: a diff_id is the digest of the uncompressed tar`);
    }
    if (i > 0) t.not(image.layers[0].digest, gzip.layers[0].digest, `${name}: other blobs`);
    await verifyLayers(image);
  }
  t.equal(new Set(images.map((i) => i.layerKeys.at(-1))).size, 3, 'the same diff_ids from other blobs: other layer keys');
  const busybox = await open('busybox', 'latest');
  t.equal(busybox.chainId, busybox.config.diffIds[0], 'the chain of one layer is its diff_id');
  t.equal(busybox.layers[0].diffId, gzip.layers[0].diffId, 'layered starts with the busybox layer');
});

t.test('the crafted layers hold their entries in the order the unpacker tests rely on', async (t) => {
  const layers = (await open('layered-plain')).layers;
  const l3 = entries(layers[2]);
  t.ok(l3.indexOf('opq/upper-1') < l3.indexOf('opq/.wh..wh..opq'), 'a file of the layer precedes its opaque marker');
  t.ok(l3.includes('data/.wh.gone') && l3.includes('data/.wh.dir-gone') && l3.includes('hardlink'));
  t.same(entries(layers[3]), ['opq2/.wh..wh..opq', 'opq2/new'], 'the marker first');
  t.ok(entries(layers[1]).includes('xattr-file'));
  t.same(entries((await open('hostile-traversal')).layers[1]), ['../../../escaped-dotdot']);
  t.same(entries((await open('hostile-hardlink')).layers[1]), ['hl']);
  const symlink = (await open('hostile-symlink')).layers;
  t.same(entries(symlink[1]), ['evil', 'evil2']);
  t.same(entries(symlink[2]), ['evil/planted-through-abs', 'evil2/planted-through-rel']);
});

t.test('a corrupt layer blob opens, and verifyLayers names it', async (t) => {
  const image = await open('corrupt-blob', 'latest');
  const layer = image.layers[0];
  await t.rejects(verifyLayers(image), {
    name: ImageError.name,
    message: new RegExp(`^${image.name}: layer 1 is corrupt: ${layer.path} hashes to sha256:[0-9a-f]{64}, expected ${layer.digest}; pull the image again$`),
  });
  const good = await open('busybox', 'latest');
  t.equal(layer.digest, good.layers[0].digest, 'the manifest still names the original blob');
});

t.test('a wrong diff_id passes every host check: only hashing the uncompressed stream finds it', async (t) => {
  const image = await open('bad-diffid', 'latest');
  await verifyLayers(image);
  const good = await open('busybox', 'latest');
  t.equal(image.layers[0].digest, good.layers[0].digest, 'the same blob');
  t.not(image.layers[0].diffId, good.layers[0].diffId, 'another diff_id');
  t.equal(hash(uncompressed(image.layers[0])), good.layers[0].diffId);
  t.equal(image.chainId, image.layers[0].diffId);
  t.same((await open('bad-diffid', 'entrypoint')).config.entrypoint, ['echo', 'ep']);
});

t.test('a layout that is missing, not a layout, incomplete, or without the ref is an ImageError', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'nothing-here');
  const notLayout = /is not an OCI image layout \(no readable oci-layout file\): give a directory written by umoci or skopeo copy oci:DIR$/;
  await t.rejects(openLayout(missing), { name: ImageError.name, message: new RegExp(`^${missing} ${notLayout.source}`) });
  await t.rejects(openLayout(dir, 'latest'), { name: ImageError.name, message: new RegExp(`^${dir} ${notLayout.source}`) });

  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
  await t.rejects(openLayout(dir), { name: ImageError.name, message: `${dir}/oci-layout: unsupported imageLayoutVersion (expected 1.0.0)` });
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await t.rejects(openLayout(dir), { name: ImageError.name, message: `${dir}/index.json is missing` });

  const busybox = await layoutOf('busybox');
  await t.rejects(openLayout(busybox, 'nope'), {
    name: ImageError.name,
    message: `image ${busybox}:nope not found: the layout holds latest, entrypoint`,
  });

  // A layer blob gone from a copy of the layout.
  const copy = path.join(dir, 'copy');
  fs.cpSync(busybox, copy, { recursive: true });
  const { layers } = await openLayout(copy, 'latest');
  fs.rmSync(path.join(copy, 'blobs', 'sha256', layers[0].digest.slice('sha256:'.length)));
  await t.rejects(openLayout(copy, 'latest'), { name: ImageError.name, message: `${copy}:latest: layer 1 blob ${layers[0].digest} is missing from ${copy}` });
});

t.test('the process: argv = Entrypoint ++ Cmd; arguments replace Cmd; --entrypoint clears Cmd', async (t) => {
  const { config: plain } = await open('busybox', 'latest');
  const { config: ep } = await open('busybox', 'entrypoint');
  const argv = (config: typeof plain, options: Parameters<typeof makeRunSpec>[1] = {}) => makeRunSpec(config, options).argv;
  t.same(argv(plain), ['sh', '-c', 'echo hello from busybox']);
  t.same(argv(plain, { command: ['id', '-u'] }), ['id', '-u']);
  t.same(argv(plain, { command: [] }), ['sh', '-c', 'echo hello from busybox'], 'an empty command is none');
  t.same(argv(ep), ['echo', 'ep', 'default-arg']);
  t.same(argv(ep, { command: ['a', 'b'] }), ['echo', 'ep', 'a', 'b']);
  t.same(argv(ep, { entrypoint: 'ls' }), ['ls'], 'the image Cmd goes with its Entrypoint');
  t.same(argv(ep, { entrypoint: 'ls', command: ['-l', '/'] }), ['ls', '-l', '/']);
  t.same(argv(ep, { entrypoint: '', command: ['true'] }), ['true'], "'' means no entrypoint");
  t.same(argv(plain, { entrypoint: 'env' }), ['env']);
  for (const options of [{ entrypoint: '' }, { entrypoint: '', command: [] }]) {
    t.throws(() => makeRunSpec(ep, options), { name: RunSpecError.name, message: /^no command specified/ });
  }
  t.throws(() => makeRunSpec(plain, { command: ['a\0b'] }), { name: RunSpecError.name, message: /NUL/ });
});

t.test("a sandbox: IDLE instead of the image's command; an exec on top of the sandbox's spec", async (t) => {
  const { config: ep } = await open('busybox', 'entrypoint');
  const sandbox = makeRunSpec({ ...ep, entrypoint: [], cmd: [] }, { idle: true, env: ['FOO=sandbox', 'KEEP=1'], hostname: 'sb' });
  t.match(sandbox, { argv: [], idle: true, workdir: '/work/dir', user: 'app' }, 'no command needed, none run');
  const exec = makeExecSpec(sandbox, { argv: ['id'], env: ['FOO=exec'] });
  t.same(exec.argv, ['id']);
  t.same(exec.env.filter((e) => /^(FOO|KEEP|HOSTNAME)=/.test(e)).sort(), ['FOO=exec', 'HOSTNAME=sb', 'KEEP=1'], "the sandbox's environment, the exec's winning");
  t.match(exec, { workdir: '/work/dir', user: 'app' }, "the sandbox's user and directory by default");
  t.match(makeExecSpec(sandbox, { argv: ['id'], user: '0', workdir: '/tmp', tty: { rows: 3, cols: 4 } }), { user: '0', workdir: '/tmp', tty: { rows: 3, cols: 4 } });
  t.throws(() => makeExecSpec(sandbox, { argv: [] }), { name: RunSpecError.name, message: 'no command given to exec' });
  t.throws(() => makeExecSpec(sandbox, { argv: ['a\0'] }), { name: RunSpecError.name, message: /NUL/ });
  t.throws(() => makeExecSpec(sandbox, { argv: ['x'], workdir: 'rel' }), { name: RunSpecError.name, message: /'rel' is invalid/ });
  t.throws(() => makeExecSpec(sandbox, { argv: ['x'], env: ['=x'] }), { name: RunSpecError.name, message: /invalid environment entry/ });
});

t.test('the process: working directory and user from the image unless given', async (t) => {
  const { config: plain } = await open('busybox', 'latest');
  const { config: ep } = await open('busybox', 'entrypoint');
  t.match(makeRunSpec(plain), { workdir: '/', user: '', readOnly: false });
  t.match(makeRunSpec(ep), { workdir: '/work/dir', user: 'app' });
  t.match(makeRunSpec(ep, { workdir: '/tmp', user: '1000:50', readOnly: true }), { workdir: '/tmp', user: '1000:50', readOnly: true });
  t.throws(() => makeRunSpec(plain, { workdir: 'rel' }), { name: RunSpecError.name, message: /'rel' is invalid: it needs to be an absolute path/ });
});

t.test('the process: environment, PATH, HOSTNAME and TERM', async (t) => {
  const { config } = await open('busybox', 'latest');
  const imagePath = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin';
  const plain = makeRunSpec(config);
  t.match(plain.hostname, /^[0-9a-f]{12}$/, 'a random host name');
  t.same([...plain.env].sort(), [imagePath, 'FOO=from-image', `HOSTNAME=${plain.hostname}`].sort(), "the image's PATH, no default");
  t.not(makeRunSpec(config).hostname, plain.hostname);

  const spec = makeRunSpec(config, { env: ['FOO=user', 'NEW=1', 'NEW=2'], hostname: 'box' });
  t.equal(spec.hostname, 'box');
  t.same([...spec.env].sort(), [imagePath, 'FOO=user', 'HOSTNAME=box', 'NEW=2'].sort(), 'the user wins, the last entry of a name wins');
  t.same(makeRunSpec(config, { env: ['HOSTNAME=mine', 'PATH=/x'] }).env.filter((e) => /^(HOSTNAME|PATH)=/.test(e)).sort(), ['HOSTNAME=mine', 'PATH=/x']);

  const noPath = { ...config, env: ['FOO=bar'] };
  t.same(makeRunSpec(noPath, { hostname: 'h' }).env.sort(), ['FOO=bar', 'HOSTNAME=h', `PATH=${DEFAULT_PATH}`].sort(), "docker's PATH when the image has none");
  t.same(makeRunSpec(noPath, { hostname: 'h', env: ['PATH=/mine'] }).env.filter((e) => e.startsWith('PATH=')), ['PATH=/mine']);

  t.notOk(plain.env.some((e) => e.startsWith('TERM=')), 'no TERM without a terminal');
  const tty = makeRunSpec(config, { tty: { rows: 24, cols: 80 } });
  t.ok(tty.env.includes('TERM=xterm'));
  t.same(tty.tty, { rows: 24, cols: 80 });
  t.same(makeRunSpec(config, { tty: { rows: 24, cols: 80 }, env: ['TERM=dumb'] }).env.filter((e) => e.startsWith('TERM=')), ['TERM=dumb']);

  for (const entry of ['NOEQUALS', '=x', 'A=\0']) {
    t.throws(() => makeRunSpec(config, { env: [entry] }), { name: RunSpecError.name, message: /^invalid environment entry .*: expected NAME=value$/ });
  }
  t.throws(() => makeRunSpec(config, { hostname: '-bad' }), { name: RunSpecError.name, message: /^invalid hostname "-bad"/ });
  t.match(plain.resolvConf, /^nameserver (?!127\.)\S+$/m, 'a nameserver the guest can reach');
  const dns = makeRunSpec(config, { dns: ['192.0.2.1'], dnsSearch: ['a.example', 'b.example'], dnsOptions: ['ndots:2', 'rotate'] }).resolvConf;
  t.match(dns, /^nameserver 192\.0\.2\.1$/m, '--dns');
  t.match(dns, /^search a\.example b\.example$/m, '--dns-search replaces the host\'s search');
  t.match(dns, /^options ndots:2 rotate$/m, '--dns-option replaces the host\'s options');
  t.equal(dns.match(/^(search|domain|options) /gm)?.length, 2, 'one search line, one options line');
  t.notMatch(makeRunSpec(config, { dnsSearch: ['.'] }).resolvConf, /^(search|domain) /m, '--dns-search . leaves none');
});
