/* Unpacking one image layer onto the mounted root filesystem with libarchive. Decompression and
 * hashing are ours (stream.c): libarchive only parses tar and writes to disk. */
#define _GNU_SOURCE
#include "unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "prefetch.h"
#include "stream.h"
#include "util.h"
#include "whiteout.h"

/* Numeric owners (no name lookup: the image's ids are what counts), exact modes including
 * setuid, mtimes (directories fixed up at close, after their contents), xattrs and ACLs. File
 * flags are left out, as docker does: an immutable flag would break the next layer. Nothing is
 * ever written through an existing file: clear_the_way() removes it first. */
/* How often the host hears of an unpack's progress: every 4 MiB of the compressed blob. */
#define PROGRESS_STEP (4u << 20)

#define EXTRACT_FLAGS \
  (ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL)

int clean_path(const char *name, char *out, size_t size) {
  size_t len = 0;
  const char *p = name;
  while (*p) {
    while (*p == '/') p++;
    const char *end = strchrnul(p, '/');
    size_t n = (size_t)(end - p);
    if (n == 0 || (n == 1 && p[0] == '.')) {
      /* nothing */
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (len == 0) return 1;
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--; /* the slash before the dropped component */
    } else {
      if (len + 1 + n + 1 > size) return -1;
      if (len > 0) out[len++] = '/';
      memcpy(out + len, p, n);
      len += n;
    }
    p = end;
  }
  out[len] = '\0';
  return 0;
}

/* What the tar reader reads from, and where the host hears how far it has got. */
struct reader {
  struct prefetch *stream;
  int progress_fd; /* -1: nobody asked */
  int number;
  uint64_t next_report; /* compressed bytes read when the next PROGRESS is due */
};

static la_ssize_t read_callback(struct archive *a, void *data, const void **buf) {
  struct reader *r = data;
  ssize_t n = prefetch_read(r->stream, buf);
  if (n < 0) archive_set_error(a, EIO, "%s", agent_error);
  uint64_t read = prefetch_position(r->stream);
  if (r->progress_fd >= 0 && read >= r->next_report) {
    /* A host that stopped listening is found out by the frames that matter; not here. */
    (void)send_progress(r->progress_fd, r->number, read);
    r->next_report = read + PROGRESS_STEP;
  }
  return n;
}

/* Docker's rule: whatever is at the entry's path goes, unless both are directories (then the
 * entry's metadata is applied to the existing one). Intermediate symlinks are followed, as
 * they must be for images whose /bin is a symlink into /usr. */
static int clear_the_way(const char *path, struct archive_entry *e) {
  struct stat st;
  if (path[0] == '\0' || lstat(path, &st) != 0) return 0;
  if (S_ISDIR(st.st_mode) && archive_entry_filetype(e) == AE_IFDIR) return 0;
  return remove_tree(path);
}

static int copy_data(struct archive *in, struct archive *out, const char *name) {
  const void *buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return 0;
    if (r < ARCHIVE_WARN) return fail("entry \"%s\": %s", name, archive_error_string(in));
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
      return fail("entry \"%s\": writing: %s", name, archive_error_string(out));
  }
}

/* Prefixes agent_error (set by a helper) with the entry's name. */
static int entry_failed(const char *name) {
  char why[sizeof agent_error];
  strcpy(why, agent_error);
  return fail("entry \"%s\": %s", name, why);
}

static int extract_entry(struct archive *in, struct archive *out, struct archive_entry *e, struct pathset *current) {
  const char *name = archive_entry_pathname(e);
  if (!name) return fail("an entry's name cannot be read");
  char path[4096], link[4096];
  int rc = clean_path(name, path, sizeof path);
  if (rc > 0) return fail("entry \"%s\": breakout: the path climbs out of the root", name);
  if (rc < 0) return fail("entry \"%s\": the path is too long", name);

  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (strncmp(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0) {
    return whiteout_apply(path, current) != 0 ? entry_failed(name) : 0;
  }

  const char *target = archive_entry_hardlink(e);
  if (target) {
    rc = clean_path(target, link, sizeof link);
    if (rc > 0) return fail("entry \"%s\": breakout: hardlink target \"%s\" climbs out of the root", name, target);
    if (rc < 0 || link[0] == '\0') return fail("entry \"%s\": bad hardlink target \"%s\"", name, target);
    archive_entry_set_hardlink(e, link);
  }
  if (clear_the_way(path, e) != 0) return entry_failed(name);
  archive_entry_set_pathname(e, path[0] ? path : ".");

  if (archive_write_header(out, e) < ARCHIVE_WARN) return fail("entry \"%s\": %s", name, archive_error_string(out));
  if (archive_entry_size(e) > 0 && copy_data(in, out, name) != 0) return -1;
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) return fail("entry \"%s\": %s", name, archive_error_string(out));
  return pathset_add(current, path);
}

/* Runs in the chrooted child: the whole stream, entry by entry, then the digest. */
static int extract(int fd, const struct layer *layer, int number, int progress_fd) {
  struct layer_stream *stream = malloc(sizeof *stream);
  if (!stream) return fail("out of memory");
  if (stream_open(stream, fd, layer->bytes, layer->compression) != 0) return -1;
  struct archive *in = archive_read_new(), *out = archive_write_disk_new();
  if (!in || !out) return fail("out of memory");
  /* Decompressing and hashing on a thread of their own, ahead of the files being written. */
  struct prefetch *prefetch = prefetch_start(stream);
  if (!prefetch) return -1;
  struct reader reader = {prefetch, progress_fd, number, 0}; /* the first read says the layer began */
  archive_read_support_format_tar(in); /* ustar, pax and GNU tar */
  archive_write_disk_set_options(out, EXTRACT_FLAGS);
  struct pathset current;
  pathset_init(&current);

  int rc = 0;
  if (archive_read_open(in, &reader, NULL, read_callback, NULL) != ARCHIVE_OK)
    rc = fail("reading the tar stream: %s", archive_error_string(in));
  while (rc == 0) {
    struct archive_entry *e;
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) rc = fail("reading the tar stream: %s", archive_error_string(in));
    else rc = extract_entry(in, out, e, &current);
  }
  /* Closing applies the deferred directory modes and mtimes. */
  if (rc == 0 && archive_write_close(out) != ARCHIVE_OK) rc = fail("finishing: %s", archive_error_string(out));
  /* The diff_id covers the whole stream, including what follows the end-of-archive blocks. */
  if (rc == 0) rc = prefetch_finish(prefetch);
  prefetch_free(prefetch); /* the stream is ours again */
  if (rc == 0) {
    char got[DIGEST_TEXT_SIZE];
    stream_digest(stream, got);
    if (strcmp(got, layer->diff_id) != 0)
      rc = fail("diff_id mismatch: the uncompressed layer is %s", got);
  }
  archive_read_free(in);
  archive_write_free(out);
  pathset_free(&current);
  stream_close(stream);
  free(stream);
  return rc;
}

int unpack_layer(const char *root, const char *device_path, const struct layer *layer, int number, int progress_fd) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return fail_errno("layer %d (%s): creating a pipe", number, layer->diff_id);
  pid_t pid = fork();
  if (pid < 0) {
    close(report[0]), close(report[1]);
    return fail_errno("layer %d (%s): fork", number, layer->diff_id);
  }
  if (pid == 0) {
    close(report[0]);
    int fd = open(device_path, O_RDONLY | O_CLOEXEC);
    int rc;
    if (fd < 0) rc = fail_errno("opening %s", device_path);
    else if (layer->offset > INT64_MAX || lseek(fd, (off_t)layer->offset, SEEK_SET) < 0)
      rc = fail("%s has no byte %" PRIu64, device_path, layer->offset);
    else if (chroot(root) != 0) rc = fail_errno("chroot into %s", root);
    else if (chdir("/") != 0) rc = fail_errno("chdir into the new root");
    else {
      umask(0); /* modes come from the tar, exactly */
      rc = extract(fd, layer, number, progress_fd);
    }
    if (rc != 0) (void)write_all(report[1], agent_error, strlen(agent_error));
    _exit(rc == 0 ? 0 : 1);
  }
  close(report[1]);
  char message[sizeof agent_error];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(report[0], message + got, sizeof message - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  message[got] = '\0';
  close(report[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_errno("layer %d (%s): waiting for the unpacker", number, layer->diff_id);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (got == 0) {
    if (WIFSIGNALED(status)) snprintf(message, sizeof message, "the unpacker was killed by signal %d", WTERMSIG(status));
    else snprintf(message, sizeof message, "the unpacker failed with status %d", WEXITSTATUS(status));
  }
  return fail("layer %d (%s): %s", number, layer->diff_id, message);
}
