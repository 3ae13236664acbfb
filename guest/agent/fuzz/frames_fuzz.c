/* libFuzzer target: the agent's parsers of what the host sends, as a hostile host (or a broken
 * channel) could send it: a byte stream cut into frames by the frame reader, each frame added to
 * the spec (argv, env, layers, user, sizes, ...), the spec checked at END; the first byte picks VM
 * or container mode and the cuts between reads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../channel.h"
#include "../spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  struct spec s;
  spec_init(&s);
  s.container = data[0] & 1;
  const size_t chunk = 1 + data[1] % 64; /* what one read() would return */
  data += 2, size -= 2;
  struct frame_reader r;
  frame_reader_init(&r, -1);
  int failed = 0;
  while (size > 0 && !failed) {
    /* As frame_fill does once everything read before is parsed: one read() into the buffer. */
    size_t n = size < chunk ? size : chunk;
    memcpy(r.in, data, n);
    r.in_off = 0, r.in_len = n;
    data += n, size -= n;
    int rc;
    while ((rc = frame_take(&r)) == 1) {
      if (spec_add(&s, r.type, r.payload, r.payload_len) != 0 || s.ended) {
        if (s.ended) spec_check(&s);
        failed = 1; /* the agent stops reading the spec here, either way */
        break;
      }
    }
    if (rc < 0) failed = 1;
  }
  frame_reader_free(&r);
  spec_free(&s);
  return 0;
}
