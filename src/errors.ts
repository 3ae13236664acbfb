/**
 * vmrun's errors. Each carries a one-line message that names the problem and the fix; the CLI
 * prints `message` alone and exits with `exitCode`.
 */
export class VmrunError extends Error {
  /** docker's convention: 125 means vmrun itself failed. */
  readonly exitCode: number = 125;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** /dev/kvm is missing, inaccessible, or cannot run a standard guest. */
export class KvmUnavailableError extends VmrunError {}

/** The caller asked for a machine that cannot be built (bad kernel, too little memory, ...). */
export class MachineConfigError extends VmrunError {}

/** A KVM ioctl or system call failed; `syscall` and `code` name the call and the errno. */
export class VmmError extends VmrunError {
  constructor(
    message: string,
    readonly syscall?: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A build step for guest images (kernel, initramfs) failed. */
export class ImageBuildError extends VmrunError {}

/** An image is missing, malformed, or does not match its digests. */
export class ImageError extends VmrunError {}

/** The run's options cannot make a process (no command, a relative working directory, ...). */
export class RunSpecError extends VmrunError {}

/** runc is missing, or failed to create or run a container. */
export class ContainerError extends VmrunError {}

/** The command line asks for something malformed (an unknown flag, a bad size, ...). */
export class UsageError extends VmrunError {}

/** The guest agent failed to prepare or start the process; `exitCode` is docker's for the cause. */
export class AgentError extends VmrunError {
  constructor(
    message: string,
    override readonly exitCode: number = 125,
  ) {
    super(message);
  }
}

/** An image reference that docker would refuse (`Foo:bar`, `name@sha1:...`, `a//b`). */
export class InvalidReferenceError extends VmrunError {}

/** A registry could not be reached, refused us, rate-limited us, or answered outside the protocol. */
export class RegistryError extends VmrunError {}

/** A lock between vmrun processes could not be taken, or was lost before the work under it was done. */
export class LockError extends VmrunError {}

/** A network or a published port could not be set up (a port in use, passt missing, ...). */
export class NetworkError extends VmrunError {}

/** A host path could not be shared into a run (virtiofsd missing or failing, ...). */
export class VolumeError extends VmrunError {}

/**
 * A sandbox of `run -d` that is missing, in the wrong state for what was asked, or named twice;
 * or what its supervisor reported of an exec (`exitCode` 126 or 127 from the agent among them).
 */
export class SandboxError extends VmrunError {
  constructor(
    message: string,
    override readonly exitCode: number = 125,
  ) {
    super(message);
  }
}
