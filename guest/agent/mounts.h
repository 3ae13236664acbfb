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

/* In a VM restored from a snapshot the image's disks had no backing when it was taken: the
 * kernel learns their size later, from a config-change interrupt, and never rescans their
 * partitions. wait_for_disk waits (bounded) until disk vd[a-z]+ has a size; ensure_partition,
 * when /dev/<part> is missing, waits for its disk, rescans the disk's partitions and waits for
 * the node. Both return at once on a cold-booted VM's disks. 0, or -1 with agent_error. */
int wait_for_disk(const char *disk);
int ensure_partition(const char *part);
/* A layer's ext4 partition /dev/<device> (ensure_partition first) on `target`; read-only mounts
 * skip journal replay. */
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
