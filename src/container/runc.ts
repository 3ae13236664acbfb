/**
 * The runc binary: found on PATH, asked its version, told to kill or forget vmrun's containers.
 * vmrun keeps runc's state apart from other users of runc, under RUNC_ROOT.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { ContainerError } from '../errors';
import { executableOnPath } from '../paths';

export const RUNC_ROOT = '/run/vmrun/runc';

/** runc on PATH; ContainerError with the fix when there is none. */
export function runcPath(): string {
  const found = executableOnPath('runc');
  if (found) return found;
  throw new ContainerError('runc is not installed or not on PATH: apt-get install runc (or use --runtime vm)');
}

/** runc's own first line, e.g. `runc version 1.1.5+ds1`. */
export async function runcVersion(): Promise<string> {
  const { stdout } = await promisify(execFile)(runcPath(), ['--version'], { encoding: 'utf8' });
  return stdout.split('\n')[0].trim();
}

/** Runs `runc --root RUNC_ROOT ARGS...`; ContainerError with runc's message when it fails. */
export async function runc(args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(runcPath(), ['--root', RUNC_ROOT, ...args], { encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new ContainerError(`runc ${args[0]} failed: ${runcMessage(stderr) || (err as Error).message}`);
  }
}

/**
 * Kills and forgets a container whose runc was stopped the hard way, with what a runc killed
 * while creating it leaves (a state directory without state, empty cgroups); a gone one is fine.
 */
export async function removeContainer(id: string): Promise<void> {
  const state = path.join(RUNC_ROOT, id);
  if (fs.existsSync(path.join(state, 'state.json'))) await runc(['delete', '--force', id]);
  fs.rmSync(state, { recursive: true, force: true });
  for (const dir of cgroupDirs(id)) fs.promises.rmdir(dir).catch(() => undefined);
}

/** The cgroup directories of container `id` (cgroupsPath /vmrun/ID), v2 or every v1 hierarchy. */
function cgroupDirs(id: string): string[] {
  const root = '/sys/fs/cgroup';
  const hierarchies = fs.existsSync(path.join(root, 'cgroup.controllers')) ? [root] : fs.readdirSync(root).map((h) => path.join(root, h));
  return hierarchies.map((h) => path.join(h, 'vmrun', id)).filter((dir) => fs.existsSync(dir));
}

/** The gist of what runc printed: its last logrus `msg="..."`, else its last line. */
export function runcMessage(stderr: string): string {
  const lines = stderr.trim().split('\n').filter(Boolean);
  const last = lines.at(-1) ?? '';
  const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  return (msg ? msg[1].replace(/\\(.)/g, '$1') : last).trim();
}
