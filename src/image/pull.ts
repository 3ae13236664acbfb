/**
 * `vmrun pull`: a reference's manifest from its registry (Docker Hub's mirrors first), its config
 * and layers into the store (three layers at a time, each verified), then its name in index.json.
 * A failed pull tags nothing; the blobs it verified stay for the next try to reuse.
 */
import fs from 'node:fs';

import { ImageError } from '../errors';
import { log } from '../log';
import { parseImageConfig } from './config';
import { ContentStore, REPO_DIGEST } from './content-store';
import { parseJsonObject, type Descriptor } from './layout';
import { ProgressDisplay } from './progress';
import { canonicalReference, parseReference } from './reference';
import { downloadBlob, type BlobEvent, type BlobResult } from './registry/blob';
import { RepositoryClient } from './registry/client';
import { endpointsFor, type EndpointOptions } from './registry/endpoint';
import type { RetryPolicy } from './registry/http';
import { resolveManifest } from './registry/manifest';
import { defaultPlatform, parsePlatform, platformString, samePlatform, type Platform } from './registry/platform';

/** Layers downloaded at once, as docker's default max-concurrent-downloads. */
const CONCURRENT_DOWNLOADS = 3;

export interface PullOptions extends EndpointOptions {
  /** `os/arch[/variant]`; default this host's. */
  platform?: string;
  /** Per-layer progress on stderr: drawn in place on a terminal; true prints it elsewhere too, false never. */
  progress?: boolean;
  /** Every layer's download events, as they happen. */
  onLayerEvent?: (digest: string, event: BlobEvent) => void;
  retry?: RetryPolicy;
  signal?: AbortSignal;
}

export interface PullResult {
  /** The name the image has in the store: `docker.io/library/busybox:latest`. */
  reference: string;
  /** What the reference resolved to in the registry (an index's digest for multi-platform images). */
  repoDigest: string;
  manifestDigest: string;
  platform: Platform;
  /** Per layer, in order: whether it was there already, and the bytes fetched and resumed from. */
  layers: (BlobResult & { digest: string; size: number })[];
}

export async function pullImage(input: string, options: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(input);
  const reference = canonicalReference(ref);
  const platform = options.platform ? parsePlatform(options.platform) : defaultPlatform();
  const { client, resolved } = await resolve(ref.domain, ref.path, ref.digest ?? (ref.tag as string), reference, platform, options);
  const store = await ContentStore.open();
  const blobs = [resolved.config, ...resolved.layers];
  const release = await store.lease([resolved.manifest.digest, ...blobs.map((b) => b.digest)]);
  const showProgress = options.progress ?? process.stderr.isTTY === true;
  const display = showProgress ? new ProgressDisplay(process.stderr, process.stderr.isTTY === true) : undefined;
  try {
    const fetchBlob = (d: Descriptor, what: string, onEvent?: (e: BlobEvent) => void, signal = options.signal) =>
      downloadBlob(client, d, store, { what, retry: options.retry, signal, onEvent });
    await fetchBlob(resolved.config, `the config of ${reference}`);
    const config = parseImageConfig(parseJsonObject(await fs.promises.readFile(store.blobPath(resolved.config.digest)), `config of ${reference}`), `config of ${reference}`);
    const configPlatform = { os: config.os, architecture: config.architecture };
    if (options.platform && !samePlatform(configPlatform, { ...platform, variant: undefined })) {
      throw new ImageError(`${reference} is a ${platformString(configPlatform)} image, not the ${platformString(platform)} asked for`);
    }
    if (config.diffIds.length !== resolved.layers.length) {
      throw new ImageError(`${reference}: the manifest lists ${resolved.layers.length} layers but the config ${config.diffIds.length} diff_ids`);
    }
    // Every layer's line from the start, as docker shows them ("Pulling fs layer").
    const onDisplay = resolved.layers.map((d) => display?.layer(d.digest, d.size));
    const layers = await downloadLayers(resolved.layers, CONCURRENT_DOWNLOADS, options.signal, (d, i, signal) => {
      const onEvent = (e: BlobEvent) => {
        onDisplay[i]?.(e);
        options.onLayerEvent?.(d.digest, e);
      };
      return fetchBlob(d, `layer ${i + 1} of ${reference}`, onEvent, signal);
    });
    const descriptor: Descriptor = {
      mediaType: resolved.manifest.mediaType,
      digest: resolved.manifest.digest,
      size: resolved.manifest.bytes.length,
      platform: configPlatform,
      annotations: { [REPO_DIGEST]: resolved.top.digest },
    };
    await store.tag(reference, { descriptor, bytes: resolved.manifest.bytes, blobs });
    return {
      reference,
      repoDigest: resolved.top.digest,
      manifestDigest: resolved.manifest.digest,
      platform: configPlatform,
      layers: layers.map((r, i) => ({ ...r, digest: resolved.layers[i].digest, size: resolved.layers[i].size })),
    };
  } finally {
    display?.finish();
    await release();
  }
}

/** The manifest from the first endpoint that has it: a Docker Hub mirror failing falls back to the next. */
async function resolve(domain: string, repository: string, tagOrDigest: string, name: string, platform: Platform, options: PullOptions) {
  const endpoints = endpointsFor(domain, options);
  for (const mirror of endpoints.slice(0, -1)) {
    const client = new RepositoryClient(mirror, repository, { retry: options.retry, signal: options.signal });
    try {
      return { client, resolved: await resolveManifest(client, tagOrDigest, name, platform) };
    } catch (err) {
      if (options.signal?.aborted) throw err;
      log.warn({ mirror: mirror.base, error: (err as Error).message }, 'registry mirror failed; trying the next endpoint');
    }
  }
  const client = new RepositoryClient(endpoints[endpoints.length - 1], repository, { retry: options.retry, signal: options.signal });
  return { client, resolved: await resolveManifest(client, tagOrDigest, name, platform) };
}

/**
 * Runs `download` over `items`, `limit` at a time. The first failure aborts the others, and is thrown
 * once all have stopped, so that nothing still writes to the store after the pull has failed.
 */
async function downloadLayers<T>(
  items: Descriptor[],
  limit: number,
  outer: AbortSignal | undefined,
  download: (d: Descriptor, index: number, signal: AbortSignal) => Promise<T>,
): Promise<T[]> {
  const abort = new AbortController();
  const signal = outer ? AbortSignal.any([outer, abort.signal]) : abort.signal;
  const results: T[] = [];
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        results[i] = await download(items[i], i, signal);
      } catch (error) {
        failure ??= { error };
        abort.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
  return results;
}
