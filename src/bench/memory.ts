/**
 * Host memory as the kernel accounts it: a process's RSS and PSS (smaps_rollup), resident memory
 * in mappings of one size (a VMM's guest RAM), the PSS of every process started since a moment
 * (on a quiet host: what a set of instances brought), and a container's cgroup (v1 or v2).
 * Every reader returns undefined for what is gone or unreadable: processes end mid-sample.
 */
import fs from 'node:fs';
import path from 'node:path';

const KIB = 1024;

/** RSS and PSS of a process, in bytes. */
export function processMemory(pid: number | 'self'): { rss: number; pss: number } | undefined {
  const text = read(`/proc/${pid}/smaps_rollup`);
  if (text === undefined) return undefined;
  return { rss: field(text, 'Rss') * KIB, pss: field(text, 'Pss') * KIB };
}

/**
 * RSS and PSS of a process in mappings exactly `size` bytes long (a VMM's guest RAM): for a VM
 * restored from a snapshot, the pages it shares with the others through the page cache count
 * once in all in the PSS, fully in the RSS.
 */
export function mappingMemoryOf(pid: number, size: number): { rss: number; pss: number } | undefined {
  const text = read(`/proc/${pid}/smaps`);
  if (text === undefined) return undefined;
  let mappingSize = 0;
  const memory = { rss: 0, pss: 0 };
  for (const line of text.split('\n')) {
    const m = /^(Size|Rss|Pss):\s+(\d+) kB/.exec(line);
    if (m?.[1] === 'Size') mappingSize = Number(m[2]) * KIB;
    else if (m && mappingSize === size) memory[m[1] === 'Rss' ? 'rss' : 'pss'] += Number(m[2]) * KIB;
  }
  return memory;
}

/** The host's processes now. */
export function processIds(): Set<number> {
  return new Set(fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number));
}

/**
 * The PSS of every process that was not running at `before` (this one aside): what a set of
 * instances started since costs the host, whoever their parent (a daemonised pasta, a runc
 * container's init, a jailed VMM, passt, virtiofsd). Shared pages count once in all.
 */
export function pssSince(before: Set<number>): number {
  let sum = 0;
  for (const pid of processIds()) {
    if (before.has(pid) || pid === process.pid) continue;
    sum += processMemory(pid)?.pss ?? 0;
  }
  return sum;
}

/** Processes whose command line has `word` as one argument (e.g. runc with a container's name). */
export function pidsWithArgument(word: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    const args = read(`/proc/${d}/cmdline`)?.split('\0') ?? [];
    return args.includes(word) ? [Number(d)] : [];
  });
}

/** The memory cgroup runc made for `cgroupsPath`: its processes, usage and peak (bytes). */
export function cgroupMemory(cgroupsPath: string): { pids: number[]; usage: number; peak?: number } | undefined {
  const v2 = path.join('/sys/fs/cgroup', cgroupsPath);
  const v1 = path.join('/sys/fs/cgroup/memory', cgroupsPath);
  const [dir, usageFile, peakFile] = fs.existsSync('/sys/fs/cgroup/cgroup.controllers')
    ? [v2, 'memory.current', 'memory.peak']
    : [v1, 'memory.usage_in_bytes', 'memory.max_usage_in_bytes'];
  const usage = read(path.join(dir, usageFile));
  if (usage === undefined) return undefined;
  const peak = read(path.join(dir, peakFile));
  const pids = (read(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number);
  return { pids, usage: Number(usage), peak: peak === undefined ? undefined : Number(peak) };
}

function field(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
