/**
 * `vmrun run -d`: the run checked and its image pulled here, where errors can still be told; then
 * a sandbox made (its name claimed) and a supervisor started detached to host it (`vmrun
 * __supervise ID`, below). The id is printed once the sandbox runs and takes execs; a run that
 * cannot start is reported here, and leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Command } from 'commander';

import { SandboxError, UsageError } from '../errors';
import { configureLog } from '../log';
import { supervise } from '../run/supervise';
import { cleanWorkDir } from '../sandboxes/cleanup';
import { createSandbox, files, liveStatus, readState, removeSandbox, sandboxDir, writeState } from '../sandboxes/state';
import { superviseSandbox } from '../sandboxes/supervisor';
import { prepareRun, runTimeoutMs, startRun, type PreparedRun, type RunFlags } from './run-command';

/** What the supervisor is handed: the run as checked here, not its flags to check again. */
interface DetachedRun {
  run: PreparedRun;
  timeoutMs?: number;
  log: { level?: RunFlags['logLevel']; format: RunFlags['logFormat'] };
}

const POLL_MS = 50;

export async function detach(imageRef: string, command: string[], flags: RunFlags): Promise<number> {
  configureLog({ level: flags.logLevel, format: flags.logFormat });
  if (flags.interactive || flags.tty) throw new UsageError('-d with -i or -t is not supported yet: run it detached without them, then vmrun exec -it NAME sh');
  const run = await prepareRun(imageRef, command, flags);
  const created = createSandbox({ name: flags.name, image: imageRef, command: run.spec.argv, runtime: flags.runtime, autoRemove: !!flags.rm });
  const dir = sandboxDir(created.id);
  // The supervisor's TMPDIR, where its runtime makes what `rm` must find after a hard kill.
  const state = { ...created, workDir: fs.mkdtempSync(path.join(os.tmpdir(), `vmrun-sandbox-${created.id.slice(0, 12)}-`)) };
  // Searchable as /tmp is, so that helpers with uids of their own (the jailed VMM, passt as
  // nobody) reach their private directories inside; not listable.
  fs.chmodSync(state.workDir, 0o711);
  writeState(state);
  try {
    // The image as opened here: the supervisor neither pulls it again nor finds a tag moved since.
    const detached: DetachedRun = { run, timeoutMs: runTimeoutMs(flags), log: { level: flags.logLevel, format: flags.logFormat } };
    fs.writeFileSync(path.join(dir, files.args), JSON.stringify(detached));
    const log = fs.openSync(path.join(dir, 'supervisor.log'), 'a');
    const child = spawn(process.execPath, [process.argv[1], '__supervise', state.id], { detached: true, stdio: ['ignore', log, log], env: { ...process.env, TMPDIR: state.workDir } });
    fs.closeSync(log);
    child.unref();
    for (;;) {
      const now = readState(state.id);
      // With --rm, gone means it ran and ended (one that never ran stays, to be reported here).
      if (!now && state.autoRemove) break;
      if (!now) throw new SandboxError('the sandbox was removed while it started');
      if (now.status === 'running') break;
      if (now.status === 'exited' || (now.supervisor && liveStatus(now) === 'dead') || child.exitCode !== null) {
        const why = now.error ?? (fs.readFileSync(path.join(dir, 'supervisor.log'), 'utf8').trim().split('\n').at(-1) || 'its supervisor ended');
        throw new SandboxError(why.replace(/^vmrun: /, ''), now.exitCode ?? 125);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } catch (err) {
    cleanWorkDir(state.workDir);
    if (readState(state.id)) removeSandbox(state);
    throw err;
  }
  console.log(state.id);
  return 0;
}

/** The hidden command the supervisor runs as. */
export function registerSuperviseCommand(program: Command): void {
  program
    .command('__supervise', { hidden: true })
    .argument('<id>')
    .action(async (id: string) => {
      const state = readState(id);
      if (!state) throw new SandboxError(`no such sandbox: ${id}`);
      const { run, timeoutMs, log } = JSON.parse(fs.readFileSync(path.join(sandboxDir(id), files.args), 'utf8')) as DetachedRun;
      configureLog(log);
      // runc's name for it: the sandbox's own, apart from foreground runs' --name.
      const runcName = `vmrun-${id.slice(0, 12)}`;
      await superviseSandbox(state, run.spec, (stdio, onStart) => supervise((o) => startRun(run, stdio, o, runcName), { timeoutMs, onStart }).then((exitCode) => ({ exitCode })));
    });
}
