/**
 * Images stored as an OCI image layout directory (image-spec image-layout.md), as `umoci`,
 * `skopeo copy oci:DIR` and vmrun's own store write them. Manifests and the config are small JSON
 * documents, read whole, size-capped and checked against their digests; layer blobs are never
 * parsed on the host: they are only located here, and hashed before a guest unpacks them.
 */
import fs from 'node:fs';
import path from 'node:path';

import { ImageError } from '../errors';
import { parseImageConfig, type ImageConfig } from './config';
import { chainId, digestHex, sha256, sha256File, unpackKey } from './digest';
import { INDEX_TYPES, MANIFEST_TYPES, layerCompression, type Compression } from './media-types';

/** Manifests, indexes and configs above this size are refused rather than read into memory. */
export const MAX_DOCUMENT_BYTES = 8 << 20;
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface Layer {
  /** The blob file: the compressed tar exactly as it was distributed. */
  path: string;
  digest: string;
  size: number;
  compression: Compression;
  /** The digest of the uncompressed tar, from the image config. */
  diffId: string;
}

export interface Image {
  /** What the user called it, for messages. */
  name: string;
  manifestDigest: string;
  config: ImageConfig;
  layers: Layer[];
  /** The OCI ChainID: names the stack of layers the image claims. */
  chainId: string;
  /**
   * layerKeys[i] names layer i unpacked on top of layers 0..i-1 in the caches (what it hides and
   * copies depends on them, as with docker's ChainIDs), from digests the host and the unpacker
   * both verify; images on one base share the base's entries.
   */
  layerKeys: string[];
}

/** The Go names of this host's OS and architecture, which image platforms use. */
export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/**
 * Opens image `ref` (a ref.name annotation such as `latest`; optional when the layout holds one
 * image) in the layout at `dir`, for this host's platform.
 */
export async function openLayout(dir: string, ref?: string): Promise<Image> {
  const name = ref ? `${dir}:${ref}` : dir;
  let marker: unknown;
  try {
    marker = JSON.parse(await fs.promises.readFile(path.join(dir, 'oci-layout'), 'utf8'));
  } catch {
    throw new ImageError(`${dir} is not an OCI image layout (no readable oci-layout file): give a directory written by umoci or skopeo copy oci:DIR`);
  }
  if ((marker as { imageLayoutVersion?: unknown })?.imageLayoutVersion !== '1.0.0') {
    throw new ImageError(`${dir}/oci-layout: unsupported imageLayoutVersion (expected 1.0.0)`);
  }
  const index = await readJson(path.join(dir, 'index.json'), `${dir}/index.json`);
  const entries = index.manifests === null ? [] : descriptors(index.manifests, `${dir}/index.json`);
  if (entries.length === 0) throw new ImageError(`${dir} holds no images: add one with umoci or skopeo copy`);
  let chosen: Descriptor;
  if (ref !== undefined) {
    const found = entries.find((d) => d.annotations?.[REF_NAME] === ref);
    if (!found) throw new ImageError(`image ${name} not found: the layout holds ${refNames(entries)}`);
    chosen = found;
  } else if (entries.length === 1) {
    chosen = entries[0];
  } else {
    throw new ImageError(`${dir} holds ${entries.length} images: name one as ${dir}:REF (${refNames(entries)})`);
  }
  const manifest = await resolveManifest(dir, chosen, name);
  return imageFrom(dir, name, manifest);
}

async function resolveManifest(dir: string, descriptor: Descriptor, name: string, depth = 0): Promise<{ digest: string; json: Record<string, unknown> }> {
  if (MANIFEST_TYPES.includes(descriptor.mediaType)) {
    return { digest: descriptor.digest, json: await readBlobJson(dir, descriptor, `manifest of ${name}`) };
  }
  if (!INDEX_TYPES.includes(descriptor.mediaType) || depth > 2) {
    throw new ImageError(`${name}: unsupported manifest media type ${JSON.stringify(descriptor.mediaType)}`);
  }
  const index = await readBlobJson(dir, descriptor, `index of ${name}`);
  const platform = hostPlatform();
  const entries = descriptors(index.manifests, `index of ${name}`);
  const match = entries.find((d) => d.platform?.os === platform.os && d.platform?.architecture === platform.architecture);
  if (!match) {
    const offered = entries.map((d) => `${d.platform?.os}/${d.platform?.architecture}`).join(', ');
    throw new ImageError(`${name} has no ${platform.os}/${platform.architecture} image (it has ${offered || 'none'})`);
  }
  return resolveManifest(dir, match, name, depth + 1);
}

async function imageFrom(dir: string, name: string, manifest: { digest: string; json: Record<string, unknown> }): Promise<Image> {
  const configDescriptor = descriptors([manifest.json.config], `manifest of ${name}`)[0];
  const config = parseImageConfig(await readBlobJson(dir, configDescriptor, `config of ${name}`), `config of ${name}`);
  const platform = hostPlatform();
  if (config.os !== platform.os || config.architecture !== platform.architecture) {
    throw new ImageError(`${name} is a ${config.os}/${config.architecture} image; this host runs ${platform.os}/${platform.architecture} images`);
  }
  const layerDescriptors = descriptors(manifest.json.layers, `manifest of ${name}`);
  if (layerDescriptors.length !== config.diffIds.length) {
    throw new ImageError(`${name}: the manifest lists ${layerDescriptors.length} layers but the config ${config.diffIds.length} diff_ids`);
  }
  if (layerDescriptors.length === 0) throw new ImageError(`${name} has no layers`);
  const layers: Layer[] = [];
  for (const [i, d] of layerDescriptors.entries()) {
    const compression = layerCompression(d.mediaType);
    if (!compression) throw new ImageError(`${name}: layer ${i + 1} has unsupported media type ${JSON.stringify(d.mediaType)}`);
    digestHex(config.diffIds[i], `${name}: diff_id of layer ${i + 1}`);
    const file = blobPath(dir, d);
    const stat = await fs.promises.stat(file).catch(() => undefined);
    if (!stat?.isFile()) throw new ImageError(`${name}: layer ${i + 1} blob ${d.digest} is missing from ${dir}`);
    if (stat.size !== d.size) throw new ImageError(`${name}: layer ${i + 1} blob ${d.digest} is ${stat.size} bytes, the manifest says ${d.size}`);
    layers.push({ path: file, digest: d.digest, size: d.size, compression, diffId: config.diffIds[i] });
  }
  return { name, manifestDigest: manifest.digest, config, layers, chainId: chainId(config.diffIds), layerKeys: layers.map((_, i) => unpackKey(layers.slice(0, i + 1))) };
}

/** Checks every layer blob against its digest (streaming); throws ImageError naming the first bad one. */
export async function verifyLayers(image: Image): Promise<void> {
  for (const [i, layer] of image.layers.entries()) {
    const actual = await sha256File(layer.path).catch((err: Error) => {
      throw new ImageError(`${image.name}: layer ${i + 1} cannot be read: ${err.message}`);
    });
    if (actual.digest !== layer.digest || actual.size !== layer.size) {
      throw new ImageError(`${image.name}: layer ${i + 1} is corrupt: ${layer.path} hashes to ${actual.digest}, expected ${layer.digest}; pull the image again`);
    }
  }
}

function blobPath(dir: string, d: Descriptor): string {
  return path.join(dir, 'blobs', 'sha256', digestHex(d.digest, 'a blob'));
}

async function readBlobJson(dir: string, d: Descriptor, what: string): Promise<Record<string, unknown>> {
  if (d.size > MAX_DOCUMENT_BYTES) throw new ImageError(`${what} is ${d.size} bytes, over the ${MAX_DOCUMENT_BYTES}-byte limit`);
  const file = blobPath(dir, d);
  const stat = await fs.promises.stat(file).catch(() => undefined);
  if (!stat?.isFile()) throw new ImageError(`${what}: blob ${d.digest} is missing from ${dir}`);
  if (stat.size !== d.size) throw new ImageError(`${what}: blob ${d.digest} is ${stat.size} bytes, its descriptor says ${d.size}`);
  const data = await fs.promises.readFile(file);
  if (sha256(data) !== d.digest) throw new ImageError(`${what}: blob ${d.digest} does not match its digest`);
  return parseJsonObject(data, what);
}

async function readJson(file: string, what: string): Promise<Record<string, unknown>> {
  const stat = await fs.promises.stat(file).catch(() => undefined);
  if (!stat?.isFile()) throw new ImageError(`${what} is missing`);
  if (stat.size > MAX_DOCUMENT_BYTES) throw new ImageError(`${what} is over the ${MAX_DOCUMENT_BYTES}-byte limit`);
  return parseJsonObject(await fs.promises.readFile(file), what);
}

export function parseJsonObject(data: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ImageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImageError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

export function descriptors(value: unknown, what: string): Descriptor[] {
  if (!Array.isArray(value)) throw new ImageError(`${what}: expected a list of descriptors`);
  return value.map((d, i) => {
    const desc = d as Partial<Descriptor> | null;
    if (typeof desc !== 'object' || desc === null || typeof desc.mediaType !== 'string' || !Number.isSafeInteger(desc.size) || (desc.size as number) < 0) {
      throw new ImageError(`${what}: descriptor ${i + 1} is malformed (needs mediaType, digest and size)`);
    }
    digestHex(desc.digest, `${what}: descriptor ${i + 1}`);
    return desc as Descriptor;
  });
}

function refNames(entries: Descriptor[]): string {
  const names = entries.map((d) => d.annotations?.[REF_NAME]).filter((n): n is string => !!n);
  return names.length ? names.join(', ') : 'no named images';
}
