/**
 * The agent (guest/agent/): PID 1 of the agent initramfs in a VM, and the first process of every
 * runc container. Built by images/agent/build.sh and cached outside the repository, keyed by its
 * sources.
 */
import fs from 'node:fs';
import path from 'node:path';

import { cacheDir, packageRoot } from '../paths';
import { buildScript, contentKey, runBuildScript } from './build';

/** The agent binary's path in the cache (the initramfs is beside it, `.cpio`), as build.sh keys it. */
export function agentCachePath(): string {
  const src = path.join(packageRoot, 'guest', 'agent');
  const sources = fs.readdirSync(src).filter((f) => /\.[ch]$/.test(f)).sort();
  const key = contentKey([...sources.map((f) => path.join(src, f)), buildScript('agent')]);
  return path.join(cacheDir(), 'agent', `agent-${key}`);
}

/** The binary's path when both it and the initramfs are cached. */
function cachedAgent(): string | undefined {
  const binary = agentCachePath();
  return fs.existsSync(binary) && fs.existsSync(`${binary}.cpio`) ? binary : undefined;
}

/** The cached agent initramfs, built first if needed (seconds). */
export async function ensureAgentInitramfs(): Promise<string> {
  const binary = cachedAgent();
  return binary ? `${binary}.cpio` : runBuildScript('agent', 'the guest agent');
}

/** The cached static agent binary itself, built first if needed. */
export async function ensureAgentBinary(): Promise<string> {
  return cachedAgent() ?? runBuildScript('agent', 'the guest agent', ['--binary']);
}
