/**
 * The container runtime: runs a RunSpec in a runc container whose root is the image's cached
 * layer directories under a writable overlay that dies with the run. The agent, as the container's first
 * process, starts the process exactly as it does in a VM (user, groups, HOME, PATH search,
 * working directory, docker's 126/127), relays its stdio through pipes and reports its exit;
 * runc supplies the namespaces, filesystems, host name and cgroup limits.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { etcFiles } from '../agent/etc-files';
import { processControl, relayProcess, runControl } from '../agent/process';
import type { RunControl, Stdio } from '../agent/process-io';
import { sendExecSpec, sendRunSpec, type RunSpec } from '../agent/specs';
import type { Image } from '../image/layout';
import { withAgentContainer } from './agent-container';
import type { ContainerLimits } from './bundle';
import { ensureLayerDirs, type LayerDirs } from './layer-dirs';
import { mountRunOverlay } from './overlay';
import { runcPath } from './runc';
import type { PortMapping } from '../network/options';
import { claimPorts, loopbackOnly, startPasta, type UserNetwork } from '../network/user-net';
import { withRealSources } from '../volumes/options';

export interface ContainerResources extends ContainerLimits {
  /** runc's name for the container. */
  name?: string;
  /** Told the published ports once they listen, with the host ports picked for `-p CONTAINERPORT`. */
  onPublished?: (ports: PortMapping[]) => void;
}

export interface ContainerRunResult {
  exitCode: number;
  /** How the image's layers came to be: unpacked by this run, or from the cache. */
  layers: LayerDirs;
  /** The agent's milestones in ms of CLOCK_BOOTTIME (`exec`, ...). */
  guest: Record<string, number>;
}

export async function runInContainer(
  image: Image,
  spec: RunSpec,
  stdio: Stdio,
  resources: ContainerResources = {},
  onStart?: (control: RunControl) => void,
): Promise<ContainerRunResult> {
  runcPath();  // before anything is unpacked or mounted: without runc, none of it is any use
  const volumes = withRealSources(spec.volumes);
  // A port in use is an error to give before a long unpack, not after.
  const bridge = spec.network.mode === 'bridge' ? { ...spec.network, publish: await claimPorts(spec.network.publish) } : undefined;
  const layers = await ensureLayerDirs(image);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-run-'));
  let mounted = false;
  try {
    const overlay = await mountRunOverlay(layers.diffs, dir);
    mounted = true;
    try {
      const binds = etcBinds(spec, path.join(dir, 'etc'));
      const options = { root: overlay.root, readOnlyRoot: spec.readOnly, hostname: spec.hostname, binds, volumes, limits: resources, stdio: true, name: resources.name };
      return await withAgentContainer(options, async ({ session, sockets, stop, pid, exec }) => {
        const initPid = await pid();
        const network = await withNetns(initPid, async (fd): Promise<UserNetwork | undefined> => (bridge ? startPasta(bridge, fd) : loopbackOnly(fd)));
        try {
          if (network) resources.onPublished?.(network.published);
          sendRunSpec(session, spec, 'container');
          onStart?.(runControl(session, stop, async (process, io, onExecStart) => {
            const started = exec();
            try {
              sendExecSpec(started.session, process);
              onExecStart?.(processControl(started.session));
              return await relayProcess(started.session, started.sockets, io);
            } finally {
              await started.finish();
            }
          }, () => initPid));
          // Once the container is gone, nobody holds the other ends of the output streams: they end.
          return { exitCode: await relayProcess(session, sockets!, stdio), layers, guest: session.phasesMs() };
        } finally {
          await network?.stop();
        }
      });
    } finally {
      await overlay.unmount();
      mounted = false;
    }
  } finally {
    // Never remove through a root that is still mounted.
    if (!mounted) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** /etc/hostname, /etc/hosts and /etc/resolv.conf as docker provides them, bind-mounted from files of the run's. */
function etcBinds(spec: RunSpec, dir: string): { source: string; destination: string; readOnly: boolean }[] {
  fs.mkdirSync(dir);
  return Object.entries(etcFiles(spec)).map(([name, text]) => {
    const source = path.join(dir, name);
    fs.writeFileSync(source, text, { mode: 0o644 });
    return { source, destination: `/etc/${name}`, readOnly: spec.readOnly };
  });
}

/**
 * Runs `use` with the network namespace of process `pid` open: a descriptor holds the very
 * namespace, where a path would name whatever has that pid by then.
 */
async function withNetns<T>(pid: number, use: (fd: number) => Promise<T>): Promise<T> {
  const fd = fs.openSync(`/proc/${pid}/ns/net`, 'r');
  try {
    return await use(fd);
  } finally {
    fs.closeSync(fd);
  }
}
