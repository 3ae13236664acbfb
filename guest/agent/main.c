/* vmrun's in-guest agent: PID 1 of the agent initramfs. It sets up the guest, takes a spec from
 * the host over vsock (PROTOCOL.md), unpacks an image or runs a container's process, reports
 * the result, and resets the VM. It never waits without a bound and never ends silently: when
 * the host cannot be told, the console is.
 * `init container` is the same agent as the first process of a runc container: the connections
 * are inherited file descriptors, and it exits instead of resetting a VM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "channel.h"
#include "mounts.h"
#include "run.h"
#include "spec.h"
#include "util.h"

/* The VMM's boot timer (native/kvm/devices/legacy/boot_timer.h): a write there tells the host,
 * on its own clock, that init has started. */
#define BOOT_TIMER_PORT 0x440
/* The VMM's snapshot point (native/kvm/devices/legacy/snapshot_point.h): the VMM saves the VM
 * during a write there, and the VMs restored from it continue right after the write. */
#define SNAPSHOT_PORT 0x441
#define SNAPSHOT_WORD "vmrun.snapshot=1"

/* Resets the VM: the kernel runs with reboot=k, so this is how the guest says it is done. */
static void __attribute__((noreturn)) reset_vm(void) {
  sync();
  reboot(RB_AUTOBOOT);
  console("reboot failed: %s", strerror(errno)); /* PID 1 exiting panics the kernel: also an end */
  _exit(1);
}

/* True when the kernel command line has `word`, whole. */
static bool cmdline_has(const char *word) {
  char line[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, line, sizeof line - 1);
  close(fd);
  if (n <= 0) return false;
  line[n] = '\0';
  for (char *save = NULL, *w = strtok_r(line, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
    if (strcmp(w, word) == 0) return true;
  return false;
}

/* A VM booted to be snapshotted is saved here, set up but not yet connected to a host: each VM
 * restored from it goes on from the write and connects to its own. */
static void snapshot_point(void) {
  if (ioperm(SNAPSHOT_PORT, 1, 1) != 0) {
    console("the snapshot point: ioperm: %s", strerror(errno));
    reset_vm();
  }
  outb(1, SNAPSHOT_PORT);
}

/* After the last frame: wait (bounded) until the host closes the control connection. */
static void __attribute__((noreturn)) wait_for_close(int control) {
  wait_closed(control);
  reset_vm();
}

static void __attribute__((noreturn)) send_error_and_end(int control, int code) {
  if (send_error(control, code, agent_error) != 0) console("%s", agent_error);
  wait_for_close(control);
}

/* Under runc: the exit status is the process's (125-127 when it could not start), for a host
 * that lost the control connection; the host reads EXIT or ERROR first. */
static int container_main(void) {
  signal(SIGPIPE, SIG_IGN);
  /* The host starts the agent through /proc/self/fd/N, so that nothing of vmrun shows in the
   * container's files; without this, ps would call it "N". */
  prctl(PR_SET_NAME, "init");
  /* Everything the host passed stays with the agent, never with the process. */
  if (close_range(FD_CONTROL, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    console("marking the inherited descriptors close-on-exec: %s", strerror(errno));
    return 125;
  }
  struct frame_reader reader;
  frame_reader_init(&reader, FD_CONTROL);
  struct spec spec;
  spec_init(&spec);
  spec.container = true;
  int rc = spec_read(&reader, &spec);
  if (rc == 0) {
    console("the host closed the control connection before the spec was complete");
    return 125;
  }
  if (rc < 0 || (spec.mode == MODE_UNPACK && unpack_mode(&spec, FD_CONTROL) != 0)) {
    if (send_error(FD_CONTROL, 125, agent_error) != 0) console("%s", agent_error);
    return 125;
  }
  int exit_code = 0;
  if (spec.mode == MODE_RUN) {
    rc = container_mode(&spec, &reader, &exit_code);
    if (rc < 0) {
      console("%s", agent_error);
      return 125;
    }
    if (rc > 0) {
      if (send_error(FD_CONTROL, rc, agent_error) != 0) console("%s", agent_error);
      return rc;
    }
  }
  if (send_exit(FD_CONTROL, exit_code) != 0) console("%s", agent_error);
  return exit_code;
}

int main(int argc, char **argv) {
  uint64_t started = boottime_ns();
  if (argc == 2 && strcmp(argv[1], "container") == 0) return container_main();
  if (getpid() != 1) {
    fprintf(stderr, "vmrun-agent: this is PID 1 of a vmrun VM (or, as `init container`, the first process of a vmrun container)\n");
    return 2;
  }
  /* First, so the stamp is the kernel's hand-over; PID 1 has CAP_SYS_RAWIO. A VMM without the
   * device ignores the write; only a failed ioperm skips it, and costs nothing but the stamp. */
  if (ioperm(BOOT_TIMER_PORT, 1, 1) == 0) outb(123, BOOT_TIMER_PORT);
  signal(SIGPIPE, SIG_IGN); /* a closed socket is an error to handle, not a reason to die */
  if (mount_early() != 0) {
    console("setting up the guest: %s", agent_error);
    reset_vm();
  }
  if (cmdline_has(SNAPSHOT_WORD)) {
    snapshot_point();
    started = boottime_ns(); /* the restored agent's start */
  }
  int control = vsock_connect(PORT_CONTROL);
  if (control < 0) {
    console("%s", agent_error);
    reset_vm();
  }
  if (send_phase(control, "agent", started) != 0) {
    console("%s", agent_error);
    reset_vm();
  }

  struct frame_reader reader;
  frame_reader_init(&reader, control);
  struct spec spec;
  spec_init(&spec);
  int got = spec_read(&reader, &spec);
  if (got == 0) {
    console("the host closed the control connection before the spec was complete");
    reset_vm();
  }
  if (got < 0) send_error_and_end(control, 125);

  if (spec.mode == MODE_UNPACK) {
    if (unpack_mode(&spec, control) != 0) send_error_and_end(control, 125);
    if (send_exit(control, 0) != 0) console("%s", agent_error);
    wait_for_close(control);
  }
  int exit_code = 0;
  int rc = run_mode(&spec, &reader, &exit_code);
  if (rc < 0) {
    console("%s", agent_error);
    reset_vm();
  }
  if (rc > 0) send_error_and_end(control, rc);
  if (send_exit(control, exit_code) != 0) console("%s", agent_error);
  wait_for_close(control);
}
