/**
 * The process that hosts a `run -d` sandbox (`vmrun __supervise ID`, started detached by the
 * CLI): it runs the sandbox's main process with its output in the sandbox's log files, serves
 * the control socket while it runs, and records in state.json when it runs and how it ended
 * (or, with --rm, removes the sandbox). The VM's VMM dies with it; `rm` cleans up after a
 * supervisor that was killed.
 */
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';

import type { RunControl, Stdio } from '../agent/process-io';
import type { RunSpec } from '../agent/specs';
import { VmrunError } from '../errors';
import { cleanWorkDir } from './cleanup';
import { serveControl } from './control';
import { files, processStartTime, readState, removeSandbox, sandboxDir, writeState, type SandboxState } from './state';

export type StartRun = (stdio: Stdio, onStart: (control: RunControl) => void) => Promise<{ exitCode: number }>;

export async function superviseSandbox(state: SandboxState, spec: RunSpec, start: StartRun): Promise<void> {
  const dir = sandboxDir(state.id);
  let current: SandboxState = { ...state, supervisor: { pid: process.pid, start: processStartTime(process.pid) ?? '' } };
  writeState(current);
  const stdout = fs.createWriteStream(path.join(dir, files.stdout), { flags: 'a' });
  const stderr = fs.createWriteStream(path.join(dir, files.stderr), { flags: 'a' });
  const socketPath = path.join(dir, files.control);
  let server: net.Server | undefined;
  let exitCode: number;
  let error: string | undefined;
  try {
    ({ exitCode } = await start({ stdin: null, stdout, stderr }, (control) => {
      // Running once the process runs: a command that cannot start fails `run -d` itself.
      const serving = serveControl(socketPath, control, spec).then((s) => (server = s));
      Promise.all([serving, control.started]).then(
        () => {
          current = { ...current, status: 'running' };
          writeState(current);
        },
        () => control.stop(),
      );
    }));
  } catch (err) {
    exitCode = err instanceof VmrunError ? err.exitCode : 125;
    error = err instanceof Error ? err.message.split('\n')[0] : String(err);
  } finally {
    server?.close();
    fs.rmSync(socketPath, { force: true });
    await Promise.all([stdout, stderr].map((s) => new Promise((resolve) => s.end(resolve))));
  }
  if (current.workDir) cleanWorkDir(current.workDir);
  // `rm -f` may have removed it meanwhile.
  if (!readState(state.id)) return;
  // One that never ran stays for the waiting `run -d` to report (and remove).
  if (current.autoRemove && current.status === 'running') return removeSandbox(current);
  writeState({ ...current, status: 'exited', exitCode, error, finished: new Date().toISOString() });
}
