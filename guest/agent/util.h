/* Error reporting and small I/O helpers shared by every part of the agent. */
#ifndef AGENT_UTIL_H
#define AGENT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The message of the last failure: what was being done and why. It becomes the text of the
 * ERROR frame, so every failing function fills it before returning -1. */
extern _Thread_local char agent_error[1024];

/* Formats agent_error and returns -1, so that `return fail(...)` reads naturally. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like fail(), with ": <strerror(errno)>" appended. */
int fail_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on the console (fd 2), prefixed with "vmrun-agent: ". Only for failures: every byte
 * on the serial console costs the VM an exit. */
void console(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_BOOTTIME in nanoseconds: the clock of PHASE frames. */
uint64_t boottime_ns(void);

/* write() until everything is written, retrying on EINTR; -1 with errno on failure. */
int write_all(int fd, const void *buf, size_t len);

/* Creates a directory and its missing parents (mode 0755); an existing directory is fine. */
int mkdir_p(const char *path);

/* Removes a path and, for a directory, everything below it, without following symlinks. A path
 * that does not exist is fine. */
int remove_tree(const char *path);

#endif
