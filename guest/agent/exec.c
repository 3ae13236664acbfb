/* EXEC: a helper forked from PID 1 per exec'd process. It connects the exec's own four ports,
 * reads a spec as the agent under runc does (nothing of the container's set-up: that is the
 * sandbox's), and runs the process in the main process's mount namespace, relaying its stdio
 * like the main one's. It is not init: ending, it kills its process's session only. */
#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "process.h"
#include "spec.h"
#include "util.h"

/* Its process runs on the pty or pipes process_run makes there, so this is only for ptmx. */
#define SANDBOX_ROOT "/mnt/container"

static void __attribute__((noreturn)) exec_helper(uint32_t id, pid_t main_pid) {
  /* Nothing of PID 1's: its relay's pipes and sockets stay with it. */
  close_range(3, ~0U, 0);
  const unsigned base = PORT_CONTROL + EXEC_PORT_STRIDE * id;
  int control = vsock_connect(base);
  if (control < 0) {
    console("exec %u: %s", id, agent_error);
    _exit(125);
  }
  struct frame_reader reader;
  frame_reader_init(&reader, control);
  struct spec spec;
  spec_init(&spec);
  spec.container = true; /* what only the sandbox's spec may set is refused */
  int rc = spec_read(&reader, &spec);
  if (rc == 0) _exit(125);
  int code = 0, error = 0; /* error: 125-127, the process could not start (agent_error says why) */
  if (rc < 0) {
    error = 125;
  } else if (spec.mode != MODE_RUN || spec.idle) {
    fail("bad spec: an EXEC runs a command");
    error = 125;
  } else {
    int socks[3] = {vsock_connect(base + 1), vsock_connect(base + 2), vsock_connect(base + 3)};
    if (socks[0] < 0 || socks[1] < 0 || socks[2] < 0) {
      for (int i = 0; i < 3; i++)
        if (socks[i] >= 0) close(socks[i]);
      error = 125;
    } else {
      struct process_io io = {.control = &reader, .in_sock = socks[0], .out_sock = socks[1], .err_sock = socks[2], .join = main_pid};
      rc = process_run(&spec, SANDBOX_ROOT, &io, &code);
      if (rc < 0) _exit(125); /* the host's connection broke: nobody to tell */
      error = rc;
    }
  }
  if ((error ? send_error(control, error, agent_error) : send_exit(control, code)) != 0) _exit(125);
  wait_closed(control);
  _exit(0);
}

void exec_start(uint32_t id, pid_t main_pid) {
  pid_t pid = fork();
  if (pid < 0) console("exec %u: fork: %s", id, strerror(errno));
  if (pid == 0) exec_helper(id, main_pid);
}
