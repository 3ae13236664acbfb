/* Frames over the control connection (PROTOCOL.md, "Frames"), and the vsock connections. */
#define _GNU_SOURCE
#include "channel.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

void frame_reader_init(struct frame_reader *r, int fd) {
  memset(r, 0, sizeof *r);
  r->fd = fd;
}

void frame_reader_free(struct frame_reader *r) {
  free(r->frame);
  r->frame = NULL;
  r->frame_cap = 0;
}

int frame_take(struct frame_reader *r) {
  while (r->in_off < r->in_len) {
    if (r->head_got < 4) {
      r->head[r->head_got++] = r->in[r->in_off++];
      if (r->head_got < 4) continue;
      r->frame_len = (uint32_t)r->head[0] | (uint32_t)r->head[1] << 8 | (uint32_t)r->head[2] << 16 |
                     (uint32_t)r->head[3] << 24;
      if (r->frame_len < 1 || r->frame_len > FRAME_MAX_LENGTH)
        return fail("protocol error: frame length %" PRIu32 " is out of range (1 to %u)", r->frame_len,
                    FRAME_MAX_LENGTH);
      if (r->frame_cap < r->frame_len) {
        unsigned char *p = realloc(r->frame, r->frame_len);
        if (!p) return fail("protocol error: no memory for a frame of %" PRIu32 " bytes", r->frame_len);
        r->frame = p;
        r->frame_cap = r->frame_len;
      }
      r->frame_got = 0;
    }
    size_t want = r->frame_len - r->frame_got, have = r->in_len - r->in_off;
    size_t n = want < have ? want : have;
    memcpy(r->frame + r->frame_got, r->in + r->in_off, n);
    r->frame_got += n;
    r->in_off += n;
    if (r->frame_got == r->frame_len) {
      r->head_got = 0; /* the next byte starts a new frame */
      r->type = r->frame[0];
      r->payload = r->frame + 1;
      r->payload_len = r->frame_len - 1;
      return 1;
    }
  }
  return 0;
}

long frame_fill(struct frame_reader *r) {
  if (r->in_off < r->in_len) return (long)(r->in_len - r->in_off); /* still unparsed input */
  r->in_off = r->in_len = 0;
  for (;;) {
    ssize_t n = read(r->fd, r->in, sizeof r->in);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("reading the control connection");
    r->in_len = (size_t)n;
    return n;
  }
}

int frame_next(struct frame_reader *r) {
  for (;;) {
    int rc = frame_take(r);
    if (rc != 0) return rc;
    long n = frame_fill(r);
    if (n < 0) return -1;
    if (n == 0) {
      if (r->head_got > 0) return fail("the control connection closed in the middle of a frame");
      return 0;
    }
  }
}

int frame_send(int fd, uint8_t type, const void *payload, size_t len) {
  if (len + 1 > FRAME_MAX_LENGTH) return fail("sending frame %u: payload of %zu bytes is too long", type, len);
  uint32_t n = (uint32_t)len + 1;
  unsigned char head[5] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >> 24, type};
  if (write_all(fd, head, sizeof head) != 0 || write_all(fd, payload, len) != 0)
    return fail_errno("sending frame %u on the control connection", type);
  return 0;
}

int send_phase(int fd, const char *name, uint64_t ns) {
  char text[96];
  int n = snprintf(text, sizeof text, "%s %" PRIu64, name, ns);
  return frame_send(fd, FRAME_PHASE, text, (size_t)n);
}

int send_progress(int fd, int number, uint64_t bytes) {
  char text[48];
  int n = snprintf(text, sizeof text, "%d %" PRIu64, number, bytes);
  return frame_send(fd, FRAME_PROGRESS, text, (size_t)n);
}

static void put_i32(unsigned char *p, int32_t v) {
  uint32_t u = (uint32_t)v;
  p[0] = u & 0xff, p[1] = (u >> 8) & 0xff, p[2] = (u >> 16) & 0xff, p[3] = u >> 24;
}

int send_exit(int fd, int32_t code) {
  unsigned char p[4];
  put_i32(p, code);
  return frame_send(fd, FRAME_EXIT, p, sizeof p);
}

int send_error(int fd, int32_t code, const char *message) {
  unsigned char p[4 + sizeof agent_error];
  size_t len = strnlen(message, sizeof agent_error - 1);
  put_i32(p, code);
  memcpy(p + 4, message, len);
  /* One line: a newline from a strerror() or a file name must not split the message. */
  for (size_t i = 4; i < 4 + len; i++)
    if (p[i] == '\n' || p[i] == '\r') p[i] = ' ';
  return frame_send(fd, FRAME_ERROR, p, 4 + len);
}

int vsock_connect(unsigned port) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("creating a vsock socket for port %u", port);
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
  while (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    if (errno == EINTR) continue;
    fail_errno("connecting to the host on vsock port %u", port);
    close(fd);
    return -1;
  }
  return fd;
}

void wait_closed(int fd) {
  uint64_t deadline = boottime_ns() + (uint64_t)CLOSE_WAIT_MS * 1000000u;
  char buf[4096];
  for (;;) {
    uint64_t now = boottime_ns();
    if (now >= deadline) {
      console("the host did not close the control connection within %d s", CLOSE_WAIT_MS / 1000);
      return;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
    if (n < 0 && errno != EINTR) return;
    if (n > 0 && read(fd, buf, sizeof buf) <= 0) return; /* closed (or broken): done */
  }
}
