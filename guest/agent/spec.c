/* The spec the host sends before END (PROTOCOL.md, "Host -> guest: the spec"), validated. The
 * host is trusted more than the image, but a bad spec must still end in a clear ERROR, never in
 * a crash or in the agent touching a device it was not meant to. */
#define _GNU_SOURCE
#include "spec.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "util.h"

/* All payloads together; argv and env cannot usefully exceed the kernel's exec limits anyway. */
#define SPEC_MAX_BYTES (8u << 20)
#define HOSTNAME_MAX 64
/* docker's limit; the host sends no more. */
#define MAX_LAYERS 127

void spec_init(struct spec *s) { memset(s, 0, sizeof *s); }

static void free_list(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
  free(list);
}

void spec_free(struct spec *s) {
  free(s->layers);
  for (size_t i = 0; i < s->nvolumes; i++) free(s->volumes[i].options), free(s->volumes[i].target);
  free(s->volumes);
  free_list(s->argv);
  free_list(s->env);
  free(s->workdir), free(s->user), free(s->hostname), free(s->resolv), free(s->hosts);
  spec_init(s);
}

/* The length of the vd[a-z]+ at the start of `name`, or 0. */
static size_t disk_prefix(const char *name) {
  if (name[0] != 'v' || name[1] != 'd') return 0;
  size_t n = 2;
  while (name[n] >= 'a' && name[n] <= 'z') n++;
  return n > 2 ? n : 0;
}

bool valid_device_name(const char *name) {
  size_t n = disk_prefix(name);
  return n > 0 && n <= DEVICE_NAME_MAX && name[n] == '\0';
}

bool valid_partition_name(const char *name) {
  size_t n = disk_prefix(name), len = strlen(name);
  if (n == 0 || len > DEVICE_NAME_MAX || len == n || len - n > 3 || name[n] == '0') return false;
  for (size_t i = n; i < len; i++)
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

/* A decimal number at *p followed by one space: no sign, no leading zero (but "0" itself when
 * zero_ok), no overflow. Advances *p past the space. */
static int parse_decimal(const char **p, bool zero_ok, uint64_t *out) {
  const char *q = *p;
  if (*q < '0' || *q > '9' || (*q == '0' && (!zero_ok || q[1] != ' '))) return -1;
  uint64_t n = 0;
  for (; *q >= '0' && *q <= '9'; q++) {
    if (n > (UINT64_MAX - 9) / 10) return -1;
    n = n * 10 + (uint64_t)(*q - '0');
  }
  if (*q != ' ') return -1;
  *p = q + 1;
  *out = n;
  return 0;
}

int parse_layer(const char *text, struct layer *out) {
  memset(out, 0, sizeof *out);
  const char *p = text, *sp = strchr(p, ' ');
  if (!sp || (size_t)(sp - p) > DEVICE_NAME_MAX)
    return fail("bad LAYER \"%s\": expected <device> <offset> <bytes> <compression> sha256:<hex> <number>[ <partition>]", text);
  memcpy(out->device, p, (size_t)(sp - p));
  if (!valid_device_name(out->device)) return fail("bad LAYER \"%s\": device must be vd[a-z]+", text);

  p = sp + 1;
  if (parse_decimal(&p, true, &out->offset) != 0)
    return fail("bad LAYER \"%s\": offset must be a decimal number followed by one space", text);
  if (parse_decimal(&p, false, &out->bytes) != 0)
    return fail("bad LAYER \"%s\": byte count must be a positive decimal number followed by one space", text);
  if (out->offset > UINT64_MAX - out->bytes) return fail("bad LAYER \"%s\": the blob would end past 2^64", text);

  if (strncmp(p, "gzip ", 5) == 0) out->compression = COMPRESSION_GZIP, p += 5;
  else if (strncmp(p, "zstd ", 5) == 0) out->compression = COMPRESSION_ZSTD, p += 5;
  else if (strncmp(p, "none ", 5) == 0) out->compression = COMPRESSION_NONE, p += 5;
  else return fail("bad LAYER \"%s\": compression must be gzip, zstd or none", text);

  if (strncmp(p, "sha256:", 7) != 0 || strlen(p) < 7 + 64 || p[7 + 64] != ' ')
    return fail("bad LAYER \"%s\": diff_id must be sha256:<64 hex digits> followed by one space", text);
  for (const char *h = p + 7; h < p + 7 + 64; h++)
    if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
      return fail("bad LAYER \"%s\": diff_id must be lowercase hex", text);
  memcpy(out->diff_id, p, 7 + 64);
  p += 7 + 64 + 1;

  /* The layer's number, then the end, or one space and the target partition. */
  const char *end = strchrnul(p, ' ');
  char number[8] = "";
  if (end - p < 1 || end - p > 3) return fail("bad LAYER \"%s\": the layer's number must be 1 to 999", text);
  memcpy(number, p, (size_t)(end - p));
  strcat(number, " ");
  const char *q = number;
  uint64_t n;
  if (parse_decimal(&q, false, &n) != 0 || *q != '\0') return fail("bad LAYER \"%s\": the layer's number must be 1 to 999", text);
  out->number = (unsigned)n;
  if (*end == '\0') return 0;
  p = end + 1;
  if (!valid_partition_name(p)) return fail("bad LAYER \"%s\": the target must be a partition: vd[a-z]+ and its number", text);
  strcpy(out->target, p);
  return 0;
}

/* Appends a layer; LOWER and LAYER together are bounded by docker's 127. */
static int add_layer(struct spec *s, const struct layer *l) {
  if (s->nlayers >= MAX_LAYERS) return fail("bad spec: more than %d layers", MAX_LAYERS);
  struct layer *p = realloc(s->layers, (s->nlayers + 1) * sizeof *p);
  if (!p) return fail("spec: out of memory");
  p[s->nlayers++] = *l;
  s->layers = p;
  return 0;
}

/* The payload as a C string; NULs inside would silently cut it, so they are refused. */
static char *payload_string(const char *what, const unsigned char *payload, size_t len) {
  if (memchr(payload, '\0', len)) {
    fail("bad %s: contains a NUL byte", what);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    fail("bad %s: out of memory", what);
    return NULL;
  }
  memcpy(s, payload, len);
  s[len] = '\0';
  return s;
}

static int append(char ***list, size_t *count, char *item) {
  char **p = realloc(*list, (*count + 2) * sizeof *p);
  if (!p) {
    free(item);
    return fail("spec: out of memory");
  }
  p[(*count)++] = item;
  p[*count] = NULL;
  *list = p;
  return 0;
}

/* Sets a string field that may appear at most once. */
static int set_once(char **field, const char *what, const unsigned char *payload, size_t len) {
  if (*field) return fail("bad spec: %s sent twice", what);
  *field = payload_string(what, payload, len);
  return *field ? 0 : -1;
}

/* NETWORK: `<a.b.c.d>/<prefix> <a.b.c.d>[ <ipv6>/<prefix> <ipv6>]`, eth0's addresses and its
 * default gateways. */
static int parse_network(struct spec *s, const unsigned char *payload, size_t len) {
  char text[192], addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN], addr6[INET6_ADDRSTRLEN], gw6[INET6_ADDRSTRLEN];
  unsigned prefix, prefix6 = 0;
  int end = 0, end6 = 0;
  if (len >= sizeof text) return fail("bad NETWORK: %zu bytes", len);
  memcpy(text, payload, len);
  text[len] = '\0';
  if (sscanf(text, "%15[0-9.]/%2u %15[0-9.]%n", addr, &prefix, gw, &end) != 3 || prefix < 1 || prefix > 30 ||
      inet_pton(AF_INET, addr, &s->net_address) != 1 || inet_pton(AF_INET, gw, &s->net_gateway) != 1)
    return fail("bad NETWORK \"%s\": expected ADDRESS/PREFIX GATEWAY (IPv4, prefix 1 to 30)", text);
  if ((size_t)end != len &&
      (sscanf(text + end, " %45[0-9a-fA-F:]/%3u %45[0-9a-fA-F:]%n", addr6, &prefix6, gw6, &end6) != 3 ||
       (size_t)(end + end6) != len || prefix6 < 1 || prefix6 > 128 || inet_pton(AF_INET6, addr6, s->net6_address) != 1 ||
       inet_pton(AF_INET6, gw6, s->net6_gateway) != 1))
    return fail("bad NETWORK \"%s\": the IPv6 part must be ADDRESS/PREFIX GATEWAY (prefix 1 to 128)", text);
  s->net_prefix = prefix;
  s->net6 = (size_t)end != len;
  s->net6_prefix = prefix6;
  s->network = true;
  return 0;
}

/* Checks tmpfs options: words mount(8) knows as flags, and size, mode, uid, gid and nr_inodes
 * with plain values. */
static bool valid_tmpfs_options(const char *options) {
  static const char *const flags[] = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev"};
  static const char *const keys[] = {"size=", "mode=", "uid=", "gid=", "nr_inodes="};
  char copy[256];
  if (options[0] == '\0' || strlen(options) >= sizeof copy) return false;
  strcpy(copy, options);
  for (char *save = NULL, *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
    bool ok = false;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) ok |= strcmp(w, flags[i]) == 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !ok; i++) {
      size_t n = strlen(keys[i]);
      ok = strncmp(w, keys[i], n) == 0 && w[n] && strspn(w + n, "0123456789kmgKMG%") == strlen(w + n);
    }
    if (!ok) return false;
  }
  return options[strlen(options) - 1] != ',' && !strstr(options, ",,");
}

/* MOUNT: `virtiofs <tag> <ro|rw> <target>` or `tmpfs <options> <target>`; the target is the rest. */
static int parse_mount(struct spec *s, const unsigned char *payload, size_t len) {
  if (s->nvolumes == VOLUMES_MAX) return fail("bad spec: more than %d MOUNTs", VOLUMES_MAX);
  char *text = payload_string("MOUNT", payload, len);
  if (!text) return -1;
  struct volume v = {0};
  char kind[16], first[257], mode[3];
  int at = 0;
  bool ok = false;
  if (sscanf(text, "%15s %256s %n", kind, first, &at) == 2 && strcmp(kind, "tmpfs") == 0) {
    v.tmpfs = true;
    ok = valid_tmpfs_options(first) && (v.options = strdup(first)) != NULL;
  } else if (sscanf(text, "%15s %36[A-Za-z0-9_-] %2s %n", kind, v.tag, mode, &at) == 3 && strcmp(kind, "virtiofs") == 0) {
    v.readonly = strcmp(mode, "ro") == 0;
    ok = v.readonly || strcmp(mode, "rw") == 0;
  }
  /* A target names a place inside the container: absolute, one line, never the root itself. */
  const char *target = text + at;
  ok = ok && at > 0 && target[0] == '/' && target[1] && !strpbrk(target, "\n\r") && (v.target = strdup(target)) != NULL;
  if (!ok) {
    fail("bad MOUNT \"%s\": expected \"virtiofs TAG ro|rw TARGET\" or \"tmpfs OPTIONS TARGET\", TARGET absolute and not /", text);
    free(text), free(v.options), free(v.target);
    return -1;
  }
  free(text);
  struct volume *grown = realloc(s->volumes, (s->nvolumes + 1) * sizeof *grown);
  if (!grown) {
    free(v.options), free(v.target);
    return fail("out of memory");
  }
  s->volumes = grown;
  s->volumes[s->nvolumes++] = v;
  return 0;
}

/* ROOT: `virtiofs <tag>`, the tag as MOUNT's. */
static int parse_root(struct spec *s, const unsigned char *payload, size_t len) {
  if (s->root_tag[0]) return fail("bad spec: ROOT sent twice");
  char *text = payload_string("ROOT", payload, len), tag[VIRTIOFS_TAG_MAX + 1];
  if (!text) return -1;
  int at = 0;
  bool ok = strncmp(text, "virtiofs ", 9) == 0 && sscanf(text + 9, "%36[A-Za-z0-9_-]%n", tag, &at) == 1 && text[9 + at] == '\0';
  if (ok) strcpy(s->root_tag, tag);
  else fail("bad ROOT \"%s\": expected \"virtiofs TAG\", TAG 1 to %d letters, digits, '_' or '-'", text, VIRTIOFS_TAG_MAX);
  free(text);
  return ok ? 0 : -1;
}

/* setrlimit(2)'s resources, by the names OCI gives them (the C ones). */
static const char *const rlimit_names[RLIMITS_MAX] = {
    [RLIMIT_CPU] = "RLIMIT_CPU", [RLIMIT_FSIZE] = "RLIMIT_FSIZE", [RLIMIT_DATA] = "RLIMIT_DATA", [RLIMIT_STACK] = "RLIMIT_STACK",
    [RLIMIT_CORE] = "RLIMIT_CORE", [RLIMIT_RSS] = "RLIMIT_RSS", [RLIMIT_NPROC] = "RLIMIT_NPROC", [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
    [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK", [RLIMIT_AS] = "RLIMIT_AS", [RLIMIT_LOCKS] = "RLIMIT_LOCKS",
    [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING", [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
    [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO", [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
};

/* One limit: `unlimited`, or a decimal number as parse_decimal takes it; then one space. */
static int parse_limit(const char **p, rlim_t *out) {
  uint64_t n;
  if (strncmp(*p, "unlimited ", 10) == 0) {
    *p += 10;
    *out = RLIM_INFINITY;
    return 0;
  }
  if (parse_decimal(p, true, &n) != 0) return -1;
  *out = (rlim_t)n;
  return 0;
}

/* RLIMIT: `<resource> <soft> <hard>`. */
static int parse_rlimit(struct spec *s, const unsigned char *payload, size_t len) {
  if (s->nrlimits == RLIMITS_MAX) return fail("bad spec: more than %d RLIMITs", RLIMITS_MAX);
  char text[64];
  if (len > sizeof text - 2) return fail("bad RLIMIT: %zu bytes", len);
  memcpy(text, payload, len);
  strcpy(text + len, " "); /* every word then ends in one space */
  size_t n = strcspn(text, " ");
  struct resource_limit l = {.resource = -1};
  for (int r = 0; r < RLIMITS_MAX; r++)
    if (strlen(rlimit_names[r]) == n && strncmp(text, rlimit_names[r], n) == 0) l.resource = r, l.name = rlimit_names[r];
  if (l.resource < 0) return fail("bad RLIMIT \"%.*s\": the resource must be one of setrlimit(2)'s RLIMIT_ names", (int)len, text);
  const char *p = text + n + 1;
  if (parse_limit(&p, &l.limit.rlim_cur) != 0 || parse_limit(&p, &l.limit.rlim_max) != 0 || p != text + len + 1)
    return fail("bad RLIMIT \"%.*s\": expected RESOURCE SOFT HARD, each limit a decimal number or unlimited", (int)len, text);
  if (l.limit.rlim_cur > l.limit.rlim_max) return fail("bad RLIMIT \"%.*s\": the soft limit is above the hard one", (int)len, text);
  for (size_t i = 0; i < s->nrlimits; i++)
    if (s->rlimits[i].resource == l.resource) return fail("bad spec: %s sent twice", l.name);
  s->rlimits[s->nrlimits++] = l;
  return 0;
}

static int add_run_frame(struct spec *s, uint8_t type, const unsigned char *payload, size_t len) {
  char *str;
  if (s->container && (type == FRAME_HOSTNAME || type == FRAME_READONLY || type == FRAME_RESOLV || type == FRAME_HOSTS ||
                       type == FRAME_NETWORK || type == FRAME_MOUNT || type == FRAME_FRESH || type == FRAME_ROOT))
    return fail("bad spec: frame type %u in container mode: runc sets that up", type);
  switch (type) {
  case FRAME_ARG:
    if (!(str = payload_string("ARG", payload, len))) return -1;
    return append(&s->argv, &s->argc, str);
  case FRAME_ENV:
    if (!(str = payload_string("ENV", payload, len))) return -1;
    if (str[0] == '=' || !strchr(str, '=')) {
      fail("bad ENV \"%s\": expected NAME=value", str);
      free(str);
      return -1;
    }
    return append(&s->env, &s->nenv, str);
  case FRAME_WORKDIR:
    if (set_once(&s->workdir, "WORKDIR", payload, len) != 0) return -1;
    if (s->workdir[0] != '/') return fail("bad WORKDIR \"%s\": must be an absolute path", s->workdir);
    return 0;
  case FRAME_USER:
    if (set_once(&s->user, "USER", payload, len) != 0) return -1;
    if (s->user[0] == '\0' || strpbrk(s->user, "\n\r")) return fail("bad USER: empty or more than one line");
    return 0;
  case FRAME_HOSTNAME:
    if (set_once(&s->hostname, "HOSTNAME", payload, len) != 0) return -1;
    if (len < 1 || len > HOSTNAME_MAX || strspn(s->hostname, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != len)
      return fail("bad HOSTNAME \"%s\": 1 to %d letters, digits, '.', '-' or '_'", s->hostname, HOSTNAME_MAX);
    return 0;
  case FRAME_TTY:
    if (s->tty) return fail("bad spec: TTY sent twice");
    if (len != 4) return fail("bad TTY: payload is %zu bytes, expected 4", len);
    s->tty = true;
    s->rows = (uint16_t)(payload[0] | payload[1] << 8);
    s->cols = (uint16_t)(payload[2] | payload[3] << 8);
    return 0;
  case FRAME_IDLE:
    if (s->idle) return fail("bad spec: IDLE sent twice");
    if (len != 0) return fail("bad IDLE: payload must be empty");
    s->idle = true;
    return 0;
  case FRAME_READONLY:
    if (s->readonly) return fail("bad spec: READONLY sent twice");
    if (len != 0) return fail("bad READONLY: payload must be empty");
    s->readonly = true;
    return 0;
  case FRAME_RESOLV:
    return set_once(&s->resolv, "RESOLV", payload, len);
  case FRAME_HOSTS:
    return set_once(&s->hosts, "HOSTS", payload, len);
  case FRAME_NETWORK:
    if (s->network) return fail("bad spec: NETWORK sent twice");
    return parse_network(s, payload, len);
  case FRAME_MOUNT:
    return parse_mount(s, payload, len);
  case FRAME_FRESH:
    if (s->fresh) return fail("bad spec: FRESH sent twice");
    if (len != 8 + sizeof s->fresh_seed) return fail("bad FRESH: payload is %zu bytes, expected %zu", len, 8 + sizeof s->fresh_seed);
    s->fresh = true;
    for (int i = 8; i-- > 0;) s->fresh_realtime_ns = s->fresh_realtime_ns << 8 | payload[i]; /* u64 LE */
    memcpy(s->fresh_seed, payload + 8, sizeof s->fresh_seed);
    return 0;
  case FRAME_ROOT:
    return parse_root(s, payload, len);
  case FRAME_RLIMIT:
    return parse_rlimit(s, payload, len);
  }
  return fail("bad spec: frame type %u is not part of a run spec", type);
}

int spec_add(struct spec *s, uint8_t type, const unsigned char *payload, size_t len) {
  if (s->ended) return fail("bad spec: frame type %u after END", type);
  s->total_bytes += len;
  if (s->total_bytes > SPEC_MAX_BYTES) return fail("bad spec: more than %u bytes in all", SPEC_MAX_BYTES);
  if (s->mode == MODE_NONE) {
    if (type != FRAME_MODE) return fail("bad spec: first frame is type %u, expected MODE", type);
    if (len == 6 && memcmp(payload, "unpack", 6) == 0) s->mode = MODE_UNPACK;
    else if (len == 3 && memcmp(payload, "run", 3) == 0) s->mode = MODE_RUN;
    else return fail("bad MODE: expected unpack or run");
    return 0;
  }
  switch (type) {
  case FRAME_MODE:
    return fail("bad spec: MODE sent twice");
  case FRAME_LOWER: {
    if (s->container) return fail("bad spec: LOWER in container mode: the host stacks the layers");
    char *name = payload_string("LOWER", payload, len);
    if (!name) return -1;
    struct layer l = {.unpacked = true, .number = (unsigned)s->nlayers + 1};
    int ok = valid_partition_name(name);
    if (ok) strcpy(l.target, name);
    else fail("bad LOWER \"%s\": must be a partition: vd[a-z]+ and its number", name);
    free(name);
    return ok ? add_layer(s, &l) : -1;
  }
  case FRAME_END:
    if (len != 0) return fail("bad END: payload must be empty");
    s->ended = true;
    return 0;
  case FRAME_LAYER: {
    if (s->mode != MODE_UNPACK) return fail("bad spec: LAYER in a run spec");
    char *text = payload_string("LAYER", payload, len);
    if (!text) return -1;
    struct layer l;
    int rc = parse_layer(text, &l);
    free(text);
    if (rc != 0) return -1;
    if (s->container && l.target[0]) return fail("bad spec: a LAYER target in container mode: the host mounts the unpack root");
    if (!s->container && !l.target[0]) return fail("bad spec: a LAYER without a target partition");
    return add_layer(s, &l);
  }
  }
  if (s->mode != MODE_RUN) return fail("bad spec: frame type %u is not part of an unpack spec", type);
  return add_run_frame(s, type, payload, len);
}

int spec_check(const struct spec *s) {
  if (!s->ended) return fail("bad spec: no END");
  bool unpacks = false;
  for (size_t i = 0; i < s->nlayers; i++) {
    const struct layer *l = &s->layers[i];
    unpacks |= !l->unpacked;
    if (!l->target[0]) continue;
    /* Each layer has a partition of its own, on a disk that holds no blob. */
    for (size_t j = 0; j < s->nlayers; j++) {
      const struct layer *o = &s->layers[j];
      if (j != i && strcmp(o->target, l->target) == 0) return fail("bad spec: layers %zu and %zu share partition %s", j + 1, i + 1, l->target);
      if (!o->unpacked && disk_prefix(l->target) == strlen(o->device) && strncmp(o->device, l->target, strlen(o->device)) == 0)
        return fail("bad spec: layer %zu's blob is on the disk of partition %s", j + 1, l->target);
    }
  }
  if (s->mode == MODE_UNPACK && !unpacks) return fail("bad spec: unpack without a LAYER");
  /* ROOT's directory is the host's: no layers under it, and no /etc files of the agent's in it. */
  if (s->root_tag[0] && s->nlayers) return fail("bad spec: ROOT with a LOWER: the root is one or the other");
  if (s->root_tag[0] && (s->resolv || s->hosts))
    return fail("bad spec: %s with ROOT: the agent does not write into the host's root directory", s->resolv ? "RESOLV" : "HOSTS");
  if (s->mode == MODE_RUN && s->idle && s->argc > 0) return fail("bad spec: IDLE with an ARG");
  if (s->mode == MODE_RUN && !s->idle && s->argc == 0) return fail("bad spec: run without an ARG");
  return 0;
}

int spec_read(struct frame_reader *reader, struct spec *spec) {
  while (!spec->ended) {
    int rc = frame_next(reader);
    if (rc <= 0) return rc;
    if (spec_add(spec, reader->type, reader->payload, reader->payload_len) != 0) return -1;
  }
  return spec_check(spec) == 0 ? 1 : -1;
}
