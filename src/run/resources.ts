/**
 * What a run may use, as docker's flags spell it (`-m 512m`, `--cpus 1.5`), and how each
 * runtime takes it: a VM gets that much RAM and ceil(cpus) vCPUs; a container, cgroup limits.
 */
import { UsageError } from '../errors';

export interface Resources {
  memoryBytes?: number;
  cpus?: number;
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };
/** docker refuses less (moby daemon's linuxMinMemory). */
const MIN_MEMORY_BYTES = 6 << 20;

/** docker's RAMInBytes (go-units): a decimal number, then an optional binary unit: 512m, 1.5GiB, 100kb. */
export function parseBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(text);
  if (!match) {
    throw new UsageError(`invalid size ${JSON.stringify(text)}: expected a number with an optional unit b, k, m, g, t or p (e.g. 512m)`);
  }
  const bytes = Math.floor(Number(match[1]) * UNITS[(match[2] ?? '').toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`invalid size ${JSON.stringify(text)}: too large`);
  return bytes;
}

export function parseMemory(text: string): number {
  const bytes = parseBytes(text);
  if (bytes < MIN_MEMORY_BYTES) throw new UsageError(`memory ${JSON.stringify(text)} is below the minimum of 6m`);
  return bytes;
}

export function parseCpus(text: string): number {
  const cpus = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !(cpus > 0)) throw new UsageError(`invalid --cpus ${JSON.stringify(text)}: expected a number above 0, such as 1.5`);
  return cpus;
}

/** The VM's share: guest RAM in MiB (rounded up) and whole vCPUs (rounded up). */
export function vmResources(r: Resources): { memoryMiB?: number; vcpus?: number } {
  return {
    memoryMiB: r.memoryBytes === undefined ? undefined : Math.ceil(r.memoryBytes / (1 << 20)),
    vcpus: r.cpus === undefined ? undefined : Math.ceil(r.cpus),
  };
}
