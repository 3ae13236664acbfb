/* SHA-256 of a layer's uncompressed stream (its OCI diff_id), with nettle. */
#ifndef AGENT_DIGEST_H
#define AGENT_DIGEST_H

#include <nettle/sha2.h>
#include <stddef.h>

#define DIGEST_TEXT_SIZE (7 + 64 + 1) /* "sha256:" + hex + NUL */

struct digest {
  struct sha256_ctx ctx;
};

void digest_init(struct digest *d);
void digest_update(struct digest *d, const void *data, size_t len);
/* Writes "sha256:<64 lowercase hex>". */
void digest_final(struct digest *d, char out[DIGEST_TEXT_SIZE]);

#endif
