/* Giving up root: names and numbers resolved, groups before the user, every thread changed, and
 * no way back to root. The dropping itself runs in a child, which the test runner can lose. */
#include "serve/privs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

static int in_child(int (*body)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(body());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static pthread_barrier_t dropped;

/* The thread's own credentials, from the kernel (the raw system calls, per thread). */
static void *other_thread(void *arg)
{
    pthread_barrier_wait(&dropped);
    long *ids = arg;
    ids[0] = syscall(SYS_getuid);
    ids[1] = syscall(SYS_getgid);
    return NULL;
}

static int drop_to_nobody(void)
{
    long ids[2] = {-1, -1};
    pthread_t t;
    pthread_barrier_init(&dropped, NULL, 2);
    if (pthread_create(&t, NULL, other_thread, ids) != 0)
        return 10;
    char err[256] = "";
    int rc = nm_privs_drop("nobody", "65534", err, sizeof(err));
    pthread_barrier_wait(&dropped);
    pthread_join(t, NULL);
    if (rc != 0)
        return 11;
    if (getuid() != NOBODY || geteuid() != NOBODY || getgid() != NOBODY || getegid() != NOBODY)
        return 12;
    gid_t groups[8];
    int n = getgroups(8, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == 0)
            return 13; /* root's group kept */
    if (ids[0] != NOBODY || ids[1] != NOBODY)
        return 14; /* a thread started before kept root */
    if (setuid(0) == 0 || seteuid(0) == 0)
        return 15;
    return 0;
}

static int drop_without_root(void)
{
    char err[256] = "";
    /* Become nobody with the raw calls first, then ask for another user. */
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        return 10;
    int rc = nm_privs_drop("root", NULL, err, sizeof(err));
    return rc == -EPERM && strstr(err, "root") ? 0 : 11;
}

Test(privs, naming_no_user_and_no_group_changes_nothing)
{
    char err[64] = "";
    cr_expect_eq(nm_privs_drop(NULL, NULL, err, sizeof(err)), 0);
    cr_expect_str_empty(err);
}

Test(privs, an_unknown_user_or_group_is_enoent_naming_it)
{
    char err[256] = "";
    cr_expect_eq(nm_privs_drop("no-such-user-nm", NULL, err, sizeof(err)), -ENOENT);
    cr_expect_not_null(strstr(err, "no-such-user-nm"), "%s", err);
    cr_expect_eq(nm_privs_drop(NULL, "no-such-group-nm", err, sizeof(err)), -ENOENT);
    cr_expect_not_null(strstr(err, "no-such-group-nm"), "%s", err);
}

Test(privs, root_becomes_nobody_in_every_thread_without_a_way_back)
{
    if (geteuid() != 0) {
        char err[256] = "";
        /* Not root: asking for another user fails, as the contract says. */
        cr_expect_eq(nm_privs_drop("nobody", NULL, err, sizeof(err)), -EPERM, "%s", err);
        return;
    }
    cr_expect_eq(in_child(drop_to_nobody), 0);
}

Test(privs, a_process_that_is_not_root_cannot_become_another_user)
{
    if (geteuid() != 0) {
        char err[256] = "";
        cr_expect_eq(nm_privs_drop("root", NULL, err, sizeof(err)), -EPERM, "%s", err);
        return;
    }
    cr_expect_eq(in_child(drop_without_root), 0);
}
