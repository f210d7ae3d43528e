/* Giving up root once the listening sockets are bound (`--user`, `--group`). */
#ifndef NOTMOD_PRIVS_H
#define NOTMOD_PRIVS_H

#include <stddef.h>

/* Becomes user and/or group (names, or numbers), for the whole process, every thread included:
 * the supplementary groups (initgroups(3) for a user: its groups from the group database; only
 * the group itself when no user is named), then the group (with a user and no group, the user's
 * primary group), then the user. With a user, then checks that the process cannot become root
 * again. A process that already is that user and group changes nothing. NULL for both is a
 * no-op. Returns 0, or a negative errno with a message naming the problem in err: -ENOENT for
 * an unknown user or group, the errno of the call that failed (-EPERM when not root), -EPERM
 * when root could be regained. */
int nm_privs_drop(const char *user, const char *group, char *err, size_t err_cap);

#endif
