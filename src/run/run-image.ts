/**
 * runImage: an image's command run the way `docker run` runs it, inside a microVM. The image
 * comes from an OCI image layout directory; the result is the process's exit code (128+N for a
 * signal) with the run's timings.
 */
import { openLayout, type Image } from '../image/layout';
import { runInVm, type VmResources, type VmRunResult } from '../vm/runtime';
import type { RunControl, Stdio } from '../agent/process-io';
import { makeRunSpec, type RunOptions } from './spec';

export interface RunImageOptions extends RunOptions, VmResources {
  /** An OCI image layout directory, or an image already opened. */
  image: string | Image;
  /** The image's ref.name in the layout (optional when it holds one image). */
  ref?: string;
  stdio: Stdio;
  /** Called once the VM runs, with the means to signal and resize the process. */
  onStart?: (control: RunControl) => void;
}

export async function runImage(options: RunImageOptions): Promise<VmRunResult> {
  const image = typeof options.image === 'string' ? await openLayout(options.image, options.ref) : options.image;
  const spec = makeRunSpec(image.config, options);
  return runInVm(image, spec, options.stdio, options, options.onStart);
}
