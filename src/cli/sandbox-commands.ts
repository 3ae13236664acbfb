/**
 * The commands for sandboxes made by `run -d`, as docker spells them: ps, exec, logs, stop, kill,
 * rm and wait. Each finds its sandbox by name, id or id prefix (src/sandboxes/state.ts) and
 * reaches a running one through its supervisor's control socket.
 */
import fs from 'node:fs';
import path from 'node:path';

import { Option, type Command } from 'commander';

import { removeContainer } from '../container/runc';
import { SandboxError, UsageError } from '../errors';
import { environment } from '../run/env-file';
import { cleanWorkDir } from '../sandboxes/cleanup';
import { requestControl, requestExec } from '../sandboxes/control';
import { copyFromSandbox, copyToSandbox, type ExecIn } from '../sandboxes/copy';
import { files, findSandbox, listSandboxes, liveStatus, readState, removeSandbox, sandboxDir, type SandboxState } from '../sandboxes/state';
import { forwardResizes, onUserSignal, terminalSize, withRawTerminal } from './terminal';

const collect = (value: string, all: string[]) => [...all, value];
const POLL_MS = 100;
const DEFAULT_STOP_SECONDS = 10;

export function registerSandboxCommands(program: Command): void {
  program
    .command('ps')
    .description('list sandboxes made by run -d (running ones; -a: all)')
    .option('-a, --all', 'also those that have ended')
    .option('-q, --quiet', 'ids only')
    .action((opts: { all?: boolean; quiet?: boolean }) => {
      const shown = listSandboxes().filter((s) => opts.all || liveStatus(s) === 'running');
      if (opts.quiet) return shown.forEach((s) => console.log(s.id.slice(0, 12)));
      const rows = shown.map((s) => [s.id.slice(0, 12), s.image, JSON.stringify(s.command.join(' ')), ago(s.created), describe(s), s.runtime, s.name]);
      printTable([['SANDBOX ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'RUNTIME', 'NAMES'], ...rows]);
    });

  program
    .command('exec')
    .description('run a command in a running sandbox')
    .argument('<sandbox>', 'name, id or id prefix')
    .argument('<command...>', 'the command and its arguments')
    .passThroughOptions()
    .option('-i, --interactive', 'pass stdin to the command')
    .option('-t, --tty', 'run the command on a pseudo-terminal')
    .option('-e, --env <NAME[=VALUE]>', 'set a variable; repeatable', collect, [])
    .option('--env-file <file>', 'read variables from a file; repeatable', collect, [])
    .option('-u, --user <user>', 'name|uid[:group|gid] (default: the sandbox\'s)')
    .option('-w, --workdir <dir>', 'working directory (default: the sandbox\'s)')
    .action(async (ref: string, argv: string[], opts: { interactive?: boolean; tty?: boolean; env: string[]; envFile: string[]; user?: string; workdir?: string }) => {
      const socket = runningSocket(findSandbox(ref));
      const exec = { argv, env: environment(opts.envFile, opts.env), user: opts.user, workdir: opts.workdir, tty: opts.tty ? terminalSize() : undefined };
      const stdio = { stdin: opts.interactive ? process.stdin : null, stdout: process.stdout, stderr: process.stderr };
      let unsubscribe: (() => void) | undefined;
      let stopResizes: (() => void) | undefined;
      try {
        process.exitCode = await withRawTerminal(!!(opts.tty && opts.interactive), () =>
          requestExec(socket, exec, stdio, (control) => {
            unsubscribe = onUserSignal((signal) => control.signal(signal));
            if (opts.tty) stopResizes = forwardResizes(control);
          }),
        );
      } finally {
        unsubscribe?.();
        stopResizes?.();
        if (opts.interactive) process.stdin.destroy();
      }
    });

  program
    .command('cp')
    .description('copy files between a sandbox and the host: cp SANDBOX:PATH HOSTPATH, or cp HOSTPATH SANDBOX:PATH')
    .argument('<from>')
    .argument('<to>')
    .action(async (from: string, to: string) => {
      const [src, dest] = [sandboxSide(from), sandboxSide(to)];
      if (!!src === !!dest) throw new UsageError('cp copies between a sandbox and the host: give SANDBOX:PATH on exactly one side (a host path with a colon: ./name:x)');
      const side = (src ?? dest)!;
      const socket = runningSocket(findSandbox(side.sandbox));
      const exec: ExecIn = (options, stdio) => requestExec(socket, options, stdio);
      if (src) await copyFromSandbox(exec, src.path, to);
      else await copyToSandbox(exec, from, dest!.path);
    });

  program
    .command('logs')
    .description('the output of a sandbox\'s main process')
    .argument('<sandbox>', 'name, id or id prefix')
    .option('-f, --follow', 'keep printing until the sandbox ends')
    .action(async (ref: string, opts: { follow?: boolean }) => {
      const state = findSandbox(ref);
      const dir = sandboxDir(state.id);
      const offsets = { out: 0, err: 0 };
      const copy = () => {
        offsets.out = copyFrom(path.join(dir, files.stdout), offsets.out, process.stdout);
        offsets.err = copyFrom(path.join(dir, files.stderr), offsets.err, process.stderr);
      };
      copy();
      while (opts.follow) {
        const now = readState(state.id);
        if (!now || liveStatus(now) !== 'running') break;
        await sleep(POLL_MS);
        copy();
      }
      copy();
    });

  program
    .command('stop')
    .description('stop sandboxes: SIGTERM to the main process, SIGKILL after a grace period')
    .argument('<sandbox...>', 'names, ids or id prefixes')
    .option('-t, --time <seconds>', 'seconds to wait before killing', String(DEFAULT_STOP_SECONDS))
    .action(async (refs: string[], opts: { time: string }) => {
      const seconds = Number(opts.time);
      if (!/^\d+$/.test(opts.time)) throw new UsageError(`invalid --time ${JSON.stringify(opts.time)}: a whole number of seconds`);
      for (const ref of refs) {
        const state = findSandbox(ref);
        if (liveStatus(state) === 'running') {
          await requestControl(socketOf(state), { op: 'signal', signal: 'SIGTERM' }).catch(() => {});
          if (!(await ended(state, seconds * 1000))) {
            await requestControl(socketOf(state), { op: 'stop' }).catch(() => {});
            await ended(state, Infinity);
          }
        }
        console.log(ref);
      }
    });

  program
    .command('kill')
    .description('send a signal to sandboxes\' main processes (default SIGKILL)')
    .argument('<sandbox...>', 'names, ids or id prefixes')
    .addOption(new Option('-s, --signal <signal>', 'the signal').default('KILL'))
    .action(async (refs: string[], opts: { signal: string }) => {
      const signal = (opts.signal.startsWith('SIG') ? opts.signal : `SIG${opts.signal}`).toUpperCase() as NodeJS.Signals;
      if (!(signal in (await import('node:os')).constants.signals)) throw new UsageError(`invalid signal ${JSON.stringify(opts.signal)}: a name such as TERM or KILL`);
      for (const ref of refs) {
        await requestControl(runningSocket(findSandbox(ref)), { op: 'signal', signal });
        console.log(ref);
      }
    });

  program
    .command('rm')
    .description('remove sandboxes (running ones only with -f, which kills them)')
    .argument('<sandbox...>', 'names, ids or id prefixes')
    .option('-f, --force', 'kill a running sandbox first')
    .action(async (refs: string[], opts: { force?: boolean }) => {
      for (const ref of refs) {
        const state = findSandbox(ref);
        const status = liveStatus(state);
        if (status === 'running' || status === 'created') {
          if (!opts.force) throw new SandboxError(`cannot remove running sandbox ${ref}: stop it first (vmrun stop ${ref}) or use rm -f`);
          await requestControl(socketOf(state), { op: 'stop' }).catch(() => {});
          await ended(state, Infinity);
        }
        // A supervisor killed outright leaves its runc container behind (a VM's VMM dies with it).
        if (state.runtime === 'container') await removeContainer(`vmrun-${state.id.slice(0, 12)}`).catch(() => {});
        if (state.workDir) cleanWorkDir(state.workDir);
        removeSandbox(state);
        console.log(ref);
      }
    });

  program
    .command('wait')
    .description('wait until sandboxes end, and print their exit codes')
    .argument('<sandbox...>', 'names, ids or id prefixes')
    .action(async (refs: string[]) => {
      for (const ref of refs) {
        const state = findSandbox(ref);
        await ended(state, Infinity);
        const last = readState(state.id);
        console.log(last?.exitCode ?? 137);
      }
    });
}

/** `SANDBOX:PATH`, or undefined for a host path (one starting with / or ., or without a colon). */
function sandboxSide(arg: string): { sandbox: string; path: string } | undefined {
  if (arg.startsWith('/') || arg.startsWith('.')) return undefined;
  const colon = arg.indexOf(':');
  return colon > 0 ? { sandbox: arg.slice(0, colon), path: arg.slice(colon + 1) } : undefined;
}

function socketOf(state: SandboxState): string {
  return path.join(sandboxDir(state.id), files.control);
}

function runningSocket(state: SandboxState): string {
  const status = liveStatus(state);
  if (status !== 'running') throw new SandboxError(`sandbox ${state.name} is not running (${status}): start another with vmrun run -d`);
  return socketOf(state);
}

/** Resolves true once the sandbox has ended (its supervisor gone or done), false after `ms`. */
async function ended(state: SandboxState, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const now = readState(state.id);
    if (!now || liveStatus(now) === 'exited' || liveStatus(now) === 'dead') return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
}

function describe(state: SandboxState): string {
  const status = liveStatus(state);
  if (status === 'running') return `Up ${ago(state.created).replace(/ ago$/, '')}`;
  if (status === 'created') return 'Created';
  if (status === 'dead') return 'Dead';
  return `Exited (${state.exitCode ?? '?'}) ${state.finished ? ago(state.finished) : ''}`.trim();
}

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join(''));
}

/** Copies what `file` holds past `offset` to `out`; returns the new offset. */
function copyFrom(file: string, offset: number, out: NodeJS.WritableStream): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return offset;
  }
  try {
    const buffer = Buffer.alloc(64 << 10);
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, offset);
      if (n <= 0) return offset;
      out.write(Buffer.from(buffer.subarray(0, n)));
      offset += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
