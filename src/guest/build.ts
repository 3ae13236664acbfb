/** Runs one of the guest-artefact build scripts in images/ (cached; progress, if any, on stderr). */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { ImageBuildError } from '../errors';
import { packageRoot } from '../paths';

export function buildScript(name: string): string {
  return path.join(packageRoot, 'images', name, 'build.sh');
}

/**
 * The cache key the build scripts compute (images/cache.sh's content_key): the first 16 hex
 * digits of the SHA-256 of the build's input files, concatenated in the order given. Knowing it
 * here finds a cached artefact without starting the script: seconds per run under emulation,
 * where each of its forks costs a tenth of a second. The script stays the authority: when this
 * finds nothing, it runs.
 */
export function contentKey(files: string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(fs.readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

const built = new Map<string, Promise<string>>();

/**
 * Runs images/<name>/build.sh and returns the last line it printed: the artefact's path. Cache
 * entries never change once written, so each script runs at most once per process.
 */
export function runBuildScript(name: string, what: string, args: string[] = []): Promise<string> {
  const key = [name, ...args].join(' ');
  let path = built.get(key);
  if (!path) {
    path = runOnce(name, what, args);
    path.catch(() => built.delete(key));
    built.set(key, path);
  }
  return path;
}

async function runOnce(name: string, what: string, args: string[]): Promise<string> {
  const child = spawn('bash', [buildScript(name), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('close', resolve);
    child.on('error', (err) => reject(new ImageBuildError(`building ${what} failed: cannot run bash (${err.message})`)));
  });
  if (code !== 0) throw new ImageBuildError(`building ${what} failed (exit ${code}); see the messages above`);
  return stdout.trim().split('\n').pop() ?? '';
}
