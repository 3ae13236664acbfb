/**
 * A microVM booted from a kernel, an optional initrd and a command line. The VMM runs in a jailed
 * process of its own (build/Release/vmrun-vmm, started by the addon): its vCPUs and devices never
 * share an address space with this one. This class gives it a promise-based, stream-based API.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';

import { KvmUnavailableError, MachineConfigError, VmmError } from '../errors';
import { log } from '../log';
import { loadAddon, vmmPath, type KvmProbe, type NativeError, type NativeExit, type NativeMachine } from './native';

export interface BootOptions {
  /** A bzImage (64-bit boot protocol) or an ELF vmlinux with a PVH entry note. */
  kernel: string;
  /** An initramfs (cpio, optionally compressed) for the kernel to unpack as its root. */
  initrd?: string;
  /** The kernel command line. Default: the console on the serial port, reset on reboot. */
  cmdline?: string;
  /** Guest RAM in MiB (default 128, at least 32). */
  memoryMiB?: number;
  /** Number of vCPUs (default 1). */
  vcpus?: number;
  /** The guest's virtio disks, /dev/vda first. */
  drives?: Drive[];
  /**
   * A virtio-vsock device, host side on Unix sockets (Firecracker's convention): a guest
   * connection to host port P reaches `<socketPath>_<P>`, where the host must listen; a host client
   * of `socketPath` (the VMM listens there) writes `CONNECT <guest port>\n` and reads
   * `OK <host port>\n` once the guest accepts. `cid` is the guest's CID (default 3). The
   * VMM sees only the socket's directory, which should be private to this VM: run as root, the
   * VMM has a uid of its own, let into the directory and the sockets already there; a socket
   * listened on after boot must be made connectable by it (chmod 0666).
   */
  vsock?: { cid?: number; socketPath: string };
  /**
   * A virtio-net device whose other end is passt, listening on the Unix socket `socketPath` (the
   * VMM connects to it at boot, in QEMU's framing). `mac`: the guest's address (default: a random
   * locally administered one).
   */
  net?: { socketPath: string; mac?: Buffer };
  /**
   * virtio-fs devices, each served by the virtiofsd listening on `socketPath` (the VMM connects at
   * boot, as a vhost-user front end), mounted by the guest as `tag` (1 to 36 bytes). Guest RAM is
   * then a memfd that each virtiofsd maps.
   */
  filesystems?: { socketPath: string; tag: string }[];
  /**
   * `take`: the VM ends (`snapshotted`) when its agent reaches its snapshot point, written to the
   * files `state` and `memory` (created or emptied). `restore`: the VM starts from those files
   * instead of booting, with the devices given here in place of those it had (the same kinds, in
   * the same order); the kernel and initrd are not read. `fingerprint` is the host's part of what
   * the snapshot fits: a restore refuses a snapshot taken with another.
   */
  snapshot?: { mode: 'take' | 'restore'; state: string; memory: string; fingerprint: string };
}

/**
 * A virtio disk: a host file (or block device), or files laid end to end, each at its byte
 * offset (a multiple of 512; gaps read as zeros and refuse writes), as an image's layers are
 * given to the guest. Parts are read-only unless `readOnly: false`.
 */
export type Drive = { path: string; readOnly?: boolean } | { parts: { path: string; offset: number }[]; readOnly?: boolean };

/**
 * How the machine ended: `reset` when the guest reset itself (how a guest powers off, with
 * `reboot=k`), `stopped` when the host killed it, `triple-fault` when the guest crashed its CPU,
 * `error` when KVM or the VMM failed (`detail` says how), `snapshotted` when its snapshot was
 * taken.
 */
export type MachineExit = NativeExit;

/** The machines this process runs now, for measurements that cannot name theirs (benchmarks). */
const running = new Set<Machine>();

/** The executable each VM runs in (built by `npm install` beside the addon). */
export { vmmPath };

export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=k panic=-1 nomodule i8042.noaux no_timer_check';

export class Machine {
  /** The guest's serial console output. Read it: an unread console stalls the guest. */
  readonly console: Readable;
  /** Bytes written here arrive on the guest's serial console input. */
  readonly consoleInput: Writable;

  private readonly exited: Promise<MachineExit>;
  private resolveExit!: (exit: MachineExit) => void;

  private constructor(private readonly native: NativeMachine) {
    const fds = native.takeConsole();
    this.console = new net.Socket({ fd: fds.output, readable: true, writable: false });
    this.consoleInput = new net.Socket({ fd: fds.input, readable: false, writable: true });
    // The guest may end before it reads its input; writes then fail with EPIPE, which is no error of ours.
    this.consoleInput.on('error', () => {});
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  /** Whether this host can run machines, and if not, why (with the fix). */
  static probe(): KvmProbe {
    return loadAddon().probe();
  }

  /** Builds the VM, loads the kernel and starts its vCPUs. */
  static async boot(options: BootOptions): Promise<Machine> {
    const config = {
      vmm: vmmPath,
      kernel: requireString(options.kernel, 'kernel'),
      initrd: options.initrd === undefined ? undefined : requireString(options.initrd, 'initrd'),
      cmdline: options.cmdline ?? DEFAULT_CMDLINE,
      memoryMiB: requireInteger(options.memoryMiB ?? 128, 'memoryMiB'),
      vcpus: requireInteger(options.vcpus ?? 1, 'vcpus'),
      drives: (options.drives ?? []).map((d, i) =>
        'parts' in d
          ? { parts: d.parts.map((p, j) => ({ path: requireString(p?.path, `drives[${i}].parts[${j}].path`), offset: requireInteger(p?.offset, `drives[${i}].parts[${j}].offset`) })), readOnly: d.readOnly !== false }
          : { parts: [{ path: requireString(d?.path, `drives[${i}].path`), offset: 0 }], readOnly: d.readOnly === true },
      ),
      vsock:
        options.vsock === undefined
          ? undefined
          : {
              cid: requireCid(options.vsock?.cid ?? 3),
              path: requireString(options.vsock?.socketPath, 'vsock.socketPath'),
            },
      net:
        options.net === undefined
          ? undefined
          : { socket: requireString(options.net?.socketPath, 'net.socketPath'), mac: requireMac(options.net?.mac ?? randomMac()) },
      filesystems: (options.filesystems ?? []).map((f, i) => ({
        socket: requireString(f?.socketPath, `filesystems[${i}].socketPath`),
        tag: requireString(f?.tag, `filesystems[${i}].tag`),
      })),
      snapshot: options.snapshot && {
        mode: options.snapshot.mode,
        state: requireString(options.snapshot.state, 'snapshot.state'),
        memory: requireString(options.snapshot.memory, 'snapshot.memory'),
        fingerprint: options.snapshot.fingerprint,
      },
    };
    const { NativeMachine } = loadAddon();
    // The exit callback cannot run before start(), so `machine` is always set by then.
    let machine: Machine | undefined;
    let native: NativeMachine;
    try {
      // Called from the addon's exit callback: nothing may be thrown back into it.
      native = new NativeMachine(config, (exit) => {
        try {
          machine?.onExit(exit);
        } catch (err) {
          machine?.resolveExit({ kind: 'error', detail: `freeing the VM failed: ${(err as Error).message}` });
        }
      });
    } catch (err) {
      throw translateError(err as NativeError);
    }
    machine = new Machine(native);
    try {
      native.start();
    } catch (err) {
      machine.release();
      throw translateError(err as NativeError);
    }
    // A VM booted only to be snapshotted is no run's: measurements leave it out.
    if (options.snapshot?.mode !== 'take') running.add(machine);
    log.debug({ config }, 'machine started');
    return machine;
  }

  /** Resolves once the guest has ended and the VMM has freed it, with how it ended. */
  async wait(): Promise<MachineExit> {
    const exit = await this.exited;
    // Everything the guest wrote is in the pipe already; let a reader see all of it first.
    if (this.console.readableFlowing && !this.console.readableEnded) {
      await new Promise((resolve) => this.console.once('close', resolve));
    }
    return exit;
  }

  /** Stops the guest now. `wait()` then reports `stopped` (unless the guest had already ended). */
  kill(): void {
    this.native.stop();
  }

  private onExit(exit: MachineExit): void {
    running.delete(this);
    this.release();
    log.debug({ exit }, 'machine exited');
    this.resolveExit(exit);
  }

  /** Frees the VM (joins its threads, closes its fds) and the host's end of its console input. */
  private release(): void {
    this.native.destroy();
    this.consoleInput.destroy();
  }

  /** Every machine of this process that has booted and not yet ended. */
  static running(): Machine[] {
    return [...running];
  }

  /**
   * When the guest's init started (its write to the boot timer), as a `performance.now()` time
   * of this process; undefined when the guest has not written it.
   */
  bootTimer(): number | undefined {
    const ns = this.native.bootTimer();
    return ns === null ? undefined : monotonicToNow(ns);
  }

  /**
   * The VMM process: its pid (for measuring it; null if it has not reported one) and what its jail
   * applied (uid, namespaces, cgroup, seccomp).
   */
  process(): { pid: number | null; jail: string } {
    return this.native.process();
  }

  /** Guest RAM size and how much of it the host has actually backed with pages. */
  memory(): { guestBytes: number; guestResidentBytes: number } {
    return this.native.memory();
  }
}

/** A host CLOCK_BOOTTIME stamp (e.g. a container's PHASE frame), as a `performance.now()` time. */
export function boottimeToNow(ns: number): number {
  return monotonicToNow(ns - loadAddon().boottimeOffsetNs());
}

// process.hrtime and performance.now both run on CLOCK_MONOTONIC (libuv's hrtime).
function monotonicToNow(ns: number): number {
  return performance.now() - (Number(process.hrtime.bigint()) - ns) / 1e6;
}

function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new MachineConfigError(`${name} must be a file path`);
  return value;
}

function requireInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new MachineConfigError(`${name} must be a non-negative integer, not ${String(value)}`);
  }
  return value;
}

// Linux takes 32-bit CIDs: 0-2 are reserved (2 is the host) and 2^32-1 means "any".
function requireMac(value: unknown): Buffer {
  // A unicast address (the multicast bit clear): the only kind a NIC may have.
  if (!Buffer.isBuffer(value) || value.length !== 6 || (value[0] & 1) !== 0) {
    throw new MachineConfigError('net.mac must be a Buffer of 6 bytes holding a unicast MAC address');
  }
  return value;
}

/** A random locally administered unicast MAC address, as QEMU and Firecracker users pick them. */
function randomMac(): Buffer {
  const mac = randomBytes(6);
  mac[0] = (mac[0] & 0xfe) | 0x02;
  return mac;
}

function requireCid(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 3 || value > 0xfffffffe) {
    throw new MachineConfigError(`vsock.cid must be an integer from 3 to 4294967294, not ${String(value)}`);
  }
  return value;
}

function translateError(err: NativeError): Error {
  if (err.code === 'ERR_KVM_UNAVAILABLE') return new KvmUnavailableError(err.message);
  if (err.code === 'ERR_VMM') return new MachineConfigError(err.message);
  if (err.syscall) return new VmmError(err.message, err.syscall, err.code);
  return err;
}
