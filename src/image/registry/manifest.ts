/**
 * Manifests from a registry: asked for in all four media types at once, hashed exactly as
 * received, checked against the digest when one was asked for, and an index resolved to the
 * manifest of one platform.
 */
import { ImageError, RegistryError } from '../../errors';
import { sha256 } from '../digest';
import { descriptors, MAX_DOCUMENT_BYTES, parseJsonObject, type Descriptor } from '../layout';
import { DOCKER_LIST, DOCKER_MANIFEST, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST } from '../media-types';
import type { RepositoryClient } from './client';
import { errorText } from './http';
import { choosePlatform, type Platform } from './platform';

const ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  /** The bytes exactly as served: the digest is theirs, and the store keeps them as they are. */
  bytes: Buffer;
  json: Record<string, unknown>;
}

export interface ResolvedManifest {
  /** What the reference names (an index or a manifest): its digest is the repo digest. */
  top: FetchedManifest;
  /** The image manifest for the platform. */
  manifest: FetchedManifest;
  config: Descriptor;
  layers: Descriptor[];
}

/** Fetches `reference` (a tag or a digest) of the client's repository; `name` is for messages. */
async function fetchManifest(client: RepositoryClient, reference: string, name: string): Promise<FetchedManifest> {
  const what = `fetching the manifest of ${name}`;
  const res = await client.get(`manifests/${reference}`, { accept: ACCEPT }, what);
  if (res.status === 404) {
    const why = await errorText(res);
    const unknown = /NAME_UNKNOWN/.test(why) ? why : await repositoryUnknown(client);
    if (unknown) throw new ImageError(`repository ${client.name} not found (${unknown})`);
    throw new ImageError(`manifest for ${name} not found (${why})`);
  }
  if (!res.ok) throw new RegistryError(`${what} failed: ${await errorText(res)}`);
  const bytes = await readCapped(res, what);
  const digest = sha256(bytes);
  if (reference.startsWith('sha256:') && digest !== reference) {
    throw new ImageError(`${name}: the registry served a manifest whose digest is ${digest}, not the ${reference} asked for`);
  }
  const json = parseJsonObject(bytes, `manifest of ${name}`);
  const contentType = res.headers.get('content-type')?.split(';')[0].trim() ?? '';
  const mediaType = [...INDEX_TYPES, ...MANIFEST_TYPES].includes(contentType) ? contentType : String(json.mediaType ?? contentType);
  if (![...INDEX_TYPES, ...MANIFEST_TYPES].includes(mediaType)) {
    throw new ImageError(`${name}: unsupported manifest media type ${JSON.stringify(mediaType)} (schema 1 and other old formats are not pulled)`);
  }
  return { mediaType, digest, bytes, json };
}

/** The reference's manifest, through its index to `platform` when it names an index. */
export async function resolveManifest(client: RepositoryClient, reference: string, name: string, platform: Platform): Promise<ResolvedManifest> {
  const top = await fetchManifest(client, reference, name);
  let manifest = top;
  if (INDEX_TYPES.includes(top.mediaType)) {
    const chosen = choosePlatform(descriptors(top.json.manifests, `index of ${name}`), platform, name);
    if (!MANIFEST_TYPES.includes(chosen.mediaType)) {
      throw new ImageError(`${name}: the index entry for its platform has media type ${JSON.stringify(chosen.mediaType)}, not an image manifest`);
    }
    manifest = await fetchManifest(client, chosen.digest, name);
    if (manifest.bytes.length !== chosen.size) throw new ImageError(`${name}: manifest ${chosen.digest} is ${manifest.bytes.length} bytes, the index says ${chosen.size}`);
  }
  const config = descriptors([manifest.json.config], `manifest of ${name}`)[0];
  const layers = descriptors(manifest.json.layers, `manifest of ${name}`);
  return { top, manifest, config, layers };
}

/**
 * The registry's words if it has no such repository, else undefined: distribution answers
 * MANIFEST_UNKNOWN for a missing tag and a missing repository alike, its tag list tells them apart.
 */
async function repositoryUnknown(client: RepositoryClient): Promise<string | undefined> {
  const res = await client.get('tags/list?n=1', {}, `listing the tags of ${client.name}`).catch(() => undefined);
  const why = res?.status === 404 ? await errorText(res) : '';
  await res?.body?.cancel().catch(() => undefined);
  return /NAME_UNKNOWN/.test(why) ? why : undefined;
}

async function readCapped(res: Response, what: string): Promise<Buffer> {
  if (Number(res.headers.get('content-length')) > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel();
    throw new ImageError(`${what}: it is over the ${MAX_DOCUMENT_BYTES}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body ?? []) {
      size += chunk.length;
      if (size > MAX_DOCUMENT_BYTES) throw new ImageError(`${what}: it is over the ${MAX_DOCUMENT_BYTES}-byte limit`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new RegistryError(`${what} failed: the connection broke (${(err as Error).message})`, { cause: err });
  }
  return Buffer.concat(chunks);
}
