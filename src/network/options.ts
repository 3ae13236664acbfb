/**
 * A run's network as docker's flags describe it (`--network`, `-p`, `--dns`, `--add-host`), checked
 * and made plain for both runtimes. Each run gets its own user-mode network from passt (a VM) or
 * pasta (a container's namespace): the process reaches out as from the host, nothing reaches in
 * but the ports it publishes, and the host's loopback stays out of reach unless the user names
 * it with `--add-host NAME:host-gateway`, docker's way to reach the host.
 */
import net from 'node:net';

import { UsageError } from '../errors';

/** The guest's side of every run's network, the same in both runtimes (QEMU's user-mode addresses). */
export const GUEST_NETWORK = {
  interface: 'eth0',
  address: '10.0.2.15',
  prefix: 24,
  gateway: '10.0.2.2',
  /** passt and pasta forward DNS queries sent here to the host's first nameserver. */
  dns: '10.0.2.3',
} as const;

export interface PortMapping {
  /** The host address to listen on: '0.0.0.0' for all. */
  hostIp: string;
  /** 0 until a free port is picked for `-p CONTAINERPORT`. */
  hostPort: number;
  /** The host port was picked, not given. */
  picked?: boolean;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/** The guest's IPv6, where the host has it: the host's own address and gateway, as passt and pasta mirror them. */
export interface Ipv6Config {
  address: string;
  prefix: number;
  gateway: string;
}

export type NetworkSpec =
  | { mode: 'none' }
  | {
      mode: 'bridge';
      publish: PortMapping[];
      /** `host-gateway` was asked for: the gateway's address leads to the host's loopback. */
      hostLoopback: boolean;
      /** Set once the run's network has started, on a host with IPv6. */
      ipv6?: Ipv6Config;
    };

export interface NetworkFlags {
  network?: string;
  publish?: string[];
  dns?: string[];
  addHost?: string[];
}

export interface HostEntry {
  name: string;
  address: string;
}

/** The network, /etc/hosts entries and nameservers the flags ask for; UsageError for anything malformed. */
export function parseNetworkFlags(flags: NetworkFlags): { network: NetworkSpec; hosts: HostEntry[]; dns: string[] } {
  const mode = flags.network ?? 'bridge';
  if (mode !== 'bridge' && mode !== 'none' && mode !== 'default') {
    throw new UsageError(`network ${mode} not found: vmrun has --network bridge (the default) and --network none`);
  }
  const hosts = (flags.addHost ?? []).map(parseAddHost);
  const dns = (flags.dns ?? []).map((server) => {
    if (net.isIP(server) === 0) throw new UsageError(`${server} is not an IP address: give --dns an IPv4 or IPv6 address`);
    return server;
  });
  const publish = (flags.publish ?? []).flatMap(parsePublish);
  if (mode === 'none') {
    if (publish.length > 0) throw new UsageError('a run with --network none publishes no ports: drop -p or the --network none');
    return { network: { mode: 'none' }, hosts, dns };
  }
  const seen = new Set<string>();
  for (const p of publish) {
    const key = `${p.hostIp}:${p.hostPort}/${p.protocol}`;
    if (p.hostPort !== 0 && seen.has(key)) throw new UsageError(`host port ${p.hostPort}/${p.protocol} is published twice: give each -p its own host port`);
    seen.add(key);
  }
  const hostLoopback = (flags.addHost ?? []).some((spec) => spec.endsWith(':host-gateway') || spec.endsWith('=host-gateway'));
  return { network: { mode: 'bridge', publish, hostLoopback }, hosts, dns };
}

/** `NAME:IP`, `NAME=IP` or `NAME:host-gateway` (the gateway, which leads to the host's loopback). */
export function parseAddHost(spec: string): HostEntry {
  const at = spec.search(/[:=]/);
  const name = at < 0 ? '' : spec.slice(0, at);
  let address = at < 0 ? '' : spec.slice(at + 1);
  if (address === 'host-gateway') address = GUEST_NETWORK.gateway;
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(name) || net.isIP(address) === 0) {
    throw new UsageError(`invalid --add-host ${JSON.stringify(spec)}: expected NAME:IP or NAME:host-gateway`);
  }
  return { name, address };
}

/**
 * docker's `-p [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`, with ranges of equal length
 * (`8000-8001:80-81`); one mapping per port.
 */
export function parsePublish(spec: string): PortMapping[] {
  const bad = (why: string) => new UsageError(`invalid -p ${JSON.stringify(spec)}: ${why}; expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`);
  let rest = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const proto = rest.slice(slash + 1);
    if (proto !== 'tcp' && proto !== 'udp') throw bad(`protocol ${proto} is not tcp or udp`);
    protocol = proto;
    rest = rest.slice(0, slash);
  }
  let hostIp = '0.0.0.0';
  const bracket = /^\[([^\]]+)\]:(.*)$/.exec(rest);
  const parts = bracket ? [bracket[1], ...bracket[2].split(':')] : rest.split(':');
  if (parts.length > 3 || (bracket && parts.length !== 3)) throw bad('too many colons');
  if (parts.length === 3) {
    hostIp = parts.shift()!;
    if (hostIp === '') hostIp = '0.0.0.0';
    if (net.isIP(hostIp) === 0) throw bad(`${hostIp} is not an IP address`);
  }
  const container = range(parts.at(-1)!, bad, 'container port');
  const host = parts.length === 2 && parts[0] !== '' ? range(parts[0], bad, 'host port') : undefined;
  if (host && host.length !== container.length) throw bad('the host and container port ranges differ in length');
  return container.map((containerPort, i) => ({ hostIp, hostPort: host ? host[i] : 0, containerPort, protocol }));
}

function range(text: string, bad: (why: string) => Error, what: string): number[] {
  const match = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(text);
  const first = match ? Number(match[1]) : NaN;
  const last = match?.[2] !== undefined ? Number(match[2]) : first;
  if (!match || first < 1 || last > 65535 || last < first) throw bad(`${what} ${JSON.stringify(text)} is not a port from 1 to 65535 or a range of them`);
  if (last - first >= 1024) throw bad(`${what} range ${text} is over 1024 ports`);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}
