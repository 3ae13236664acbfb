export { Machine, DEFAULT_CMDLINE, type BootOptions, type MachineExit } from './vm/machine';
export { guestKernel, ensureGuestKernel, type GuestKernel } from './guest/kernel';
export { ensureAgentInitramfs } from './guest/agent';
export { openLayout, verifyLayers, type Image, type Layer } from './image/layout';
export { makeRunSpec, type RunOptions, type RunSpec } from './run/spec';
export { runImage, type RunImageOptions } from './run/run-image';
export { ensureImageDisk, imageDiskPath } from './vm/image-disk';
export type { Stdio, VmResources, VmRunControl, VmRunResult } from './vm/runtime';
export * from './errors';
