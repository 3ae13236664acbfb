/* The filesystems the agent mounts: its own at boot, and the container's root in run mode. */
#ifndef AGENT_MOUNTS_H
#define AGENT_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>

/* As PID 1: /proc, /sys, devtmpfs on /dev, tmpfs on /tmp and /run; stdio on /dev/console. */
int mount_early(void);
/* Layer i's ext4 is mounted on LAYERS_DIR/<i>; the layer's files are in its LAYER_FILES. */
#define LAYERS_DIR "/mnt/layers"
#define LAYER_FILES "diff"

/* A layer's ext4 partition /dev/<device> on `target`; read-only mounts skip journal replay. */
int mount_layer(const char *device, const char *target, bool read_only);
/* A scratch tmpfs (mode 0755) on `target`. */
int mount_tmpfs(const char *target);
/* An overlay on `root` of the `nlower` layers mounted under LAYERS_DIR (none: `empty`, an empty
 * directory) under `upper`: writable with `work`, or, without `work`, `upper` as the top
 * read-only layer. `xino` makes readdir's inode numbers agree with stat's across layers. */
int mount_overlay(size_t nlower, const char *empty, const char *upper, const char *work, const char *root, bool xino);
/* Inside the container's root: proc, sysfs (read-only), and a tmpfs /dev with the standard
 * nodes, devpts (its own instance), /dev/shm and /dev/mqueue, as runc sets them up. */
int mount_container_filesystems(const char *root);
/* Flushes and unmounts. */
int unmount(const char *target);

#endif
