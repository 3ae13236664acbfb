/* The spec the host sends before END (PROTOCOL.md, "Host -> guest: the spec"), validated. */
#ifndef AGENT_SPEC_H
#define AGENT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "channel.h"

#define DEVICE_NAME_MAX 8 /* "vd" and up to six letters: far more disks than a VM gets */

enum mode { MODE_NONE, MODE_UNPACK, MODE_RUN };
enum compression { COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_ZSTD };

/* One of the image's layers, bottom first: a LOWER (unpacked already, on partition `target`) or a
 * LAYER (to unpack from its blob; in a VM into the empty ext4 partition `target`, in container
 * mode into the unpack root, target ""). */
struct layer {
  bool unpacked;
  char device[DEVICE_NAME_MAX + 1]; /* the blob's */
  uint64_t offset; /* where the blob starts on the device */
  uint64_t bytes;
  enum compression compression;
  char diff_id[7 + 64 + 1]; /* "sha256:" and 64 lowercase hex digits */
  unsigned number; /* its place in the image, from 1, for messages */
  char target[DEVICE_NAME_MAX + 1];
};

#define VOLUMES_MAX 32
#define VIRTIOFS_TAG_MAX 36

/* A MOUNT: a host directory or file shared through virtio-fs device `tag`, or a tmpfs with
 * `options` (mount(8)'s comma-separated words), on `target` inside the container. */
struct volume {
  bool tmpfs;
  char tag[VIRTIOFS_TAG_MAX + 1];
  bool readonly;
  char *options, *target;
};

/* As many as setrlimit(2) has resources: each may be sent once. */
#define RLIMITS_MAX 16

/* An RLIMIT: resource `resource` (named `name`, the OCI and C name) set to `limit`. */
struct resource_limit {
  const char *name;
  int resource;
  struct rlimit limit;
};

struct spec {
  enum mode mode;
  struct layer *layers;
  size_t nlayers;
  char **argv; /* NULL-terminated */
  size_t argc;
  char **env; /* NULL-terminated */
  size_t nenv;
  char *workdir, *user, *hostname, *resolv, *hosts; /* NULL when not sent */
  bool tty, readonly;
  /* IDLE: no ARG; the main process only waits, for EXECs (a sandbox). */
  bool idle;
  uint16_t rows, cols;
  /* NETWORK: eth0's IPv4 address, prefix length and default gateway (network order), and
   * optionally (net6) its IPv6 ones. */
  bool network, net6;
  uint32_t net_address, net_gateway;
  unsigned net_prefix, net6_prefix;
  unsigned char net6_address[16], net6_gateway[16];
  struct volume *volumes; /* in the order sent: a later one may mount inside an earlier one */
  size_t nvolumes;
  /* FRESH: the host's CLOCK_REALTIME (ns since the epoch) and random bytes for the kernel's
   * RNG, so that each VM restored from one snapshot has its own time and randomness. */
  bool fresh;
  uint64_t fresh_realtime_ns;
  unsigned char fresh_seed[64];
  /* ROOT: the virtio-fs device whose share is the container's root itself, instead of an overlay
   * of LOWERs; "" when not sent. */
  char root_tag[VIRTIOFS_TAG_MAX + 1];
  /* RLIMITs, set in the process while it may still raise a hard limit. */
  struct resource_limit rlimits[RLIMITS_MAX];
  size_t nrlimits;
  /* Set before the first frame when the agent runs under runc (`init container`): there are no
   * block devices and no VM, so LOWER, ROOT, a LAYER's target, HOSTNAME, READONLY, RESOLV, HOSTS,
   * NETWORK, MOUNT and FRESH are refused (the host and runc set those up) and the root is
   * whatever runc made it. */
  bool container;
  bool ended; /* END arrived */
  size_t total_bytes; /* of all payloads, bounded */
};

void spec_init(struct spec *s);
/* Reads frames until END: 1 when the spec is complete and checked, 0 when the host closed the
 * connection before END, -1 (agent_error set) on a bad frame or spec. */
int spec_read(struct frame_reader *reader, struct spec *spec);
void spec_free(struct spec *s);
/* Adds one frame of the spec; -1 (agent_error set) when it is malformed or out of place. */
int spec_add(struct spec *s, uint8_t type, const unsigned char *payload, size_t len);
/* After END: -1 when something required is missing. */
int spec_check(const struct spec *s);

/* Parses `<device> <offset> <bytes> <gzip|zstd|none> sha256:<64 hex> <number>[ <partition>]`
 * strictly. */
int parse_layer(const char *text, struct layer *out);
/* True for a plain virtio block device name: vd[a-z]+. */
bool valid_device_name(const char *name);
/* True for a partition of one: vd[a-z]+ and a partition number from 1 to 999, no leading zero. */
bool valid_partition_name(const char *name);

#endif
