/**
 * The images vmrun has: what the runtimes ask for (getImage) and what `pull`, `images`, `rmi`,
 * `image prune` and `load` do, over the content store in content-store.ts.
 */
import fs from 'node:fs';

import { ImageError } from '../errors';
import { ContentStore, REPO_DIGEST, storeDir } from './content-store';
import { descriptors, openLayout, parseJsonObject, REF_NAME, type Image } from './layout';
import { pullImage } from './pull';
import { canonicalReference, familiarName, parseReference } from './reference';
import { parsePlatform, samePlatform, type Platform } from './registry/platform';

export { loadArchive } from './archive';
export { pullImage, type PullOptions, type PullResult } from './pull';
export { storeDir };

export interface GetImageOptions {
  /** `missing` (the default) pulls only what the store lacks; `never` fails instead. */
  pull?: 'always' | 'missing' | 'never';
  /** `os/arch[/variant]`; default this host's. */
  platform?: string;
  progress?: boolean;
}

/** The image `ref` names, pulled first as `options.pull` says. */
export async function getImage(ref: string, options: GetImageOptions = {}): Promise<Image> {
  const reference = canonicalReference(parseReference(ref));
  const policy = options.pull ?? 'missing';
  const want = options.platform ? parsePlatform(options.platform) : undefined;
  let present = false;
  if (policy !== 'always') {
    const entry = (await (await ContentStore.open()).readIndex()).find((d) => d.annotations?.[REF_NAME] === reference);
    present = entry !== undefined && (!want || (entry.platform !== undefined && samePlatform(entry.platform as Platform, want)));
  }
  if (!present) {
    if (policy === 'never') throw new ImageError(`image ${ref} not found locally: run vmrun pull ${ref}`);
    await pullImage(ref, { platform: options.platform, progress: options.progress });
  }
  return { ...(await openLayout(storeDir(), reference)), name: ref };
}

export interface ImageSummary {
  /** The full name in the store: `docker.io/library/busybox:latest`. */
  reference: string;
  /** As docker shows it: `busybox`, `registry.example.com/team/app`. */
  repository: string;
  /** Undefined for an image pulled by digest alone. */
  tag?: string;
  /** The registry's digest for it (what `name@digest` pulls), else its manifest's. */
  digest: string;
  manifestDigest: string;
  /** Bytes in the store: manifest, config and compressed layers. */
  size: number;
  /** From the config; undefined when the image does not say. */
  created?: string;
  platform?: Platform;
}

export async function listImages(): Promise<ImageSummary[]> {
  const store = await ContentStore.open();
  const images: ImageSummary[] = [];
  for (const entry of await store.readIndex()) {
    const reference = entry.annotations?.[REF_NAME];
    if (!reference) continue;
    const ref = parseReference(reference);
    const manifest = parseJsonObject(await fs.promises.readFile(store.blobPath(entry.digest)), `manifest of ${reference}`);
    const [config, ...layers] = descriptors([manifest.config, ...((manifest.layers as unknown[]) ?? [])], `manifest of ${reference}`);
    const created = parseJsonObject(await fs.promises.readFile(store.blobPath(config.digest)), `config of ${reference}`).created;
    images.push({
      reference,
      repository: familiarName(ref),
      tag: ref.digest ? undefined : ref.tag,
      digest: entry.annotations?.[REPO_DIGEST] ?? entry.digest,
      manifestDigest: entry.digest,
      size: entry.size + config.size + layers.reduce((sum, l) => sum + l.size, 0),
      created: typeof created === 'string' ? created : undefined,
      platform: entry.platform as Platform | undefined,
    });
  }
  return images;
}

/** `rmi`: removes the name `ref` (its blobs stay until prune); returns the full name removed. */
export async function removeImage(ref: string): Promise<string> {
  const reference = canonicalReference(parseReference(ref));
  await (await ContentStore.open()).updateIndex((entries) => {
    const kept = entries.filter((d) => d.annotations?.[REF_NAME] !== reference);
    if (kept.length === entries.length) throw new ImageError(`no such image: ${ref} (vmrun images lists what there is)`);
    return kept;
  });
  return reference;
}

/** `image prune`: deletes every blob that no named image needs; returns the bytes freed. */
export async function pruneImages(): Promise<number> {
  return (await ContentStore.open()).prune();
}
