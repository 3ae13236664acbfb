/* EXEC (PROTOCOL.md, "Sandboxes"): another process in a VM's running sandbox. */
#ifndef AGENT_EXEC_H
#define AGENT_EXEC_H

#include <stdint.h>
#include <sys/types.h>

/* Forks a helper that takes exec `id`'s spec on its own connections and runs the process in the
 * mount namespace of `main_pid`; PID 1 reaps it like any child. A failed fork is told on the
 * console: the host sees its exec's connection never come. */
void exec_start(uint32_t id, pid_t main_pid);

#endif
