/**
 * The agent (guest/agent/): PID 1 of the agent initramfs in a VM, and the first process of every
 * runc container. Built by images/agent/build.sh and cached outside the repository, keyed by its
 * sources.
 */
import { runBuildScript } from './build';

/** The cached agent initramfs, built first if needed (seconds). */
export async function ensureAgentInitramfs(): Promise<string> {
  return runBuildScript('agent', 'the guest agent');
}

/** The cached static agent binary itself, built first if needed. */
export async function ensureAgentBinary(): Promise<string> {
  return runBuildScript('agent', 'the guest agent', ['--binary']);
}
