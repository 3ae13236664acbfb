/**
 * Real OCI registries on loopback for the pull tests and bench/pull.ts: Debian's docker-registry
 * (distribution 2.8), anonymous, behind htpasswd Basic auth, or behind token auth whose tokens
 * (RS256 JWTs, signed with a key made by openssl) come from a small service in this process.
 * Images go in with skopeo (from OCI layouts) or straight through the push API, and a proxy can
 * stand in front of a registry to count requests or to answer some itself.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import bcrypt from 'bcryptjs';
import tar from 'tar-stream';

const run = promisify(execFile);
const sha256 = (data: Buffer | string) => 'sha256:' + createHash('sha256').update(data).digest('hex');

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  /** user -> password, for htpasswd and token auth. */
  users?: Record<string, string>;
  /** Token auth: whether a token request without credentials gets pull access. */
  anonymousPull?: boolean;
  /** Token auth: the tokens' lifetime. */
  tokenSeconds?: number;
}

export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** The registry's storage: blobs are at docker/registry/v2/blobs/sha256/xx/HEX/data. */
  storage: string;
  /** Token requests the token service has answered, with the Authorization they carried. */
  tokenRequests: { scope: string | null; authorization?: string }[];
  /** SIGKILLs the registry process (a crash, mid-transfer if one is under way). */
  kill(): Promise<void>;
  /** Starts it again on the same port and storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a registry; stop() it (tap: t.teardown) to remove it and its storage. */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-registry-'));
  const storage = path.join(dir, 'storage');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tokenRequests: Registry['tokenRequests'] = [];
  const users = options.users ?? {};
  let auth = '';
  let tokenServer: http.Server | undefined;
  if (options.auth === 'htpasswd') {
    // Cost 4, bcrypt's least: the registry checks the hash on every request.
    const lines = Object.entries(users).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}`);
    fs.writeFileSync(path.join(dir, 'htpasswd'), lines.join('\n') + '\n');
    auth = `auth:\n  htpasswd:\n    realm: vmrun-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  } else if (options.auth === 'token') {
    const key = path.join(dir, 'token.key');
    const cert = path.join(dir, 'token.crt');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=vmrun-test-token']);
    tokenServer = await startTokenServer(fs.readFileSync(key, 'utf8'), fs.readFileSync(cert, 'utf8'), options, tokenRequests);
    const realm = `http://127.0.0.1:${(tokenServer.address() as net.AddressInfo).port}/token`;
    auth = `auth:\n  token:\n    realm: ${realm}\n    service: vmrun-test\n    issuer: vmrun-test\n    rootcertbundle: ${cert}\n`;
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n${auth}`,
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    const logFile = fs.openSync(path.join(dir, 'registry.log'), 'a');
    child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', logFile, logFile] });
    fs.closeSync(logFile);
    await waitForRegistry(host, child, path.join(dir, 'registry.log'));
  };
  const kill = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    host,
    storage,
    tokenRequests,
    kill,
    restart: start,
    stop: async () => {
      await kill();
      await new Promise((resolve) => (tokenServer ? tokenServer.close(resolve) : resolve(undefined)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForRegistry(host: string, child: ChildProcess, logFile: string): Promise<void> {
  for (const started = Date.now(); Date.now() - started < 15_000; ) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited at once: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    // Any HTTP answer will do (401 where auth is on).
    const up = await fetch(`http://${host}/v2/`).then(() => true, () => false);
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`docker-registry at ${host} did not answer within 15 s`);
}

/** distribution's token.md: a JWT whose x5c chain the registry trusts via its rootcertbundle. */
async function startTokenServer(key: string, certPem: string, options: RegistryOptions, seen: Registry['tokenRequests']): Promise<http.Server> {
  const der = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope');
    seen.push({ scope, authorization: req.headers.authorization });
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    let allowed = options.anonymousPull === true;
    if (basic) {
      const [user, ...rest] = Buffer.from(basic, 'base64').toString().split(':');
      allowed = options.users?.[user] === rest.join(':');
      if (!allowed) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
        return;
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const access = allowed && scope
      ? scope.split(' ').map((s) => {
          const [type, name, actions] = s.split(':');
          return { type, name, actions: actions.split(',') };
        })
      : [];
    const claims = { iss: 'vmrun-test', sub: 'tester', aud: 'vmrun-test', exp: now + (options.tokenSeconds ?? 300), nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const unsigned = `${b64({ alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] })}.${b64(claims)}`;
    const token = `${unsigned}.${sign('sha256', Buffer.from(unsigned), key).toString('base64url')}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: options.tokenSeconds ?? 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** Pushes LAYOUT:TAG (an OCI layout directory) to the registry as NAME:DEST with skopeo (`v2s2`: as Docker's media types). */
export async function pushLayout(registry: Registry, layout: string, tag: string, name: string, creds?: string, format?: 'v2s2'): Promise<void> {
  const options = [...(creds ? ['--dest-creds', creds] : []), ...(format ? ['--format', format] : [])];
  const args = ['copy', '--quiet', '--dest-tls-verify=false', ...options, `oci:${layout}:${tag}`, `docker://${registry.host}/${name}`];
  await run('skopeo', args, { maxBuffer: 1 << 20 });
}

/** Uploads a blob through the push API (anonymous registries only); returns its digest. */
export async function pushBlob(registry: Registry, repository: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const started = await fetch(`http://${registry.host}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  if (started.status !== 202) throw new Error(`starting an upload: ${started.status} ${await started.text()}`);
  const location = new URL(started.headers.get('location') as string, `http://${registry.host}`);
  location.searchParams.set('digest', digest);
  const done = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
  if (done.status !== 201) throw new Error(`uploading ${digest}: ${done.status} ${await done.text()}`);
  return digest;
}

export async function pushManifest(registry: Registry, repository: string, reference: string, body: Buffer, mediaType: string): Promise<string> {
  const res = await fetch(`http://${registry.host}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
  if (res.status !== 201) throw new Error(`pushing manifest ${repository}:${reference}: ${res.status} ${await res.text()}`);
  return sha256(body);
}

/** An uncompressed layer tar holding one file of `size` random bytes. */
export async function randomLayer(size: number, name = 'random.bin'): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, randomBytes(size));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface PushedImage {
  manifest: Buffer;
  digest: string;
  configDigest: string;
  layerDigests: string[];
}

/** Pushes an image of uncompressed `layers` for os/architecture as NAME:TAG; its config's Cmd is `cmd`. */
export async function pushImage(
  registry: Registry,
  repository: string,
  tag: string,
  layers: Buffer[],
  platform = { os: 'linux', architecture: 'amd64' },
): Promise<PushedImage> {
  const layerDigests: string[] = [];
  for (const layer of layers) layerDigests.push(await pushBlob(registry, repository, layer));
  const config = Buffer.from(JSON.stringify({ ...platform, created: '2020-09-13T12:26:40Z', config: { Cmd: ['true'] }, rootfs: { type: 'layers', diff_ids: layerDigests } }));
  const configDigest = await pushBlob(registry, repository, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigests[i], size: l.length })),
    }),
  );
  const digest = await pushManifest(registry, repository, tag, manifest, OCI_MANIFEST);
  return { manifest, digest, configDigest, layerDigests };
}

/** The file holding blob `digest` in the registry's storage (to corrupt it). */
export function registryBlobPath(registry: Registry, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(registry.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}

export interface Proxy {
  host: string;
  /** Requests seen, as `METHOD PATH`. */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * An HTTP proxy to `target` (`host:port`) on a port of its own. `intercept` may answer a request
 * itself (returning true); everything else is forwarded as it is.
 */
export async function startProxy(target: string, intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): Promise<Proxy> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (intercept?.(req, res)) return;
    const [hostname, port] = target.split(':');
    const upstream = http.request({ hostname, port: Number(port), path: req.url, method: req.method, headers: { ...req.headers, host: target } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Points VMRUN_STORE_DIR (and DOCKER_CONFIG, so the host's logins stay out) at fresh folders for one test. */
export function freshStore(t: { teardown(fn: () => void): void }): string {
  const saved = { store: process.env.VMRUN_STORE_DIR, docker: process.env.DOCKER_CONFIG };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-store-'));
  process.env.VMRUN_STORE_DIR = path.join(dir, 'store');
  process.env.DOCKER_CONFIG = path.join(dir, 'docker');
  fs.mkdirSync(process.env.DOCKER_CONFIG);
  t.teardown(() => {
    for (const [name, value] of [['VMRUN_STORE_DIR', saved.store], ['DOCKER_CONFIG', saved.docker]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return process.env.VMRUN_STORE_DIR;
}

/** Writes DOCKER_CONFIG's config.json. */
export function dockerConfig(config: object): void {
  fs.writeFileSync(path.join(process.env.DOCKER_CONFIG as string, 'config.json'), JSON.stringify(config));
}

export interface StoreState {
  /** Names in index.json. */
  refs: string[];
  /** Blobs whose bytes do not hash to their name: there must never be any. */
  corrupt: string[];
  /** What ingest/ holds: partial downloads kept for resuming, with their sizes. */
  ingest: { name: string; size: number }[];
  /** Temp files, lock folders and leases anywhere: a finished pull leaves none. */
  leftovers: string[];
}

/** What a store holds, to check that a failed operation left nothing half-made. */
export function storeState(dir: string): StoreState {
  const state: StoreState = { refs: [], corrupt: [], ingest: [], leftovers: [] };
  if (!fs.existsSync(dir)) return state;
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
  state.refs = index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name'] ?? '?');
  const blobs = path.join(dir, 'blobs', 'sha256');
  for (const hex of fs.readdirSync(blobs)) {
    if (sha256(fs.readFileSync(path.join(blobs, hex))) !== `sha256:${hex}`) state.corrupt.push(hex);
  }
  for (const name of fs.readdirSync(path.join(dir, 'ingest')).filter((n) => !n.endsWith('.lock'))) state.ingest.push({ name, size: fs.statSync(path.join(dir, 'ingest', name)).size });
  state.leftovers.push(...fs.readdirSync(path.join(dir, 'leases')));
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    if (/\.(tmp|lock)$|\.lock\./.test(name)) state.leftovers.push(name);
  }
  return state;
}

/**
 * Pushes LAYOUT:latest as a two-platform index NAME:TAG: linux/amd64 and linux/arm64/v8 (the same
 * layer, configs that differ in architecture), after an attestation entry (unknown/unknown) as
 * buildx writes them. Returns the manifests' digests.
 */
export async function pushMultiPlatform(registry: Registry, layout: string, repository: string, tag: string): Promise<{ index: string; amd64: string; arm64: string }> {
  const blob = (digest: string) => fs.readFileSync(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const layoutIndex = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const top = layoutIndex.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === 'latest');
  if (!top) throw new Error(`${layout} has no latest`);
  const manifest = JSON.parse(blob(top.digest).toString()) as { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] };
  for (const layer of manifest.layers) await pushBlob(registry, repository, blob(layer.digest));
  const digests: Record<string, { digest: string; size: number }> = {};
  for (const [arch, variant] of [['amd64', undefined], ['arm64', 'v8']] as const) {
    const config = Buffer.from(JSON.stringify({ ...JSON.parse(blob(manifest.config.digest).toString()), architecture: arch, ...(variant && { variant }) }));
    const configDigest = await pushBlob(registry, repository, config);
    const body = Buffer.from(JSON.stringify({ ...manifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length } }));
    digests[arch] = { digest: await pushManifest(registry, repository, sha256(body), body, OCI_MANIFEST), size: body.length };
  }
  const entry = (arch: string, platform: object) => ({ mediaType: OCI_MANIFEST, ...digests[arch], platform });
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...entry('amd64', { os: 'unknown', architecture: 'unknown' }), annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
        entry('amd64', { os: 'linux', architecture: 'amd64' }),
        entry('arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }),
      ],
    }),
  );
  return { index: await pushManifest(registry, repository, tag, index, OCI_INDEX), amd64: digests.amd64.digest, arm64: digests.arm64.digest };
}
