/**
 * The specs the host sends the agent (guest/agent/PROTOCOL.md), the same for a VM and for the
 * agent under runc, except for what runc and the host set up themselves in container mode (the
 * root, the host name, read-only-ness, /etc/hosts and /etc/resolv.conf).
 */
import { AgentError } from '../errors';
import type { Image } from '../image/layout';
import { etcFiles } from './etc-files';
import { FrameType, terminalSize } from './frames';
import type { AgentSession } from './session';

/**
 * Everything a runtime needs to start the process, decided by src/run/spec.ts from the image
 * config and the user's options; nothing here needs the image's files.
 */
export interface RunSpec {
  argv: string[];
  env: string[];
  workdir: string;
  user: string;
  hostname: string;
  tty?: { rows: number; cols: number };
  readOnly: boolean;
  resolvConf: string;
}

/** Where the agent runs: PID 1 of a VM, or the first process of a runc container. */
export type AgentHome = 'vm' | 'container';

/** The image's ext4 disk in a VM. */
const ROOTFS_DEVICE = 'vda';

export function sendRunSpec(session: AgentSession, spec: RunSpec, home: AgentHome): void {
  session.send(FrameType.Mode, 'run');
  if (home === 'vm') session.send(FrameType.Rootfs, ROOTFS_DEVICE);
  for (const arg of spec.argv) session.send(FrameType.Arg, arg);
  for (const entry of spec.env) session.send(FrameType.Env, entry);
  session.send(FrameType.Workdir, spec.workdir);
  if (spec.user) session.send(FrameType.User, spec.user);
  if (spec.tty) session.send(FrameType.Tty, terminalSize(spec.tty.rows, spec.tty.cols));
  if (home === 'vm') {
    const etc = etcFiles(spec);
    session.send(FrameType.Hostname, spec.hostname);
    if (spec.readOnly) session.send(FrameType.ReadOnly);
    session.send(FrameType.Resolv, etc['resolv.conf']);
    session.send(FrameType.Hosts, etc.hosts);
  }
  session.send(FrameType.End);
}

/** Where the agent reads a layer's blob: `offset` bytes into /dev/<device>. */
export interface LayerPlace {
  device: string;
  offset: number;
}

/**
 * Asks for every layer of `image` to be unpacked, layer i's blob being at places[i] (in a VM,
 * on the layers' disk; in a container, a file runc mounts at /dev/<device>); resolves with the
 * guest's unpacking time in ms, when it said.
 */
export async function unpackLayers(session: AgentSession, image: Image, home: AgentHome, places: LayerPlace[]): Promise<number | undefined> {
  session.send(FrameType.Mode, 'unpack');
  if (home === 'vm') session.send(FrameType.Rootfs, ROOTFS_DEVICE);
  image.layers.forEach((layer, i) => {
    session.send(FrameType.Layer, `${places[i].device} ${places[i].offset} ${layer.size} ${layer.compression} ${layer.diffId}`);
  });
  session.send(FrameType.End);
  const code = await session.outcome;
  if (code !== 0) throw new AgentError(`unpacking ${image.name} failed (agent exit ${code})`);
  const { unpacking, unpacked } = session.phases;
  return unpacking !== undefined && unpacked !== undefined ? (unpacked - unpacking) / 1e6 : undefined;
}

/** The VM's disk holding every layer blob, after the image disk (vda). */
export const LAYERS_DEVICE = 'vdb';

/** Linux's name for the n-th virtio disk (0: vda). */
export function deviceName(index: number): string {
  let name = '';
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) name = String.fromCharCode(97 + ((n - 1) % 26)) + name;
  return `vd${name}`;
}
