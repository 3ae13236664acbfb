/* Unpacking one image layer onto the mounted root filesystem. */
#ifndef AGENT_UNPACK_H
#define AGENT_UNPACK_H

#include "spec.h"

/* Unpacks layer number `number` (1 = lowest), read from `device_path`, into the directory
 * `root`. The extraction runs in a child process chrooted into `root`, so that absolute symlinks
 * and symlinks left by earlier layers resolve inside it. On failure agent_error reads
 * "layer N (sha256:...): what went wrong". With `progress_fd` >= 0, PROGRESS frames go there as
 * the blob is read. */
int unpack_layer(const char *root, const char *device_path, const struct layer *layer, int number, int progress_fd);

/* Cleans a tar entry name into a root-relative path: leading slashes, empty and `.` components
 * dropped, `..` applied. 0 on success, 1 when the path climbs out of the root, -1 when too long. */
int clean_path(const char *name, char *out, size_t size);

#endif
