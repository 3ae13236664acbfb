/* Error reporting and small I/O helpers shared by every part of the agent. */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Thread_local char agent_error[1024];

int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(agent_error, sizeof agent_error, fmt, ap);
  va_end(ap);
  return -1;
}

int fail_errno(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(agent_error, sizeof agent_error, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < sizeof agent_error)
    snprintf(agent_error + n, sizeof agent_error - n, ": %s", strerror(saved));
  errno = saved;
  return -1;
}

void console(const char *fmt, ...) {
  char line[1200];
  int n = snprintf(line, sizeof line, "vmrun-agent: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  size_t len = strlen(line);
  line[len++] = '\n';
  (void)write_all(2, line, len);
}

uint64_t boottime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mkdir_p(const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) return fail("creating %s: path too long", path);
  strcpy(buf, path);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return fail_errno("creating directory %s", buf);
    *p = saved;
    if (saved == '\0') break;
  }
  struct stat st;
  if (stat(path, &st) != 0) return fail_errno("creating directory %s", path);
  if (!S_ISDIR(st.st_mode)) return fail("creating directory %s: a non-directory is in the way", path);
  return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
  if (rc != 0 && errno != ENOENT) {
    fail_errno("removing %s", path);
    return 1; /* stops the walk; agent_error says why */
  }
  return 0;
}

int remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : fail_errno("removing %s", path);
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) != 0 && errno != ENOENT) return fail_errno("removing %s", path);
    return 0;
  }
  /* FTW_DEPTH: children before their directory; FTW_PHYS: never follow a symlink. */
  int rc = nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS);
  if (rc == 1) return -1;
  if (rc != 0) return fail_errno("removing %s", path);
  return 0;
}
