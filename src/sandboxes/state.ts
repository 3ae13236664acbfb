/**
 * Where the sandboxes of `vmrun run -d` live between commands: a directory each under the state
 * root (/run/vmrun/sandboxes for root, $XDG_RUNTIME_DIR/vmrun/sandboxes otherwise; gone at a
 * reboot, as the sandboxes are), holding state.json, the main process's logs and the supervisor's
 * control socket. state.json is replaced whole (written aside, then renamed). A name is claimed by
 * creating names/NAME atomically: of two CLIs racing for one name, one wins. Whether a sandbox
 * still runs is asked of the kernel: its supervisor's pid with that pid's start time, so a reused
 * pid is never taken for it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { SandboxError } from '../errors';

export type SandboxStatus = 'created' | 'running' | 'exited';

export interface SandboxState {
  /** 64 hex digits, as docker's ids; the first 12 are shown. */
  id: string;
  name: string;
  image: string;
  command: string[];
  runtime: string;
  /** ISO 8601. */
  created: string;
  status: SandboxStatus;
  /** With `exited`: the main process's exit code, or the reason it never ran. */
  exitCode?: number;
  error?: string;
  finished?: string;
  /** `--rm`: the supervisor removes the sandbox once it has ended. */
  autoRemove: boolean;
  /** The supervisor's TMPDIR: everything its runtime makes (sockets, mounts, bundles) is in it. */
  workDir?: string;
  /** The supervisor process: pid and its start time (field 22 of /proc/PID/stat). */
  supervisor?: { pid: number; start: string };
}

export function stateRoot(): string {
  if (process.env.VMRUN_STATE_DIR) return process.env.VMRUN_STATE_DIR;
  if (process.getuid?.() === 0) return '/run/vmrun/sandboxes';
  return path.join(process.env.XDG_RUNTIME_DIR || path.join(os.tmpdir(), `vmrun-${process.getuid?.()}`), 'vmrun', 'sandboxes');
}

export function sandboxDir(id: string): string {
  return path.join(stateRoot(), id);
}

export const files = {
  state: 'state.json',
  stdout: 'stdout.log',
  stderr: 'stderr.log',
  control: 'control.sock',
  args: 'args.json',
} as const;

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Makes a sandbox's directory and claims its name; SandboxError when the name is taken. */
export function createSandbox(fields: Omit<SandboxState, 'id' | 'created' | 'status' | 'name'> & { name?: string }): SandboxState {
  const id = randomBytes(32).toString('hex');
  const name = fields.name ?? `vmrun_${id.slice(0, 8)}`;
  if (!NAME.test(name)) throw new SandboxError(`invalid name ${JSON.stringify(name)}: use letters, digits, _ . and -, starting with a letter or digit`);
  const root = stateRoot();
  fs.mkdirSync(path.join(root, 'names'), { recursive: true, mode: 0o700 });
  const dir = sandboxDir(id);
  fs.mkdirSync(dir, { mode: 0o700 });
  const state: SandboxState = { ...fields, id, name, created: new Date().toISOString(), status: 'created' };
  writeState(state);
  try {
    // A symlink is made whole or not at all: the first CLI to make it owns the name.
    fs.symlinkSync(id, path.join(root, 'names', name));
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const holder = nameHolder(name);
    throw new SandboxError(`the name "${name}" is already in use by sandbox ${holder?.slice(0, 12) ?? '(being removed)'}: remove it (vmrun rm ${name}) or choose another --name`);
  }
  return state;
}

function nameHolder(name: string): string | undefined {
  try {
    return fs.readlinkSync(path.join(stateRoot(), 'names', name));
  } catch {
    return undefined;
  }
}

export function writeState(state: SandboxState): void {
  const file = path.join(sandboxDir(state.id), files.state);
  const aside = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(aside, JSON.stringify(state));
  fs.renameSync(aside, file);
}

export function readState(id: string): SandboxState | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(sandboxDir(id), files.state), 'utf8')) as SandboxState;
  } catch {
    return undefined;  // removed meanwhile, or being made
  }
}

/** Every sandbox, oldest first. */
export function listSandboxes(): SandboxState[] {
  let ids: string[];
  try {
    ids = fs.readdirSync(stateRoot()).filter((e) => /^[0-9a-f]{64}$/.test(e));
  } catch {
    return [];
  }
  return ids.map(readState).filter((s): s is SandboxState => s !== undefined).sort((a, b) => a.created.localeCompare(b.created));
}

/** A sandbox by name, full id or unique id prefix, as docker finds containers. */
export function findSandbox(ref: string): SandboxState {
  const all = listSandboxes();
  const found = all.find((s) => s.name === ref) ?? all.find((s) => s.id === ref);
  if (found) return found;
  const byPrefix = /^[0-9a-f]+$/.test(ref) ? all.filter((s) => s.id.startsWith(ref)) : [];
  if (byPrefix.length === 1) return byPrefix[0];
  if (byPrefix.length > 1) throw new SandboxError(`"${ref}" matches more than one sandbox: give more of the id`);
  throw new SandboxError(`no such sandbox: ${ref} (vmrun ps -a lists them)`);
}

/** What `ps` should believe: a sandbox whose supervisor is gone is not running, whatever its file says. */
export function liveStatus(state: SandboxState): SandboxStatus | 'dead' {
  if (state.status === 'exited') return 'exited';
  return state.supervisor && processStartTime(state.supervisor.pid) === state.supervisor.start ? state.status : 'dead';
}

/** Field 22 of /proc/PID/stat (after the command's closing parenthesis), or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Removes a sandbox's directory and frees its name. */
export function removeSandbox(state: SandboxState): void {
  const link = path.join(stateRoot(), 'names', state.name);
  if (nameHolder(state.name) === state.id) fs.rmSync(link, { force: true });
  fs.rmSync(sandboxDir(state.id), { recursive: true, force: true });
}
