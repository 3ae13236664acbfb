/**
 * What a sandbox's supervisor leaves when it is killed outright: its runtime's helpers (passt,
 * pasta, virtiofsd: each named by a path in the sandbox's work directory, TMPDIR of the
 * supervisor), mounts (a container's overlay) and files in that directory. `rm` ends them all; a
 * VM's VMM needs nothing here, it dies with its supervisor.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { log } from '../log';

export function cleanWorkDir(dir: string): void {
  if (!path.isAbsolute(dir) || !fs.existsSync(dir)) return;
  for (const pid of processesNaming(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  // Deepest first; lazily, since a process may still hold one for a moment.
  for (const mount of mountsUnder(dir).sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
    } catch (err) {
      log.warn({ mount, err: (err as Error).message }, 'unmounting a sandbox leftover failed');
    }
  }
  if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
}

/** Processes (not this one) with `dir` in their command line. */
function processesNaming(dir: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid).flatMap((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(dir) ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** Mount points at or below `dir` (/proc/self/mounts escapes spaces and the like as octal). */
function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((line) => line.split(' ')[1] ?? '')
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}
