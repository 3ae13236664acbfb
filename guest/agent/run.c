/* The two modes of PROTOCOL.md, from a checked spec to a result. */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "mounts.h"
#include "network.h"
#include "process.h"
#include "unpack.h"
#include "volumes.h"
#include "util.h"

#define UNPACK_ROOT "/mnt/root"
#define SCRATCH_DIR "/mnt/rw"    /* tmpfs: the overlay's upper and work directories */
#define UPPER_DIR SCRATCH_DIR "/upper"
#define WORK_DIR SCRATCH_DIR "/work"
#define EMPTY_DIR SCRATCH_DIR "/empty" /* the lower layer of an image without layers */
#define CONTAINER_ROOT "/mnt/container"
#define DEFAULT_HOSTNAME "localhost"

/* Where layer `i` (from 0) is mounted, and a path inside it. */
static void layer_path(char *out, size_t size, size_t i, const char *rel) {
  snprintf(out, size, "%s/%zu%s%s", LAYERS_DIR, i, rel[0] ? "/" : "", rel);
}

/* Unpacks layer `i` into its empty partition: straight into its files for the bottom layer, else
 * through an overlay of the layers below, so that overlayfs records what the layer deletes
 * (whiteouts), replaces (opaque directories) and links to below (copies) as overlay2 does. */
static int unpack_into_partition(const struct layer *l, size_t i, int control) {
  char mnt[64], files[80], work[80], blob[32];
  layer_path(mnt, sizeof mnt, i, "");
  layer_path(files, sizeof files, i, LAYER_FILES);
  layer_path(work, sizeof work, i, "work");
  snprintf(blob, sizeof blob, "/dev/%s", l->device);
  if (wait_for_disk(l->device) != 0 || mount_layer(l->target, mnt, false) != 0) return -1;
  if (mkdir(files, 0755) != 0) return fail_errno("creating %s", files);
  if (i == 0) return unpack_layer(files, blob, l, (int)l->number, control);
  if (mkdir(work, 0700) != 0) return fail_errno("creating %s", work);
  if (mount_overlay(i, NULL, files, work, UNPACK_ROOT, false) != 0) return -1;
  if (unpack_layer(UNPACK_ROOT, blob, l, (int)l->number, control) != 0) return -1;
  if (unmount(UNPACK_ROOT) != 0) return -1;
  return remove_tree(work);
}

int unpack_mode(const struct spec *s, int control) {
  if (send_phase(control, "unpacking", boottime_ns()) != 0) return -1;
  if (s->container) {
    /* The host mounted the unpack root (an overlay of the layers below, when there are any). */
    for (size_t i = 0; i < s->nlayers; i++) {
      char blob[32];
      snprintf(blob, sizeof blob, "/dev/%s", s->layers[i].device);
      if (unpack_layer(UNPACK_ROOT, blob, &s->layers[i], (int)s->layers[i].number, control) != 0) return -1;
    }
    return send_phase(control, "unpacked", boottime_ns());
  }
  for (size_t i = 0; i < s->nlayers; i++) {
    const struct layer *l = &s->layers[i];
    char mnt[64];
    layer_path(mnt, sizeof mnt, i, "");
    if (l->unpacked ? mount_layer(l->target, mnt, true) : unpack_into_partition(l, i, control)) return -1;
  }
  /* Every new layer flushed before the host keeps it. */
  for (size_t i = s->nlayers; i-- > 0;) {
    char mnt[64];
    layer_path(mnt, sizeof mnt, i, "");
    if (unmount(mnt) != 0) return -1;
  }
  return send_phase(control, "unpacked", boottime_ns());
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return fail_errno("creating %s", path);
  int rc = write_all(fd, text, strlen(text));
  if (rc != 0) fail_errno("writing %s", path);
  close(fd);
  return rc;
}

/* The overlay's top layer before it is mounted: the mountpoints the image may lack (a
 * read-only root could not get them later) and the files docker provides in /etc. Its /etc
 * takes the image's owner and mode, since the merged directory shows the top layer's. */
static int prepare_upper(const struct spec *s, const char *hostname) {
  static const char *const dirs[] = {UPPER_DIR "/proc", UPPER_DIR "/sys", UPPER_DIR "/dev", UPPER_DIR "/etc"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (mkdir_p(dirs[i]) != 0) return -1;
  /* The topmost layer with an /etc decides what the image's is (a whiteout: none). */
  for (size_t i = s->nlayers; i-- > 0;) {
    char etc[80];
    struct stat st;
    layer_path(etc, sizeof etc, i, LAYER_FILES "/etc");
    if (lstat(etc, &st) != 0) continue;
    if (S_ISDIR(st.st_mode) && (chown(UPPER_DIR "/etc", st.st_uid, st.st_gid) != 0 || chmod(UPPER_DIR "/etc", st.st_mode & 07777) != 0))
      return fail_errno("copying the owner and mode of the image's /etc");
    break;
  }

  char text[512];
  snprintf(text, sizeof text, "%s\n", hostname);
  if (write_file(UPPER_DIR "/etc/hostname", text) != 0) return -1;
  /* /etc/hosts and /etc/resolv.conf are the host's text (src/agent/etc-files.ts), the same the
   * container runtime bind-mounts. */
  if (s->hosts && write_file(UPPER_DIR "/etc/hosts", s->hosts) != 0) return -1;
  if (s->resolv && write_file(UPPER_DIR "/etc/resolv.conf", s->resolv) != 0) return -1;
  return 0;
}

/* FRESH: every VM restored from one snapshot wakes with the snapshot's clock and the same RNG
 * state; the host's time and random bytes make each one its own before anything runs. */
static int apply_fresh(const struct spec *s) {
  struct timespec now = {.tv_sec = (time_t)(s->fresh_realtime_ns / 1000000000u), .tv_nsec = (long)(s->fresh_realtime_ns % 1000000000u)};
  if (clock_settime(CLOCK_REALTIME, &now) != 0) return fail_errno("FRESH: setting the clock");
  struct {
    struct rand_pool_info info;
    unsigned char bytes[sizeof s->fresh_seed];
  } seed = {.info = {.entropy_count = 8 * sizeof s->fresh_seed, .buf_size = sizeof s->fresh_seed}};
  memcpy(seed.bytes, s->fresh_seed, sizeof seed.bytes);
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("FRESH: opening /dev/urandom");
  int rc = 0;
  if (ioctl(fd, RNDADDENTROPY, &seed.info) != 0) rc = fail_errno("FRESH: adding the host's random bytes to the kernel's pool");
  /* Reseeding now, not at the next scheduled reseed: the process's first bytes are new. */
  else if (ioctl(fd, RNDRESEEDCRNG) != 0) rc = fail_errno("FRESH: reseeding the kernel's RNG");
  close(fd);
  return rc;
}

/* The LOWERs stacked under a tmpfs-backed overlay, writable unless READONLY. */
static int mount_layered_root(const struct spec *s, const char *hostname) {
  for (size_t i = 0; i < s->nlayers; i++) {
    char mnt[64];
    layer_path(mnt, sizeof mnt, i, "");
    if (mount_layer(s->layers[i].target, mnt, true) != 0) return -1;
  }
  if (mount_tmpfs(SCRATCH_DIR) != 0) return -1;
  if (mkdir_p(UPPER_DIR) != 0 || mkdir_p(WORK_DIR) != 0 || mkdir_p(EMPTY_DIR) != 0 || prepare_upper(s, hostname) != 0) return -1;
  return mount_overlay(s->nlayers, EMPTY_DIR, UPPER_DIR, s->readonly ? NULL : WORK_DIR, CONTAINER_ROOT, true);
}

/* A mountpoint of ROOT's, made when missing as runc makes it. A symlink (the image's files are
 * in that directory) would lead the mount out of the root, so only a directory will do. */
static int ensure_mountpoint(const char *name, bool readonly) {
  char path[64];
  struct stat st;
  snprintf(path, sizeof path, CONTAINER_ROOT "%s", name);
  if (lstat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : fail("the container's root has a %s that is not a directory", name);
  if (errno != ENOENT) return fail_errno("looking for %s in the container's root", name);
  if (readonly) return fail("the container's root has no %s, and READONLY keeps the agent from creating it", name);
  return mkdir(path, 0755) == 0 ? 0 : fail_errno("creating %s in the container's root", name);
}

/* ROOT: the host's directory itself (a containerd shim's rootfs), written through as under runc.
 * Its /etc stays as the host made it. */
static int mount_shared_root(const struct spec *s) {
  if (mkdir_p(CONTAINER_ROOT) != 0) return -1;
  if (mount(s->root_tag, CONTAINER_ROOT, "virtiofs", s->readonly ? MS_RDONLY : 0, NULL) != 0)
    return fail_errno("mounting the host's root share %s", s->root_tag);
  if (ensure_mountpoint("/proc", s->readonly) != 0 || ensure_mountpoint("/sys", s->readonly) != 0) return -1;
  return ensure_mountpoint("/dev", s->readonly);
}

int run_mode(const struct spec *s, struct frame_reader *control, int *exit_code) {
  const char *hostname = s->hostname ? s->hostname : DEFAULT_HOSTNAME;
  if (s->fresh && apply_fresh(s) != 0) return 125;
  if ((s->root_tag[0] ? mount_shared_root(s) : mount_layered_root(s, hostname)) != 0) return 125;
  if (mount_container_filesystems(CONTAINER_ROOT) != 0 || mount_volumes(s, CONTAINER_ROOT) != 0) return 125;
  if (sethostname(hostname, strlen(hostname)) != 0) {
    fail_errno("sethostname %s", hostname);
    return 125;
  }
  if (network_up(s) != 0) return 125;

  static const unsigned ports[3] = {PORT_STDIN, PORT_STDOUT, PORT_STDERR};
  int socks[3] = {-1, -1, -1};
  for (int i = 0; i < 3; i++) {
    if ((socks[i] = vsock_connect(ports[i])) < 0) {
      while (i-- > 0) close(socks[i]);
      return 125;
    }
  }
  struct process_io io = {.control = control, .in_sock = socks[0], .out_sock = socks[1], .err_sock = socks[2], .is_init = true, .on_exec = exec_start};
  return process_run(s, CONTAINER_ROOT, &io, exit_code);
}

int container_mode(const struct spec *s, struct frame_reader *control, int *exit_code) {
  /* PID 1 of the container's PID namespace, as the agent is in a VM: the process is its child.
   * Under `runc exec` (a sandbox's exec) it is not, and ends only its own process. */
  struct process_io io = {.control = control, .in_sock = FD_STDIN, .out_sock = FD_STDOUT, .err_sock = FD_STDERR, .is_init = getpid() == 1};
  return process_run(s, "/", &io, exit_code);
}
