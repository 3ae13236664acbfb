/* The filesystems the agent mounts: its own at boot, and the container's root in run mode. */
#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int mount_on(const char *source, const char *target, const char *type, unsigned long flags, const char *data) {
  if (mkdir_p(target) != 0) return -1;
  if (mount(source, target, type, flags, data) != 0) return fail_errno("mounting %s on %s", type, target);
  return 0;
}

int mount_early(void) {
  if (mount_on("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 ||
      mount_on("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0 ||
      mount_on("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL) != 0 ||
      mount_on("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0 ||
      mount_on("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755") != 0)
    return -1;
  /* The kernel opened the initramfs's /dev/console for us if it could; make sure of it. */
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) return fail_errno("opening /dev/console");
  for (int i = 0; i < 3; i++)
    if (fd != i && dup2(fd, i) < 0) return fail_errno("putting stdio on /dev/console");
  if (fd > 2) close(fd);
  return 0;
}

/* How long a restored VM's disk may take to get its size, and its partitions their nodes. */
#define DISK_WAIT_NS (10 * 1000000000ull)

/* Polls `ready(name)` every millisecond until it holds (0) or DISK_WAIT_NS pass (-1). */
static int wait_until(bool (*ready)(const char *), const char *name) {
  const uint64_t deadline = boottime_ns() + DISK_WAIT_NS;
  while (!ready(name)) {
    if (boottime_ns() >= deadline) return -1;
    nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
  }
  return 0;
}

static bool disk_has_size(const char *disk) {
  char path[64], text[32];
  snprintf(path, sizeof path, "/sys/block/%s/size", disk);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  return strtoull(text, NULL, 10) > 0;
}

static bool node_exists(const char *name) {
  char path[64];
  snprintf(path, sizeof path, "/dev/%s", name);
  return access(path, F_OK) == 0;
}

int wait_for_disk(const char *disk) {
  if (wait_until(disk_has_size, disk) != 0) return fail("disk %s: still no size (/sys/block/%s/size) after 10 s", disk, disk);
  return 0;
}

/* BLKRRPART: the kernel reads the partition table again, and devtmpfs gets the nodes. */
static int rescan_partitions(const char *disk) {
  char path[64];
  snprintf(path, sizeof path, "/dev/%s", disk);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("opening %s", path);
  int rc;
  /* EBUSY: the kernel still holds the disk, updating its capacity; it lets go in moments. */
  for (int tries = 1; (rc = ioctl(fd, BLKRRPART)) != 0 && errno == EBUSY && tries < 20; tries++) usleep(5000);
  if (rc != 0) fail_errno("rescanning the partitions of %s", path);
  close(fd);
  return rc;
}

int ensure_partition(const char *part) {
  if (node_exists(part)) return 0;
  char disk[16];
  size_t n = strlen(part);
  while (n > 0 && part[n - 1] >= '0' && part[n - 1] <= '9') n--;
  if (n == 0 || n >= sizeof disk) return fail("partition %s: no disk name in it", part);
  memcpy(disk, part, n);
  disk[n] = '\0';
  if (wait_for_disk(disk) != 0 || rescan_partitions(disk) != 0) return -1;
  if (wait_until(node_exists, part) != 0) return fail("partition %s: /dev/%s did not appear within 10 s of rescanning %s", part, part, disk);
  return 0;
}

int mount_layer(const char *device, const char *target, bool read_only) {
  if (ensure_partition(device) != 0) return -1;
  char path[64];
  snprintf(path, sizeof path, "/dev/%s", device);
  if (read_only) return mount_on(path, target, "ext4", MS_RDONLY | MS_NOATIME, "noload");
  /* The host made the filesystem with uninitialised inode tables: nobody needs them zeroed. */
  return mount_on(path, target, "ext4", MS_NOATIME, "noinit_itable");
}

int mount_tmpfs(const char *target) { return mount_on("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755"); }

/* Appends to the string in `buf`; false when it would not fit. */
static bool append(char *buf, size_t size, const char *fmt, ...) {
  size_t len = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + len, size - len, fmt, ap);
  va_end(ap);
  return n >= 0 && (size_t)n < size - len;
}

int mount_overlay(size_t nlower, const char *empty, const char *upper, const char *work, const char *root, bool xino) {
  /* 127 layers' paths fit in the page the kernel takes options in. */
  char options[4096] = "lowerdir=";
  bool fits = true;
  /* overlayfs wants two layers when it has no upper one: then `upper` is the top, read-only. */
  if (!work) fits = append(options, sizeof options, "%s:", upper);
  if (nlower == 0) fits = fits && append(options, sizeof options, "%s", empty);
  for (size_t i = nlower; fits && i-- > 0;)
    fits = append(options, sizeof options, "%s/%zu/%s%s", LAYERS_DIR, i, LAYER_FILES, i > 0 ? ":" : "");
  if (work) fits = fits && append(options, sizeof options, ",upperdir=%s,workdir=%s", upper, work);
  /* xino=on: the layers' ext4s and the tmpfs on top are several filesystems, and without it
   * readdir's d_ino (os.scandir's inode(), find, du, rsync) disagree with stat's st_ino. All use
   * 32-bit inode numbers, so overlayfs has the high bits to tell them apart. */
  if (xino) fits = fits && append(options, sizeof options, ",xino=on");
  if (!fits) return fail("the overlay options for %zu layers do not fit in %zu bytes", nlower, sizeof options);
  return mount_on("overlay", root, "overlay", work ? 0 : MS_RDONLY, options);
}

struct node {
  const char *name;
  unsigned major, minor;
};

static const struct node dev_nodes[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const struct {
  const char *name, *target;
} dev_links[] = {
    {"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
    {"core", "/proc/kcore"}, /* runc makes it too, so docker's containers have it */
};

int mount_container_filesystems(const char *root) {
  char path[4096], dev[1024];
  snprintf(path, sizeof path, "%s/proc", root);
  if (mount_on("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -1;
  snprintf(path, sizeof path, "%s/sys", root);
  if (mount_on("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -1;
  /* As docker mounts it (cgroup v2, read-only): runtimes size themselves from what they find. */
  snprintf(path, sizeof path, "%s/sys/fs/cgroup", root);
  if (mount_on("cgroup2", path, "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return -1;
  snprintf(dev, sizeof dev, "%s/dev", root);
  if (mount_on("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") != 0) return -1;

  for (size_t i = 0; i < sizeof dev_nodes / sizeof dev_nodes[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dev, dev_nodes[i].name);
    if (mknod(path, S_IFCHR | 0666, makedev(dev_nodes[i].major, dev_nodes[i].minor)) != 0)
      return fail_errno("creating %s", path);
    if (chmod(path, 0666) != 0) return fail_errno("chmod %s", path); /* mknod's mode went through the umask */
  }
  for (size_t i = 0; i < sizeof dev_links / sizeof dev_links[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dev, dev_links[i].name);
    if (symlink(dev_links[i].target, path) != 0) return fail_errno("creating %s", path);
  }
  snprintf(path, sizeof path, "%s/pts", dev);
  if (mount_on("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") != 0) return -1;
  snprintf(path, sizeof path, "%s/shm", dev);
  if (mount_on("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") != 0) return -1;
  snprintf(path, sizeof path, "%s/mqueue", dev);
  return mount_on("mqueue", path, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

int unmount(const char *target) {
  int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail_errno("opening %s", target);
  int rc = syncfs(fd);
  close(fd);
  if (rc != 0) return fail_errno("flushing %s", target);
  if (umount(target) != 0) return fail_errno("unmounting %s", target);
  return 0;
}
