/* Dropping privileges: groups before the user, since only root may change them. */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A decimal id, or -1. */
static long long number_of(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > (long long)(uid_t)-2)
        return -1;
    return v;
}

static int fail(char *err, size_t err_cap, int rc, const char *what, const char *name)
{
    snprintf(err, err_cap, "%s %s: %s", what, name, strerror(-rc));
    return rc;
}

int nm_privs_drop(const char *user, const char *group, char *err, size_t err_cap)
{
    if (!user && !group)
        return 0;
    uid_t uid = getuid();
    gid_t gid = getgid();
    const char *login = NULL; /* the user's name, for initgroups */
    if (user) {
        struct passwd *pw = getpwnam(user);
        long long n = number_of(user);
        if (!pw && n >= 0)
            pw = getpwuid((uid_t)n);
        if (!pw && n < 0) {
            snprintf(err, err_cap, "no user %s", user);
            return -ENOENT;
        }
        uid = pw ? pw->pw_uid : (uid_t)n;
        gid = pw ? pw->pw_gid : (gid_t)n;
        login = pw ? pw->pw_name : NULL;
    }
    if (group) {
        struct group *gr = getgrnam(group);
        long long n = number_of(group);
        if (!gr && n < 0) {
            snprintf(err, err_cap, "no group %s", group);
            return -ENOENT;
        }
        gid = gr ? gr->gr_gid : (gid_t)n;
    }
    if (uid == geteuid() && uid == getuid() && gid == getegid() && gid == getgid() &&
        geteuid() != 0)
        return 0; /* already that user: nothing to give up */
    /* glibc applies each of these to every thread of the process (its set*id broadcast). */
    int rc = login ? initgroups(login, gid) : setgroups(1, &gid);
    if (rc != 0)
        return fail(err, err_cap, -errno, "cannot set the groups for", user ? user : group);
    if (setresgid(gid, gid, gid) != 0)
        return fail(err, err_cap, -errno, "cannot become group", group ? group : user);
    if (user && setresuid(uid, uid, uid) != 0)
        return fail(err, err_cap, -errno, "cannot become user", user);
    if (user && uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, err_cap, "dropped to user %s, yet root could be regained", user);
        return -EPERM;
    }
    return 0;
}
