/* Starting the container's process and relaying its stdio and signals until it exits. */
#ifndef AGENT_PROCESS_H
#define AGENT_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "channel.h"
#include "spec.h"

struct process_io {
  struct frame_reader *control; /* SIGNAL and RESIZE arrive here; PHASE exec leaves here */
  int in_sock, out_sock, err_sock; /* all three are closed by process_run */
  /* As PID 1, the agent ends every process when the main one exits (kill(-1)) and reaps
   * orphans; otherwise (tests) only the main process's session is killed. */
  bool is_init;
  /* Not 0: the process enters this process's mount namespace (the sandbox's main process, whose
   * root is the container's) instead of moving `root` to / in a namespace of its own. */
  pid_t join;
  /* Where EXEC frames go (a VM's main process only): starts exec `id` beside process
   * `main_pid`; NULL refuses them. */
  void (*on_exec)(uint32_t id, pid_t main_pid);
};

/* Runs the spec's command in `root` and relays until it exits and its output is drained.
 *   0    the process ran; *exit_code is its code, or 128+N when signal N ended it;
 *   125, 126, 127  it could not be started; agent_error says why (docker's codes);
 *   -1   the control connection broke or misbehaved; agent_error says how. */
int process_run(const struct spec *spec, const char *root, struct process_io *io, int *exit_code);

/* execvp-style search for `file` in `path` (Go's exec.LookPath, as runc uses it): 0 with the
 * command's path in `out`, or 126/127 with agent_error set to runc's message. */
int look_path(const char *file, const char *path, char *out, size_t size);

#endif
