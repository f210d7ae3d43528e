/* A scratch directory per test, and small file helpers, for the variants tests. */
#ifndef NOTMOD_TESTS_VARIANTS_FIXTURE_H
#define NOTMOD_TESTS_VARIANTS_FIXTURE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static char dir[PATH_MAX];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "%s/nm-variants-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

static const char *path_of(const char *rel)
{
    static char p[PATH_MAX + 256];
    snprintf(p, sizeof(p), "%s/%.255s", dir, rel);
    return p;
}

/* Writes rel (its directory must exist) and returns a read-write descriptor of it. */
static int write_file(const char *rel, const void *bytes, size_t len)
{
    int fd = open(path_of(rel), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "%s", rel);
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    return fd;
}

__attribute__((unused)) static void put_file(const char *rel, const void *bytes, size_t len)
{
    close(write_file(rel, bytes, len));
}

__attribute__((unused)) static bool exists(const char *rel)
{
    struct stat st;
    return lstat(path_of(rel), &st) == 0;
}

/* Whether the scratch directory's file system keeps user attributes. */
static bool xattrs_work(int fd)
{
    return fsetxattr(fd, "user.notmod.probe", "1", 1, 0) == 0;
}

#endif
