/**
 * Registry authentication against real registries on loopback: htpasswd Basic auth and token
 * auth (a token service in this process, RS256 JWTs the registry verifies), with credentials from
 * docker's config.json, its credential helpers, or none.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';

import { RegistryError } from '../../src/errors';
import { credentialsFor } from '../../src/image/registry/credentials';
import { parseChallenges } from '../../src/image/registry/auth';
import { pullImage } from '../../src/image/store';
import { layoutOf } from '../helpers/images';
import { dockerConfig, freshStore, pushLayout, registryBlobPath, startProxy, startRegistry, storeState } from '../helpers/registry';

const FAST = { attempts: 3, baseDelayMs: 20, maxDelayMs: 5_000 };
const USERS = { alice: 'wonderland' };
const auth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');
const nothing = { refs: [], corrupt: [], ingest: [], leftovers: [] };

/** Puts `docker-credential-vmrun-test`, a shell script, on PATH for one test. */
function credentialHelper(t: Test, script: string): void {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-helper-'));
  fs.writeFileSync(path.join(bin, 'docker-credential-vmrun-test'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  const savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
  t.teardown(() => {
    process.env.PATH = savedPath;
    fs.rmSync(bin, { recursive: true, force: true });
  });
}

t.test('WWW-Authenticate challenges parse as RFC 7235 writes them', async (t) => {
  t.same(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  t.same(parseChallenges('Basic realm="a \\"quoted\\" realm", Bearer realm=x'), [
    { scheme: 'basic', params: { realm: 'a "quoted" realm' } },
    { scheme: 'bearer', params: { realm: 'x' } },
  ]);
});

t.test('credentials come from auths, credHelpers and credsStore as docker keeps them', async (t) => {
  freshStore(t);
  credentialHelper(
    t,
    `read server\ncase "$server" in\n  helped.example.com) echo '{"ServerURL":"helped.example.com","Username":"bob","Secret":"s3cret"}' ;;\n  https://index.docker.io/v1/) echo '{"Username":"<token>","Secret":"refresh-me"}' ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac`,
  );
  dockerConfig({
    auths: { 'https://plain.example.com/v1/': { auth: auth('carol', 'pa:ss') }, 'store-miss.example.com': { auth: auth('dan', 'x') } },
    credHelpers: { 'helped.example.com': 'vmrun-test' },
  });
  t.same(await credentialsFor('plain.example.com'), { username: 'carol', password: 'pa:ss' });
  t.same(await credentialsFor('helped.example.com'), { username: 'bob', password: 's3cret' });
  t.equal(await credentialsFor('nobody.example.com'), undefined);
  dockerConfig({ credsStore: 'vmrun-test', auths: { 'store-miss.example.com': { auth: auth('dan', 'x') } } });
  t.same(await credentialsFor('docker.io'), { username: '', password: '', identityToken: 'refresh-me' }, "Docker Hub's key, an identity token");
  t.same(await credentialsFor('store-miss.example.com'), { username: 'dan', password: 'x' }, 'not in the store: auths');
  dockerConfig({ auths: { x: { auth: Buffer.from('no-colon').toString('base64') } } });
  await t.rejects(credentialsFor('x'), { name: RegistryError.name, message: `${process.env.DOCKER_CONFIG}/config.json: the auth entry for x is not base64 of user:password` });
});

t.test('htpasswd Basic auth', async (t) => {
  const registry = await startRegistry({ auth: 'htpasswd', users: USERS });
  t.teardown(() => registry.stop());
  await pushLayout(registry, await layoutOf('busybox'), 'latest', 'busybox:latest', 'alice:wonderland');
  const ref = `${registry.host}/busybox:latest`;

  t.test('good credentials pull', async (t) => {
    const store = freshStore(t);
    dockerConfig({ auths: { [registry.host]: { auth: auth('alice', 'wonderland') } } });
    await pullImage(ref, { retry: FAST });
    t.same(storeState(store), { ...nothing, refs: [ref] });
  });

  t.test('a wrong password: one line, and nothing stored', async (t) => {
    const store = freshStore(t);
    dockerConfig({ auths: { [`http://${registry.host}`]: { auth: auth('alice', 'wrong') } } });
    const error = await pullImage(ref, { retry: FAST }).catch((e: Error) => e);
    t.match(error, {
      name: RegistryError.name,
      message: `${registry.host} rejected the credentials of alice (UNAUTHORIZED: authentication required): log in again with docker login ${registry.host}`,
    });
    t.same(storeState(store), nothing);
  });

  t.test('no credentials: told to log in', async (t) => {
    const store = freshStore(t);
    await t.rejects(pullImage(ref, { retry: FAST }), {
      name: RegistryError.name,
      message: `${registry.host} requires authentication: log in with docker login ${registry.host} (vmrun reads ${process.env.DOCKER_CONFIG}/config.json)`,
    });
    t.same(storeState(store), nothing);
  });

  t.test('credentials from a credential helper', async (t) => {
    const store = freshStore(t);
    credentialHelper(t, `echo '{"Username":"alice","Secret":"wonderland"}'`);
    dockerConfig({ credHelpers: { [registry.host]: 'vmrun-test' } });
    await pullImage(ref, { retry: FAST });
    t.same(storeState(store).refs, [ref]);
  });
});

t.test('token auth', async (t) => {
  const registry = await startRegistry({ auth: 'token', users: USERS, tokenSeconds: 12 });
  t.teardown(() => registry.stop());
  const busybox = await layoutOf('busybox');
  await pushLayout(registry, busybox, 'latest', 'busybox:latest', 'alice:wonderland');
  await pushLayout(registry, busybox, 'entrypoint', 'busybox:entrypoint', 'alice:wonderland');
  const scope = 'repository:busybox:pull';

  t.test('with credentials: one token for the scope, cached until it expires', async (t) => {
    const store = freshStore(t);
    dockerConfig({ auths: { [registry.host]: { auth: auth('alice', 'wonderland') } } });
    registry.tokenRequests.length = 0;
    await pullImage(`${registry.host}/busybox:latest`, { retry: FAST });
    await pullImage(`${registry.host}/busybox:entrypoint`, { retry: FAST });
    t.same(registry.tokenRequests, [{ scope, authorization: `Basic ${auth('alice', 'wonderland')}` }], 'one token served both pulls');
    // Tokens last 12 s and are renewed 10 s early: after 2 s, a new one.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await pullImage(`${registry.host}/busybox:latest`, { retry: FAST });
    t.equal(registry.tokenRequests.length, 2, 'an expired token is not reused');
    t.same(storeState(store).refs, [`${registry.host}/busybox:entrypoint`, `${registry.host}/busybox:latest`], 'pulled again, latest is named anew');
  });

  t.test('wrong credentials: one line, and nothing stored', async (t) => {
    const store = freshStore(t);
    dockerConfig({ auths: { [registry.host]: { auth: auth('alice', 'nope') } } });
    await t.rejects(pullImage(`${registry.host}/busybox`, { retry: FAST }), {
      name: RegistryError.name,
      message: `${registry.host} rejected the credentials of alice (UNAUTHORIZED: invalid username or password): log in again with docker login ${registry.host}`,
    });
    t.same(storeState(store), nothing);
  });

  t.test('anonymous, where the token service gives no access: pull access denied', async (t) => {
    const store = freshStore(t);
    await t.rejects(pullImage(`${registry.host}/busybox`, { retry: FAST }), {
      name: RegistryError.name,
      message: `pull access denied for ${registry.host}/busybox (UNAUTHORIZED: authentication required): the repository does not exist or needs docker login`,
    });
    t.same(storeState(store), nothing);
  });
});

t.test('anonymous token auth, and a blob redirect to another host carries no Authorization', async (t) => {
  const store = freshStore(t);
  const registry = await startRegistry({ auth: 'token', users: USERS, anonymousPull: true });
  t.teardown(() => registry.stop());
  await pushLayout(registry, await layoutOf('busybox'), 'latest', 'busybox:latest', 'alice:wonderland');
  const seen: { where: string; authorization?: string }[] = [];
  // The "CDN": another origin (localhost, not 127.0.0.1), serving blobs from the registry's storage.
  const cdn = http.createServer((req, res) => {
    seen.push({ where: 'cdn', authorization: req.headers.authorization });
    res.end(fs.readFileSync(registryBlobPath(registry, (req.url ?? '').slice(1))));
  });
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  t.teardown(() => cdn.close());
  const cdnPort = (cdn.address() as { port: number }).port;
  const proxy = await startProxy(registry.host, (req, res) => {
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
    if (!blob || !req.headers.authorization) return false;
    seen.push({ where: 'registry', authorization: req.headers.authorization });
    res.writeHead(307, { location: `http://localhost:${cdnPort}/${blob[1]}` }).end();
    return true;
  });
  t.teardown(() => proxy.stop());
  await pullImage(`${proxy.host}/busybox`, { retry: FAST });
  t.equal(registry.tokenRequests.at(-1)?.authorization, undefined, 'the token was asked for anonymously');
  t.equal(seen.length, 4, 'config and layer, each redirected');
  t.ok(seen.filter((s) => s.where === 'registry').every((s) => s.authorization?.startsWith('Bearer ')), 'the registry got the token');
  t.same(seen.filter((s) => s.where === 'cdn'), [{ where: 'cdn', authorization: undefined }, { where: 'cdn', authorization: undefined }], 'the CDN did not');
  t.same(storeState(store).refs, [`${proxy.host}/busybox:latest`]);
});
