/**
 * Registry credentials as docker keeps them: `$DOCKER_CONFIG/config.json` (else
 * `~/.docker/config.json`) with `credHelpers` per host, a default `credsStore`, and `auths`
 * entries holding base64 `user:password` (docker cli's config/credentials).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { RegistryError } from '../../errors';
import { log } from '../../log';
import { DOCKER_HUB } from '../reference';

/** The key docker files Docker Hub's credentials under. */
const HUB_SERVER = 'https://index.docker.io/v1/';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (`docker login` to some registries stores one instead of a password). */
  identityToken?: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

export function dockerConfigPath(): string {
  return path.join(process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json');
}

/** `https://index.docker.io/v1/`, `registry.example.com:5000/` and the like, as a bare host. */
function hostOf(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').split('/')[0];
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

/** The credentials docker would use for `host` (`docker.io` for Docker Hub), or undefined for anonymous. */
export async function credentialsFor(host: string): Promise<Credentials | undefined> {
  const file = dockerConfigPath();
  let config: DockerConfig;
  try {
    config = JSON.parse(await fs.promises.readFile(file, 'utf8')) as DockerConfig;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryError(`cannot read docker's credentials in ${file}: ${(err as Error).message}`);
  }
  const helper = Object.entries(config.credHelpers ?? {}).find(([key]) => hostOf(key) === host)?.[1] ?? config.credsStore;
  if (helper) {
    const fromHelper = await fromCredentialHelper(helper, host === DOCKER_HUB ? HUB_SERVER : host, file);
    if (fromHelper) return fromHelper;
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hostOf(key) === host)?.[1];
  if (!entry) return undefined;
  let { username = '', password = '' } = entry;
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new RegistryError(`${file}: the auth entry for ${host} is not base64 of user:password`);
    [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
  }
  if (entry.identitytoken) return { username, password, identityToken: entry.identitytoken };
  return username || password ? { username, password } : undefined;
}

/** Runs `docker-credential-HELPER get` (the docker-credential-helpers protocol). */
function fromCredentialHelper(helper: string, server: string, file: string): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const output = `${stdout}${stderr}`.trim();
        if (/credentials not found/i.test(output)) return resolve(undefined);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          // docker would fail here; a public image still pulls anonymously, so warn and go on.
          log.warn({ helper: program, config: file }, `${program} (named in ${file}) is not installed: pulling anonymously`);
          return resolve(undefined);
        }
        return reject(new RegistryError(`${program} get failed for ${server}: ${output.split('\n')[0] || err.message}`));
      }
      try {
        const reply = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (reply.Username === '<token>') resolve({ username: '', password: '', identityToken: reply.Secret ?? '' });
        else resolve({ username: reply.Username ?? '', password: reply.Secret ?? '' });
      } catch {
        reject(new RegistryError(`${program} get answered something that is not JSON for ${server}`));
      }
    });
    // A helper may answer without reading what it was sent: its answer is what counts.
    child.stdin?.on('error', () => undefined).end(server);
  });
}
