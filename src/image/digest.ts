/** Content digests (`sha256:<64 hex>`), the only algorithm OCI images use in practice. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';

import { ImageError } from '../errors';

const DIGEST = /^sha256:([a-f0-9]{64})$/;

/** The hex part of a digest; throws ImageError for anything but a well-formed sha256 digest. */
export function digestHex(digest: unknown, what: string): string {
  const match = typeof digest === 'string' ? DIGEST.exec(digest) : null;
  if (!match) throw new ImageError(`${what} has an invalid digest ${JSON.stringify(digest)}: expected sha256:<64 hex digits>`);
  return match[1];
}

export function sha256(data: string | Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Hashes a file as it streams, with its size. */
export async function sha256File(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: 'sha256:' + hash.digest('hex'), size };
}

/** The OCI ChainID of a stack of layers (image-spec config.md): it names the stack's unpacked root. */
export function chainId(diffIds: string[]): string {
  let chain = diffIds[0];
  for (const diffId of diffIds.slice(1)) chain = sha256(`${chain} ${diffId}`);
  return chain;
}

/**
 * The key of an unpacked stack of layers in vmrun's caches: each layer's distributed digest
 * (which the host verifies before unpacking) beside its diff_id (which the unpacker verifies).
 * The ChainID alone names what an image claims; an image that claims another's diff_ids has
 * other blobs, so it can never be served the other's unpacked root.
 */
export function unpackKey(layers: { digest: string; diffId: string }[]): string {
  return sha256(layers.map((l) => `${l.digest} ${l.diffId}\n`).join(''));
}
