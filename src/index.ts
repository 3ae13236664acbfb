export { Machine, DEFAULT_CMDLINE, type BootOptions, type MachineExit } from './vm/machine';
export { guestKernel, ensureGuestKernel, type GuestKernel } from './images/kernel';
export * from './errors';
