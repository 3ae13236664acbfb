/**
 * The agent initramfs: the static agent (guest/agent/) as /init, built by images/agent/build.sh
 * and cached outside the repository, keyed by its sources.
 */
import { runBuildScript } from './build';

/** The cached agent initramfs, built first if needed (seconds). */
export async function ensureAgentInitramfs(): Promise<string> {
  return runBuildScript('agent', 'the guest agent');
}
