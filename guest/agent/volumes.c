/* The run's volumes: virtio-fs shares (the host's virtiofsd enforces read-only; the guest's own
 * read-only mount only keeps a writer from trying) and tmpfs mounts, as runc mounts binds and
 * tmpfs in a container: after the standard filesystems, in the order given. */
#define _GNU_SOURCE
#include "volumes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static int openat2_in_root(int root, const char *path, int flags) {
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

/* An O_PATH fd of `target` inside `root`, made if missing: directories on the way, and the last
 * component a directory or (`file`) an empty file. */
static int open_target(int root, const char *target, bool file) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", target) >= (int)sizeof path) return fail("mount target %.64s... is too long", target);
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    const bool last = *p == '\0' || p[strspn(p, "/")] == '\0';
    const char saved = *p;
    *p = '\0';
    int fd = openat2_in_root(root, path, O_PATH);
    if (fd < 0 && errno == ENOENT) {
      /* Its parent resolved (the loop got here), so a missing component is created in it. */
      char *slash = strrchr(path, '/');
      *slash = '\0';
      int parent = openat2_in_root(root, path[0] ? path : "/", O_PATH | O_DIRECTORY);
      *slash = '/';
      if (parent < 0) return fail_errno("resolving the parent of mount target %s", path);
      int rc = last && file ? mknodat(parent, slash + 1, S_IFREG | 0644, 0) : mkdirat(parent, slash + 1, 0755);
      if (rc != 0 && errno != EEXIST) {
        fail_errno("creating mount target %s", path);
        close(parent);
        return -1;
      }
      close(parent);
      fd = openat2_in_root(root, path, O_PATH);
    }
    if (fd < 0) return fail_errno("resolving mount target %s", path);
    if (last) return fd;
    close(fd);
    *p = saved;
  }
}

int tmpfs_options(const char *options, unsigned long *flags, char *data, size_t size) {
  static const struct { const char *word; unsigned long set, clear; } words[] = {
      {"ro", MS_RDONLY, 0}, {"rw", 0, MS_RDONLY}, {"noexec", MS_NOEXEC, 0}, {"exec", 0, MS_NOEXEC},
      {"nosuid", MS_NOSUID, 0}, {"suid", 0, MS_NOSUID}, {"nodev", MS_NODEV, 0}, {"dev", 0, MS_NODEV},
  };
  char copy[256];
  if (snprintf(copy, sizeof copy, "%s", options) >= (int)sizeof copy) return fail("tmpfs options are too long");
  *flags = 0;
  data[0] = '\0';
  for (char *save = NULL, *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
    size_t i = 0;
    while (i < sizeof words / sizeof words[0] && strcmp(w, words[i].word) != 0) i++;
    if (i < sizeof words / sizeof words[0]) {
      *flags = (*flags | words[i].set) & ~words[i].clear;
      continue;
    }
    size_t len = strlen(data);
    if (snprintf(data + len, size - len, "%s%s", len ? "," : "", w) >= (int)(size - len)) return fail("tmpfs options are too long");
  }
  return 0;
}

static int mount_volume(const struct volume *v, size_t i, int root) {
  char share[64], entry[80], at[40];
  unsigned long flags = 0;
  char data[256];
  struct stat st;
  bool file = false;
  if (v->tmpfs) {
    if (tmpfs_options(v->options, &flags, data, sizeof data) != 0) return -1;
  } else {
    snprintf(share, sizeof share, VOLUMES_DIR "/%zu", i);
    snprintf(entry, sizeof entry, "%s/" VOLUME_ENTRY, share);
    if (mkdir_p(share) != 0) return -1;
    if (mount(v->tag, share, "virtiofs", v->readonly ? MS_RDONLY : 0, NULL) != 0)
      return fail_errno("mounting the host's share %s for %s", v->tag, v->target);
    if (lstat(entry, &st) != 0) return fail_errno("the host's share for %s", v->target);
    file = !S_ISDIR(st.st_mode);
  }
  int fd = open_target(root, v->target, file);
  if (fd < 0) return -1;
  snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
  int rc = v->tmpfs ? mount("tmpfs", at, "tmpfs", flags, data) : mount(entry, at, NULL, MS_BIND | MS_REC, NULL);
  close(fd);
  if (rc != 0) return fail_errno("mounting %s on %s", v->tmpfs ? "a tmpfs" : "the host's share", v->target);
  if (v->tmpfs || !v->readonly) return 0;
  /* A bind takes its flags from a remount, on the mount just made (the target path now leads there). */
  if ((fd = open_target(root, v->target, file)) < 0) return -1;
  snprintf(at, sizeof at, "/proc/self/fd/%d", fd);
  rc = mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
  close(fd);
  return rc == 0 ? 0 : fail_errno("making %s read-only", v->target);
}

int mount_volumes(const struct spec *s, const char *root) {
  if (s->nvolumes == 0) return 0;
  int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return fail_errno("opening %s", root);
  int rc = 0;
  for (size_t i = 0; i < s->nvolumes && rc == 0; i++) rc = mount_volume(&s->volumes[i], i, root_fd);
  close(root_fd);
  return rc;
}
