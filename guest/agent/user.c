/* USER resolved the way docker (runc's libcontainer/user.GetExecUser) does it:
 *   - `name` or `uid`, optionally `:group` or `:gid`; a number is always an id, never a name;
 *   - the first passwd line that matches wins; a numeric uid without a line is allowed;
 *   - without an explicit group, the primary group is the passwd line's, and the supplementary
 *     groups are those whose member list names the user (plus the primary, here);
 *   - with an explicit group, that group (by name or number) is the only one. */
#define _GNU_SOURCE
#include "user.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ID_MAX 2147483647L /* runc accepts ids 0 to 2^31-1 */

/* A decimal id: 1 when `s` is all digits and in range, 0 when it is not a number, -1 when it is
 * a number out of range. */
static int parse_id(const char *s, long *out) {
  if (!*s) return 0;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    v = v * 10 + (*p - '0');
    if (v > ID_MAX) return -1;
  }
  *out = v;
  return 1;
}

/* Splits a line into at most `max` fields on ':'; returns how many it found. */
static size_t split(char *line, char **fields, size_t max) {
  size_t n = 0;
  for (char *p = line; n < max;) {
    fields[n++] = p;
    p = strchr(p, ':');
    if (!p) break;
    *p++ = '\0';
  }
  return n;
}

/* One line at a time, trimmed, comments and blank lines skipped. */
static char *next_line(FILE *f, char **buf, size_t *cap) {
  ssize_t n;
  while ((n = getline(buf, cap, f)) >= 0) {
    char *s = *buf;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    while (*s == ' ' || *s == '\t') s++;
    if (*s && *s != '#') return s;
  }
  return NULL;
}

struct passwd_match {
  bool found;
  char name[256];
  long uid, gid;
  char home[4096];
};

static int find_passwd(const char *path, const char *user, bool numeric, long uid, struct passwd_match *m) {
  FILE *f = fopen(path, "re");
  if (!f) return errno == ENOENT ? 0 : fail_errno("reading %s", path);
  char *buf = NULL, *line;
  size_t cap = 0;
  while (!m->found && (line = next_line(f, &buf, &cap))) {
    char *fld[7];
    /* name:password:uid:gid:gecos:home:shell; a line without valid ids is skipped */
    size_t n = split(line, fld, 7);
    long u, g;
    if (n < 4 || parse_id(fld[2], &u) != 1 || parse_id(fld[3], &g) != 1) continue;
    if (numeric ? u != uid : strcmp(fld[0], user) != 0) continue;
    m->found = true;
    snprintf(m->name, sizeof m->name, "%s", fld[0]);
    m->uid = u, m->gid = g;
    snprintf(m->home, sizeof m->home, "%s", n >= 6 ? fld[5] : "");
  }
  free(buf);
  fclose(f);
  return 0;
}

static int add_group(struct user_ids *ids, gid_t gid) {
  for (size_t i = 0; i < ids->ngroups; i++)
    if (ids->groups[i] == gid) return 0;
  gid_t *p = realloc(ids->groups, (ids->ngroups + 1) * sizeof *p);
  if (!p) return fail("out of memory for groups");
  p[ids->ngroups++] = gid;
  ids->groups = p;
  return 0;
}

/* With `group` set: the first line with that name (or gid when numeric) into *gid_out.
 * Otherwise: every group whose member list names `member`, into ids->groups. */
static int scan_groups(const char *path, const char *group, bool numeric, long gid, long *gid_out,
                       const char *member, struct user_ids *ids) {
  FILE *f = fopen(path, "re");
  if (!f) return errno == ENOENT ? 0 : fail_errno("reading %s", path);
  char *buf = NULL, *line;
  size_t cap = 0;
  int rc = 0;
  while (rc == 0 && (line = next_line(f, &buf, &cap))) {
    char *fld[4];
    /* name:password:gid:member,member,... */
    size_t n = split(line, fld, 4);
    long g;
    if (n < 3 || parse_id(fld[2], &g) != 1) continue;
    if (group) {
      if (numeric ? g == gid : strcmp(fld[0], group) == 0) {
        *gid_out = g;
        break;
      }
      continue;
    }
    if (n < 4) continue;
    for (char *save, *m = strtok_r(fld[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
      if (strcmp(m, member) == 0) {
        rc = add_group(ids, (gid_t)g);
        break;
      }
    }
  }
  free(buf);
  fclose(f);
  return rc;
}

void user_free(struct user_ids *ids) {
  free(ids->groups);
  free(ids->home);
  memset(ids, 0, sizeof *ids);
}

int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_ids *out) {
  memset(out, 0, sizeof *out);
  char user[256] = "", group[256] = "";
  if (spec) {
    const char *colon = strchr(spec, ':');
    size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (ulen >= sizeof user || (colon && strlen(colon + 1) >= sizeof group)) return fail("USER \"%s\" is too long", spec);
    memcpy(user, spec, ulen);
    if (colon) strcpy(group, colon + 1);
  }

  long uid = 0, gid = 0;
  /* No user given: root's line (for its home and groups), as runc looks up the current uid 0. */
  int user_numeric = user[0] ? parse_id(user, &uid) : 1;
  if (user_numeric < 0) return fail("uids and gids must be in range 0-%ld", ID_MAX);
  struct passwd_match m = {0};
  if (find_passwd(passwd_path, user, user_numeric, uid, &m) != 0) return -1;
  if (m.found) {
    uid = m.uid, gid = m.gid;
  } else if (!user_numeric) {
    return fail("unable to find user %s: no matching entries in passwd file", user);
  }

  int rc = 0;
  if (group[0]) {
    long g = -1;
    int group_numeric = parse_id(group, &g);
    if (group_numeric < 0) return fail("uids and gids must be in range 0-%ld", ID_MAX);
    long found = -1;
    if (scan_groups(group_path, group, group_numeric, g, &found, NULL, out) != 0) return -1;
    if (found >= 0) gid = found;
    else if (group_numeric) gid = g;
    else return fail("unable to find group %s: no matching entries in group file", group);
    rc = add_group(out, (gid_t)gid);
  } else {
    rc = add_group(out, (gid_t)gid);
    if (rc == 0 && m.found) rc = scan_groups(group_path, NULL, false, 0, NULL, m.name, out);
  }
  if (rc == 0 && !(out->home = strdup(m.found && m.home[0] ? m.home : "/"))) rc = fail("out of memory");
  if (rc != 0) {
    user_free(out);
    return -1;
  }
  out->uid = (uid_t)uid;
  out->gid = (gid_t)gid;
  return 0;
}
