/* A layer blob read from a block device: exactly its byte count, decompressed (gzip, zstd or
 * none) and hashed as it goes. The device is padded to a whole sector, so reading stops at the
 * blob's size, never at the device's end. */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int stream_open(struct layer_stream *s, int fd, uint64_t bytes, enum compression compression) {
  memset(s, 0, sizeof *s);
  s->fd = fd;
  s->remaining = s->bytes = bytes;
  s->compression = compression;
  digest_init(&s->digest);
  if (compression == COMPRESSION_GZIP) {
    /* 16 + MAX_WBITS: gzip wrapper only; a zlib or raw deflate stream is not a gzip layer. */
    if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) return fail("initialising gzip: %s", s->z.msg ? s->z.msg : "out of memory");
  } else if (compression == COMPRESSION_ZSTD) {
    s->zstd = ZSTD_createDStream();
    if (!s->zstd) return fail("initialising zstd: out of memory");
    size_t rc = ZSTD_initDStream(s->zstd);
    if (ZSTD_isError(rc)) return fail("initialising zstd: %s", ZSTD_getErrorName(rc));
  }
  return 0;
}

void stream_close(struct layer_stream *s) {
  if (s->compression == COMPRESSION_GZIP) inflateEnd(&s->z);
  if (s->zstd) ZSTD_freeDStream(s->zstd);
  s->zstd = NULL;
}

/* Refills the input buffer from the device, never past the blob's size. */
static int fill(struct layer_stream *s) {
  size_t want = s->remaining < sizeof s->in ? (size_t)s->remaining : sizeof s->in;
  ssize_t n;
  do n = read(s->fd, s->in, want);
  while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("reading the layer's device");
  if (n == 0)
    return fail("the layer's device ends after %" PRIu64 " of its %" PRIu64 " bytes", s->bytes - s->remaining, s->bytes);
  s->in_off = 0;
  s->in_len = (size_t)n;
  s->remaining -= (uint64_t)n;
  return 0;
}

/* Runs the decompressor once over the buffered input: the bytes it wrote to s->out, or -1. */
static ssize_t decode(struct layer_stream *s) {
  size_t avail = s->in_len - s->in_off;
  if (s->compression == COMPRESSION_GZIP) {
    s->z.next_in = s->in + s->in_off;
    s->z.avail_in = (uInt)avail;
    s->z.next_out = s->out;
    s->z.avail_out = sizeof s->out;
    if (avail > 0) s->member_open = true;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    s->in_off = s->in_len - s->z.avail_in;
    size_t produced = sizeof s->out - s->z.avail_out;
    if (rc == Z_STREAM_END) {
      /* One member ended; anything after it must be another member (multi-member gzip). */
      s->member_open = false;
      if (inflateReset(&s->z) != Z_OK) return fail("resetting gzip after a member");
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return fail("corrupt gzip stream: %s", s->z.msg ? s->z.msg : zError(rc));
    }
    return (ssize_t)produced;
  }
  ZSTD_inBuffer in = {s->in + s->in_off, avail, 0};
  ZSTD_outBuffer out = {s->out, sizeof s->out, 0};
  size_t rc = ZSTD_decompressStream(s->zstd, &out, &in);
  if (ZSTD_isError(rc)) return fail("corrupt zstd stream: %s", ZSTD_getErrorName(rc));
  s->in_off += in.pos;
  /* 0: a frame ended and everything is flushed; anything else: the frame goes on. */
  s->member_open = rc != 0;
  return (ssize_t)out.pos;
}

ssize_t stream_read(struct layer_stream *s, const void **buf) {
  for (;;) {
    if (s->in_off == s->in_len && s->remaining > 0 && fill(s) != 0) return -1;
    size_t avail = s->in_len - s->in_off;
    if (s->compression == COMPRESSION_NONE) {
      if (avail == 0) return 0;
      *buf = s->in + s->in_off;
      s->in_off = s->in_len;
      digest_update(&s->digest, *buf, avail);
      return (ssize_t)avail;
    }
    if (avail == 0 && !s->member_open) return 0; /* ended cleanly between members or frames */
    ssize_t n = decode(s);
    if (n < 0) return -1;
    if (n > 0) {
      *buf = s->out;
      digest_update(&s->digest, s->out, (size_t)n);
      return n;
    }
    if (avail == 0 && s->remaining == 0)
      return fail("truncated %s stream: the blob ends inside a %s", s->compression == COMPRESSION_GZIP ? "gzip" : "zstd",
                  s->compression == COMPRESSION_GZIP ? "member" : "frame");
  }
}

void stream_digest(struct layer_stream *s, char out[DIGEST_TEXT_SIZE]) { digest_final(&s->digest, out); }
