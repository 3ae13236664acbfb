/**
 * `vmrun load`: images from a docker-archive (what `docker save` writes: manifest.json naming each
 * image's config and layer files, with RepoTags or the older `repositories`), an oci-archive (an
 * OCI layout in a tar) or an OCI layout directory, into the store. An archive is read as a stream
 * and its files copied out whole, hashed on the way; layer contents are never unpacked.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

import tar from 'tar-stream';

import { ImageError } from '../errors';
import { parseImageConfig } from './config';
import { ContentStore } from './content-store';
import { sha256 } from './digest';
import { descriptors, MAX_DOCUMENT_BYTES, parseJsonObject, REF_NAME, type Descriptor } from './layout';
import { INDEX_TYPES, MANIFEST_TYPES, OCI_MANIFEST } from './media-types';
import { canonicalReference, parseReference } from './reference';
import { choosePlatform, defaultPlatform, parsePlatform } from './registry/platform';

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** containerd's annotation for an image's full name in an OCI layout (docker save writes it). */
const CONTAINERD_NAME = 'io.containerd.image.name';

export interface LoadOptions {
  /** The repository for images an OCI layout names by tag alone (`latest`). */
  name?: string;
  /** Which image of a multi-platform index to keep; default this host's. */
  platform?: string;
}

/** What a file of the archive hashed to as it was copied out. */
interface Extracted {
  digest: string;
  size: number;
}

/** A folder of files copied out of an archive (or a layout directory, where `files` is empty). */
interface Source {
  dir: string;
  /** By path relative to `dir`; present for archives, whose files may be moved, not copied. */
  files?: Map<string, Extracted>;
  /** Symbolic links in the archive (docker-archive's legacy layer.tar links), by path. */
  links?: Map<string, string>;
  what: string;
}

/** Loads every image of `file` (an archive, or an OCI layout directory); returns their full names. */
export async function loadArchive(file: string, options: LoadOptions = {}): Promise<string[]> {
  const stat = await fs.promises.stat(file).catch(() => undefined);
  if (!stat) throw new ImageError(`${file} does not exist: give a docker-archive or oci-archive tar, or an OCI layout directory`);
  const store = await ContentStore.open();
  if (stat.isDirectory()) return importLayout(store, { dir: file, what: file }, options);
  const staging = await store.stagingDir();
  try {
    const source = await extract(file, staging.dir);
    if (source.files.has('manifest.json')) return await importDockerArchive(store, source);
    if (source.files.has('oci-layout')) return await importLayout(store, source, options);
    throw new ImageError(`${file} is neither a docker-archive (no manifest.json) nor an oci-archive (no oci-layout)`);
  } finally {
    await staging.release();
  }
}

/** Copies the regular files of tar `file` (gzip-compressed or not) into `dir`, hashing each. */
async function extract(file: string, dir: string): Promise<Source & { files: Map<string, Extracted> }> {
  const source = { dir, files: new Map<string, Extracted>(), links: new Map<string, string>(), what: file };
  const extractor = tar.extract();
  const gzip = (await sniffCompression(file)) === '+gzip';
  const input = fs.createReadStream(file);
  const reading = gzip ? pipeline(input, zlib.createGunzip(), extractor) : pipeline(input, extractor);
  // It may fail while an entry is being copied below; the loop then fails too, and says why.
  reading.catch(() => undefined);
  try {
    for await (const entry of extractor) {
      const name = safeName(entry.header.name, file);
      if (entry.header.type === 'symlink' && name) source.links.set(name, path.posix.join(path.posix.dirname(name), entry.header.linkname ?? ''));
      if ((entry.header.type !== 'file' && entry.header.type !== 'contiguous-file') || !name) {
        entry.resume();
        continue;
      }
      const target = path.join(dir, name);
      await fs.promises.mkdir(path.dirname(target), { recursive: true });
      source.files.set(name, await copyHashing(entry, target));
    }
    await reading;
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError(`${file} is not a readable tar archive: ${(err as Error).message}`);
  }
  return source;
}

/** Writes `input` to `target`, hashing and counting the bytes on the way. */
async function copyHashing(input: AsyncIterable<unknown>, target: string): Promise<Extracted> {
  const hash = createHash('sha256');
  let size = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(input, hashing, fs.createWriteStream(target));
  return { digest: 'sha256:' + hash.digest('hex'), size };
}

/** An entry's path inside the archive, or undefined for one that would land outside the folder. */
function safeName(name: string, file: string): string | undefined {
  const normal = path.posix.normalize(name).replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (normal === '' || normal === '.') return undefined;
  if (normal.startsWith('/') || normal === '..' || normal.startsWith('../')) throw new ImageError(`${file}: entry ${JSON.stringify(name)} points outside the archive`);
  return normal;
}

/** Resolves `name` through the archive's symbolic links to a file copied out. */
function fileOf(source: Source, name: string): { path: string; extracted?: Extracted } {
  let resolved = path.posix.normalize(name);
  for (let hops = 0; source.links?.has(resolved) && hops < 8; hops++) resolved = path.posix.normalize(source.links.get(resolved) as string);
  const extracted = source.files?.get(resolved);
  if (source.files && !extracted) throw new ImageError(`${source.what}: ${name} is missing from the archive`);
  return { path: path.join(source.dir, resolved), extracted };
}

async function readDocument(source: Source, name: string): Promise<Buffer> {
  const { path: file } = fileOf(source, name);
  const stat = await fs.promises.stat(file).catch(() => undefined);
  if (!stat?.isFile()) throw new ImageError(`${source.what}: ${name} is missing`);
  if (stat.size > MAX_DOCUMENT_BYTES) throw new ImageError(`${source.what}: ${name} is over the ${MAX_DOCUMENT_BYTES}-byte limit`);
  return fs.promises.readFile(file);
}

/**
 * Puts the file `name` of the source into the store as blob `d`: moved when it came out of an
 * archive (its hash is known), else copied and hashed under the blob's ingest lock.
 */
async function importBlob(store: ContentStore, source: Source, name: string, d: Descriptor): Promise<void> {
  if (await store.hasBlob(d)) return;
  const { path: file, extracted } = fileOf(source, name);
  const mismatch = (actual: Extracted) =>
    new ImageError(`${source.what}: ${name} is ${actual.size} bytes hashing to ${actual.digest}, but it should be blob ${d.digest} of ${d.size} bytes`);
  if (extracted) {
    if (extracted.digest !== d.digest || extracted.size !== d.size) throw mismatch(extracted);
    return store.commitBlob(file, d.digest);
  }
  const release = await store.lockIngest(d.digest);
  const temp = store.ingestPath(d.digest);
  try {
    if (await store.hasBlob(d)) return;
    const actual = await copyHashing(fs.createReadStream(file), temp);
    if (actual.digest !== d.digest || actual.size !== d.size) throw mismatch(actual);
    await store.commitBlob(temp, d.digest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageError(`${source.what}: blob ${d.digest} is missing`);
    throw err;
  } finally {
    await fs.promises.rm(temp, { force: true });
    await release();
  }
}

/** Stores one image manifest and the blobs it needs (files of `source`) under `reference`. */
async function storeImage(
  store: ContentStore,
  source: Source,
  reference: string,
  manifest: { descriptor: Descriptor; bytes: Buffer; blobs: { name: string; d: Descriptor }[] },
): Promise<void> {
  const release = await store.lease([manifest.descriptor.digest, ...manifest.blobs.map((b) => b.d.digest)]);
  try {
    for (const blob of manifest.blobs) await importBlob(store, source, blob.name, blob.d);
    await store.tag(reference, { descriptor: manifest.descriptor, bytes: manifest.bytes, blobs: manifest.blobs.map((b) => b.d) });
  } finally {
    await release();
  }
}

const blobName = (d: Descriptor) => `blobs/sha256/${d.digest.slice('sha256:'.length)}`;

/** A blob of an OCI layout, read whole and checked against its descriptor. */
async function readBlob(source: Source, d: Descriptor): Promise<Buffer> {
  const bytes = await readDocument(source, blobName(d));
  if (bytes.length !== d.size || sha256(bytes) !== d.digest) throw new ImageError(`${source.what}: blob ${d.digest} does not match its digest and size`);
  return bytes;
}

/** The full name an OCI layout gives an image: containerd's annotation, a ref.name that is a whole reference, or `name` and a tag. */
function layoutReference(d: Descriptor, source: Source, name: string | undefined): string {
  const full = d.annotations?.[CONTAINERD_NAME];
  const refName = d.annotations?.[REF_NAME];
  if (full) return canonicalReference(parseReference(full));
  if (refName && /[/:@]/.test(refName)) return canonicalReference(parseReference(refName));
  if (name) return canonicalReference(parseReference(`${name}:${refName ?? 'latest'}`));
  throw new ImageError(`${source.what}: image ${d.digest} is named ${refName ? `only by the tag ${JSON.stringify(refName)}` : 'nothing'}: give the repository to load it as (--name REPOSITORY)`);
}

async function importLayout(store: ContentStore, source: Source, options: LoadOptions): Promise<string[]> {
  const index = parseJsonObject(await readDocument(source, 'index.json'), `${source.what}/index.json`);
  const entries = descriptors(index.manifests ?? [], `${source.what}/index.json`);
  if (entries.length === 0) throw new ImageError(`${source.what} holds no images`);
  const platform = options.platform ? parsePlatform(options.platform) : defaultPlatform();
  const loaded: string[] = [];
  for (const entry of entries) {
    const reference = layoutReference(entry, source, options.name);
    let d = entry;
    if (INDEX_TYPES.includes(d.mediaType)) {
      d = choosePlatform(descriptors(parseJsonObject(await readBlob(source, d), `index ${d.digest}`).manifests, `index ${d.digest}`), platform, reference);
    }
    if (!MANIFEST_TYPES.includes(d.mediaType)) throw new ImageError(`${source.what}: ${reference} has unsupported media type ${JSON.stringify(d.mediaType)}`);
    const bytes = await readBlob(source, d);
    const manifest = parseJsonObject(bytes, `manifest of ${reference}`);
    const blobs = descriptors([manifest.config, ...((manifest.layers as unknown[]) ?? [])], `manifest of ${reference}`);
    const config = parseImageConfig(parseJsonObject(await readBlob(source, blobs[0]), `config of ${reference}`), `config of ${reference}`);
    const descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size, platform: { os: config.os, architecture: config.architecture } };
    await storeImage(store, source, reference, { descriptor, bytes, blobs: blobs.map((b) => ({ name: blobName(b), d: b })) });
    loaded.push(reference);
  }
  return loaded;
}

interface DockerArchiveEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

async function importDockerArchive(store: ContentStore, source: Source): Promise<string[]> {
  const list = JSON.parse((await readDocument(source, 'manifest.json')).toString('utf8')) as DockerArchiveEntry[];
  if (!Array.isArray(list) || list.length === 0) throw new ImageError(`${source.what}: manifest.json lists no images`);
  // The older way of naming images: {"repo": {"tag": "<id of the top layer's folder>"}}.
  const repositories = source.files?.has('repositories')
    ? (JSON.parse((await readDocument(source, 'repositories')).toString('utf8')) as Record<string, Record<string, string>>)
    : {};
  const loaded: string[] = [];
  for (const [i, item] of list.entries()) {
    const what = `${source.what}: image ${i + 1}`;
    if (typeof item?.Config !== 'string' || !Array.isArray(item.Layers) || !item.Layers.every((l) => typeof l === 'string')) {
      throw new ImageError(`${what} in manifest.json needs Config and Layers`);
    }
    const layerNames = item.Layers as string[];
    const configBytes = await readDocument(source, item.Config);
    const config = parseImageConfig(parseJsonObject(configBytes, `${what} config`), `${what} config`);
    if (config.diffIds.length !== layerNames.length) throw new ImageError(`${what}: ${layerNames.length} layers but its config lists ${config.diffIds.length} diff_ids`);
    const layers: { name: string; d: Descriptor }[] = [];
    for (const [j, name] of layerNames.entries()) {
      const { path: file, extracted } = fileOf(source, name);
      const compression = await sniffCompression(file);
      if (compression === '' && extracted?.digest !== config.diffIds[j]) {
        throw new ImageError(`${what}: layer ${name} hashes to ${extracted?.digest}, but the config says its diff_id is ${config.diffIds[j]}`);
      }
      layers.push({ name, d: { mediaType: `application/vnd.oci.image.layer.v1.tar${compression}`, digest: extracted?.digest as string, size: extracted?.size as number } });
    }
    const topLayer = path.posix.dirname(layerNames[layerNames.length - 1] ?? '');
    const names = Array.isArray(item.RepoTags) && item.RepoTags.length
      ? (item.RepoTags as string[])
      : Object.entries(repositories).flatMap(([repo, tags]) => Object.entries(tags).filter(([, id]) => id === topLayer).map(([tag]) => `${repo}:${tag}`));
    if (names.length === 0) throw new ImageError(`${what} has no name (no RepoTags, nothing in repositories): save it by name`);
    const configDescriptor = { mediaType: OCI_CONFIG, digest: sha256(configBytes), size: configBytes.length };
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDescriptor, layers: layers.map((l) => l.d) }));
    const descriptor = { mediaType: OCI_MANIFEST, digest: sha256(bytes), size: bytes.length, platform: { os: config.os, architecture: config.architecture } };
    for (const name of names) {
      const reference = canonicalReference(parseReference(name));
      await storeImage(store, source, reference, { descriptor, bytes, blobs: [{ name: item.Config, d: configDescriptor }, ...layers] });
      loaded.push(reference);
    }
  }
  return loaded;
}

/** The media type suffix for a layer file, from its magic number. */
async function sniffCompression(file: string): Promise<'' | '+gzip' | '+zstd'> {
  const head = Buffer.alloc(4);
  const fd = await fs.promises.open(file, 'r');
  await fd.read(head, 0, 4, 0).finally(() => fd.close());
  if (head[0] === 0x1f && head[1] === 0x8b) return '+gzip';
  if (head.readUInt32LE(0) === 0xfd2fb528) return '+zstd';
  return '';
}
