/* OCI whiteouts: `.wh.NAME` and `.wh..wh..opq`, applied to what the lower layers left. */
#define _GNU_SOURCE
#include "whiteout.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

void pathset_init(struct pathset *set) { memset(set, 0, sizeof *set); }

void pathset_free(struct pathset *set) {
  for (size_t i = 0; i < set->cap; i++) free(set->slots[i]);
  free(set->slots);
  pathset_init(set);
}

static uint64_t hash(const char *s) { /* FNV-1a */
  uint64_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

/* Open addressing with linear probing; the table is a power of two, at most half full. */
static size_t slot_of(char **slots, size_t cap, const char *path) {
  size_t i = hash(path) & (cap - 1);
  while (slots[i] && strcmp(slots[i], path) != 0) i = (i + 1) & (cap - 1);
  return i;
}

bool pathset_has(const struct pathset *set, const char *path) {
  return set->cap > 0 && set->slots[slot_of(set->slots, set->cap, path)] != NULL;
}

static int grow(struct pathset *set) {
  size_t cap = set->cap ? set->cap * 2 : 1024;
  char **slots = calloc(cap, sizeof *slots);
  if (!slots) return fail("out of memory for the layer's path set");
  for (size_t i = 0; i < set->cap; i++)
    if (set->slots[i]) slots[slot_of(slots, cap, set->slots[i])] = set->slots[i];
  free(set->slots);
  set->slots = slots;
  set->cap = cap;
  return 0;
}

static int add_one(struct pathset *set, const char *path, size_t len) {
  if ((set->count + 1) * 2 > set->cap && grow(set) != 0) return -1;
  char *copy = strndup(path, len);
  if (!copy) return fail("out of memory for the layer's path set");
  size_t i = slot_of(set->slots, set->cap, copy);
  if (set->slots[i]) {
    free(copy);
    return 1; /* already there, and so are its ancestors */
  }
  set->slots[i] = copy;
  set->count++;
  return 0;
}

int pathset_add(struct pathset *set, const char *path) {
  /* The path itself, then each parent, stopping at the first one already known. */
  for (size_t len = strlen(path);;) {
    int rc = add_one(set, path, len);
    if (rc != 0) return rc < 0 ? -1 : 0;
    while (len > 0 && path[len - 1] != '/') len--;
    if (len == 0) return 0;
    len--; /* drop the slash */
  }
}

static int join(char *out, size_t size, const char *dir, const char *name) {
  int n = dir[0] ? snprintf(out, size, "%s/%s", dir, name) : snprintf(out, size, "%s", name);
  if (n < 0 || (size_t)n >= size) return fail("path /%s/%s is too long", dir, name);
  return 0;
}

/* Removes every child of `dir` that the current layer did not create, recursing into the
 * directories it did create (their lower contents are hidden too). */
static int clear_lower(const char *dir, const struct pathset *current) {
  DIR *d = opendir(dir[0] ? dir : ".");
  if (!d) return fail_errno("opaque directory /%s: opening it", dir);
  int rc = 0;
  struct dirent *e;
  char child[4096];
  errno = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (join(child, sizeof child, dir, e->d_name) != 0) rc = -1;
    else if (!pathset_has(current, child)) {
      rc = remove_tree(child);
    } else {
      struct stat st;
      if (lstat(child, &st) != 0) rc = fail_errno("opaque directory /%s: inspecting /%s", dir, child);
      else if (S_ISDIR(st.st_mode)) rc = clear_lower(child, current);
    }
    errno = 0;
  }
  if (rc == 0 && errno != 0) rc = fail_errno("opaque directory /%s: reading it", dir);
  closedir(d);
  return rc;
}

int whiteout_apply(const char *path, const struct pathset *current) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char dir[4096], target[4096];
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);

  if (strcmp(base, WHITEOUT_OPAQUE) == 0) {
    struct stat st;
    /* A directory that is missing (or not a directory) has no lower children to hide. */
    if (lstat(dir[0] ? dir : ".", &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    return clear_lower(dir, current);
  }
  /* Other `.wh..wh.` names are AUFS bookkeeping, never content. */
  if (strncmp(base, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)) == 0) return 0;

  const char *name = base + strlen(WHITEOUT_PREFIX);
  if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return fail("malformed whiteout \"%s\"", path);
  if (join(target, sizeof target, dir, name) != 0) return -1;
  /* A whiteout hides lower layers only: what this layer itself created stays. */
  if (pathset_has(current, target)) return 0;
  return remove_tree(target);
}
