/* A layer stream read ahead on a thread of its own: decompressing and hashing run while the tar
 * reader writes files, as `tar -z` runs gzip in a process of its own. */
#ifndef AGENT_PREFETCH_H
#define AGENT_PREFETCH_H

#include <stdint.h>
#include <sys/types.h>

#include "stream.h"

struct prefetch;

/* Starts reading `s` to its end on a thread; NULL (agent_error set) when it cannot. `s` belongs
 * to the thread until prefetch_finish or prefetch_free. */
struct prefetch *prefetch_start(struct layer_stream *s);
/* The next piece of the uncompressed stream, as stream_read gives it: its length with *buf set
 * (valid until the next call), 0 at the end, -1 with agent_error set. */
ssize_t prefetch_read(struct prefetch *p, const void **buf);
/* How many bytes of the blob had been read when the piece last returned was made. */
uint64_t prefetch_position(const struct prefetch *p);
/* Reads whatever the caller left, to the end; then `s` is the caller's again (its digest
 * complete). 0, or -1 with agent_error set. */
int prefetch_finish(struct prefetch *p);
/* Stops the thread if it still runs and frees everything; `s` is the caller's again. */
void prefetch_free(struct prefetch *p);

#endif
