/**
 * Blob downloads into the store: every byte hashed and counted as it streams to ingest/, the file
 * renamed into blobs/ only when its digest and size are right. A broken connection resumes with
 * a Range request from what was written (also across processes, from the partial file); a digest
 * mismatch deletes the partial file, so the next try starts clean.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { ImageError, RegistryError, VmrunError } from '../../errors';
import type { ContentStore } from '../content-store';
import type { Descriptor } from '../layout';
import type { RepositoryClient } from './client';
import { ConnectionError, DEFAULT_RETRY, describeNetworkError, errorText, type RetryPolicy } from './http';

export type BlobEvent =
  | { state: 'waiting' | 'exists' | 'verifying' | 'done' }
  | { state: 'downloading'; done: number };

export interface BlobOptions {
  /** `layer 2 of NAME`, for messages. */
  what: string;
  onEvent?: (event: BlobEvent) => void;
  retry?: RetryPolicy;
  signal?: AbortSignal;
}

export interface BlobResult {
  /** Bytes that came over the network in this call. */
  fetched: number;
  /** Bytes of an earlier, interrupted download that this one continued from. */
  resumed: number;
  existed: boolean;
}

/** Puts blob `d` of the client's repository into the store, unless it is there already. */
export async function downloadBlob(client: RepositoryClient, d: Descriptor, store: ContentStore, options: BlobOptions): Promise<BlobResult> {
  const existed: BlobResult = { fetched: 0, resumed: 0, existed: true };
  if (await store.hasBlob(d)) return existed;
  options.onEvent?.({ state: 'waiting' });
  const release = await store.lockIngest(d.digest);
  try {
    if (await store.hasBlob(d)) return existed;
    const partial = store.ingestPath(d.digest);
    let download = new Download(client, d, partial, options);
    try {
      let result = await download.run();
      options.onEvent?.({ state: 'verifying' });
      let digest = download.digest();
      if (digest !== d.digest && result.resumed > 0) {
        // The bytes kept from an earlier try may be what is wrong: fetch the whole blob once more.
        await fs.promises.rm(partial, { force: true });
        download = new Download(client, d, partial, options);
        result = await download.run();
        digest = download.digest();
      }
      if (digest !== d.digest) {
        throw new ImageError(`${options.what}: blob ${d.digest} from ${client.name} does not match its digest (its bytes hash to ${digest}); nothing was stored`);
      }
      await store.commitBlob(partial, d.digest);
      options.onEvent?.({ state: 'done' });
      return { ...result, existed: false };
    } catch (err) {
      // Bad content is not worth resuming from; an interrupted download is.
      const kept = (await fs.promises.stat(partial).catch(() => undefined))?.size ?? 0;
      if (err instanceof ImageError || kept === 0) await fs.promises.rm(partial, { force: true });
      throw err;
    }
  } finally {
    await release();
  }
}

/** One blob's transfer into its partial file, resumed across broken connections. */
class Download {
  private hash: Hash = createHash('sha256');
  /** Bytes in the partial file, all of them already in `hash`. */
  private offset = 0;

  constructor(
    private readonly client: RepositoryClient,
    private readonly d: Descriptor,
    private readonly partial: string,
    private readonly options: BlobOptions,
  ) {}

  digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }

  async run(): Promise<Omit<BlobResult, 'existed'>> {
    const resumed = await this.loadPartial();
    const retry = this.options.retry ?? DEFAULT_RETRY;
    let fetched = 0;
    for (let attempt = 1; this.offset < this.d.size; attempt++) {
      const before = this.offset;
      try {
        await this.fetchFrom();
      } catch (err) {
        fetched += this.offset - before;
        const unreachable = err instanceof ConnectionError;
        if ((err instanceof VmrunError && !unreachable) || this.options.signal?.aborted) throw err;
        // A request that could not connect was retried already; a body that broke off was not.
        if (unreachable || attempt >= retry.attempts) {
          const cause = unreachable ? (err as Error).cause : err;
          throw new RegistryError(
            `${this.options.what}: the download of ${this.d.digest} from ${this.client.name} broke off at ${this.offset} of ${this.d.size} bytes (${describeNetworkError(cause)}); pull again to resume`,
            { cause },
          );
        }
        await sleep(Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)), undefined, { signal: this.options.signal });
        continue;
      }
      fetched += this.offset - before;
    }
    return { fetched, resumed };
  }

  /** Takes over what an earlier download left (hashing it again: it may be another process's). */
  private async loadPartial(): Promise<number> {
    const size = (await fs.promises.stat(this.partial).catch(() => undefined))?.size ?? 0;
    if (size === 0 || size > this.d.size) return this.restart();
    for await (const chunk of fs.createReadStream(this.partial, { highWaterMark: 1 << 20 })) this.hash.update(chunk as Buffer);
    this.offset = size;
    return size;
  }

  private async restart(): Promise<number> {
    await fs.promises.writeFile(this.partial, '');
    this.hash = createHash('sha256');
    this.offset = 0;
    return 0;
  }

  /** One request: appends to the partial file until the body ends or breaks. */
  private async fetchFrom(): Promise<void> {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (this.offset > 0) headers.range = `bytes=${this.offset}-`;
    const res = await this.client.get(`blobs/${this.d.digest}`, headers, `fetching ${this.options.what}`, this.options.signal);
    if (res.status === 404) throw new ImageError(`${this.options.what}: blob ${this.d.digest} not found in ${this.client.name} (${await errorText(res)})`);
    if (res.status === 416 || (res.status === 206 && !res.headers.get('content-range')?.startsWith(`bytes ${this.offset}-`))) {
      // The registry will not continue where we stopped: start over.
      await res.body?.cancel();
      await this.restart();
      return;
    }
    if (res.status === 200 && this.offset > 0) await this.restart();
    else if (res.status !== 200 && res.status !== 206) throw new RegistryError(`fetching ${this.options.what} failed: ${await errorText(res)}`);
    const length = res.headers.get('content-length');
    if (length !== null && this.offset + Number(length) !== this.d.size) {
      await res.body?.cancel();
      throw new ImageError(`${this.options.what}: blob ${this.d.digest} is ${this.offset + Number(length)} bytes in ${this.client.name}, its descriptor says ${this.d.size}; nothing was stored`);
    }
    const out = fs.createWriteStream(this.partial, { flags: 'a' });
    // A failed write (a full disk) is noticed at the next chunk, and ends the download with it.
    let writeError: Error | undefined;
    out.on('error', (err) => (writeError ??= err));
    const failed = () => new ImageError(`${this.options.what}: writing ${this.partial} failed: ${writeError?.message}`);
    try {
      for await (const chunk of res.body ?? []) {
        if (writeError) throw failed();
        if (this.offset + chunk.length > this.d.size) throw new ImageError(`${this.options.what}: blob ${this.d.digest} is longer than the ${this.d.size} bytes its descriptor says; nothing was stored`);
        this.hash.update(chunk);
        this.offset += chunk.length;
        if (!out.write(chunk)) await once(out, 'drain').catch(() => undefined);  // an error rejects it: seen above
        this.options.onEvent?.({ state: 'downloading', done: this.offset });
      }
      if (writeError) throw failed();
      if (this.offset < this.d.size) throw new Error(`the body ended at ${this.offset} bytes`);
    } finally {
      out.end();
      await finished(out).catch(() => undefined);
    }
    if (writeError) throw failed();
  }
}
