/**
 * runImage: an image's command run the way `docker run` runs it, inside a microVM. The image is
 * a registry reference (pulled as the CLI pulls it), `oci:DIR[:REF]`, an OCI image layout
 * directory, or an image already opened; the result is the process's exit code (128+N for a
 * signal) with the run's timings.
 */
import type { Image } from '../image/layout';
import { runInVm, type VmResources, type VmRunResult } from '../vm/runtime';
import type { RunControl, Stdio } from '../agent/process-io';
import { resolveImage, type PullPolicy } from './resolve-image';
import { makeRunSpec, type RunOptions } from './spec';

export interface RunImageOptions extends RunOptions, VmResources {
  /** `python:3.10` (a registry), `oci:DIR[:REF]`, a layout directory's path, or an opened image. */
  image: string | Image;
  /** The image's ref.name in a layout directory (optional when it holds one image). */
  ref?: string;
  /** When to pull a registry image, as `--pull` (default: missing). */
  pull?: PullPolicy;
  stdio: Stdio;
  /** Called once the VM runs, with the means to signal and resize the process. */
  onStart?: (control: RunControl) => void;
}

export async function runImage(options: RunImageOptions): Promise<VmRunResult> {
  const image = typeof options.image === 'string' ? await resolveImage(options.image, options.pull, options.ref) : options.image;
  const spec = makeRunSpec(image.config, options);
  return runInVm(image, spec, options.stdio, options, options.onStart);
}
