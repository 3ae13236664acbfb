/* SHA-256 of a layer's uncompressed stream (its OCI diff_id), with nettle. */
#include "digest.h"

#include <stdio.h>
#include <string.h>

void digest_init(struct digest *d) { sha256_init(&d->ctx); }

void digest_update(struct digest *d, const void *data, size_t len) { sha256_update(&d->ctx, len, data); }

void digest_final(struct digest *d, char out[DIGEST_TEXT_SIZE]) {
  unsigned char raw[SHA256_DIGEST_SIZE];
  sha256_digest(&d->ctx, sizeof raw, raw);
  memcpy(out, "sha256:", 7);
  for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 7 + 2 * i, 3, "%02x", raw[i]);
}
