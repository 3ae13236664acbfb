/* The run's MOUNTs (-v, --mount, --tmpfs) inside the container's root, in a VM. */
#ifndef AGENT_VOLUMES_H
#define AGENT_VOLUMES_H

#include "spec.h"

/* Where virtio-fs device i is mounted, outside the container; the shared file or directory is
 * its VOLUME_ENTRY (the host puts it there, so that one file can be shared as well as a tree). */
#define VOLUMES_DIR "/mnt/volumes"
#define VOLUME_ENTRY "v"

/* Mounts every volume of `s` on its target under `root`, creating missing targets. Targets are
 * resolved inside `root`, symlinks included, as the container will see them: an image cannot
 * steer a mount outside its root. */
int mount_volumes(const struct spec *s, const char *root);

/* Parses tmpfs options into mount flags and the data string for the kernel (at most `size`
 * bytes); later words win, as with mount(8). */
int tmpfs_options(const char *options, unsigned long *flags, char *data, size_t size);

#endif
