/**
 * IMAGE as the user wrote it, opened: `oci:DIR[:REF]` is an OCI image layout directory; any
 * other reference is a registry image.
 */
import fs from 'node:fs';

import { ImageError } from '../errors';
import { hostPlatform, openLayout, type Image } from '../image/layout';

export type PullPolicy = 'always' | 'missing' | 'never';

export interface ResolveOptions {
  pull: PullPolicy;
  /** `os/arch[/variant]`; default: this host's. */
  platform?: string;
}

/** The API's image: a path (absolute, ./ or ../, or any directory holding oci-layout) is a layout directory; else what the CLI would make of the text. */
export function resolveImage(text: string, pull: PullPolicy = 'missing', ref?: string): Promise<Image> {
  if (/^\.{0,2}\//.test(text) || fs.existsSync(`${text}/oci-layout`)) return openLayout(text, ref);
  return openImage(text, { pull });
}

export async function openImage(ref: string, options: ResolveOptions): Promise<Image> {
  if (options.platform !== undefined) checkPlatform(options.platform);
  if (ref.startsWith('oci:')) {
    const { dir, name } = splitLayoutRef(ref.slice(4));
    return openLayout(dir, name);
  }
  return registryImage(ref, options);
}

/** `DIR[:REF]`: the last colon starts REF when what follows it has no slash (DIR may hold colons). */
export function splitLayoutRef(text: string): { dir: string; name?: string } {
  const colon = text.lastIndexOf(':');
  if (colon > 0 && !text.slice(colon + 1).includes('/')) return { dir: text.slice(0, colon), name: text.slice(colon + 1) || undefined };
  return { dir: text };
}

/** A registry image, from the store or pulled as `pull` says. */
async function registryImage(ref: string, options: ResolveOptions): Promise<Image> {
  const { getImage } = await import('../image/store');
  return getImage(ref, { pull: options.pull, platform: options.platform });
}

/** vmrun runs this host's platform only; saying another is an error, not a silent substitute. */
function checkPlatform(platform: string): void {
  const host = hostPlatform();
  const [os, architecture] = platform.split('/');
  if (os !== host.os || architecture !== host.architecture) {
    throw new ImageError(`platform ${platform} cannot run here: this host runs ${host.os}/${host.architecture} images`);
  }
}
