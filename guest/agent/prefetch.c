/* The reader thread and the tar reader meet at a ring of buffers under one mutex: the thread
 * fills free slots and stops when none is free, the reader empties them in order. */
#define _GNU_SOURCE
#include "prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SLOTS 8

struct slot {
  unsigned char data[STREAM_CHUNK];
  size_t len;
  uint64_t position;
};

struct prefetch {
  struct layer_stream *stream;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  struct slot slots[SLOTS];
  size_t head, count;  /* the oldest filled slot, and how many are filled */
  bool ended, failed, cancelled, reading; /* `reading`: the caller holds slot head-1 */
  char error[sizeof agent_error];
  uint64_t position; /* of the piece last returned */
};

static void *run(void *arg) {
  struct prefetch *p = arg;
  for (;;) {
    const void *buf;
    ssize_t n = stream_read(p->stream, &buf);
    pthread_mutex_lock(&p->lock);
    /* A slot the caller still reads is not free: SLOTS - 1 at most ahead of it. */
    while (!p->cancelled && n > 0 && p->count + (p->reading ? 1 : 0) == SLOTS) pthread_cond_wait(&p->changed, &p->lock);
    if (p->cancelled) {
      pthread_mutex_unlock(&p->lock);
      return NULL;
    }
    if (n > 0) {
      struct slot *s = &p->slots[(p->head + p->count) % SLOTS];
      memcpy(s->data, buf, (size_t)n);
      s->len = (size_t)n;
      s->position = p->stream->bytes - p->stream->remaining;
      p->count++;
    } else if (n == 0) {
      p->ended = true;
    } else {
      p->failed = true;
      strcpy(p->error, agent_error); /* agent_error is this thread's own */
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (n <= 0) return NULL;
  }
}

struct prefetch *prefetch_start(struct layer_stream *s) {
  struct prefetch *p = calloc(1, sizeof *p);
  if (!p) {
    fail("out of memory");
    return NULL;
  }
  p->stream = s;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->changed, NULL);
  int rc = pthread_create(&p->thread, NULL, run, p);
  if (rc != 0) {
    free(p);
    errno = rc;
    fail_errno("starting the layer's reader thread");
    return NULL;
  }
  return p;
}

ssize_t prefetch_read(struct prefetch *p, const void **buf) {
  pthread_mutex_lock(&p->lock);
  if (p->reading) { /* the caller is done with the piece it had */
    p->reading = false;
    pthread_cond_broadcast(&p->changed);
  }
  while (p->count == 0 && !p->ended && !p->failed) pthread_cond_wait(&p->changed, &p->lock);
  ssize_t n;
  if (p->count > 0) {
    struct slot *s = &p->slots[p->head];
    p->head = (p->head + 1) % SLOTS;
    p->count--;
    p->reading = true;
    p->position = s->position;
    *buf = s->data;
    n = (ssize_t)s->len;
    pthread_cond_broadcast(&p->changed);
  } else if (p->failed) {
    n = fail("%s", p->error);
  } else {
    n = 0;
  }
  pthread_mutex_unlock(&p->lock);
  return n;
}

uint64_t prefetch_position(const struct prefetch *p) { return p->position; }

int prefetch_finish(struct prefetch *p) {
  const void *buf;
  ssize_t n;
  while ((n = prefetch_read(p, &buf)) > 0) continue;
  return n < 0 ? -1 : 0;
}

void prefetch_free(struct prefetch *p) {
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->cancelled = true;
  pthread_cond_broadcast(&p->changed);
  pthread_mutex_unlock(&p->lock);
  pthread_join(p->thread, NULL);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->changed);
  free(p);
}
