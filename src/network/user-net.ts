/**
 * A run's user-mode network, one per run, from passt: passt for a VM (the other
 * end of its virtio-net, on a Unix socket) or pasta for a container (a tap it configures in the
 * container's network namespace). Both translate the guest's connections into the host's own
 * sockets, so the process reaches out as the host does, and listen on the host for the ports the
 * run publishes. The same addresses, MTU and DNS forwarder in both, so that the two runtimes show
 * the process the same network.
 *
 * passt runs unprivileged (as nobody when vmrun is root). Debian 12's pasta (2023-03) drops to
 * nobody before it joins a namespace, so pasta is kept as root (`--runas 0:0`) and confines itself
 * once the tap is up (its own namespaces, no capabilities, seccomp), as it always does. Both
 * generations take the same options: images/passt/ builds a newer one (README, the network).
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { NetworkError } from '../errors';
import { contentKey } from '../guest/build';
import { log } from '../log';
import { cacheDir, executableOnPath, packageRoot } from '../paths';
import { exitOf, readText, stderrOf, stopper, unixListening, until, waitGone } from '../sidecar';
import { GUEST_NETWORK, type Ipv6Config, type NetworkSpec, type PortMapping } from './options';

type BridgeNetwork = Extract<NetworkSpec, { mode: 'bridge' }>;

/** nobody's ids, which passt takes when started by root. */
const NOBODY = 65534;
const MTU = 1500;
/** passt's and pasta's advice when started by root, which vmrun follows its own way. */
const NOT_AS_ROOT = /^Don't run as root/;

const networkError = (message: string) => new NetworkError(message);

export interface UserNetwork {
  /** The ports as published, each with its host port (picked here for `-p CONTAINERPORT`). */
  published: PortMapping[];
  stop(): Promise<void>;
}

/**
 * passt for a VM: listening on a Unix socket (returned as `socket`, in a directory of its own)
 * for the VMM to connect to, once; it ends when the VMM lets go. Undefined on a host with no
 * route off itself (see offline()).
 */
export async function startPasst(network: BridgeNetwork): Promise<(UserNetwork & { socket: string; ipv6?: Ipv6Config }) | undefined> {
  if (offline(network)) return undefined;
  const binary = passtBinary('passt');
  const published = await claimPorts(network.publish);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-passt-'));
  const root = process.getuid?.() === 0;
  // passt makes its socket there: newer ones as root without CAP_DAC_OVERRIDE, Debian 12's as nobody.
  if (root) {
    fs.chownSync(dir, 0, NOBODY);
    fs.chmodSync(dir, 0o770);
  }
  const socket = path.join(dir, 'net.sock');
  const ipv6 = hostIpv6();
  const args = ['-f', '-q', '--one-off', '-s', socket, ...(root ? ['--runas', `${NOBODY}:${NOBODY}`] : []), ...commonArgs(network, published, ipv6)];
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = stopper(() => child.kill('SIGKILL'), exitOf(child), dir, 'passt');
  try {
    await until(() => unixListening(socket), exitOf(child), 'passt', stderrOf(child, NOT_AS_ROOT), networkError);
    await checkListening(published);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, published, stop, ipv6 };
}

/**
 * pasta for a container: a tap named eth0 in the network namespace open as `netnsFd`. On a host
 * with no route off itself (see offline()), lo alone, undefined.
 */
export async function startPasta(network: BridgeNetwork, netnsFd: number): Promise<UserNetwork | undefined> {
  if (offline(network)) {
    await loopbackOnly(netnsFd);
    return undefined;
  }
  const binary = passtBinary('pasta');
  const published = await claimPorts(network.publish);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-pasta-'));
  const pidFile = path.join(dir, 'pasta.pid');
  const args = [
    '-q', '--runas', '0:0', '--config-net', '-I', GUEST_NETWORK.interface, '-T', 'none', '-U', 'none', '-P', pidFile,
    // On its stdin: pasta closes every other descriptor it inherits as it starts. That path names
    // /dev/null once pasta is in the background, and vmrun ends it anyway: no quitting on its own.
    ...commonArgs(network, published, hostIpv6()), '--netns', '/proc/self/fd/0', '--no-netns-quit',
  ];
  // Without -f pasta goes to the background once the tap is configured: its parent's exit says so.
  const child = spawn(binary, args, { stdio: [netnsFd, 'ignore', 'pipe'] });
  const stderr = stderrOf(child, NOT_AS_ROOT);
  const code = await exitOf(child);
  const pid = code === 0 ? Number(readText(pidFile)) : NaN;
  if (!Number.isInteger(pid) || pid <= 1) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new NetworkError(`pasta failed to set up the container's network: ${stderr() || `exit status ${code}`}`);
  }
  const stop = stopper(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }, waitGone(pid), dir, 'pasta');
  try {
    await checkListening(published);
  } catch (err) {
    await stop();
    throw err;
  }
  return { published, stop };
}

/**
 * A network namespace with nothing but lo, up, as docker leaves a container's with
 * `--network none` (runc makes the namespace and leaves lo down).
 */
export async function loopbackOnly(netnsFd: number): Promise<undefined> {
  const child = spawn('nsenter', ['--net=/proc/self/fd/3', 'ip', 'link', 'set', 'dev', 'lo', 'up'], { stdio: ['ignore', 'ignore', 'pipe', netnsFd] });
  const stderr = stderrOf(child, NOT_AS_ROOT);
  const code = await exitOf(child);
  if (code !== 0) throw new NetworkError(`bringing up lo in the container failed: ${stderr() || `exit status ${code}`} (nsenter and ip come with util-linux and iproute2)`);
  return undefined;
}

/**
 * passt and pasta model the guest's network on the host's interface with a default route, and
 * refuse to run without one. Such a host (offline, or the nested rig without its NIC) has nowhere
 * to send the process's connections anyway: the run gets lo alone, as with --network none, unless
 * it publishes ports, which passt alone could serve.
 */
function offline(network: BridgeNetwork): boolean {
  const v4 = readText('/proc/net/route').split('\n').slice(1).some((l) => l.split(/\s+/)[1] === '00000000');
  const v6 = readText('/proc/net/ipv6_route').split('\n').some((l) => /^0{32} 00 /.test(l) && !/\slo$/.test(l.trim()));
  if (v4 || v6) return false;
  if (network.publish.length > 0) {
    throw new NetworkError('publishing a port needs a network interface with a default route, and this host has none: connect it, or drop -p');
  }
  log.warn('this host has no default route: the run gets lo alone, as with --network none');
  return true;
}

function commonArgs(network: BridgeNetwork, published: PortMapping[], ipv6: Ipv6Config | undefined): string[] {
  const g = GUEST_NETWORK;
  const ports = (protocol: 'tcp' | 'udp') => {
    const specs = published.filter((p) => p.protocol === protocol).map((p) => `${p.hostIp === '0.0.0.0' ? '' : `${p.hostIp}/`}${p.hostPort}:${p.containerPort}`);
    return (specs.length > 0 ? specs : ['none']).flatMap((spec) => [protocol === 'tcp' ? '-t' : '-u', spec]);
  };
  return [
    '-a', g.address, '-n', String(g.prefix), '-g', g.gateway, '-m', String(MTU), '--dns-forward', g.dns,
    // Said outright, so that the agent configures the very address and gateway passt serves.
    ...(ipv6 ? ['-a', ipv6.address, '-g', ipv6.gateway] : []),
    // The host's loopback is the host's own business unless the user asked for host-gateway.
    ...(network.hostLoopback ? [] : ['--no-map-gw']),
    ...ports('tcp'), ...ports('udp'),
  ];
}

/**
 * The host's IPv6 as passt and pasta mirror it to the guest: the first global address of the
 * interface that has the default route, its prefix, and that route's gateway. Undefined where
 * the host has no IPv6 default route (the guest then gets IPv4 alone).
 */
export function hostIpv6(): Ipv6Config | undefined {
  const hex = (h: string) => h.match(/.{4}/g)!.join(':').replace(/\b0{1,3}/g, '');
  const canonical = (h: string) => new URL(`http://[${hex(h)}]/`).hostname.slice(1, -1);
  // dest dest_len src src_len next_hop metric refcnt use flags interface
  const route = readText('/proc/net/ipv6_route').split('\n').map((l) => l.trim().split(/\s+/))
    .find((f) => f.length >= 10 && /^0{32}$/.test(f[0]) && f[1] === '00' && !/^0{32}$/.test(f[4]) && f[9] !== 'lo');
  if (!route) return undefined;
  // address ifindex prefix_len scope flags interface; scope 00 is global; tentative (0x40) and
  // deprecated (0x20) addresses are not usable yet, or any more.
  const address = readText('/proc/net/if_inet6').split('\n').map((l) => l.trim().split(/\s+/))
    .find((f) => f.length >= 6 && f[5] === route[9] && f[3] === '00' && (parseInt(f[4], 16) & 0x60) === 0);
  if (!address) return undefined;
  return { address: canonical(address[0]), prefix: parseInt(address[2], 16), gateway: canonical(route[4]) };
}

/**
 * passt as images/passt/build.sh builds it (setup.sh does), else the one on PATH: Debian 12's
 * resets a long upload from the guest (README, known limits). The cache entry's name is the
 * script's own (images/cache.sh's content_key over the pinned sources, the patches and itself).
 */
export function passtBinary(name: 'passt' | 'pasta'): string {
  const dir = path.join(packageRoot, 'images', 'passt');
  const pinned = path.join(dir, 'pinned');
  const version = /^passt_(\S+)\.orig\.tar\.xz /.exec(readText(pinned))?.[1];
  if (version) {
    const patches = fs.readdirSync(dir).filter((f) => f.endsWith('.patch')).sort().map((f) => path.join(dir, f));
    const built = path.join(cacheDir(), 'passt', `${version}-${contentKey([pinned, ...patches, path.join(dir, 'build.sh')])}`, name);
    if (fs.existsSync(built)) return built;
  }
  const found = executableOnPath(name);
  if (!found) throw new NetworkError(`${name} is not installed: run images/passt/build.sh, or apt-get install passt (or run with --network none)`);
  return found;
}

/**
 * Checks that each host port is free, and picks a free one where none was given. passt binds
 * them itself a moment later; checkListening then confirms it did. A container's run calls it
 * first, before the unpack, and hands pasta the result.
 */
export async function claimPorts(publish: PortMapping[]): Promise<PortMapping[]> {
  const claimed: PortMapping[] = [];
  for (const p of publish) claimed.push({ ...p, hostPort: await tryBind(p), picked: p.picked || p.hostPort === 0 });
  return claimed;
}

async function tryBind(p: PortMapping): Promise<number> {
  const what = `${p.hostIp}:${p.hostPort || 'any'}/${p.protocol}`;
  const failed = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') return new NetworkError(`port ${p.hostPort}/${p.protocol} on ${p.hostIp} is already in use: publish another host port (-p OTHER:${p.containerPort})`);
    if (err.code === 'EADDRNOTAVAIL') return new NetworkError(`${p.hostIp} is not an address of this host: publish on one of its addresses, or leave the address out`);
    if (err.code === 'EACCES') return new NetworkError(`port ${p.hostPort} needs root: publish a port above 1023`);
    return new NetworkError(`cannot listen on ${what}: ${err.message}`);
  };
  if (p.protocol === 'tcp') {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(failed(err)));
      server.listen({ host: p.hostIp, port: p.hostPort, exclusive: true }, resolve);
    });
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  const socket = dgram.createSocket(net.isIPv6(p.hostIp) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(failed(err)));
    socket.bind({ address: p.hostIp, port: p.hostPort, exclusive: true }, resolve);
  });
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Waits until every published TCP port listens and every UDP port is bound, as the kernel says. */
async function checkListening(published: PortMapping[]): Promise<void> {
  const missing = () => published.filter((p) => !boundPorts(p.protocol).has(p.hostPort));
  await until(() => missing().length === 0, undefined, 'the published ports', () => missing().map((p) => `${p.hostPort}/${p.protocol}`).join(', '), networkError);
}

/** Local ports in LISTEN (TCP) or bound (UDP) on this host, IPv4 and IPv6. */
function boundPorts(protocol: 'tcp' | 'udp'): Set<number> {
  const ports = new Set<number>();
  for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    for (const line of readText(file).split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      if (protocol === 'tcp' && fields[3] !== '0A') continue;  // TCP_LISTEN
      ports.add(parseInt(fields[1].split(':')[1], 16));
    }
  }
  return ports;
}
