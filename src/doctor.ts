/**
 * `vmrun doctor`: whether this host can run images, each check with the fix when it fails, and
 * `vmrun version`: what vmrun would run with.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { withAgentContainer } from './container/agent-container';
import { runcVersion } from './container/runc';
import { ensureAgentBinary, ensureAgentInitramfs } from './guest/agent';
import { runBuildScript } from './guest/build';
import { guestKernel } from './guest/kernel';
import { passtBinary } from './network/user-net';
import { cacheDir, executableOnPath } from './paths';
import { startShares, stopShares } from './volumes/virtiofsd';
import { checkShim } from './shim/install';
import { vmmPath } from './vm/machine';
import { FrameType } from './agent/frames';

export interface Check {
  name: string;
  ok: boolean;
  /** What was found, or what is wrong. */
  detail: string;
  /** How to put it right (failed checks). */
  fix?: string;
}

export async function versions(): Promise<Record<string, string>> {
  const key = (file: string) => path.basename(file);
  return {
    vmrun: require('../../package.json').version as string,
    node: process.version,
    kernel: await runBuildScript('kernel', 'the guest kernel', ['--path']).then(key, () => 'unknown'),
    agent: await runBuildScript('agent', 'the guest agent', ['--path']).then(key, () => 'unknown'),
    runc: await runcVersion().catch((err: Error) => `unavailable (${err.message})`),
  };
}

export async function doctor(): Promise<Check[]> {
  return [await kvm(), await vmmJail(), await runc(), await network(), await shares(), await kernel(), await agent(), await cache(), await containerdShim()];
}

async function check(name: string, fix: string, body: () => Promise<string> | string): Promise<Check> {
  try {
    return { name, ok: true, detail: await body() };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message, fix };
  }
}

function kvm(): Promise<Check> {
  return check('/dev/kvm', 'run on a host with hardware virtualisation (vmx or svm), as root or in the kvm group; or use --runtime container', async () => {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    const { Machine } = await import('./vm/machine');
    const probe = Machine.probe();
    if (!probe.usable) throw new Error(probe.error ?? 'KVM cannot run a standard guest here');
    return `KVM API ${probe.apiVersion}, up to ${probe.maxVcpus} vCPUs`;
  });
}

/**
 * What each VM's process will be jailed with: namespaces (a user namespace when not root), and a
 * cgroup for its memory and pids when vmrun may make one.
 */
function vmmJail(): Promise<Check> {
  return check('VMM jail', 'build the VMM with npm install; as a user, allow user namespaces (sysctl user.max_user_namespaces)', () => {
    fs.accessSync(vmmPath, fs.constants.X_OK);
    const root = process.getuid?.() === 0;
    if (!root && Number(readOr('/proc/sys/user/max_user_namespaces', '1')) === 0) {
      throw new Error('user namespaces are disabled here, and a VMM started without root needs one');
    }
    const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
    const cgroup = !root ? 'no cgroup (vmrun makes one only as root)'
      : v2 || fs.existsSync('/sys/fs/cgroup/memory') ? `a cgroup ${v2 ? 'v2' : 'v1'} per VM` : 'no cgroup (none mounted)';
    return `${root ? 'a uid of its own' : 'this user in a user namespace'}, new namespaces, seccomp per thread, ${cgroup}`;
  });
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** runc must start a container and the agent in it must answer, as every container run needs. */
function runc(): Promise<Check> {
  return check('runc', 'apt-get install runc; run vmrun as root with cgroups mounted (or use --runtime vm)', async () => {
    const version = await runcVersion();
    if (process.getuid?.() !== 0) throw new Error(`${version} is there, but containers need root`);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-doctor-'));
    try {
      // An unpack spec without layers: the agent must refuse it, which proves it ran and talked.
      const answer = await withAgentContainer({ root, readOnlyRoot: true, binds: [], stdio: false }, async ({ session }) => {
        session.send(FrameType.Mode, 'unpack');
        session.send(FrameType.End);
        return session.outcome.then(() => 'no error', (err: Error) => err.message);
      });
      if (!answer.includes('unpack without a LAYER')) throw new Error(`the agent did not answer as expected: ${answer}`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
    return `${version}; a container started and its agent answered`;
  });
}

/** passt (a VM's network) and pasta (a container's): vmrun's own build where there is one. */
function network(): Promise<Check> {
  return check('network', 'bash images/passt/build.sh (setup.sh runs it), or apt-get install passt; or run with --network none', () =>
    (['passt', 'pasta'] as const).map((name) => passtBinary(name)).join(', '));
}

/** A virtiofsd must come up in its sandbox, as every VM run with -v needs. */
function shares(): Promise<Check> {
  return check('host directories (-v)', 'apt-get install qemu-system-common (virtiofsd), and run vmrun as root; or use --runtime container', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-doctor-'));
    try {
      const started = await startShares([{ kind: 'bind', source: dir, target: '/doctor', readOnly: true }]);
      await stopShares(started);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return 'a virtiofsd started in its sandbox';
  });
}

function kernel(): Promise<Check> {
  return check('guest kernel', 'vmrun kernel (builds it: about 15 minutes)', async () => {
    const k = await guestKernel();
    if (!k) throw new Error('not built yet');
    return k.bzImage;
  });
}

function agent(): Promise<Check> {
  return check('agent', 'bash images/agent/build.sh (see its messages for missing packages)', async () => {
    const [initramfs, binary] = [await ensureAgentInitramfs(), await ensureAgentBinary()];
    return `${initramfs}, ${binary}`;
  });
}

function cache(): Promise<Check> {
  return check('cache dir', 'set VMRUN_CACHE_DIR to a writable directory', () => {
    const dir = cacheDir();
    fs.mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.doctor-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
    return `${dir} is writable`;
  });
}

function containerdShim(): Promise<Check> {
  return check('containerd shim', 'vmrun shim install (puts containerd-shim-vmrun-v2 in /usr/local/bin)', () =>
    executableOnPath('containerd') ? checkShim() : 'containerd is not installed: no shim needed');
}
