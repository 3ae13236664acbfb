/* A layer blob read from a block device: exactly its byte count, decompressed (gzip, zstd or
 * none) and hashed as it goes, so that the diff_id covers every byte the tar reader saw and
 * everything after it. */
#ifndef AGENT_STREAM_H
#define AGENT_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>
#include <zstd.h>

#include "digest.h"
#include "spec.h"

#define STREAM_CHUNK (128 * 1024)

struct layer_stream {
  int fd;
  uint64_t remaining; /* compressed bytes still to read from fd */
  uint64_t bytes;     /* the blob's size, for messages */
  enum compression compression;
  unsigned char in[STREAM_CHUNK];
  size_t in_off, in_len;
  unsigned char out[STREAM_CHUNK];
  z_stream z;
  ZSTD_DStream *zstd;
  bool member_open; /* inside a gzip member or zstd frame that has not ended yet */
  struct digest digest;
};

int stream_open(struct layer_stream *s, int fd, uint64_t bytes, enum compression compression);
/* The next piece of the uncompressed stream: its length with *buf set, 0 at the end, -1 on a
 * read error, a corrupt or a truncated stream (agent_error says which). */
ssize_t stream_read(struct layer_stream *s, const void **buf);
void stream_digest(struct layer_stream *s, char out[DIGEST_TEXT_SIZE]);
void stream_close(struct layer_stream *s);

#endif
