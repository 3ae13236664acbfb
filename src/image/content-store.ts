/**
 * vmrun's image store: one OCI image layout directory (oci-layout, index.json, blobs/sha256/)
 * whose index.json names each image by its full reference in `org.opencontainers.image.ref.name`,
 * so that openLayout(storeDir, reference) opens a pulled image as it is.
 *
 * Nothing half-made is ever visible: blobs are written under ingest/ and renamed into blobs/ only
 * once verified; index.json is rewritten whole (temp + rename) under a lock. Downloads hold a lock
 * per blob, so concurrent pulls fetch each blob once; a pull or load holds a lease naming its
 * blobs, so that a prune running beside it leaves them alone until they are tagged.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { ImageError, LockError } from '../errors';
import { isLocked, isLockFileName, lock, lockFile, withLock, type Lock } from '../lock';
import { cacheDir } from '../paths';
import { digestHex, sha256 } from './digest';
import { descriptors, parseJsonObject, REF_NAME, type Descriptor } from './layout';
import { INDEX_TYPES, OCI_INDEX } from './media-types';

/** The digest the reference resolved to in its registry (an index's, for multi-platform images). */
export const REPO_DIGEST = 'io.vmrun.image.repo-digest';

/** $VMRUN_STORE_DIR, else the store in vmrun's cache. */
export function storeDir(): string {
  return process.env.VMRUN_STORE_DIR || path.join(cacheDir(), 'store');
}

export type Release = () => Promise<void>;

export class ContentStore {
  private constructor(readonly dir: string) {}

  /** The store at `dir` (default storeDir()), made an empty OCI layout first if need be. */
  static async open(dir = storeDir()): Promise<ContentStore> {
    const store = new ContentStore(dir);
    await Promise.all(['blobs/sha256', 'ingest', 'leases'].map((d) => fs.promises.mkdir(path.join(dir, d), { recursive: true })));
    if (!fs.existsSync(path.join(dir, 'oci-layout'))) await store.writeFileAtomic('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (!fs.existsSync(path.join(dir, 'index.json'))) await store.updateIndex((entries) => entries);
    return store;
  }

  blobPath(digest: string): string {
    return path.join(this.dir, 'blobs', 'sha256', digestHex(digest, 'a blob'));
  }

  /** Where a blob is written before it is verified: pulls resume from what is there. */
  ingestPath(digest: string): string {
    return path.join(this.dir, 'ingest', digestHex(digest, 'a blob'));
  }

  async hasBlob(d: { digest: string; size: number }): Promise<boolean> {
    const stat = await fs.promises.stat(this.blobPath(d.digest)).catch(() => undefined);
    return stat?.isFile() === true && stat.size === d.size;
  }

  /** Waits until no one else is writing `digest`, then holds it. */
  async lockIngest(digest: string): Promise<Release> {
    const held = await lock(this.ingestPath(digest), { what: `the download of ${digest}` });
    return () => held.release();
  }

  /** A fresh folder under ingest/ (locked, so that prune leaves it alone) for staging a load. */
  async stagingDir(): Promise<{ dir: string; release: Release }> {
    const dir = path.join(this.dir, 'ingest', `load-${process.pid}-${randomBytes(6).toString('hex')}`);
    await fs.promises.mkdir(dir);
    const held = await lock(dir);
    return {
      dir,
      release: async () => {
        await fs.promises.rm(dir, { recursive: true, force: true });
        await held.release();
      },
    };
  }

  /** Moves a verified file into blobs/ under its digest. */
  async commitBlob(file: string, digest: string): Promise<void> {
    await fs.promises.rename(file, this.blobPath(digest));
  }

  /** Writes a small blob whose bytes are in memory; returns its digest. */
  async writeBlob(bytes: Buffer): Promise<string> {
    const digest = sha256(bytes);
    if (await this.hasBlob({ digest, size: bytes.length })) return digest;
    await this.writeFileAtomic(path.relative(this.dir, this.blobPath(digest)), bytes);
    return digest;
  }

  async readIndex(): Promise<Descriptor[]> {
    const file = path.join(this.dir, 'index.json');
    const index = parseJsonObject(await fs.promises.readFile(file), file);
    return index.manifests ? descriptors(index.manifests, file) : [];
  }

  /** Rewrites index.json with what `change` makes of its entries, under the index lock. */
  async updateIndex(change: (entries: Descriptor[]) => Descriptor[] | Promise<Descriptor[]>): Promise<void> {
    await this.withIndexLock(async (held) => {
      const before = fs.existsSync(path.join(this.dir, 'index.json')) ? await this.readIndex() : [];
      const after = await change(before);
      // Another vmrun that took our lock for stale may have changed the index since we read it.
      if (!(await held.held())) throw new LockError(`the image store's index (${this.dir}) was taken over by another vmrun while this one stalled; run the command again`);
      await this.writeFileAtomic('index.json', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: after }));
    });
  }

  /**
   * Names `manifest` `reference` (replacing what had that name) once every blob it needs is in
   * the store, writing the manifest blob itself last.
   */
  async tag(reference: string, manifest: { descriptor: Descriptor; bytes: Buffer; blobs: Descriptor[] }): Promise<void> {
    await this.updateIndex(async (entries) => {
      for (const blob of manifest.blobs) {
        if (!(await this.hasBlob(blob))) throw new ImageError(`${reference}: blob ${blob.digest} went missing from the store before it was tagged; pull again`);
      }
      await this.writeBlob(manifest.bytes);
      const annotations = { ...manifest.descriptor.annotations, [REF_NAME]: reference };
      return [...entries.filter((d) => d.annotations?.[REF_NAME] !== reference), { ...manifest.descriptor, annotations }];
    });
  }

  /** Protects `digests` from prune until released; taken under the index lock so that a prune is either wholly before or after. */
  async lease(digests: string[]): Promise<Release> {
    const file = path.join(this.dir, 'leases', `${process.pid}-${randomBytes(6).toString('hex')}.json`);
    const held = await this.withIndexLock(async () => {
      await fs.promises.writeFile(file, JSON.stringify(digests));
      return lock(file);
    });
    return async () => {
      await fs.promises.rm(file, { force: true });
      await held.release();
    };
  }

  /**
   * Deletes every blob that no named image reaches and no live lease holds, and what crashed
   * pulls left in ingest/; returns the bytes freed.
   */
  async prune(): Promise<number> {
    return this.withIndexLock(async () => {
      const keep = new Set<string>();
      for (const entry of await this.readIndex()) await this.reach(entry, keep);
      for (const name of await fs.promises.readdir(path.join(this.dir, 'leases'))) {
        const file = path.join(this.dir, 'leases', name);
        if (!name.endsWith('.json')) continue;  // its lock, or a lease being written
        if (await isLocked(file)) {
          for (const digest of JSON.parse(await fs.promises.readFile(file, 'utf8')) as string[]) keep.add(digest);
        } else {
          await fs.promises.rm(file, { force: true });
          await fs.promises.rm(lockFile(file), { force: true });  // its holder is gone
        }
      }
      let freed = 0;
      const blobs = path.join(this.dir, 'blobs', 'sha256');
      for (const hex of await fs.promises.readdir(blobs)) {
        if (keep.has(`sha256:${hex}`)) continue;
        freed += await removeCounting(path.join(blobs, hex));
      }
      const ingest = path.join(this.dir, 'ingest');
      for (const name of await fs.promises.readdir(ingest)) {
        const file = path.join(ingest, name);
        if (isLockFileName(name) || (await isLocked(file))) continue;
        freed += await removeCounting(file);
      }
      return freed;
    });
  }

  /** Adds `d` and every blob under it to `keep`. */
  private async reach(d: Descriptor, keep: Set<string>): Promise<void> {
    keep.add(d.digest);
    if (!(await this.hasBlob(d))) return;
    const json = parseJsonObject(await fs.promises.readFile(this.blobPath(d.digest)), d.digest);
    if (INDEX_TYPES.includes(d.mediaType)) {
      for (const child of descriptors(json.manifests, d.digest)) await this.reach(child, keep);
    } else {
      for (const blob of descriptors([json.config, ...((json.layers as unknown[]) ?? [])], d.digest)) keep.add(blob.digest);
    }
  }

  private withIndexLock<T>(work: (held: Lock) => Promise<T>): Promise<T> {
    return withLock(path.join(this.dir, 'index.json'), { what: `the image store's index (${this.dir})` }, work);
  }

  /** Writes `relative` whole or not at all: a temp file beside it, renamed over it. */
  private async writeFileAtomic(relative: string, data: string | Buffer): Promise<void> {
    const file = path.join(this.dir, relative);
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await fs.promises.writeFile(temp, data);
      await fs.promises.rename(temp, file);
    } finally {
      await fs.promises.rm(temp, { force: true });
    }
  }
}

async function removeCounting(file: string): Promise<number> {
  const stat = await fs.promises.lstat(file).catch(() => undefined);
  if (!stat) return 0;
  let size = stat.isFile() ? stat.size : 0;
  if (stat.isDirectory()) {
    for (const name of await fs.promises.readdir(file)) size += await removeCounting(path.join(file, name));
  }
  await fs.promises.rm(file, { recursive: true, force: true });
  return size;
}
