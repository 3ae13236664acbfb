/** Runs one of the guest-artefact build scripts in images/ (cached; progress, if any, on stderr). */
import { spawn } from 'node:child_process';
import path from 'node:path';

import { ImageBuildError } from '../errors';
import { packageRoot } from '../paths';

export function buildScript(name: string): string {
  return path.join(packageRoot, 'images', name, 'build.sh');
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
