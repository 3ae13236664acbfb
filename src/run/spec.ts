/**
 * The process an image runs, decided docker's way from the image config and the user's options:
 * one place for these rules, so that every runtime starts the same process.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

import type { ProcessSpec, RunSpec } from '../agent/specs';
import { RunSpecError } from '../errors';
import type { ImageConfig } from '../image/config';
import { GUEST_NETWORK, type HostEntry, type NetworkSpec } from '../network/options';
import type { VolumeSpec } from '../volumes/options';

export type { RunSpec };

/** docker's PATH for an image that sets none (moby oci/defaults.go). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunOptions {
  /** Replaces the image's Cmd. */
  command?: string[];
  /** Replaces the image's Entrypoint and clears its Cmd (`''`: no entrypoint at all). */
  entrypoint?: string;
  /** `NAME=value` entries, winning over the image's. */
  env?: string[];
  /** `name|uid[:group|gid]`, resolved inside the image. */
  user?: string;
  /** Absolute; created when missing. */
  workdir?: string;
  hostname?: string;
  /** Run the process on a pseudo-terminal of this size. */
  tty?: { rows: number; cols: number };
  /** No writable layer over the image. */
  readOnly?: boolean;
  /** Default: docker's bridge, outbound access and no published ports. */
  network?: NetworkSpec;
  /** `--add-host` entries for /etc/hosts. */
  hosts?: HostEntry[];
  /** Nameservers for /etc/resolv.conf (`--dns`). */
  dns?: string[];
  /** Search domains replacing the host's (`--dns-search`; `.` alone: none). */
  dnsSearch?: string[];
  /** Resolver options replacing the host's (`--dns-option`). */
  dnsOptions?: string[];
  /** `-v`, `--mount` and `--tmpfs`, parsed (src/volumes/options.ts). */
  volumes?: VolumeSpec[];
  /** No command of the image's: the sandbox's main process only waits, for execs (a Sandbox). */
  idle?: boolean;
}

/** A process started in a running sandbox (`exec`), on top of the sandbox's own spec. */
export interface ExecOptions {
  argv: string[];
  /** `NAME=value` entries, winning over the sandbox's. */
  env?: string[];
  /** Default: the sandbox's user. */
  user?: string;
  /** Absolute; default: the sandbox's working directory. */
  workdir?: string;
  tty?: { rows: number; cols: number };
}


export function makeRunSpec(config: ImageConfig, options: RunOptions = {}): RunSpec {
  const entrypoint = options.entrypoint === undefined ? config.entrypoint : options.entrypoint === '' ? [] : [options.entrypoint];
  const cmd = options.command?.length ? options.command : options.entrypoint !== undefined ? [] : config.cmd;
  const argv = options.idle ? [] : [...entrypoint, ...cmd];
  if (argv.length === 0 && !options.idle) throw new RunSpecError('no command specified: the image has no Entrypoint or Cmd, so give a command after the image name');
  if (argv.some((a) => a.includes('\0'))) throw new RunSpecError('a command argument contains a NUL byte');

  const workdir = options.workdir ?? (config.workingDir || '/');
  if (!workdir.startsWith('/')) throw new RunSpecError(`the working directory '${workdir}' is invalid: it needs to be an absolute path`);

  const hostname = options.hostname ?? randomBytes(6).toString('hex');
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(hostname)) throw new RunSpecError(`invalid hostname ${JSON.stringify(hostname)}: use letters, digits, dots and dashes, at most 63`);

  const network = options.network ?? { mode: 'bridge', publish: [], hostLoopback: false };
  for (const entry of options.env ?? []) checkEnvEntry(entry);
  // moby's order: its defaults first, then the image's Env with the user's entries replacing or
  // appending (the user wins), each later value replacing an earlier one of the same name.
  const configEnv = mergeEnv(config.env, options.env ?? []);
  const defaults = [...(configEnv.some((e) => envName(e) === 'PATH') ? [] : [`PATH=${DEFAULT_PATH}`]), `HOSTNAME=${hostname}`];
  if (options.tty) defaults.push('TERM=xterm');
  return {
    argv,
    env: mergeEnv(defaults, configEnv),
    workdir,
    user: options.user ?? config.user,
    hostname,
    tty: options.tty,
    readOnly: options.readOnly ?? false,
    resolvConf: resolvConf(network, options.dns ?? [], options.dnsSearch ?? [], options.dnsOptions ?? []),
    hosts: options.hosts ?? [],
    network,
    volumes: options.volumes ?? [],
    idle: options.idle,
  };
}

/** What an exec runs: the sandbox's environment, user and working directory unless it says otherwise. */
export function makeExecSpec(sandbox: RunSpec, options: ExecOptions): ProcessSpec {
  if (options.argv.length === 0) throw new RunSpecError('no command given to exec');
  if (options.argv.some((a) => a.includes('\0'))) throw new RunSpecError('a command argument contains a NUL byte');
  for (const entry of options.env ?? []) checkEnvEntry(entry);
  const workdir = options.workdir ?? sandbox.workdir;
  if (!workdir.startsWith('/')) throw new RunSpecError(`the working directory '${workdir}' is invalid: it needs to be an absolute path`);
  return { argv: options.argv, env: mergeEnv(sandbox.env, options.env ?? []), workdir, user: options.user ?? sandbox.user, tty: options.tty };
}

function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

function checkEnvEntry(entry: string): void {
  if (!entry.includes('=') || entry.startsWith('=') || entry.includes('\0')) {
    throw new RunSpecError(`invalid environment entry ${JSON.stringify(entry)}: expected NAME=value`);
  }
}

function mergeEnv(base: string[], overrides: string[]): string[] {
  const env = [...base];
  for (const entry of overrides) {
    const at = env.findIndex((e) => envName(e) === envName(entry));
    if (at >= 0) env[at] = entry;
    else env.push(entry);
  }
  return env;
}

/**
 * /etc/resolv.conf as docker writes it: the host's search and options lines, with the nameservers
 * given by --dns, else the run's DNS forwarder (which asks the host's own nameserver, even one on
 * its loopback), else (no network) the host's nameservers less loopback ones, Google's when none
 * remain; `--dns-search` and `--dns-option` replace the host's search and options lines.
 */
function resolvConf(network: NetworkSpec, dns: string[], search: string[], options: string[]): string {
  let text = '';
  try {
    text = fs.readFileSync('/etc/resolv.conf', 'utf8');
  } catch {
    // none: the defaults below
  }
  const isServer = (l: string) => /^\s*nameserver\s/.test(l);
  let lines = text.split('\n');
  if (dns.length > 0 || network.mode === 'bridge') {
    const servers = dns.length > 0 ? dns : [GUEST_NETWORK.dns];
    lines = [...lines.filter((l) => !isServer(l)), ...servers.map((s) => `nameserver ${s}`)];
  } else {
    lines = lines.filter((l) => !/^\s*nameserver\s+(127\.|::1\b)/.test(l));
    if (!lines.some(isServer)) lines.push('nameserver 8.8.8.8', 'nameserver 8.8.4.4');
  }
  if (search.length > 0) {
    lines = lines.filter((l) => !/^\s*(search|domain)\s/.test(l));
    const domains = search.filter((d) => d !== '.');
    if (domains.length > 0) lines.push(`search ${domains.join(' ')}`);
  }
  if (options.length > 0) lines = [...lines.filter((l) => !/^\s*options\s/.test(l)), `options ${options.join(' ')}`];
  return lines.filter((l) => l.trim() !== '').join('\n') + '\n';
}
