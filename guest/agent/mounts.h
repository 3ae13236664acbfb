/* The filesystems the agent mounts: its own at boot, and the container's root in run mode. */
#ifndef AGENT_MOUNTS_H
#define AGENT_MOUNTS_H

#include <stdbool.h>

/* As PID 1: /proc, /sys, devtmpfs on /dev, tmpfs on /tmp and /run; stdio on /dev/console. */
int mount_early(void);
/* The image's ext4 disk /dev/<device> on `target`; read-only mounts skip journal replay. */
int mount_image(const char *device, const char *target, bool read_only);
/* A scratch tmpfs (mode 0755) on `target`. */
int mount_tmpfs(const char *target);
/* The container's root on `root`: an overlay of `upper` (prepared by the caller) over
 * `lower`, writable with `work`, or, with `read_only`, `upper` as a second read-only layer. */
int mount_root(const char *lower, const char *upper, const char *work, const char *root, bool read_only);
/* Inside the container's root: proc, sysfs (read-only), and a tmpfs /dev with the standard
 * nodes, devpts (its own instance), /dev/shm and /dev/mqueue, as runc sets them up. */
int mount_container_filesystems(const char *root);
/* Flushes and unmounts. */
int unmount(const char *target);

#endif
