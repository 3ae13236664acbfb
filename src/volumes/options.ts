/**
 * A run's volumes as docker's flags describe them (`-v`, `--mount`, `--tmpfs`), checked and made
 * plain for both runtimes: host files and directories bound into the root (a virtio-fs share
 * served by a virtiofsd of its own in a VM, a bind mount under runc) and tmpfs mounts. Every
 * error here comes before anything is started, pulled or unpacked.
 */
import fs from 'node:fs';
import path from 'node:path';

import { UsageError } from '../errors';

export type VolumeSpec =
  /** A host path, resolved (symlinks followed, as docker does) when the run starts. */
  | { kind: 'bind'; source: string; target: string; readOnly: boolean }
  /** mount(8) options, docker's defaults first: later words win. */
  | { kind: 'tmpfs'; target: string; options: string[] };

export interface VolumeFlags {
  volume?: string[];
  mount?: string[];
  tmpfs?: string[];
}

/** The virtio-fs tag of a run's `index`th bind (from 0), as the VM's devices and the agent's MOUNT frames name it. */
export function shareTag(index: number): string {
  return `vol${index}`;
}

/** What docker gives a tmpfs unless told otherwise. */
const TMPFS_DEFAULTS = ['noexec', 'nosuid', 'nodev'];
const TMPFS_FLAGS = new Set(['ro', 'rw', 'exec', 'noexec', 'suid', 'nosuid', 'dev', 'nodev']);
const TMPFS_KEYS = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes']);
/** Above this a VM would run out of virtio-mmio slots; nobody binds more by hand. */
export const MAX_BINDS = 8;

/** The volumes the flags ask for, shallowest target first; UsageError for anything malformed. */
export function parseVolumeFlags(flags: VolumeFlags, cwd = process.cwd()): VolumeSpec[] {
  const volumes = [
    ...(flags.volume ?? []).map((v) => parseVolume(v, cwd)),
    ...(flags.mount ?? []).map((m) => parseMount(m, cwd)),
    ...(flags.tmpfs ?? []).map(parseTmpfs),
  ];
  const seen = new Set<string>();
  for (const v of volumes) {
    if (seen.has(v.target)) throw new UsageError(`duplicate mount point: ${v.target}: give each volume its own target`);
    seen.add(v.target);
  }
  if (volumes.filter((v) => v.kind === 'bind').length > MAX_BINDS) {
    throw new UsageError(`at most ${MAX_BINDS} host paths can be bound into one run: bind a directory that holds them`);
  }
  // docker mounts a parent before what goes inside it: by depth, the given order within one.
  const depth = (v: VolumeSpec) => v.target.split('/').length;
  return volumes.map((v, i) => ({ v, i })).sort((a, b) => depth(a.v) - depth(b.v) || a.i - b.i).map(({ v }) => v);
}

/**
 * Modes docker takes after the target that change nothing here: SELinux relabelling (no SELinux
 * in the guest), macOS's consistency hints, and the propagation vmrun gives every bind anyway.
 */
const IGNORED_MODES = new Set(['z', 'Z', 'consistent', 'cached', 'delegated', 'private', 'rprivate']);

/** `-v HOSTPATH:TARGET[:MODES]`, MODES being `ro` or `rw` and docker's no-ops, comma-separated. */
export function parseVolume(text: string, cwd = process.cwd()): VolumeSpec {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(`invalid volume specification: "${text}": expected HOSTPATH:TARGET[:ro]`);
  }
  const [source, target, modes = 'rw'] = parts;
  const words = modes.split(',');
  const access = words.filter((w) => w === 'ro' || w === 'rw');
  const unknown = words.find((w) => w !== 'ro' && w !== 'rw' && !IGNORED_MODES.has(w));
  if (unknown !== undefined || access.length > 1) {
    throw new UsageError(`invalid volume mode "${unknown ?? modes}" in "${text}": vmrun knows ro or rw (z, Z, cached, delegated and rprivate change nothing here)`);
  }
  const mode = access[0] ?? 'rw';
  if (!source.startsWith('/') && !source.startsWith('.')) {
    throw new UsageError(`named volumes are not supported ("${source}" in "${text}"): give an absolute or ./relative host path`);
  }
  return bind(path.resolve(cwd, source), target, mode === 'ro');
}

/** `--mount type=bind,source=...,target=...[,readonly]` or `type=tmpfs,target=...[,tmpfs-size=...][,tmpfs-mode=...]`. */
export function parseMount(text: string, cwd = process.cwd()): VolumeSpec {
  const fields = new Map<string, string | undefined>();
  for (const field of text.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const alias: Record<string, string> = { src: 'source', destination: 'target', dst: 'target', ro: 'readonly' };
    const name = alias[key] ?? key;
    if (fields.has(name)) throw new UsageError(`invalid --mount "${text}": ${key} is given twice`);
    fields.set(name, eq < 0 ? undefined : field.slice(eq + 1));
  }
  const type = fields.get('type') ?? 'volume';
  const target = fields.get('target');
  if (!target) throw new UsageError(`invalid --mount "${text}": target is required (target=/path)`);
  const known = (names: string[]) => {
    for (const key of fields.keys()) if (!names.includes(key)) throw new UsageError(`invalid --mount "${text}": unknown field ${key} for type=${type}`);
  };
  if (type === 'bind') {
    known(['type', 'source', 'target', 'readonly', 'bind-propagation', 'consistency']);
    const propagation = fields.get('bind-propagation');
    if (propagation !== undefined && propagation !== 'rprivate' && propagation !== 'private') {
      throw new UsageError(`invalid --mount "${text}": bind-propagation=${propagation} is not supported (every bind is rprivate)`);
    }
    const source = fields.get('source');
    if (!source) throw new UsageError(`invalid --mount "${text}": source is required for type=bind (source=/host/path)`);
    const readonly = fields.get('readonly');
    if (readonly !== undefined && !['true', 'false', '1', '0'].includes(readonly)) {
      throw new UsageError(`invalid --mount "${text}": readonly takes true or false, not ${readonly}`);
    }
    return bind(path.resolve(cwd, source), target, fields.has('readonly') && readonly !== 'false' && readonly !== '0');
  }
  if (type === 'tmpfs') {
    known(['type', 'target', 'tmpfs-size', 'tmpfs-mode', 'readonly']);
    const options = [];
    const size = fields.get('tmpfs-size');
    if (size !== undefined) options.push(`size=${size}`);
    const mode = fields.get('tmpfs-mode');
    if (mode !== undefined) options.push(`mode=${mode}`);
    if (fields.has('readonly') && fields.get('readonly') !== 'false') options.push('ro');
    return tmpfs(target, options, text);
  }
  throw new UsageError(`--mount type=${type} is not supported: vmrun binds host paths (type=bind) and makes tmpfs mounts (type=tmpfs)`);
}

/** `--tmpfs TARGET[:OPTIONS]`. */
export function parseTmpfs(text: string): VolumeSpec {
  const colon = text.indexOf(':');
  const target = colon < 0 ? text : text.slice(0, colon);
  const options = colon < 0 ? [] : text.slice(colon + 1).split(',');
  return tmpfs(target, options, text);
}

/**
 * The volumes with each bind's source resolved now (symlinks followed, as docker resolves them
 * when the container starts), so that what is shared is what the path named at that moment.
 */
export function withRealSources(volumes: VolumeSpec[]): VolumeSpec[] {
  return volumes.map((v) => {
    if (v.kind !== 'bind') return v;
    try {
      return { ...v, source: fs.realpathSync(v.source) };
    } catch {
      throw new UsageError(`bind source path does not exist: ${v.source} (create it first, or fix the path)`);
    }
  });
}

function bind(source: string, target: string, readOnly: boolean): VolumeSpec {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    throw new UsageError(`invalid mount config for type "bind": bind source path does not exist: ${source} (create it first, or fix the path)`);
  }
  if (!stat.isDirectory() && !stat.isFile()) {
    throw new UsageError(`cannot bind ${source}: only directories and regular files can be bound into a run`);
  }
  return { kind: 'bind', source, target: checkTarget(target), readOnly };
}

function tmpfs(target: string, options: string[], text: string): VolumeSpec {
  for (const option of options) {
    const [key, value] = option.split('=', 2);
    const ok = value === undefined ? TMPFS_FLAGS.has(key) : TMPFS_KEYS.has(key) && /^[0-9]+[kmgKMG%]?$/.test(value);
    if (!ok) throw new UsageError(`invalid tmpfs option "${option}" in "${text}": vmrun knows ${[...TMPFS_FLAGS].join(', ')}, size=, mode=, uid=, gid= and nr_inodes=`);
  }
  return { kind: 'tmpfs', target: checkTarget(target), options: [...TMPFS_DEFAULTS, ...options] };
}

function checkTarget(target: string): string {
  if (!target.startsWith('/')) throw new UsageError(`invalid mount target "${target}": it must be an absolute path`);
  const normal = path.posix.normalize(target).replace(/\/+$/, '');
  if (normal === '') throw new UsageError('invalid mount target "/": a volume cannot replace the root');
  if (/[\n\r\0]/.test(normal)) throw new UsageError('invalid mount target: it holds a newline or NUL');
  return normal;
}
