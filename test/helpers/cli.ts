/** Runs the built vmrun CLI (dist/src/cli/main.js) as a user would, and checks what it left behind. */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import type { Test } from 'tap';

import { packageRoot } from '../../src/paths';
import { layoutOf, type TestLayout } from './images';

const root = packageRoot;
export const CLI = path.join(root, 'dist', 'src', 'cli', 'main.js');

export interface CliOutcome {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface CliOptions {
  stdin?: Buffer;
  env?: NodeJS.ProcessEnv;
  /** Called with each new piece of stdout and the child, e.g. to signal it. */
  onStdout?: (soFar: string, child: ReturnType<typeof spawn>) => void;
  /** Called with stderr so far at each new piece. */
  onStderr?: (soFar: string) => void;
  /** Called with the child once it runs. */
  onStart?: (child: ReturnType<typeof spawn>) => void;
}

/**
 * The environment a run gets. In the rig (emulated, slow) it leaves out tap's NODE_OPTIONS: its
 * coverage hooks would cost each run about 2 s more, and the unit tests cover the CLI's code on
 * the host.
 */
function runEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (process.env.VMRUN_RIG !== '1') return env;
  const { NODE_OPTIONS: _, NODE_V8_COVERAGE: __, ...rest } = env;
  return rest;
}

export function vmrun(args: string[], options: CliOptions = {}): Promise<CliOutcome> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: runEnv(options.env ?? process.env), stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => {
    out.push(b);
    options.onStdout?.(Buffer.concat(out).toString(), child);
  });
  child.stderr.on('data', (b: Buffer) => {
    err.push(b);
    options.onStderr?.(Buffer.concat(err).toString());
  });
  options.onStart?.(child);
  child.stdin.on('error', () => {});
  child.stdin.end(options.stdin);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() })));
}

/** `oci:<layout>:<ref>` of a test layout. */
export async function ociRef(name: TestLayout, ref = 'latest'): Promise<string> {
  return `oci:${await layoutOf(name)}:${ref}`;
}

/** What runs leave behind if they clean up badly: mounts and files under `tmp`, runc containers of these names. */
export function leftovers(tmp: string, names: string[] = []): string[] {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(tmp));
  const files = fs.existsSync(tmp) ? fs.readdirSync(tmp) : [];
  const containers = names.filter((n) => fs.existsSync(path.join('/run/vmrun/runc', n)));
  return [...mounts.map((m) => `mount: ${m}`), ...files.map((f) => `file: ${tmp}/${f}`), ...containers.map((c) => `container: ${c}`)];
}

/** Resolves once `what()` holds, polling; rejects naming `message` after `ms`. */
export async function until(what: () => boolean, ms: number, message: string): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error(`timed out: ${message}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export type Expect = { code: number; stdout?: string | RegExp; stderr?: string | RegExp };

/** Runs `args` on both runtimes; they must agree, and match `expect`. */
export async function both(t: Test, args: string[], expect: Expect, options: CliOptions = {}): Promise<CliOutcome> {
  const [vm, container] = [
    await vmrun(['--runtime', 'vm', ...args], options),
    await vmrun(['--runtime', 'container', ...args], options),
  ];
  t.equal(vm.code, expect.code, `vm: exit code (stderr: ${vm.stderr.trim()})`);
  for (const [name, o] of [['vm', vm], ['container', container]] as const) {
    if (expect.stdout !== undefined) t.match(o.stdout.toString(), expect.stdout, `${name}: stdout`);
    if (expect.stderr !== undefined) t.match(o.stderr, expect.stderr, `${name}: stderr`);
  }
  t.equal(container.code, vm.code, 'same exit code');
  t.equal(container.stderr, vm.stderr, 'same stderr');
  t.ok(container.stdout.equals(vm.stdout), `same stdout (vm ${JSON.stringify(vm.stdout.toString().slice(0, 300))}, container ${JSON.stringify(container.stdout.toString().slice(0, 300))})`);
  return vm;
}

export const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

/** passt or pasta processes still running. */
export function passtProcesses(): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', '(^|/)pas(st|ta)(\\.avx2)? '], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** virtiofsd processes still running. */
export function virtiofsdProcesses(): string[] {
  try {
    return execFileSync('pgrep', ['-a', 'virtiofsd'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
