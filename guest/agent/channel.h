/* Frames over the control connection (PROTOCOL.md, "Frames"), and the vsock connections. */
#ifndef AGENT_CHANNEL_H
#define AGENT_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_LENGTH (1u << 20) /* counts the type byte and the payload */

enum frame_type {
  FRAME_MODE = 1,
  FRAME_LOWER = 2,
  FRAME_LAYER = 3,
  FRAME_ARG = 4,
  FRAME_ENV = 5,
  FRAME_WORKDIR = 6,
  FRAME_USER = 7,
  FRAME_HOSTNAME = 8,
  FRAME_TTY = 9,
  FRAME_READONLY = 10,
  FRAME_RESOLV = 11,
  FRAME_HOSTS = 12,
  FRAME_NETWORK = 13,
  FRAME_MOUNT = 14,
  FRAME_END = 15,
  FRAME_SIGNAL = 16,
  FRAME_RESIZE = 17,
  FRAME_EXEC = 18,
  FRAME_IDLE = 19,
  FRAME_FRESH = 20,
  FRAME_ROOT = 21,
  FRAME_RLIMIT = 22,
  FRAME_PHASE = 32,
  FRAME_EXIT = 33,
  FRAME_ERROR = 34,
  FRAME_PROGRESS = 35,
};

enum vsock_port {
  PORT_CONTROL = 1024,
  PORT_STDIN = 1025,
  PORT_STDOUT = 1026,
  PORT_STDERR = 1027,
};

/* EXEC `id` (1 to EXEC_ID_MAX): the exec'd process's four connections are these ports plus
 * EXEC_PORT_STRIDE * id, in the same order. */
#define EXEC_PORT_STRIDE 4u
#define EXEC_ID_MAX 4096u

/* Under runc (`init container`) the same connections are file descriptors the host passes with
 * `runc run --preserve-fds`: control always, stdio in run mode only. */
enum container_fd {
  FD_CONTROL = 3,
  FD_STDIN = 4,
  FD_STDOUT = 5,
  FD_STDERR = 6,
};

/* Reassembles frames from a byte stream that may split or join them anywhere. */
struct frame_reader {
  int fd;
  unsigned char in[4096]; /* bytes read from fd and not parsed yet */
  size_t in_off, in_len;
  unsigned char head[4]; /* the length field of the frame being assembled */
  size_t head_got;
  unsigned char *frame; /* type byte and payload of the frame being assembled */
  size_t frame_cap, frame_got;
  uint32_t frame_len;
  /* The last complete frame, valid until the next call: */
  uint8_t type;
  const unsigned char *payload;
  size_t payload_len;
};

void frame_reader_init(struct frame_reader *r, int fd);
void frame_reader_free(struct frame_reader *r);
/* Parses what has been read: 1 with a complete frame in r->type/payload, 0 when more bytes are
 * needed, -1 on a protocol error (agent_error says which). Never reads. */
int frame_take(struct frame_reader *r);
/* One read() into the reader: the byte count, 0 at end of stream, -1 on error. */
long frame_fill(struct frame_reader *r);
/* Blocks until a whole frame arrived: 1 with a frame, 0 when the stream ended cleanly between
 * frames, -1 on an error or an end in the middle of a frame. */
int frame_next(struct frame_reader *r);

/* Sends one frame (blocking). */
int frame_send(int fd, uint8_t type, const void *payload, size_t len);
int send_phase(int fd, const char *name, uint64_t ns);
/* PROGRESS: `bytes` of layer `number`'s blob read so far. */
int send_progress(int fd, int number, uint64_t bytes);
int send_exit(int fd, int32_t code);
int send_error(int fd, int32_t code, const char *message);

/* How long the agent waits, after EXIT or ERROR, for the host to close the control connection
 * (it does once it has read stdout and stderr to their ends). */
#define CLOSE_WAIT_MS 30000

/* After the last frame: waits, at most CLOSE_WAIT_MS, until the host closes `fd`. */
void wait_closed(int fd);

/* Connects to the host (CID 2) on a vsock port; returns the socket (close-on-exec). */
int vsock_connect(unsigned port);

#endif
