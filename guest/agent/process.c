/* Starting the container's process and relaying its stdio and signals until it exits.
 *
 * The process gets pipes (or a pty), never the vsock sockets themselves: /dev/stdout must be
 * openable, as it is under docker. The agent copies between them with poll(), through bounded
 * buffers: a side is read only while its buffer has room, so a slow reader on one stream holds
 * back that stream alone. */
#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "user.h"
#include "util.h"

/* What the docker daemon puts in an environment that has no PATH. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define RELAY_BUFFER (64 * 1024)

/* Go's findExecutable: 0, or the errno that disqualifies the file. */
static int find_executable(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return EISDIR;
  return (st.st_mode & 0111) ? 0 : EACCES;
}

/* An errno as Go prints it ("no such file or directory"): runc's messages come from Go, and
 * docker's CLI picks its exit code by searching them for these words. */
static const char *go_strerror(int err) {
  static char text[128];
  snprintf(text, sizeof text, "%s", strerror(err));
  if (text[0] >= 'A' && text[0] <= 'Z') text[0] = (char)(text[0] - 'A' + 'a');
  return text;
}

int look_path(const char *file, const char *path, char *out, size_t size) {
  if (strchr(file, '/')) {
    int err = find_executable(file);
    if (err == 0 && strlen(file) < size) {
      strcpy(out, file);
      return 0;
    }
    if (err == EACCES || err == EISDIR) {
      fail("exec: \"%s\": %s", file, go_strerror(err));
      return 126;
    }
    fail("exec: \"%s\": stat %s: %s", file, file, go_strerror(err ? err : ENAMETOOLONG));
    return 127;
  }
  /* Each PATH entry in turn; an empty one means the current directory. */
  for (const char *dir = path;;) {
    const char *end = strchrnul(dir, ':');
    int n = end == dir ? snprintf(out, size, "./%s", file) : snprintf(out, size, "%.*s/%s", (int)(end - dir), dir, file);
    if (n > 0 && (size_t)n < size && find_executable(out) == 0) return 0;
    if (*end == '\0') break;
    dir = end + 1;
  }
  fail("exec: \"%s\": executable file not found in $PATH", file);
  return 127;
}

static const char *env_get(char **env, const char *name) {
  size_t len = strlen(name);
  for (char **p = env; p && *p; p++)
    if (strncmp(*p, name, len) == 0 && (*p)[len] == '=') return *p + len + 1;
  return NULL;
}

/* The spec's environment, plus HOME (from passwd) and PATH (docker's default) when it has none. */
static char **build_env(const struct spec *s, const char *home) {
  char **env = calloc(s->nenv + 3, sizeof *env);
  if (!env) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < s->nenv; i++) env[n++] = s->env[i];
  if (!env_get(s->env, "HOME") && asprintf(&env[n++], "HOME=%s", home) < 0) return NULL;
  if (!env_get(s->env, "PATH")) env[n++] = "PATH=" DEFAULT_PATH;
  return env;
}

/* The child's report to the parent, through a close-on-exec pipe: the time just before execve,
 * then, only if something failed, the exit code and the message. EOF right after the time
 * means execve succeeded. */
struct report {
  uint64_t exec_ns;
  int32_t code;
  char message[sizeof agent_error];
};

static void __attribute__((noreturn)) report_failure(int fd, int code, bool time_sent) {
  struct report r = {.exec_ns = 0, .code = code};
  snprintf(r.message, sizeof r.message, "%s", agent_error);
  size_t skip = time_sent ? offsetof(struct report, code) : 0;
  (void)write_all(fd, (char *)&r + skip, offsetof(struct report, message) + strlen(r.message) - skip);
  _exit(code);
}

/* In a VM, a mount namespace of its own whose root is the container's, moved there as switch_root
   does: a process under a plain chroot may not make user namespaces (unshare(CLONE_NEWUSER)
   refuses a chrooted caller), and sandboxes inside images do. Under runc, "/" is already it. */
static int enter_root(const char *root, pid_t join) {
  if (join > 0) {
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)join);
    int fd = open(ns, O_RDONLY | O_CLOEXEC);
    /* setns into a mount namespace sets root and cwd to its root, mounts on / followed. */
    int rc = fd < 0 ? -1 : setns(fd, CLONE_NEWNS);
    if (fd >= 0) close(fd);
    return rc == 0 ? chdir("/") : -1;
  }
  if (strcmp(root, "/") == 0) return chdir("/");
  if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 || chdir(root) != 0 ||
      mount(root, "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0)
    return -1;
  return chdir("/");
}

/* IDLE's main process: it holds the sandbox open until a signal ends it. */
static void __attribute__((noreturn)) idle(int report) {
  uint64_t ns = boottime_ns();
  (void)write_all(report, &ns, sizeof ns);
  close(report); /* EOF right after the time: "it exec'ed" */
  for (;;) pause();
}

/* In the forked child: becomes the container's process, or reports why it cannot. */
static void __attribute__((noreturn)) child(const struct spec *s, const char *root, pid_t join, int report, const int stdio[3]) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL); /* the agent ignores it; an ignored signal survives execve */
  umask(022);
  if (setsid() < 0) {
    fail_errno("setsid");
    report_failure(report, 125, false);
  }
  if (s->tty && ioctl(stdio[0], TIOCSCTTY, 0) != 0) {
    fail_errno("making the pty the controlling terminal");
    report_failure(report, 125, false);
  }
  for (int i = 0; i < 3; i++) {
    if (dup2(stdio[i], i) < 0) {
      fail_errno("setting up stdio");
      report_failure(report, 125, false);
    }
  }
  if (enter_root(root, join) != 0) {
    fail_errno("entering the container's root %s", join > 0 ? "(the sandbox's)" : root);
    report_failure(report, 125, false);
  }
  if (s->idle) idle(report);

  struct user_ids ids;
  if (user_resolve(s->user, "/etc/passwd", "/etc/group", &ids) != 0) report_failure(report, 125, false);
  if (s->tty && fchown(0, ids.uid, (gid_t)-1) != 0) {
    fail_errno("giving the pty to uid %u", ids.uid);
    report_failure(report, 125, false);
  }
  char **env = build_env(s, ids.home);
  if (!env) {
    fail("building the environment: out of memory");
    report_failure(report, 125, false);
  }
  const char *workdir = s->workdir ? s->workdir : "/";
  if (mkdir_p(workdir) != 0) report_failure(report, 125, false);
  if (chdir(workdir) != 0) {
    fail_errno("chdir to %s", workdir);
    report_failure(report, 125, false);
  }
  /* RLIMITs before the ids change: raising a hard limit takes root's CAP_SYS_RESOURCE. */
  for (size_t i = 0; i < s->nrlimits; i++) {
    if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].limit) != 0) {
      fail_errno("setrlimit %s", s->rlimits[i].name);
      report_failure(report, 125, false);
    }
  }
  if (setgroups(ids.ngroups, ids.groups) != 0) {
    fail_errno("setgroups");
    report_failure(report, 125, false);
  }
  if (setgid(ids.gid) != 0) {
    fail_errno("setgid %u", ids.gid);
    report_failure(report, 125, false);
  }
  if (setuid(ids.uid) != 0) {
    fail_errno("setuid %u", ids.uid);
    report_failure(report, 125, false);
  }

  char exe[4096];
  int code = look_path(s->argv[0], env_get(env, "PATH"), exe, sizeof exe);
  if (code != 0) report_failure(report, code, false);
  uint64_t ns = boottime_ns();
  (void)write_all(report, &ns, sizeof ns);
  execve(exe, s->argv, env);
  code = errno == ENOENT ? 127 : 126;
  fail("exec %s: %s", exe, go_strerror(errno));
  report_failure(report, code, true);
}

/* Reads the child's report: 0 when it exec'ed (with *exec_ns), else its code (agent_error set). */
static int read_report(int fd, uint64_t *exec_ns) {
  struct report r;
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fd, (char *)&r + got, sizeof r - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got == sizeof r.exec_ns) {
    *exec_ns = r.exec_ns;
    return 0;
  }
  if (got < offsetof(struct report, message)) {
    fail("the process died before it could exec");
    return 125;
  }
  ((char *)&r)[got] = '\0';
  fail("%s", r.message);
  return r.code;
}

/* One direction of the relay: src -> buffer -> dst. */
struct pump {
  int src, dst;  /* -1 once closed */
  bool src_done; /* end of input seen */
  char buf[RELAY_BUFFER];
  size_t off, len;
};

struct relay {
  struct pump in, out, err;
  int master; /* the pty master, shared by in.dst and out.src: closed last */
};

static void close_fd(struct relay *r, int *fd) {
  if (*fd >= 0 && *fd != r->master) close(*fd);
  *fd = -1;
}

/* After the last byte: the socket's reader sees end of stream; a pipe's reader sees EOF. */
static void finish_dst(struct relay *r, struct pump *p) {
  if (p->dst >= 0 && p->dst != r->master) shutdown(p->dst, SHUT_WR); /* fails harmlessly on a pipe */
  close_fd(r, &p->dst);
}

static bool pump_finished(const struct pump *p) { return p->src_done && p->dst < 0; }

static void pump_read(struct relay *r, struct pump *p) {
  if (p->off == p->len) p->off = p->len = 0;
  ssize_t n = read(p->src, p->buf + p->len, sizeof p->buf - p->len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n > 0) {
    p->len += (size_t)n;
    if (p->dst < 0) p->off = p->len = 0; /* nobody listens any more: discard, keep the writer going */
    return;
  }
  /* End of stream; EIO on a pty master means the last slave is closed; errors end it too. */
  p->src_done = true;
  close_fd(r, &p->src);
}

static void pump_write(struct relay *r, struct pump *p) {
  ssize_t n = write(p->dst, p->buf + p->off, p->len - p->off);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n < 0) {
    /* The reader went away (EPIPE, reset): drop what is left and close the writer's end too, so
     * that the writer meets SIGPIPE or EPIPE as in a shell pipeline (a pty master is shared: it
     * stays open and what it gives is discarded). */
    close_fd(r, &p->dst);
    if (p->src != r->master) {
      close_fd(r, &p->src);
      p->src_done = true;
    }
    p->off = p->len = 0;
    return;
  }
  p->off += (size_t)n;
  if (p->off == p->len) p->off = p->len = 0;
}

static void pump_settle(struct relay *r, struct pump *p) {
  if (p->off > 0 && p->len == sizeof p->buf) { /* make room at the end */
    memmove(p->buf, p->buf + p->off, p->len - p->off);
    p->len -= p->off;
    p->off = 0;
  }
  if (p->src_done && p->off == p->len && p->dst >= 0) finish_dst(r, p);
}

static void set_nonblocking(int fd) {
  if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Handles SIGNAL, RESIZE and (where io takes them) EXEC; -1 on anything else. */
static int handle_control(struct process_io *io, pid_t pid, bool running, int master) {
  struct frame_reader *ctl = io->control;
  int rc;
  while ((rc = frame_take(ctl)) == 1) {
    const unsigned char *p = ctl->payload;
    if (ctl->type == FRAME_SIGNAL && ctl->payload_len == 4) {
      uint32_t sig = le32(p);
      if (running && (sig == 0 || sig > 64 || kill(pid, (int)sig) != 0))
        console("SIGNAL %u to the process: %s", sig, sig == 0 || sig > 64 ? "no such signal" : strerror(errno));
    } else if (ctl->type == FRAME_RESIZE && ctl->payload_len == 4) {
      struct winsize ws = {.ws_row = (unsigned short)(p[0] | p[1] << 8), .ws_col = (unsigned short)(p[2] | p[3] << 8)};
      if (master >= 0 && ioctl(master, TIOCSWINSZ, &ws) != 0) console("resizing the terminal: %s", strerror(errno));
    } else if (ctl->type == FRAME_EXEC && ctl->payload_len == 4 && io->on_exec) {
      uint32_t id = le32(p);
      if (id == 0 || id > EXEC_ID_MAX) return fail("protocol error: EXEC id %u out of range", id);
      /* After the main process, nothing more starts: the sandbox is ending. */
      if (running) io->on_exec(id, pid);
    } else {
      return fail("protocol error: frame type %u (%zu bytes) while the process runs", ctl->type, ctl->payload_len);
    }
  }
  return rc;
}

static void kill_everything(bool is_init, pid_t pid) {
  /* kill(-1) from PID 1 reaches every process but the agent; outside a VM only the session. */
  kill(is_init ? -1 : -pid, SIGKILL);
}

static int exit_code_of(int status) { return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status); }

/* Relays until the main process has exited and its stdout and stderr are drained. */
static int relay_loop(struct relay *r, struct process_io *io, pid_t pid, int sigfd, int *exit_code) {
  bool running = true;
  struct pump *pumps[3] = {&r->in, &r->out, &r->err};
  if (handle_control(io, pid, running, r->master) < 0) return -1; /* frames sent with the spec */
  for (;;) {
    for (int i = 0; i < 3; i++) pump_settle(r, pumps[i]);
    if (!running && pump_finished(&r->out) && pump_finished(&r->err)) return 0;
    struct pollfd fds[8];
    int where[8]; /* for each pollfd: pump index * 2 (+1 for dst), or -1 control, -2 signalfd */
    nfds_t n = 0;
    fds[n] = (struct pollfd){.fd = io->control->fd, .events = POLLIN}, where[n++] = -1;
    fds[n] = (struct pollfd){.fd = sigfd, .events = POLLIN}, where[n++] = -2;
    for (int i = 0; i < 3; i++) {
      struct pump *p = pumps[i];
      if (p->src >= 0 && p->len < sizeof p->buf) fds[n] = (struct pollfd){.fd = p->src, .events = POLLIN}, where[n++] = 2 * i;
      if (p->dst >= 0 && p->len > p->off) fds[n] = (struct pollfd){.fd = p->dst, .events = POLLOUT}, where[n++] = 2 * i + 1;
    }
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      return fail_errno("poll in the stdio relay");
    }
    for (nfds_t i = 0; i < n; i++) {
      if (!fds[i].revents) continue;
      if (where[i] == -1) {
        long got = frame_fill(io->control);
        if (got < 0) return -1;
        if (got == 0) return fail("the host closed the control connection while the process was running");
        if (handle_control(io, pid, running, r->master) < 0) return -1;
      } else if (where[i] == -2) {
        struct signalfd_siginfo si;
        while (read(sigfd, &si, sizeof si) > 0) continue;
        /* Every child is reaped here: orphans re-parented to PID 1 included. */
        int status;
        pid_t dead;
        while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
          if (dead != pid || !running) continue;
          running = false;
          *exit_code = exit_code_of(status);
          kill_everything(io->is_init, pid);
          /* Nobody reads stdin any more. */
          close_fd(r, &r->in.src);
          close_fd(r, &r->in.dst);
          r->in.src_done = true;
          r->in.off = r->in.len = 0;
        }
      } else {
        struct pump *p = pumps[where[i] / 2];
        if (where[i] % 2 == 0 && p->src == fds[i].fd) pump_read(r, p);
        else if (where[i] % 2 == 1 && p->dst == fds[i].fd) pump_write(r, p);
      }
    }
  }
}

int process_run(const struct spec *s, const char *root, struct process_io *io, int *exit_code) {
  int rc = 125;
  int report[2] = {-1, -1}, in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  int slave = -1, sigfd = -1;
  struct relay *r = calloc(1, sizeof *r);
  if (!r) {
    fail("out of memory for the stdio relay");
    goto out;
  }
  r->master = -1;
  r->in = r->out = r->err = (struct pump){.src = -1, .dst = -1};
  int stdio[3];
  if (s->tty) {
    char ptmx[4096];
    snprintf(ptmx, sizeof ptmx, "%s/dev/pts/ptmx", root);
    int unlock = 0;
    struct winsize ws = {.ws_row = s->rows, .ws_col = s->cols};
    if ((r->master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) { fail_errno("opening %s", ptmx); goto out; }
    if (ioctl(r->master, TIOCSPTLCK, &unlock) != 0) { fail_errno("unlocking the pty"); goto out; }
    if ((slave = ioctl(r->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) { fail_errno("opening the pty's slave"); goto out; }
    if (ioctl(r->master, TIOCSWINSZ, &ws) != 0) { fail_errno("setting the terminal size"); goto out; }
    stdio[0] = stdio[1] = stdio[2] = slave;
    r->in = (struct pump){.src = io->in_sock, .dst = r->master};
    r->out = (struct pump){.src = r->master, .dst = io->out_sock};
    /* TTY mode: the terminal carries stdout and stderr together; stderr ends at once. */
    r->err = (struct pump){.src = -1, .dst = io->err_sock, .src_done = true};
  } else {
    if (pipe2(in_pipe, O_CLOEXEC) || pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) {
      fail_errno("creating the stdio pipes");
      goto out;
    }
    stdio[0] = in_pipe[0], stdio[1] = out_pipe[1], stdio[2] = err_pipe[1];
    r->in = (struct pump){.src = io->in_sock, .dst = in_pipe[1]};
    r->out = (struct pump){.src = out_pipe[0], .dst = io->out_sock};
    r->err = (struct pump){.src = err_pipe[0], .dst = io->err_sock};
    in_pipe[1] = out_pipe[0] = err_pipe[0] = -1; /* owned by the pumps now */
  }
  io->in_sock = io->out_sock = io->err_sock = -1; /* owned by the pumps now */

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  /* Blocked before the fork, so that an exit cannot slip by before the signalfd exists. */
  if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0 || (sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
    fail_errno("setting up SIGCHLD");
    goto out;
  }
  if (pipe2(report, O_CLOEXEC) != 0) {
    fail_errno("creating the exec report pipe");
    goto out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    fail_errno("fork");
    goto out;
  }
  if (pid == 0) child(s, root, io->join, report[1], stdio);

  close(report[1]), report[1] = -1;
  for (int i = 0; i < 3; i++) {
    if (stdio[i] == slave) continue;
    close(stdio[i]);
  }
  in_pipe[0] = out_pipe[1] = err_pipe[1] = -1;
  close(slave), slave = -1; /* only the process holds the slave now: EIO on the master at its end */

  uint64_t exec_ns = 0;
  rc = read_report(report[0], &exec_ns);
  if (rc != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    goto out;
  }
  if (send_phase(io->control->fd, "exec", exec_ns) != 0) {
    kill_everything(io->is_init, pid);
    rc = -1;
    goto out;
  }
  set_nonblocking(r->in.src), set_nonblocking(r->in.dst), set_nonblocking(r->out.src);
  set_nonblocking(r->out.dst), set_nonblocking(r->err.src), set_nonblocking(r->err.dst);
  rc = relay_loop(r, io, pid, sigfd, exit_code);
  if (rc != 0) kill_everything(io->is_init, pid);

out:
  if (r) {
    struct pump *pumps[3] = {&r->in, &r->out, &r->err};
    for (int i = 0; i < 3; i++) {
      close_fd(r, &pumps[i]->src);
      finish_dst(r, pumps[i]);
    }
    if (r->master >= 0) close(r->master);
    free(r);
  }
  int fds[] = {report[0], report[1], in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1],
               slave, sigfd, io->in_sock, io->out_sock, io->err_sock};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  return rc;
}
