/* USER resolved the way docker (runc's libcontainer/user) does it, in the image's own
 * /etc/passwd and /etc/group: static glibc has no NSS, and the host's databases are not the
 * image's anyway. */
#ifndef AGENT_USER_H
#define AGENT_USER_H

#include <stddef.h>
#include <sys/types.h>

struct user_ids {
  uid_t uid;
  gid_t gid;
  gid_t *groups; /* supplementary groups for setgroups(): the primary group first */
  size_t ngroups;
  char *home; /* from passwd, "/" without an entry */
};

/* Resolves `spec` (`name|uid[:group|gid]`; NULL or "" means root) against the two files; a
 * missing file counts as empty. Unknown names fail with runc's messages, e.g. "unable to find
 * user bob: no matching entries in passwd file"; a numeric uid without an entry is fine (gid 0,
 * home "/"). Returns 0 or -1 with agent_error set. */
int user_resolve(const char *spec, const char *passwd_path, const char *group_path, struct user_ids *out);
void user_free(struct user_ids *ids);

#endif
