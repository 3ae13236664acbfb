/**
 * runImage: an image's command run the way `docker run` runs it, inside a microVM. The image is
 * a registry reference (pulled as the CLI pulls it), `oci:DIR[:REF]`, an OCI image layout
 * directory, or an image already opened; the result is the process's exit code (128+N for a
 * signal) with the run's timings.
 */
import fs from 'node:fs';

import { openLayout, type Image } from '../image/layout';
import { runInVm, type VmResources, type VmRunResult } from '../vm/runtime';
import type { RunControl, Stdio } from '../agent/process-io';
import { openImage, type PullPolicy } from './resolve-image';
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
  const image = typeof options.image === 'string' ? await resolve(options.image, options) : options.image;
  const spec = makeRunSpec(image.config, options);
  return runInVm(image, spec, options.stdio, options, options.onStart);
}

/** A path (absolute, ./ or ../, or any directory holding oci-layout) is a layout directory; else what the CLI would make of the text. */
function resolve(text: string, options: RunImageOptions): Promise<Image> {
  if (/^\.{0,2}\//.test(text) || fs.existsSync(`${text}/oci-layout`)) return openLayout(text, options.ref);
  return openImage(text, { pull: options.pull ?? 'missing' });
}
