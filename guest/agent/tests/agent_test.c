/* Unit tests of the agent's parts that run without a VM: layer unpacking (whiteouts, links,
 * containment, compression, digests), USER resolution, the frame and spec parsers, the PATH
 * search, and the process relay over socketpairs. Run as root by `images/agent/build.sh --test`
 * with the fixture script and a scratch directory; prints TAP. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "channel.h"
#include "process.h"
#include "spec.h"
#include "unpack.h"
#include "user.h"
#include "util.h"
#include "volumes.h"

static int tests, failures;
static const char *fixtures; /* directory the fixture script wrote to */
static const char *scratch;

/* One TAP line; line breaks in the description are shown as \n and \r so that it stays one line. */
static void ok(bool cond, const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  printf("%sok %d - ", cond ? "" : "not ", ++tests);
  for (const char *p = text; *p; p++) {
    if (*p == '\n') fputs("\\n", stdout);
    else if (*p == '\r') fputs("\\r", stdout);
    else putchar(*p);
  }
  putchar('\n');
  if (!cond) failures++;
}

/* --- helpers ---------------------------------------------------------------------------- */

static char *path_in(const char *dir, const char *rel) {
  static char bufs[8][4096];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
  return b;
}

static char *read_text(const char *path) {
  static char buf[4096];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) return NULL;
  buf[n] = '\0';
  return buf;
}

static bool text_is(const char *path, const char *want) {
  const char *got = read_text(path);
  return got && strcmp(got, want) == 0;
}

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static char *new_root(const char *name) {
  static char buf[8][4096];
  static int next;
  char *b = buf[next++ % 8];
  snprintf(b, sizeof buf[0], "%s/root-%s", scratch, name);
  if (mkdir(b, 0755) != 0) {
    perror(b);
    exit(2);
  }
  return b;
}

/* Unpacks fixture `name` (file `file` from byte `offset`, `bytes` of it, or all of it when 0) as
 * layer `number`. */
static int unpack_at(const char *root, const char *name, const char *file, enum compression c, uint64_t offset,
                     uint64_t bytes, int number) {
  struct layer l = {.compression = c, .offset = offset};
  strcpy(l.device, "vdb");
  const char *digest = read_text(path_in(fixtures, name));
  snprintf(l.diff_id, sizeof l.diff_id, "%.71s", digest ? digest : "");
  struct stat st;
  const char *device = path_in(fixtures, file);
  if (stat(device, &st) != 0) {
    perror(device);
    exit(2);
  }
  l.bytes = bytes ? bytes : (uint64_t)st.st_size;
  agent_error[0] = '\0';
  return unpack_layer(root, device, &l, number, -1);
}

static int unpack(const char *root, const char *name, const char *file, enum compression c, uint64_t bytes, int number) {
  return unpack_at(root, name, file, c, 0, bytes, number);
}

/* A copy of fixture `file` with `extra` appended, as a padded or polluted device would be. */
static const char *with_tail(const char *file, const char *copy, const void *extra, size_t len) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path_in(fixtures, file), path_in(fixtures, copy));
  if (system(cmd) != 0) exit(2);
  int fd = open(path_in(fixtures, copy), O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, extra, len) != (ssize_t)len) exit(2);
  close(fd);
  return copy;
}

static off_t size_of(const char *file) {
  struct stat st;
  return stat(path_in(fixtures, file), &st) == 0 ? st.st_size : -1;
}

/* --- unpack ----------------------------------------------------------------------------- */

static void check_base(const char *root, const char *how) {
  struct stat st, st2;
  ok(text_is(path_in(root, "etc/lower.txt"), "lower\n"), "%s: regular file content", how);
  ok(stat(path_in(root, "etc/lower.txt"), &st) == 0 && st.st_uid == 1000 && st.st_gid == 1001 && (st.st_mode & 07777) == 0644 &&
         st.st_mtime == 1500000000,
     "%s: numeric owner, mode and mtime", how);
  ok(stat(path_in(root, "etc/hard"), &st2) == 0 && st2.st_ino == st.st_ino, "%s: hardlink shares the inode", how);
  ok(stat(path_in(root, "bin/suid"), &st) == 0 && (st.st_mode & 07777) == 04755, "%s: setuid bit kept", how);
  char link[256] = "";
  ok(readlink(path_in(root, "bin/sh-link"), link, sizeof link - 1) > 0 && strcmp(link, "/bin/suid") == 0, "%s: symlink target kept", how);
  ok(lstat(path_in(root, "run/fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "%s: FIFO", how);
  ok(lstat(path_in(root, "dev/null-copy"), &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3,
     "%s: character device 1:3", how);
  char value[16] = "";
  ok(getxattr(path_in(root, "etc/xattr"), "user.vmrun", value, sizeof value - 1) == 3 && strcmp(value, "yes") == 0,
     "%s: SCHILY.xattr.user.vmrun restored", how);
  ok(stat(path_in(root, "dated"), &st) == 0 && st.st_mtime == 1234567890, "%s: directory mtime set after its contents", how);
  ok(text_is(path_in(root, "ünï/cödé.txt"), "utf8"), "%s: UTF-8 name from a pax header", how);
}

static void test_compressions(void) {
  struct {
    const char *file;
    enum compression c;
  } cases[] = {{"base.tar", COMPRESSION_NONE},
               {"base.tar.gz", COMPRESSION_GZIP},
               {"base.multi.tar.gz", COMPRESSION_GZIP},
               {"base.tar.zst", COMPRESSION_ZSTD},
               {"base.multi.tar.zst", COMPRESSION_ZSTD}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "c%zu", i);
    const char *root = new_root(name);
    int rc = unpack(root, "base.sha256", cases[i].file, cases[i].c, 0, 1);
    ok(rc == 0, "%s unpacks and matches its diff_id%s%s", cases[i].file, rc ? ": " : "", rc ? agent_error : "");
    if (i == 0 || i == 2 || i == 4) check_base(root, cases[i].file);
  }
}

/* The host hears that a layer began, and how far into its blob the reader is. */
static void test_progress(void) {
  const char *root = new_root("progress");
  struct layer l = {.compression = COMPRESSION_GZIP};
  strcpy(l.device, "vdb");
  snprintf(l.diff_id, sizeof l.diff_id, "%.71s", read_text(path_in(fixtures, "base.sha256")));
  l.bytes = (uint64_t)size_of("base.tar.gz");
  int p[2];
  if (pipe(p) != 0) exit(2);
  int rc = unpack_layer(root, path_in(fixtures, "base.tar.gz"), &l, 7, p[1]);
  close(p[1]);
  struct frame_reader r;
  frame_reader_init(&r, p[0]);
  unsigned long long bytes = ~0ull;
  int number = 0;
  bool first = frame_next(&r) == 1 && r.type == FRAME_PROGRESS && r.payload_len < 40;
  if (first) {
    char text[40];
    memcpy(text, r.payload, r.payload_len);
    text[r.payload_len] = '\0';
    first = sscanf(text, "%d %llu", &number, &bytes) == 2;
  }
  ok(rc == 0 && first && number == 7 && bytes > 0 && bytes <= l.bytes, "PROGRESS names the layer and the bytes read (%d %llu of %llu)",
     number, bytes, (unsigned long long)l.bytes);
  close(p[0]);
  frame_reader_free(&r);
}

/* What the upper fixture layer must leave on top of the base one, in `root` (how: which way). */
static void check_stack(const char *root, const char *how) {
  ok(!exists(path_in(root, "wh/file")) && !exists(path_in(root, "wh/.wh.file")), "%s: .wh.file removes the file and is not extracted", how);
  ok(!exists(path_in(root, "wh/dir")), "%s: .wh.dir removes a directory recursively", how);
  ok(text_is(path_in(root, "wh/stays"), "stays"), "%s: a whiteout leaves its siblings", how);
  ok(!exists(path_in(root, "opq-before/old")) && text_is(path_in(root, "opq-before/new"), "new") &&
         !exists(path_in(root, "opq-before/.wh..wh..opq")),
     "%s: opaque marker before the entries: lower children gone, new ones kept", how);
  ok(!exists(path_in(root, "opq-after/old")) && text_is(path_in(root, "opq-after/new"), "new"),
     "%s: opaque marker after the entries: lower children gone, new ones kept", how);
  ok(text_is(path_in(root, "opq-after/keepdir/newchild"), "new") && !exists(path_in(root, "opq-after/keepdir/oldchild")),
     "%s: opaque: an implicitly created directory keeps this layer's child, loses the lower one", how);
  ok(text_is(path_in(root, "keep/same"), "upper"), "%s: a whiteout does not remove the same layer's file", how);
  struct stat a, b;
  ok(stat(path_in(root, "hardlower"), &a) == 0 && stat(path_in(root, "etc/lower.txt"), &b) == 0 && a.st_ino == b.st_ino,
     "%s: hardlink to a lower layer's file", how);
  ok(stat(path_in(root, "abs-hard"), &a) == 0 && stat(path_in(root, "etc/link-src"), &b) == 0 && a.st_ino == b.st_ino,
     "%s: absolute hardlink target resolves inside the root", how);
  ok(text_is(path_in(root, "pwned"), "inside") && !exists("/pwned"), "%s: write through an absolute symlink of a lower layer stays in the root", how);
  ok(text_is(path_in(root, "pwned2"), "inside") && !exists(path_in(scratch, "pwned2")) && !exists("/pwned2"),
     "%s: write through a ../ symlink of a lower layer stays in the root", how);
  ok(lstat(path_in(root, "replace-dir"), &a) == 0 && S_ISREG(a.st_mode), "%s: a file replaces a lower directory", how);
  ok(lstat(path_in(root, "replace-link"), &a) == 0 && S_ISDIR(a.st_mode) && !exists(path_in(root, "etc/inner")),
     "%s: a directory replaces a lower symlink instead of writing through it", how);
  ok(text_is(path_in(root, "shared/a"), "two") && text_is(path_in(root, "shared/b"), "one"),
     "%s: replacing a hardlinked lower file leaves the other link alone", how);
}

static bool mount_overlay_on(const char *target, const char *options) {
  mkdir(target, 0755);
  if (mount("overlay", target, "overlay", 0, options) == 0) return true;
  fprintf(stderr, "mounting overlay %s on %s: %s\n", options, target, strerror(errno));
  return false;
}

static void test_layers(void) {
  const char *root = new_root("stack");
  ok(unpack(root, "base.sha256", "base.tar", COMPRESSION_NONE, 0, 1) == 0, "base layer");
  int rc = unpack(root, "upper.sha256", "upper.tar", COMPRESSION_NONE, 0, 2);
  ok(rc == 0, "upper layer%s%s", rc ? ": " : "", rc ? agent_error : "");
  check_stack(root, "one root");

  /* As a VM and the container runtime keep them: each layer in a directory of its own, the upper
   * one unpacked through an overlay of the base, then both stacked by overlayfs. */
  const char *lower = new_root("lower"), *upper = new_root("upper"), *work = new_root("work");
  char *merged = strdup(path_in(scratch, "merged")), *view = strdup(path_in(scratch, "view")), options[8192];
  ok(unpack(lower, "base.sha256", "base.tar", COMPRESSION_NONE, 0, 1) == 0, "layers apart: base layer");
  snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  if (mount_overlay_on(merged, options)) {
    rc = unpack(merged, "upper.sha256", "upper.tar", COMPRESSION_NONE, 0, 2);
    ok(rc == 0, "layers apart: upper layer through an overlay%s%s", rc ? ": " : "", rc ? agent_error : "");
    ok(umount(merged) == 0, "unmounted");
    struct stat st;
    ok(lstat(path_in(upper, "wh/file"), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0),
       "layers apart: the upper layer records a whiteout as a 0/0 device");
    ok(!exists(path_in(upper, "etc/hard")), "layers apart: the upper layer holds only what changed");
    snprintf(options, sizeof options, "lowerdir=%s:%s", upper, lower);
    if (mount_overlay_on(view, options)) {
      check_stack(view, "layers apart");
      umount(view);
    } else {
      ok(false, "stacking the two layers: %s", strerror(errno));
    }
  } else {
    ok(false, "mounting an overlay to unpack through: %s", strerror(errno));
  }
  free(merged);
  free(view);
}

static void test_breakouts(void) {
  const char *root = new_root("dotdot");
  ok(unpack(root, "dotdot.sha256", "dotdot.tar", COMPRESSION_NONE, 0, 3) != 0 && strstr(agent_error, "layer 3 (sha256:") &&
         strstr(agent_error, "\"../evil\"") && strstr(agent_error, "breakout"),
     "../ entry refused: %s", agent_error);
  ok(!exists(path_in(scratch, "evil")), "nothing written outside the root");
  root = new_root("hard-dotdot");
  ok(unpack(root, "hard-dotdot.sha256", "hard-dotdot.tar", COMPRESSION_NONE, 0, 1) != 0 && strstr(agent_error, "breakout") &&
         strstr(agent_error, "../../etc/passwd"),
     "hardlink target climbing out refused: %s", agent_error);
  root = new_root("sneaky");
  ok(unpack(root, "sneaky-dotdot.sha256", "sneaky-dotdot.tar", COMPRESSION_NONE, 0, 1) != 0 && strstr(agent_error, "breakout"),
     "a/../../ entry refused: %s", agent_error);
}

/* --- volumes ------------------------------------------------------------------------------ */

static bool is_tmpfs(const char *path) {
  struct statfs st;
  return statfs(path, &st) == 0 && st.f_type == 0x01021994; /* TMPFS_MAGIC */
}

static void test_volumes(void) {
  unsigned long flags = 0;
  char data[64] = "";
  ok(tmpfs_options("noexec,nosuid,nodev,size=64m,exec,mode=1777", &flags, data, sizeof data) == 0 &&
         flags == (MS_NOSUID | MS_NODEV) && strcmp(data, "size=64m,mode=1777") == 0,
     "tmpfs options: later words win, the rest is data");
  ok(tmpfs_options("size=1234567890123456789012345678901234567890,mode=1777", &flags, data, 16) != 0, "tmpfs data too long refused");

  /* The image's symlinks lead a target only to places inside the root, as the container sees them. */
  if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
    ok(false, "a mount namespace for the volume tests: %s", strerror(errno));
    return;
  }
  const char *root = new_root("volumes");
  char outside[4096], etc_in_root[4096];
  snprintf(outside, sizeof outside, "%s/outside", scratch);
  snprintf(etc_in_root, sizeof etc_in_root, "%s/etc", root);
  mkdir(etc_in_root, 0755);
  ok(symlink("/etc", path_in(root, "abs")) == 0 && symlink("../../../../../../..", path_in(root, "up")) == 0 &&
         symlink(outside, path_in(root, "out")) == 0,
     "volume fixtures");
  struct spec s;
  spec_init(&s);
  struct volume v[3] = {{.tmpfs = true, .options = "nosuid,size=1m", .target = "/abs/made/here"},
                        {.tmpfs = true, .options = "ro", .target = "/up/top"},
                        {.tmpfs = true, .options = "rw", .target = "/out/x"}};
  s.volumes = v, s.nvolumes = 2;
  int rc = mount_volumes(&s, root);
  char made[4096], top[4096], x[4200];
  snprintf(made, sizeof made, "%s/etc/made/here", root);
  snprintf(top, sizeof top, "%s/top", root);
  snprintf(x, sizeof x, "%s/x", outside);
  ok(rc == 0 && is_tmpfs(made) && is_tmpfs(top), "tmpfs volumes through symlinks land inside the root (%s)", rc ? agent_error : "");
  ok(mkdir(path_in(root, "top/d"), 0755) != 0 && errno == EROFS, "a read-only tmpfs refuses writes");
  /* A symlink to a host path that the root lacks leads nowhere: an error, and nothing made. */
  mkdir(outside, 0755);
  s.volumes = v + 2, s.nvolumes = 1;
  ok(mount_volumes(&s, root) != 0 && strstr(agent_error, "/out") && !exists(x) && !exists("/etc/made"),
     "nothing made outside the root (%s)", agent_error);
  s.volumes = NULL, s.nvolumes = 0;
  umount2(made, MNT_DETACH), umount2(top, MNT_DETACH);
}

static void test_stream_errors(void) {
  const char *root = new_root("mismatch");
  struct layer l = {.compression = COMPRESSION_NONE};
  strcpy(l.device, "vdb");
  snprintf(l.diff_id, sizeof l.diff_id, "sha256:%064d", 0);
  l.bytes = (uint64_t)size_of("base.tar");
  ok(unpack_layer(root, path_in(fixtures, "base.tar"), &l, 1, -1) != 0 && strstr(agent_error, "diff_id mismatch") &&
         strstr(agent_error, read_text(path_in(fixtures, "base.sha256"))),
     "diff_id mismatch detected: %s", agent_error);

  root = new_root("tail");
  int rc = unpack(root, "tail.sha256", "tail.tar", COMPRESSION_NONE, 0, 1);
  ok(rc == 0, "zeros after the end of the archive are hashed too%s%s", rc ? ": " : "", rc ? agent_error : "");

  root = new_root("trunc-gz");
  ok(unpack(root, "base.sha256", "base.tar.gz", COMPRESSION_GZIP, (uint64_t)size_of("base.tar.gz") - 20, 1) != 0 &&
         strstr(agent_error, "layer 1"),
     "truncated gzip detected: %s", agent_error);
  root = new_root("trunc-zst");
  ok(unpack(root, "base.sha256", "base.tar.zst", COMPRESSION_ZSTD, (uint64_t)size_of("base.tar.zst") - 20, 1) != 0,
     "truncated zstd detected: %s", agent_error);
  root = new_root("trunc-tar");
  ok(unpack(root, "base.sha256", "base.tar", COMPRESSION_NONE, 2000, 1) != 0, "truncated tar detected: %s", agent_error);
  root = new_root("short-device");
  ok(unpack(root, "base.sha256", "base.tar.gz", COMPRESSION_GZIP, (uint64_t)size_of("base.tar.gz") + 100, 1) != 0 &&
         strstr(agent_error, "ends after"),
     "device shorter than the layer detected: %s", agent_error);

  static const char junk[512] = "this is not part of the layer";
  root = new_root("padded");
  const char *padded = with_tail("base.tar.gz", "padded.tar.gz", junk, sizeof junk);
  rc = unpack(root, "base.sha256", padded, COMPRESSION_GZIP, (uint64_t)size_of("base.tar.gz"), 1);
  ok(rc == 0, "a device padded past the layer's size reads only the layer%s%s", rc ? ": " : "", rc ? agent_error : "");
  /* Layers end to end on one disk, as the VM gets them: this one starts 4096 bytes in. */
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "(head -c 4096 /dev/urandom; cat '%s'; head -c 100 /dev/urandom) >'%s'", path_in(fixtures, "base.tar.gz"),
           path_in(fixtures, "offset.bin"));
  if (system(cmd) != 0) exit(2);
  root = new_root("offset");
  rc = unpack_at(root, "base.sha256", "offset.bin", COMPRESSION_GZIP, 4096, (uint64_t)size_of("base.tar.gz"), 1);
  ok(rc == 0, "a layer at an offset on its device unpacks%s%s", rc ? ": " : "", rc ? agent_error : "");
  if (rc == 0) check_base(root, "offset");
  root = new_root("offset-past-end");
  ok(unpack_at(root, "base.sha256", "offset.bin", COMPRESSION_GZIP, 1 << 20, (uint64_t)size_of("base.tar.gz"), 1) != 0 &&
         strstr(agent_error, "ends after 0 of"),
     "a layer placed past its device's end is refused: %s", agent_error);

  root = new_root("trailing");
  ok(unpack(root, "base.sha256", padded, COMPRESSION_GZIP, 0, 1) != 0 && strstr(agent_error, "gzip"),
     "garbage after the last gzip member detected: %s", agent_error);
  root = new_root("corrupt");
  char flipped[4096];
  int fd = open(path_in(fixtures, "base.tar.gz"), O_RDONLY);
  ssize_t n = read(fd, flipped, sizeof flipped);
  close(fd);
  flipped[n / 2] ^= 0x55;
  fd = open(path_in(fixtures, "corrupt.tar.gz"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (write(fd, flipped, (size_t)n) != n) exit(2);
  close(fd);
  ok(unpack(root, "base.sha256", "corrupt.tar.gz", COMPRESSION_GZIP, 0, 1) != 0, "corrupt gzip detected: %s", agent_error);
}

/* --- user ------------------------------------------------------------------------------- */

static bool has_group(const struct user_ids *u, gid_t g) {
  for (size_t i = 0; i < u->ngroups; i++)
    if (u->groups[i] == g) return true;
  return false;
}

static void test_users(void) {
  char *passwd = strdup(path_in(scratch, "passwd")), *group = strdup(path_in(scratch, "group"));
  FILE *f = fopen(passwd, "w");
  fputs("# comment\n"
        "root:x:0:0:root:/root:/bin/sh\n"
        "\n"
        "broken:x:notanumber:1:::\n"
        "short:x\n"
        "  alice:x:1000:1000:Alice:/home/alice:/bin/sh  \n"
        "alice:x:1999:1999:second alice:/nope:/bin/sh\n"
        "nohome:x:1002:1002::\n",
        f);
  fclose(f);
  f = fopen(group, "w");
  fputs("root:x:0:\n"
        "wheel:x:10:root,alice\n"
        "staff:x:50:bob,alice\n"
        "alice:x:1000:\n"
        "bad:x:zz:alice\n"
        "other:x:60:alicex\n",
        f);
  fclose(f);

  struct user_ids u;
  ok(user_resolve(NULL, passwd, group, &u) == 0 && u.uid == 0 && u.gid == 0 && strcmp(u.home, "/root") == 0 && has_group(&u, 10) &&
         has_group(&u, 0) && u.ngroups == 2,
     "no USER: root, its home and the groups listing root");
  user_free(&u);
  ok(user_resolve("alice", passwd, group, &u) == 0 && u.uid == 1000 && u.gid == 1000 && strcmp(u.home, "/home/alice") == 0 &&
         has_group(&u, 1000) && has_group(&u, 10) && has_group(&u, 50) && !has_group(&u, 60) && u.ngroups == 3,
     "name: first matching line, trimmed; supplementary groups listing the name, plus the primary");
  user_free(&u);
  ok(user_resolve("1000", passwd, group, &u) == 0 && u.uid == 1000 && u.gid == 1000 && has_group(&u, 50),
     "numeric uid with a passwd line uses it");
  user_free(&u);
  ok(user_resolve("4242", passwd, group, &u) == 0 && u.uid == 4242 && u.gid == 0 && strcmp(u.home, "/") == 0 && u.ngroups == 1,
     "numeric uid without a line: gid 0, home /");
  user_free(&u);
  ok(user_resolve("alice:staff", passwd, group, &u) == 0 && u.uid == 1000 && u.gid == 50 && u.ngroups == 1 && has_group(&u, 50),
     "explicit group by name replaces the primary, no supplementary groups");
  user_free(&u);
  ok(user_resolve("alice:777", passwd, group, &u) == 0 && u.gid == 777, "explicit numeric gid without a group line");
  user_free(&u);
  ok(user_resolve("nohome", passwd, group, &u) == 0 && strcmp(u.home, "/") == 0, "empty home becomes /");
  user_free(&u);
  ok(user_resolve("bob", passwd, group, &u) != 0 && strcmp(agent_error, "unable to find user bob: no matching entries in passwd file") == 0,
     "unknown name: runc's message (%s)", agent_error);
  ok(user_resolve("broken", passwd, group, &u) != 0, "a line with a bad uid is skipped");
  ok(user_resolve("alice:nogroup", passwd, group, &u) != 0 &&
         strcmp(agent_error, "unable to find group nogroup: no matching entries in group file") == 0,
     "unknown group: runc's message (%s)", agent_error);
  ok(user_resolve("3000000000", passwd, group, &u) != 0 && strstr(agent_error, "range"), "uid out of range refused");
  ok(user_resolve("alice", "/nonexistent/passwd", "/nonexistent/group", &u) != 0, "missing passwd: names cannot resolve");
  ok(user_resolve("5", "/nonexistent/passwd", "/nonexistent/group", &u) == 0 && u.uid == 5 && u.gid == 0, "missing passwd: numbers do");
  user_free(&u);
  free(passwd), free(group);
}

/* --- frames and spec -------------------------------------------------------------------- */

/* Feeds raw bytes through a pipe to frame_next; returns its result. */
static int frame_from(const void *bytes, size_t len, struct frame_reader *r) {
  int p[2];
  if (pipe(p) != 0 || write(p[1], bytes, len) != (ssize_t)len) exit(2);
  close(p[1]);
  frame_reader_init(r, p[0]);
  agent_error[0] = '\0';
  int rc = frame_next(r);
  close(p[0]);
  return rc;
}

static void test_frames(void) {
  struct frame_reader r;
  ok(frame_from("\0\0\0\0", 4, &r) < 0 && strstr(agent_error, "out of range"), "length 0 refused: %s", agent_error);
  frame_reader_free(&r);
  ok(frame_from("\x01\x00\x10\x00\x01", 5, &r) < 0, "length 1 MiB + 1 refused");
  frame_reader_free(&r);
  ok(frame_from("\xff\xff\xff\xff", 4, &r) < 0, "length 4 GiB - 1 refused");
  frame_reader_free(&r);
  ok(frame_from("\x05\x00\x00\x00\x01" "ab", 7, &r) < 0 && strstr(agent_error, "middle"), "end inside a frame is an error");
  frame_reader_free(&r);
  ok(frame_from("\x05\x00", 2, &r) < 0, "end inside a length is an error");
  frame_reader_free(&r);
  ok(frame_from("", 0, &r) == 0, "clean end between frames");
  frame_reader_free(&r);

  /* Two frames, the second split across reads, with a 1 MiB frame in between. */
  size_t big = FRAME_MAX_LENGTH;
  unsigned char *buf = malloc(4 + 4 + 3 + 4 + big);
  size_t n = 0;
  memcpy(buf + n, "\x04\x00\x00\x00\x01run", 8), n += 8;
  buf[n++] = big & 0xff, buf[n++] = (big >> 8) & 0xff, buf[n++] = (big >> 16) & 0xff, buf[n++] = (unsigned char)(big >> 24);
  buf[n++] = FRAME_ARG;
  memset(buf + n, 'a', big - 1), n += big - 1;
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pid_t pid = fork();
  if (pid == 0) {
    for (size_t i = 0; i < n; i += 7777) (void)write_all(sv[1], buf + i, n - i < 7777 ? n - i : 7777);
    _exit(0);
  }
  close(sv[1]);
  frame_reader_init(&r, sv[0]);
  bool first = frame_next(&r) == 1 && r.type == FRAME_MODE && r.payload_len == 3 && memcmp(r.payload, "run", 3) == 0;
  bool second = frame_next(&r) == 1 && r.type == FRAME_ARG && r.payload_len == big - 1;
  ok(first && second, "frames reassembled across reads, 1 MiB frame accepted");
  ok(frame_next(&r) == 0, "then a clean end");
  waitpid(pid, NULL, 0);
  close(sv[0]);
  frame_reader_free(&r);
  free(buf);
}

static int add(struct spec *s, uint8_t type, const char *text) { return spec_add(s, type, (const unsigned char *)text, strlen(text)); }

/* A run spec of `n` frames (type, payload) after MODE run, then ARG sh and END: the result of
 * spec_check, or -1 when a frame was refused. */
static int run_spec(size_t n, const uint8_t *types, const char *const *payloads) {
  struct spec s;
  spec_init(&s);
  int rc = add(&s, FRAME_MODE, "run");
  for (size_t i = 0; i < n && rc == 0; i++) rc = add(&s, types[i], payloads[i]);
  if (rc == 0) rc = add(&s, FRAME_ARG, "sh") == 0 && add(&s, FRAME_END, "") == 0 ? spec_check(&s) : -1;
  spec_free(&s);
  return rc;
}

static void test_root_spec(void) {
  struct spec s;
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_ROOT, "virtiofs rootfs-0_A") == 0 && add(&s, FRAME_READONLY, "") == 0 &&
         add(&s, FRAME_ARG, "sh") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0 && strcmp(s.root_tag, "rootfs-0_A") == 0 &&
         s.nlayers == 0,
     "ROOT: the tag of the share that is the root");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_ROOT, "virtiofs a") == 0 && add(&s, FRAME_ROOT, "virtiofs b") != 0 &&
         strstr(agent_error, "ROOT sent twice"),
     "ROOT twice refused: %s", agent_error);
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_ROOT, "virtiofs rootfs") != 0, "ROOT refused in an unpack spec");
  spec_free(&s);

  const uint8_t root_lower[] = {FRAME_ROOT, FRAME_LOWER}, lower_root[] = {FRAME_LOWER, FRAME_ROOT};
  const char *const root_lower_p[] = {"virtiofs rootfs", "vda1"}, *const lower_root_p[] = {"vda1", "virtiofs rootfs"};
  ok(run_spec(2, root_lower, root_lower_p) != 0 && strstr(agent_error, "ROOT with a LOWER") &&
         run_spec(2, lower_root, lower_root_p) != 0 && strstr(agent_error, "ROOT with a LOWER"),
     "ROOT with a LOWER refused, either way round: %s", agent_error);
  const uint8_t root_hosts[] = {FRAME_ROOT, FRAME_HOSTS}, resolv_root[] = {FRAME_RESOLV, FRAME_ROOT};
  const char *const root_hosts_p[] = {"virtiofs rootfs", "127.0.0.1\tlocalhost\n"};
  const char *const resolv_root_p[] = {"nameserver 10.0.2.3\n", "virtiofs rootfs"};
  ok(run_spec(2, root_hosts, root_hosts_p) != 0 && strstr(agent_error, "bad spec: HOSTS with ROOT: "),
     "ROOT with HOSTS refused: %s", agent_error);
  ok(run_spec(2, resolv_root, resolv_root_p) != 0 && strstr(agent_error, "bad spec: RESOLV with ROOT: "),
     "ROOT with RESOLV refused: %s", agent_error);

  const char *malformed[] = {"virtiofs", "virtiofs ", "virtiofs bad/tag", "virtiofs tag x", "virtiofs  tag", "virtiofstag",
                             "virtiofs tag\n", "tmpfs tag", "VIRTIOFS tag", "virtiofs 0123456789012345678901234567890123456", ""};
  const uint8_t root[] = {FRAME_ROOT};
  bool refused = true;
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
    refused = refused && run_spec(1, root, &malformed[i]) != 0 && strstr(agent_error, "bad ROOT");
  const char *longest = "virtiofs 012345678901234567890123456789012345";
  ok(refused && run_spec(1, root, &longest) == 0, "malformed ROOT refused, a 36-character tag taken");
}

static void test_rlimit_spec(void) {
  struct spec s;
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_RLIMIT, "RLIMIT_NOFILE 1024 4096") == 0 &&
         add(&s, FRAME_RLIMIT, "RLIMIT_CORE 0 unlimited") == 0 && add(&s, FRAME_RLIMIT, "RLIMIT_STACK unlimited unlimited") == 0 &&
         s.nrlimits == 3 && s.rlimits[0].resource == RLIMIT_NOFILE && strcmp(s.rlimits[0].name, "RLIMIT_NOFILE") == 0 &&
         s.rlimits[0].limit.rlim_cur == 1024 && s.rlimits[0].limit.rlim_max == 4096 && s.rlimits[1].resource == RLIMIT_CORE &&
         s.rlimits[1].limit.rlim_cur == 0 && s.rlimits[1].limit.rlim_max == RLIM_INFINITY &&
         s.rlimits[2].limit.rlim_cur == RLIM_INFINITY,
     "RLIMIT: resource, soft and hard limits, unlimited");
  ok(add(&s, FRAME_RLIMIT, "RLIMIT_NOFILE 10 10") != 0 && strstr(agent_error, "RLIMIT_NOFILE sent twice"),
     "the same RLIMIT twice refused: %s", agent_error);
  spec_free(&s);

  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_RLIMIT, "RLIMIT_NOFILE 2048 1024") != 0 && strstr(agent_error, "soft limit is above") &&
         add(&s, FRAME_RLIMIT, "RLIMIT_NOFILE unlimited 1024") != 0,
     "RLIMIT with soft above hard refused: %s", agent_error);
  spec_free(&s);
  const char *unknown[] = {"RLIMIT_FOO 1 2", "rlimit_nofile 1 2", "NOFILE 1 2", "RLIMIT_NOFILEX 1 2", "RLIMIT_ 1 2", " RLIMIT_NOFILE 1 2"};
  bool refused = true;
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    spec_init(&s);
    refused = refused && add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_RLIMIT, unknown[i]) != 0 && strstr(agent_error, "RLIMIT_ names");
    spec_free(&s);
  }
  ok(refused, "RLIMIT of an unknown resource refused: %s", agent_error);
  const char *garbage[] = {"RLIMIT_NOFILE", "RLIMIT_NOFILE 1", "RLIMIT_NOFILE 1k 2", "RLIMIT_NOFILE -1 2", "RLIMIT_NOFILE +1 2",
                           "RLIMIT_NOFILE 01 2", "RLIMIT_NOFILE 1  2", "RLIMIT_NOFILE  1 2", "RLIMIT_NOFILE 1 2 ", "RLIMIT_NOFILE 1 2 3",
                           "RLIMIT_NOFILE 1 2\n", "RLIMIT_NOFILE 1 99999999999999999999", "RLIMIT_NOFILE 1 Unlimited",
                           "RLIMIT_NOFILE 1 infinity", "RLIMIT_NOFILE 0x10 0x20", "RLIMIT_NOFILE 1 unlimitedx", ""};
  refused = true;
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    spec_init(&s);
    refused = refused && add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_RLIMIT, garbage[i]) != 0;
    spec_free(&s);
  }
  spec_init(&s);
  ok(refused && add(&s, FRAME_MODE, "run") == 0 && spec_add(&s, FRAME_RLIMIT, (const unsigned char *)"RLIMIT_CPU 1\0 2", 14) != 0 &&
         add(&s, FRAME_RLIMIT, "RLIMIT_CPU 1 2 RLIMIT_CPU 1 2 RLIMIT_CPU 1 2 RLIMIT_CPU 1 2 RLIMIT_CPU") != 0,
     "RLIMIT with garbage for limits refused");
  spec_free(&s);

  const char *all[] = {"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
                       "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
                       "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};
  spec_init(&s);
  s.container = true; /* as an EXEC's spec is read */
  bool taken = add(&s, FRAME_MODE, "run") == 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "%s 18446744073709551609 unlimited", all[i]);
    taken = taken && add(&s, FRAME_RLIMIT, text) == 0;
  }
  ok(taken && s.nrlimits == 16 && add(&s, FRAME_RLIMIT, "RLIMIT_CPU 1 1") != 0 && strstr(agent_error, "more than 16 RLIMITs") &&
         add(&s, FRAME_ARG, "sh") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0,
     "all 16 RLIMITs taken, in container mode too, a 17th refused: %s", agent_error);
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_RLIMIT, "RLIMIT_CPU 1 1") != 0, "RLIMIT refused in an unpack spec");
  spec_free(&s);
}

static void test_spec(void) {
  struct layer l;
  const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  char text[256];
  snprintf(text, sizeof text, "vdb 8192 1234 gzip sha256:%s 3 vda12", hex);
  ok(parse_layer(text, &l) == 0 && strcmp(l.device, "vdb") == 0 && l.offset == 8192 && l.bytes == 1234 &&
         l.compression == COMPRESSION_GZIP && l.number == 3 && strcmp(l.target, "vda12") == 0 && !l.unpacked,
     "LAYER parsed");
  snprintf(text, sizeof text, "vdb 0 1 none sha256:%s 1", hex);
  ok(parse_layer(text, &l) == 0 && l.offset == 0 && l.bytes == 1 && l.number == 1 && l.target[0] == '\0', "LAYER at offset 0, no target");
#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  const char *bad[] = {"vdb 0  1234 gzip sha256:" HEX " 1", "vdb 0 1234 gzip sha256:" HEX " 1 ", "sda 0 1234 gzip sha256:" HEX " 1",
                       "vda1 0 1234 gzip sha256:" HEX " 1", "vd 0 1234 gzip sha256:" HEX " 1", "../vdb 0 1234 gzip sha256:" HEX " 1",
                       "vdB 0 1234 gzip sha256:" HEX " 1", "vdb 0 01234 gzip sha256:" HEX " 1", "vdb 0 +1234 gzip sha256:" HEX " 1",
                       "vdb 0 0 gzip sha256:" HEX " 1", "vdb 0 99999999999999999999 gzip sha256:" HEX " 1", "vdb 0 12 bzip2 sha256:" HEX " 1",
                       "vdb 0 12 gzip sha512:" HEX " 1", "vdb 0 12 gzip sha256:" HEX "0 1", "vdb 0 12 gzip " HEX " 1",
                       "vdbcdefgh 0 12 gzip sha256:" HEX " 1", "vdb 0 12 gzip sha256:" HEX " 1\n",
                       "vdb 1234 gzip sha256:" HEX " 1", "vdb 00 12 gzip sha256:" HEX " 1", "vdb -1 12 gzip sha256:" HEX " 1",
                       "vdb 18446744073709551615 1 gzip sha256:" HEX " 1", "vdb 18446744073709551616 1 gzip sha256:" HEX " 1",
                       "vdb 0 12 gzip sha256:" HEX, "vdb 0 12 gzip sha256:" HEX " 0", "vdb 0 12 gzip sha256:" HEX " 01",
                       "vdb 0 12 gzip sha256:" HEX " 1000", "vdb 0 12 gzip sha256:" HEX " x", "vdb 0 12 gzip sha256:" HEX " 1 vda",
                       "vdb 0 12 gzip sha256:" HEX " 1 vda0", "vdb 0 12 gzip sha256:" HEX " 1 vda1000", "vdb 0 12 gzip sha256:" HEX " 1 ../vda1",
                       "vdb 0 12 gzip sha256:" HEX " 1 vda1 vda2", "vdb 0 12 gzip sha256:" HEX " 1 vdabcdef1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) ok(parse_layer(bad[i], &l) != 0, "bad LAYER refused: \"%s\"", bad[i]);
  snprintf(text, sizeof text, "vdb 0 12 gzip sha256:%.63sA 1", hex);
  ok(parse_layer(text, &l) != 0, "uppercase hex refused");
  ok(valid_partition_name("vda1") && valid_partition_name("vdc127") && !valid_partition_name("vda") &&
         !valid_partition_name("vda01") && !valid_partition_name("vd1") && !valid_partition_name("vda1a"),
     "partition names");

  struct spec s;
  spec_init(&s);
  char text2[256];
  snprintf(text, sizeof text, "vdb 0 12 none sha256:%s 2 vda1", hex);
  snprintf(text2, sizeof text2, "vdb 4096 12 none sha256:%s 3 vda2", hex);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LOWER, "vdc1") == 0 && add(&s, FRAME_LAYER, text) == 0 &&
         add(&s, FRAME_LAYER, text2) == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0 && s.nlayers == 3 &&
         s.layers[0].unpacked && strcmp(s.layers[0].target, "vdc1") == 0 && !s.layers[2].unpacked,
     "a complete unpack spec: one layer there, two to unpack on top");
  ok(add(&s, FRAME_ARG, "x") != 0, "nothing after END");
  spec_free(&s);

  spec_init(&s);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LAYER, text) == 0 && add(&s, FRAME_LAYER, text) == 0 &&
         add(&s, FRAME_END, "") == 0 && spec_check(&s) != 0 && strstr(agent_error, "share partition vda1"),
     "two layers into one partition refused: %s", agent_error);
  spec_free(&s);
  spec_init(&s);
  snprintf(text2, sizeof text2, "vdb 0 12 none sha256:%s 1 vdb1", hex);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LAYER, text2) == 0 && add(&s, FRAME_END, "") == 0 &&
         spec_check(&s) != 0 && strstr(agent_error, "blob is on the disk"),
     "a target on the blobs' disk refused: %s", agent_error);
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LOWER, "vdc1") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) != 0,
     "an unpack with nothing to unpack refused");
  spec_free(&s);
  spec_init(&s);
  snprintf(text2, sizeof text2, "vdb 0 12 none sha256:%s 1", hex);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LAYER, text2) != 0, "a LAYER without a target refused in a VM");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0, "run");
  bool all = true;
  for (int i = 1; i <= 127; i++) {
    char name[16];
    snprintf(name, sizeof name, "vda%d", i);
    all = all && add(&s, FRAME_LOWER, name) == 0;
  }
  ok(all && add(&s, FRAME_LOWER, "vdb1") != 0 && strstr(agent_error, "more than 127"), "127 layers, not 128: %s", agent_error);
  spec_free(&s);

  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_IDLE, "") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0 && s.idle,
     "IDLE: a run without ARG");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_IDLE, "") == 0 && add(&s, FRAME_ARG, "sh") == 0 && add(&s, FRAME_END, "") == 0 &&
         spec_check(&s) != 0 && strstr(agent_error, "IDLE with an ARG"),
     "IDLE and ARG together refused: %s", agent_error);
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_IDLE, "") == 0 && add(&s, FRAME_IDLE, "") != 0, "IDLE twice refused");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_LOWER, "vda1") != 0, "MODE must come first");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_ARG, "sh") != 0, "ARG refused in an unpack spec");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_LAYER, text) != 0, "LAYER refused in a run spec");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_LOWER, "vda") != 0 && add(&s, FRAME_LOWER, "vda1/..") != 0, "a LOWER that is not a partition refused");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_LOWER, "vda1") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) != 0,
     "run without ARG refused");
  spec_free(&s);
  spec_init(&s);
  ok(add(&s, FRAME_MODE, "run") == 0 && spec_add(&s, FRAME_ARG, (const unsigned char *)"a\0b", 3) != 0, "NUL inside ARG refused");
  ok(add(&s, FRAME_ENV, "NOEQUALS") != 0 && add(&s, FRAME_ENV, "=x") != 0 && add(&s, FRAME_ENV, "A=") == 0, "ENV needs NAME=");
  ok(add(&s, FRAME_WORKDIR, "relative") != 0, "relative WORKDIR refused");
  ok(add(&s, FRAME_HOSTNAME, "bad host") != 0, "hostname with a space refused");
  ok(spec_add(&s, FRAME_TTY, (const unsigned char *)"\x18\x00", 2) != 0, "short TTY refused");
  ok(spec_add(&s, FRAME_TTY, (const unsigned char *)"\x18\x00\x50\x00", 4) == 0 && s.tty && s.rows == 24 && s.cols == 80, "TTY size");
  {
    unsigned char fresh[8 + 64] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x17};
    for (int i = 0; i < 64; i++) fresh[8 + i] = (unsigned char)(0xa0 + i);
    ok(spec_add(&s, FRAME_FRESH, fresh, sizeof fresh - 1) != 0 && !s.fresh && spec_add(&s, FRAME_FRESH, fresh, 0) != 0,
       "FRESH of another size than 72 bytes refused");
    ok(spec_add(&s, FRAME_FRESH, fresh, sizeof fresh) == 0 && s.fresh && s.fresh_realtime_ns == 0x1706050403020100ull &&
           s.fresh_seed[0] == 0xa0 && s.fresh_seed[63] == 0xa0 + 63,
       "FRESH: the time (u64 LE) and the 64 random bytes");
    ok(spec_add(&s, FRAME_FRESH, fresh, sizeof fresh) != 0 && strstr(agent_error, "FRESH sent twice"), "FRESH twice refused: %s", agent_error);
    struct spec t;
    spec_init(&t);
    t.container = true;
    ok(add(&t, FRAME_MODE, "run") == 0 && spec_add(&t, FRAME_FRESH, fresh, sizeof fresh) != 0, "container mode: FRESH refused");
    spec_free(&t);
    spec_init(&t);
    ok(add(&t, FRAME_MODE, "unpack") == 0 && spec_add(&t, FRAME_FRESH, fresh, sizeof fresh) != 0, "FRESH refused in an unpack spec");
    spec_free(&t);
  }
  ok(add(&s, FRAME_READONLY, "x") != 0, "READONLY with a payload refused");
  ok(add(&s, FRAME_HOSTS, "127.0.0.1\tlocalhost\n") == 0 && strcmp(s.hosts, "127.0.0.1\tlocalhost\n") == 0, "HOSTS kept as sent");
  ok(add(&s, FRAME_HOSTS, "again\n") != 0, "HOSTS twice refused");
  ok(add(&s, FRAME_NETWORK, "10.0.2.15/24 10.0.2.2") == 0 && s.network && s.net_prefix == 24 &&
         s.net_address == htonl(0x0a00020f) && s.net_gateway == htonl(0x0a000202),
     "NETWORK: address, prefix and gateway");
  ok(add(&s, FRAME_NETWORK, "10.0.2.16/24 10.0.2.2") != 0, "NETWORK twice refused");
  {
    struct spec t;
    spec_init(&t);
    unsigned char want[16] = {0xfd, 0x99, [15] = 2};
    ok(add(&t, FRAME_MODE, "run") == 0 && add(&t, FRAME_NETWORK, "10.0.2.15/24 10.0.2.2 fd99::2/64 fe80::2") == 0 && t.net6 &&
           t.net6_prefix == 64 && memcmp(t.net6_address, want, 16) == 0 && t.net6_gateway[0] == 0xfe && !s.net6,
       "NETWORK with IPv6: address, prefix and gateway");
    spec_free(&t);
  }
  {
    const char *malformed[] = {"10.0.2.15/24", "10.0.2.15 10.0.2.2", "10.0.2.15/0 10.0.2.2", "10.0.2.15/31 10.0.2.2",
                         "10.0.2.256/24 10.0.2.2", "10.0.2.15/24 10.0.2.2 x", "::1/64 ::2",
                         "10.0.2.15/24 10.0.2.2 fd99::2/129 fe80::2", "10.0.2.15/24 10.0.2.2 fd99::2/64", "10.0.2.15/24 10.0.2.2 fd99::2/64 fe80::2 x",
                         "10.0.2.15/24 10.0.2.2 fd99:::2/64 fe80::2", "10.0.2.15/24 10.0.2.2 1.2.3.4/64 fe80::2"};
    bool refused = true;
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
      struct spec t;
      spec_init(&t);
      refused = refused && add(&t, FRAME_MODE, "run") == 0 && add(&t, FRAME_NETWORK, malformed[i]) != 0;
      spec_free(&t);
    }
    ok(refused, "malformed NETWORK refused");
  }
  ok(add(&s, FRAME_MOUNT, "virtiofs vol0 ro /data dir") == 0 && s.nvolumes == 1 && !s.volumes[0].tmpfs &&
         strcmp(s.volumes[0].tag, "vol0") == 0 && s.volumes[0].readonly && strcmp(s.volumes[0].target, "/data dir") == 0,
     "MOUNT virtiofs: tag, read-only, a target with a space");
  ok(add(&s, FRAME_MOUNT, "tmpfs noexec,nosuid,nodev,size=64m,mode=1777 /run/x") == 0 && s.nvolumes == 2 && s.volumes[1].tmpfs &&
         strcmp(s.volumes[1].options, "noexec,nosuid,nodev,size=64m,mode=1777") == 0,
     "MOUNT tmpfs: options and target");
  {
    const char *malformed[] = {"virtiofs vol0 ro relative", "virtiofs vol0 rx /d", "virtiofs vol0 ro /", "virtiofs bad/tag ro /d",
                               "virtiofs 0123456789012345678901234567890123456 rw /d", "tmpfs size=1m;rm /d", "tmpfs nosuid,,dev /d",
                               "tmpfs bind /d", "tmpfs size= /d", "tmpfs nosuid /d\nx", "nfs x ro /d", "virtiofs vol0 ro"};
    bool refused = true;
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
      struct spec t;
      spec_init(&t);
      refused = refused && add(&t, FRAME_MODE, "run") == 0 && add(&t, FRAME_MOUNT, malformed[i]) != 0;
      spec_free(&t);
    }
    ok(refused, "malformed MOUNT refused");
  }
  ok(add(&s, FRAME_SIGNAL, "1234") != 0, "SIGNAL inside the spec refused");
  ok(add(&s, 99, "") != 0, "unknown frame type refused");
  spec_free(&s);
  test_root_spec();
  test_rlimit_spec();

  /* Container mode: the host and runc provide the root, host name, read-only-ness, resolv.conf and hosts. */
  spec_init(&s);
  s.container = true;
  ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, FRAME_ARG, "sh") == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0,
     "container mode: a run spec without LOWER");
  spec_free(&s);
  const char *runc_frames[] = {"LOWER", "HOSTNAME", "READONLY", "RESOLV", "HOSTS", "NETWORK", "MOUNT", "ROOT"};
  const uint8_t runc_types[] = {FRAME_LOWER, FRAME_HOSTNAME, FRAME_READONLY, FRAME_RESOLV, FRAME_HOSTS, FRAME_NETWORK, FRAME_MOUNT, FRAME_ROOT};
  const char *payloads[] = {"vda1", "host", "", "nameserver 1.1.1.1\n", "127.0.0.1\tlocalhost\n", "10.0.2.15/24 10.0.2.2", "tmpfs rw /x",
                            "virtiofs rootfs"};
  for (size_t i = 0; i < sizeof runc_types; i++) {
    spec_init(&s);
    s.container = true;
    ok(add(&s, FRAME_MODE, "run") == 0 && add(&s, runc_types[i], payloads[i]) != 0, "container mode: %s refused", runc_frames[i]);
    spec_free(&s);
  }
  spec_init(&s);
  s.container = true;
  snprintf(text, sizeof text, "vdb 0 12 none sha256:%s 4", hex);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LAYER, text) == 0 && add(&s, FRAME_END, "") == 0 && spec_check(&s) == 0,
     "container mode: an unpack spec without a target");
  spec_free(&s);
  spec_init(&s);
  s.container = true;
  snprintf(text, sizeof text, "vdb 0 12 none sha256:%s 4 vda1", hex);
  ok(add(&s, FRAME_MODE, "unpack") == 0 && add(&s, FRAME_LAYER, text) != 0, "container mode: a LAYER target refused");
  spec_free(&s);
}

/* --- PATH search and the process relay ---------------------------------------------------- */

static void test_look_path(void) {
  char *dir = strdup(path_in(scratch, "bin")), out[4096], path[8192];
  mkdir(dir, 0755);
  close(open(path_in(dir, "tool"), O_CREAT | O_WRONLY, 0755));
  close(open(path_in(dir, "data"), O_CREAT | O_WRONLY, 0644));
  snprintf(path, sizeof path, "/nonexistent:%s", dir);
  ok(look_path("tool", path, out, sizeof out) == 0 && strcmp(out, path_in(dir, "tool")) == 0, "found in the second PATH entry");
  ok(look_path("data", path, out, sizeof out) == 127 && strcmp(agent_error, "exec: \"data\": executable file not found in $PATH") == 0,
     "a non-executable file in PATH is skipped: %s", agent_error);
  ok(look_path("/nonexistent/x", path, out, sizeof out) == 127 &&
         strcmp(agent_error, "exec: \"/nonexistent/x\": stat /nonexistent/x: no such file or directory") == 0,
     "missing path with a slash: %s", agent_error);
  ok(look_path(path_in(dir, "data"), path, out, sizeof out) == 126 && strstr(agent_error, "\": permission denied"),
     "non-executable path: 126 (%s)", agent_error);
  ok(look_path(dir, path, out, sizeof out) == 126 && strstr(agent_error, "\": is a directory"), "a directory: 126 (%s)", agent_error);
  free(dir);
}

struct host_side {
  int ctl, in, out, err;
};

/* Runs process_run in a child, as the agent would, with socketpairs standing in for vsock. */
static pid_t start_agent(struct spec *s, struct host_side *h) {
  int ctl[2], in[2], out[2], err[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, ctl), socketpair(AF_UNIX, SOCK_STREAM, 0, in);
  socketpair(AF_UNIX, SOCK_STREAM, 0, out), socketpair(AF_UNIX, SOCK_STREAM, 0, err);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(ctl[0]), close(in[0]), close(out[0]), close(err[0]);
    struct frame_reader r;
    frame_reader_init(&r, ctl[1]);
    struct process_io io = {.control = &r, .in_sock = in[1], .out_sock = out[1], .err_sock = err[1], .is_init = false};
    int code = 0, rc = process_run(s, "/", &io, &code);
    if (rc == 0) send_exit(ctl[1], code);
    else send_error(ctl[1], rc, agent_error);
    _exit(0);
  }
  close(ctl[1]), close(in[1]), close(out[1]), close(err[1]);
  *h = (struct host_side){ctl[0], in[0], out[0], err[0]};
  return pid;
}

static char *read_all(int fd) {
  static char bufs[2][65536];
  static int next;
  char *b = bufs[next++ % 2];
  size_t got = 0;
  ssize_t n;
  while ((n = read(fd, b + got, sizeof bufs[0] - 1 - got)) > 0) got += (size_t)n;
  b[got] = '\0';
  return b;
}

static void test_process(void) {
  char *argv[] = {"/bin/sh", "-c", "cat; echo to-stderr >&2; test -w /dev/stdout && echo stdout-openable; exit 3", NULL};
  char *env[] = {"PATH=/usr/bin:/bin", NULL};
  struct spec s;
  spec_init(&s);
  s.mode = MODE_RUN, s.argv = argv, s.argc = 3, s.env = env, s.nenv = 1, s.workdir = (char *)"/tmp";
  struct host_side h;
  pid_t pid = start_agent(&s, &h);
  (void)write_all(h.in, "hello\n", 6);
  shutdown(h.in, SHUT_WR);
  char *out = read_all(h.out), *err = read_all(h.err);
  ok(strcmp(out, "hello\nstdout-openable\n") == 0, "stdin relayed to stdout through cat; /dev/stdout openable (got \"%s\")", out);
  ok(strcmp(err, "to-stderr\n") == 0, "stderr relayed (got \"%s\")", err);
  struct frame_reader r;
  frame_reader_init(&r, h.ctl);
  bool phase = frame_next(&r) == 1 && r.type == FRAME_PHASE && r.payload_len > 5 && memcmp(r.payload, "exec ", 5) == 0;
  ok(phase, "PHASE exec sent");
  ok(frame_next(&r) == 1 && r.type == FRAME_EXIT && r.payload_len == 4 && r.payload[0] == 3, "EXIT 3");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);

  char *argv2[] = {"no-such-command", NULL};
  s.argv = argv2, s.argc = 1;
  pid = start_agent(&s, &h);
  frame_reader_init(&r, h.ctl);
  ok(frame_next(&r) == 1 && r.type == FRAME_ERROR && r.payload[0] == 127 &&
         r.payload_len - 4 == strlen("exec: \"no-such-command\": executable file not found in $PATH") &&
         memcmp(r.payload + 4, "exec: \"no-such-command\": executable file not found in $PATH", r.payload_len - 4) == 0,
     "unknown command: ERROR 127 with runc's message");
  ok(*read_all(h.out) == '\0' && *read_all(h.err) == '\0', "stdout and stderr end at once");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);

  /* TTY: the size reaches the terminal, output arrives on stdout, stderr ends at once. */
  char *argv4[] = {"/bin/sh", "-c", "stty size; test -t 0 && echo on-a-tty", NULL};
  s.argv = argv4, s.argc = 3, s.tty = true, s.rows = 24, s.cols = 80;
  pid = start_agent(&s, &h);
  ok(*read_all(h.err) == '\0', "TTY: stderr ends at once");
  out = read_all(h.out);
  ok(strcmp(out, "24 80\r\non-a-tty\r\n") == 0, "TTY: size and output through the terminal (got \"%s\")", out);
  frame_reader_init(&r, h.ctl);
  ok(frame_next(&r) == 1 && r.type == FRAME_PHASE && frame_next(&r) == 1 && r.type == FRAME_EXIT && r.payload[0] == 0, "TTY: EXIT 0");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);
  s.tty = false;

  /* A signal from the host ends a process that would otherwise run forever. */
  char *argv3[] = {"/bin/sleep", "1000", NULL};
  s.argv = argv3, s.argc = 2;
  pid = start_agent(&s, &h);
  frame_reader_init(&r, h.ctl);
  bool started = frame_next(&r) == 1 && r.type == FRAME_PHASE;
  unsigned char sig[4] = {15, 0, 0, 0};
  frame_send(h.ctl, FRAME_SIGNAL, sig, 4);
  ok(started && frame_next(&r) == 1 && r.type == FRAME_EXIT && r.payload[0] == 128 + 15, "SIGNAL 15: EXIT 143");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);

  /* IDLE: a main process that only waits, until a signal ends it; EXEC is refused where the
   * agent takes none (here, as under runc). */
  s.argv = NULL, s.argc = 0, s.idle = true;
  pid = start_agent(&s, &h);
  frame_reader_init(&r, h.ctl);
  started = frame_next(&r) == 1 && r.type == FRAME_PHASE && r.payload_len > 5 && memcmp(r.payload, "exec ", 5) == 0;
  struct pollfd quiet = {.fd = h.ctl, .events = POLLIN};
  ok(started && poll(&quiet, 1, 200) == 0, "IDLE: started, then nothing until told");
  unsigned char id[4] = {1, 0, 0, 0};
  frame_send(h.ctl, FRAME_EXEC, id, 4);
  ok(frame_next(&r) == 1 && r.type == FRAME_ERROR && r.payload_len > 4 && memmem(r.payload + 4, r.payload_len - 4, "frame type 18", 13),
     "EXEC refused where it is not taken");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);
  s.idle = false;

  /* RLIMITs reach the process; one the kernel refuses is a 125 naming the resource. */
  char *argv5[] = {"/bin/sh", "-c", "ulimit -S -n; ulimit -H -n", NULL};
  s.argv = argv5, s.argc = 3, s.nrlimits = 1;
  s.rlimits[0] = (struct resource_limit){"RLIMIT_NOFILE", RLIMIT_NOFILE, {100, 200}};
  pid = start_agent(&s, &h);
  out = read_all(h.out);
  ok(strcmp(out, "100\n200\n") == 0, "RLIMIT_NOFILE set in the process (got \"%s\")", out);
  close(h.ctl), close(h.in), close(h.out), close(h.err);
  waitpid(pid, NULL, 0);
  s.rlimits[0].limit = (struct rlimit){1ull << 40, 1ull << 40}; /* above fs.nr_open: refused even to root */
  pid = start_agent(&s, &h);
  frame_reader_init(&r, h.ctl);
  ok(frame_next(&r) == 1 && r.type == FRAME_ERROR && r.payload[0] == 125 &&
         memmem(r.payload + 4, r.payload_len - 4, "setrlimit RLIMIT_NOFILE: ", 25),
     "an RLIMIT the kernel refuses: ERROR 125");
  frame_reader_free(&r);
  waitpid(pid, NULL, 0);
  close(h.ctl), close(h.in), close(h.out), close(h.err);
  s.nrlimits = 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LAYERS_SCRIPT SCRATCH_DIR\n", argv[0]);
    return 2;
  }
  scratch = argv[2];
  static char fixture_dir[4096];
  snprintf(fixture_dir, sizeof fixture_dir, "%s/fixtures", scratch);
  fixtures = fixture_dir;
  mkdir(fixtures, 0755);
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", argv[1], fixtures);
  if (system(cmd) != 0) {
    fprintf(stderr, "writing the fixtures failed\n");
    return 2;
  }
  test_compressions();
  test_progress();
  test_layers();
  test_breakouts();
  test_volumes();
  test_stream_errors();
  test_users();
  test_frames();
  test_spec();
  test_look_path();
  test_process();
  printf("1..%d\n", tests);
  if (failures) printf("# %d of %d tests failed\n", failures, tests);
  return failures ? 1 : 0;
}
