/* OCI whiteouts (image-spec layer.md): `.wh.NAME` deletes NAME from the layers below, and
 * `.wh..wh..opq` hides every lower child of its directory. Both apply to lower layers only, so
 * the unpacker remembers every path the current layer created (as moby does). */
#ifndef AGENT_WHITEOUT_H
#define AGENT_WHITEOUT_H

#include <stdbool.h>
#include <stddef.h>

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

/* A set of root-relative paths ("usr/bin/ls"); the root itself is "". */
struct pathset {
  char **slots;
  size_t cap, count;
};

void pathset_init(struct pathset *set);
void pathset_free(struct pathset *set);
bool pathset_has(const struct pathset *set, const char *path);
/* Adds a path and all its ancestors: a directory the layer created implicitly is the layer's
 * too, and must survive an opaque marker that comes after it. */
int pathset_add(struct pathset *set, const char *path);

/* Applies a whiteout entry whose clean root-relative path is `path` (its last component starts
 * with ".wh."), relative to the current directory (the chrooted root). Returns 0 when applied or
 * ignored, -1 with agent_error set. */
int whiteout_apply(const char *path, const struct pathset *current);

#endif
