/** The two runtimes behind one call: a RunSpec of an image in a microVM or in a runc container. */
import type { Image } from '../image/layout';
import type { RunControl, Stdio } from '../agent/process-io';
import { vmResources, type Resources } from './resources';
import type { RunSpec } from './spec';
import type { PortMapping } from '../network/options';

export const RUNTIMES = ['vm', 'container'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];

export interface RuntimeOptions extends Resources {
  /** VM only: a kernel other than the cached guest kernel. */
  kernel?: string;
  /** VM only: boot rather than restore from the agent snapshot. */
  coldBoot?: boolean;
  /** Container only: runc's name for it. */
  name?: string;
  /** Told the published ports once they listen, with the host ports picked for `-p CONTAINERPORT`. */
  onPublished?: (ports: PortMapping[]) => void;
}

export async function runOn(
  runtime: RuntimeName,
  image: Image,
  spec: RunSpec,
  stdio: Stdio,
  options: RuntimeOptions,
  onStart?: (control: RunControl) => void,
): Promise<{ exitCode: number }> {
  if (runtime === 'vm') {
    const { runInVm } = await import('../vm/runtime');
    return runInVm(image, spec, stdio, { ...vmResources(options), kernel: options.kernel, coldBoot: options.coldBoot, onPublished: options.onPublished }, onStart);
  }
  const { runInContainer } = await import('../container/runtime');
  return runInContainer(image, spec, stdio, { memoryBytes: options.memoryBytes, cpus: options.cpus, name: options.name, onPublished: options.onPublished }, onStart);
}
