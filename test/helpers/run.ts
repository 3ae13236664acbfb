/** Runs an image through runImage and collects what a terminal user would see. */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';

import { AgentError, VmrunError } from '../../src/errors';
import { openLayout, type Image } from '../../src/image/layout';
import { runImage, type RunImageOptions } from '../../src/run/run-image';
import { layerDiskPath } from '../../src/vm/layer-disks';
import type { RunControl } from '../../src/agent/process-io';
import type { VmRunResult } from '../../src/vm/runtime';
import { testImages } from './images';

export interface Outcome {
  code: number;
  stdout: Buffer;
  stderr: string;
  /** The error runImage threw, when it threw one. */
  error?: VmrunError;
  /** Wall time of the whole run, image preparation included. */
  ms: number;
  result?: VmRunResult;
}

/** Opens a test image, with its cached layer disks removed first when `fresh`. */
export async function testImage(name: string, ref?: string, fresh = false): Promise<Image> {
  const image = await openLayout(path.join(await testImages(), name), ref);
  if (fresh) image.layers.forEach((_, i) => fs.rmSync(layerDiskPath(image, i), { force: true }));
  return image;
}

export async function run(
  image: Image,
  options: Omit<RunImageOptions, 'image' | 'stdio'> & { stdin?: Buffer | Readable } = {},
  onStdout?: (text: string, control: RunControl) => void,
): Promise<Outcome> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let control: RunControl | undefined;
  stdout.on('data', (b: Buffer) => {
    out.push(b);
    if (onStdout && control) onStdout(Buffer.concat(out).toString(), control);
  });
  stderr.on('data', (b: Buffer) => err.push(b));
  const given = options.stdin;
  const stdin = given === undefined || given instanceof Readable ? given : Readable.from([given]);
  const start = performance.now();
  try {
    const result = await runImage({ ...options, image, stdio: { stdin, stdout, stderr }, onStart: (c) => (control = c) });
    return { code: result.exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), result, ms: performance.now() - start };
  } catch (e) {
    if (!(e instanceof VmrunError)) throw e;
    return { code: e.exitCode, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString(), error: e, ms: performance.now() - start };
  }
}

export { AgentError };
