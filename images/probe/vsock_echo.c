// The probe's vsock check (probe_mode=vsock): listens on vsock port 5000, connects to the host's
// port 1024, reads all it is sent until end of file and writes it back with every byte inverted,
// then does the same for one connection the host makes to port 5000. Prints a VMRUN-VSOCK line
// per connection; on any failure it says what it was doing and exits 1.
#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HOST_PORT 1024
#define LISTEN_PORT 5000
#define MAX_BYTES (64u << 20)

static void die(const char *what) {
  printf("VMRUN-VSOCK error: %s: %s\n", what, strerror(errno));
  exit(1);
}

static struct sockaddr_vm address(unsigned cid, unsigned port) {
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  return addr;
}

// Reads `fd` to its end, writes it all back inverted, closes it; returns the byte count.
static size_t echo(int fd) {
  size_t cap = 1u << 20, len = 0;
  unsigned char *buf = malloc(cap);
  if (!buf) die("malloc");
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_BYTES) {
        errno = EFBIG;
        die("read: more than 64 MiB");
      }
      cap *= 2;
      if (!(buf = realloc(buf, cap))) die("realloc");
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read");
    if (n == 0) break;
    len += n;
  }
  for (size_t i = 0; i < len; i++) buf[i] = ~buf[i];
  for (size_t done = 0; done < len;) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("write");
    done += n;
  }
  // close() then waits for the host's RST, which the VMM sends once every byte is in its Unix
  // socket: the machine may end right after this program without losing any.
  struct linger linger = {1, 30};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger) < 0) die("setsockopt(SO_LINGER)");
  if (close(fd) < 0) die("close");
  free(buf);
  return len;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int listener = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (listener < 0) die("socket(AF_VSOCK)");
  struct sockaddr_vm local = address(VMADDR_CID_ANY, LISTEN_PORT);
  if (bind(listener, (struct sockaddr *)&local, sizeof local) < 0) die("bind port 5000");
  if (listen(listener, 1) < 0) die("listen");

  int out = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (out < 0) die("socket(AF_VSOCK)");
  // The default 2 s is short for a nested guest.
  struct timeval timeout = {30, 0};
  setsockopt(out, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout, sizeof timeout);
  struct sockaddr_vm host = address(VMADDR_CID_HOST, HOST_PORT);
  if (connect(out, (struct sockaddr *)&host, sizeof host) < 0) die("connect to host port 1024");
  printf("VMRUN-VSOCK connect port=%d bytes=%zu\n", HOST_PORT, echo(out));

  int in = accept(listener, NULL, NULL);
  if (in < 0) die("accept on port 5000");
  printf("VMRUN-VSOCK accept port=%d bytes=%zu\n", LISTEN_PORT, echo(in));
  return 0;
}
