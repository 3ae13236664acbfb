/**
 * `vmrun pull` against a real registry (distribution 2.8) on loopback: what lands in the store,
 * digests, platforms, and every failure leaving the store with nothing half-made.
 */
import fs from 'node:fs';
import t from 'tap';

import { ImageError, RegistryError } from '../../src/errors';
import { openLayout } from '../../src/image/layout';
import { getImage, pullImage } from '../../src/image/store';
import { endpointsFor } from '../../src/image/registry/endpoint';
import { layoutOf } from '../helpers/images';
import {
  freshStore,
  pushImage,
  pushLayout,
  pushMultiPlatform,
  randomLayer,
  registryBlobPath,
  startProxy,
  startRegistry,
  storeState,
  type Registry,
} from '../helpers/registry';

const FAST = { attempts: 3, baseDelayMs: 20, maxDelayMs: 5_000 };
const CLEAN = { corrupt: [], ingest: [], leftovers: [] };

let registry: Registry;
let busybox: string;
let multi: { index: string; amd64: string; arm64: string };

t.before(async () => {
  registry = await startRegistry();
  busybox = await layoutOf('busybox');
  await pushLayout(registry, busybox, 'latest', 'busybox:latest');
  await pushLayout(registry, busybox, 'entrypoint', 'busybox:entrypoint');
  multi = await pushMultiPlatform(registry, busybox, 'multi', 'latest');
});
t.teardown(() => registry.stop());

t.test('an anonymous pull stores the image where openLayout opens it by its full name', async (t) => {
  const store = freshStore(t);
  const ref = `${registry.host}/busybox:latest`;
  const result = await pullImage(ref, { retry: FAST });
  t.equal(result.reference, ref);
  const pulled = await openLayout(store, ref);
  const original = await openLayout(busybox, 'latest');
  t.same(pulled.layers.map((l) => [l.digest, l.size, l.diffId]), original.layers.map((l) => [l.digest, l.size, l.diffId]), 'the same layers');
  t.equal(pulled.manifestDigest, original.manifestDigest, 'the manifest bytes as the registry served them');
  t.equal(result.repoDigest, original.manifestDigest);
  t.same(pulled.config, original.config);
  t.same(storeState(store), { refs: [ref], ...CLEAN });
  const image = await getImage(`${registry.host}/busybox`, { pull: 'never' });
  t.equal(image.name, `${registry.host}/busybox`, 'getImage names it as asked');
  t.same(image.layers, pulled.layers);
  const again = await pullImage(ref, { retry: FAST });
  t.ok(again.layers.every((l) => l.existed), 'a second pull fetches no layer');
});

t.test("Docker's manifest media types pull as OCI's do, bytes and digest as served", async (t) => {
  const store = freshStore(t);
  await pushLayout(registry, busybox, 'latest', 'docker-types:latest', undefined, 'v2s2');
  const ref = `${registry.host}/docker-types:latest`;
  const result = await pullImage(ref, { retry: FAST });
  const index = JSON.parse(fs.readFileSync(`${store}/index.json`, 'utf8')) as { manifests: { mediaType: string; digest: string }[] };
  t.same(index.manifests.map((d) => [d.mediaType, d.digest]), [['application/vnd.docker.distribution.manifest.v2+json', result.manifestDigest]]);
  const image = await openLayout(store, ref);
  t.equal(image.layers[0].compression, 'gzip');
  t.same(image.layers.map((l) => l.diffId), (await openLayout(busybox, 'latest')).layers.map((l) => l.diffId));
});

t.test('a pull by digest is checked and recorded under the digest; name:tag@digest pulls the digest', async (t) => {
  const store = freshStore(t);
  const { manifestDigest } = await openLayout(busybox, 'entrypoint');
  const result = await pullImage(`${registry.host}/busybox:whatever@${manifestDigest}`, { retry: FAST });
  t.equal(result.reference, `${registry.host}/busybox@${manifestDigest}`);
  t.equal(result.manifestDigest, manifestDigest);
  t.same((await openLayout(store, result.reference)).config.entrypoint, ['echo', 'ep']);
  t.same(storeState(store).refs, [result.reference]);
});

t.test('an unknown tag, digest or repository: a one-line error and nothing stored', async (t) => {
  const store = freshStore(t);
  const missing = 'sha256:' + '0'.repeat(64);
  const cases: [string, string][] = [
    [`${registry.host}/busybox:nope`, `manifest for ${registry.host}/busybox:nope not found (MANIFEST_UNKNOWN: manifest unknown)`],
    [`${registry.host}/busybox@${missing}`, `manifest for ${registry.host}/busybox@${missing} not found (MANIFEST_UNKNOWN: manifest unknown)`],
    [`${registry.host}/nothere:latest`, `repository ${registry.host}/nothere not found (NAME_UNKNOWN: repository name not known to registry)`],
  ];
  for (const [ref, message] of cases) await t.rejects(pullImage(ref, { retry: FAST }), { name: ImageError.name, message }, ref);
  t.same(storeState(store), { refs: [], ...CLEAN });
});

t.test("a multi-platform index gives this host's platform, or the one asked for", async (t) => {
  const store = freshStore(t);
  const ref = `${registry.host}/multi:latest`;
  const amd64 = await pullImage(ref, { retry: FAST });
  t.same([amd64.manifestDigest, amd64.repoDigest, amd64.platform], [multi.amd64, multi.index, { os: 'linux', architecture: 'amd64' }], 'linux/amd64, not the attestation');
  t.equal((await openLayout(store, ref)).config.architecture, 'amd64');
  const arm64 = await pullImage(ref, { platform: 'linux/arm64', retry: FAST });
  t.same([arm64.manifestDigest, arm64.repoDigest], [multi.arm64, multi.index], 'arm64 (its v8 variant is no variant)');
  t.same(storeState(store).refs, [ref], 'the name now means the arm64 image');
  await t.rejects(openLayout(store, ref), { message: `${store}:${ref} is a linux/arm64 image; this host runs linux/amd64 images` });
  const image = await getImage(ref, { platform: 'linux/amd64' });
  t.equal(image.manifestDigest, multi.amd64, 'getImage pulls again when the stored platform is not the one asked for');
  await t.rejects(pullImage(ref, { platform: 'linux/s390x', retry: FAST }), {
    name: ImageError.name,
    message: `${ref} has no linux/s390x image (it has linux/amd64, linux/arm64): choose one with --platform`,
  });
  await t.rejects(pullImage(`${registry.host}/busybox`, { platform: 'linux/arm64', retry: FAST }), {
    message: `${registry.host}/busybox:latest is a linux/amd64 image, not the linux/arm64 asked for`,
  });
  await t.rejects(pullImage(ref, { platform: 'arm64' }), { message: 'invalid platform "arm64": expected os/arch[/variant], such as linux/arm64 or linux/arm/v7' });
});

t.test('a blob whose bytes do not match its digest: an error and nothing partial in the store', async (t) => {
  const store = freshStore(t);
  const pushed = await pushImage(registry, 'corrupt', 'latest', [await randomLayer(1 << 20)]);
  const file = registryBlobPath(registry, pushed.layerDigests[0]);
  const bytes = fs.readFileSync(file);
  bytes[bytes.length >> 1] ^= 0xff;
  fs.writeFileSync(file, bytes);
  const error = await pullImage(`${registry.host}/corrupt`, { retry: FAST }).catch((e: Error) => e);
  t.match(error, {
    name: ImageError.name,
    message: new RegExp(`^layer 1 of ${registry.host}/corrupt:latest: blob ${pushed.layerDigests[0]} from ${registry.host}/corrupt does not match its digest \\(its bytes hash to sha256:[0-9a-f]{64}\\); nothing was stored$`),
  });
  const state = storeState(store);
  t.same(state, { refs: [], ...CLEAN }, 'no entry, no partial file, no temp file');
});

t.test('503s and 429s are retried, honouring Retry-After', async (t) => {
  const store = freshStore(t);
  let failures = 0;
  const proxy = await startProxy(registry.host, (req, res) => {
    if (req.url?.includes('/manifests/') && failures === 0) {
      failures++;
      res.writeHead(503).end();
      return true;
    }
    if (req.url?.includes('/blobs/') && failures === 1) {
      failures++;
      res.writeHead(429, { 'retry-after': '1' }).end();
      return true;
    }
    return false;
  });
  t.teardown(() => proxy.stop());
  const started = Date.now();
  await pullImage(`${proxy.host}/busybox`, { retry: FAST });
  t.equal(failures, 2);
  t.ok(Date.now() - started >= 1000, 'waited as Retry-After said');
  t.same(storeState(store).refs, [`${proxy.host}/busybox:latest`]);
});

t.test('rate limiting that outlasts the retries gets a message that says so', async (t) => {
  const store = freshStore(t);
  const proxy = await startProxy(registry.host, (_req, res) => {
    res.writeHead(429, { 'retry-after': '3600', 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] }));
    return true;
  });
  t.teardown(() => proxy.stop());
  await t.rejects(pullImage(`${proxy.host}/busybox`, { retry: FAST }), {
    name: RegistryError.name,
    message: `${proxy.host} is rate-limiting pulls (429 Too Many Requests: TOOMANYREQUESTS: You have reached your pull rate limit.): try again in 3600 s, or log in with docker login for a higher limit`,
  });
  t.equal(proxy.requests.length, 1, 'a Retry-After beyond the longest wait is not waited for');
  t.same(storeState(store), { refs: [], ...CLEAN });
});

t.test('two pulls of one image at once download each blob once', async (t) => {
  const store = freshStore(t);
  const pushed = await pushImage(registry, 'twice', 'latest', [await randomLayer(4 << 20), await randomLayer(4 << 20, 'b'), await randomLayer(1 << 20, 'c')]);
  const proxy = await startProxy(registry.host);
  t.teardown(() => proxy.stop());
  const ref = `${proxy.host}/twice:latest`;
  const [a, b] = await Promise.all([pullImage(ref, { retry: FAST }), pullImage(ref, { retry: FAST })]);
  t.equal(a.manifestDigest, pushed.digest);
  t.equal(b.manifestDigest, pushed.digest);
  const blobGets = proxy.requests.filter((r) => r.startsWith('GET ') && r.includes('/blobs/'));
  t.equal(blobGets.length, 4, 'config and three layers, once each');
  t.equal(new Set(blobGets).size, 4);
  t.same(storeState(store), { refs: [ref], ...CLEAN });
});

t.test('the registry dying mid-blob: a clear error and no entry; when it is back, the pull resumes', async (t) => {
  const store = freshStore(t);
  const dying = await startRegistry();
  t.teardown(() => dying.stop());
  const layer = await randomLayer(64 << 20);
  const size = layer.length;
  const pushed = await pushImage(dying, 'big', 'latest', [layer]);
  const ref = `${dying.host}/big:latest`;
  let killing: Promise<void> | undefined;
  const error = await pullImage(ref, {
    retry: FAST,
    onLayerEvent: (_digest, event) => {
      if (event.state === 'downloading' && event.done > 4 << 20) killing ??= dying.kill();
    },
  }).catch((e: Error) => e);
  await killing;
  t.match(error, {
    name: RegistryError.name,
    message: new RegExp(`^layer 1 of ${ref}: the download of ${pushed.layerDigests[0]} from ${dying.host}/big broke off at \\d+ of ${size} bytes \\(.*ECONNREFUSED.*\\); pull again to resume$`),
  });
  const state = storeState(store);
  t.same(state.refs, [], 'no entry');
  t.same([state.corrupt, state.leftovers], [[], []], 'no temp files, locks or leases');
  t.equal(state.ingest.length, 1, 'the partial layer is kept for resuming');
  const partial = state.ingest[0]?.size ?? 0;
  t.ok(partial > 4 << 20 && partial < size, `partial ${partial} bytes`);

  await dying.restart();
  const result = await pullImage(ref, { retry: FAST });
  t.equal(result.layers[0].resumed, partial, 'resumed from the partial file');
  t.equal(result.layers[0].fetched, size - partial, 'and fetched only the rest');
  t.same(storeState(store), { refs: [ref], ...CLEAN });
  t.equal((await openLayout(store, ref)).layers[0].digest, pushed.layerDigests[0]);
});

t.test('Docker Hub names go to the mirrors first, falling back past a dead one', async (t) => {
  const store = freshStore(t);
  await pushLayout(registry, busybox, 'latest', 'library/busybox:latest');
  const dead = await startRegistry();
  await dead.stop();
  const result = await pullImage('busybox', { mirrors: [`http://${dead.host}`, `http://${registry.host}`], retry: FAST });
  t.equal(result.reference, 'docker.io/library/busybox:latest');
  t.same(storeState(store).refs, ['docker.io/library/busybox:latest']);
});

t.test('plain HTTP only for loopback and insecure registries', async (t) => {
  const base = (domain: string, insecure?: string[]) => endpointsFor(domain, { insecureRegistries: insecure, mirrors: [] }).map((e) => e.base);
  t.same(base('127.0.0.1:5000'), ['http://127.0.0.1:5000']);
  t.same(base('127.1.2.3'), ['http://127.1.2.3']);
  t.same(base('localhost:5000'), ['http://localhost:5000']);
  t.same(base('[::1]:5000'), ['http://[::1]:5000']);
  t.same(base('registry.example.com'), ['https://registry.example.com']);
  t.same(base('127.0.0.1.example.com'), ['https://127.0.0.1.example.com']);
  t.same(base('registry.lan:5000', ['registry.lan:5000']), ['http://registry.lan:5000']);
  t.same(base('registry.lan:5000', ['registry.lan']), ['http://registry.lan:5000']);
  t.same(base('docker.io'), ['https://registry-1.docker.io']);
  t.same(endpointsFor('docker.io', { mirrors: ['https://mirror.example.com/', 'http://127.0.0.1:5000'] }).map((e) => e.base), [
    'https://mirror.example.com',
    'http://127.0.0.1:5000',
    'https://registry-1.docker.io',
  ]);
  t.throws(() => endpointsFor('docker.io', { mirrors: ['http://mirror.example.com'] }), {
    name: RegistryError.name,
    message: 'registry mirror http://mirror.example.com uses plain HTTP: only loopback and insecure registries may (VMRUN_INSECURE_REGISTRIES)',
  });
  process.env.VMRUN_INSECURE_REGISTRIES = 'a.lan, b.lan:5000';
  process.env.VMRUN_REGISTRY_MIRRORS = 'http://b.lan:5000';
  t.teardown(() => {
    delete process.env.VMRUN_INSECURE_REGISTRIES;
    delete process.env.VMRUN_REGISTRY_MIRRORS;
  });
  t.same(base('a.lan'), ['http://a.lan']);
  t.same(endpointsFor('docker.io').map((e) => e.base), ['http://b.lan:5000', 'https://registry-1.docker.io']);
});
