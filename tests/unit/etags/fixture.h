/* What the etags tests share: a temporary directory per test, files written in place, versions,
 * a pool that hashes anything over 1 KiB, and waiting for the memo. */
#ifndef NOTMOD_TEST_ETAGS_FIXTURE_H
#define NOTMOD_TEST_ETAGS_FIXTURE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "etags/hashing.h"

static char dir[64];

static inline void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nm_hashing_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static inline void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static inline char *fill(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u + seed) >> 7);
    return p;
}

/* Writes a file in place (no truncation), keeping its inode. */
static inline int write_file(const char *name, const char *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    cr_assert_eq(ftruncate(fd, (off_t)n), 0);
    return fd;
}

static inline void version_of_fd(int fd, struct nm_file_version *v)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    nm_hashing_version_of(&st, v);
}

static inline bool xattrs_work(int fd)
{
    if (fsetxattr(fd, "user.nm_probe", "1", 1, 0) != 0)
        return false;
    fremovexattr(fd, "user.nm_probe");
    return true;
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls the memo until it knows v, for up to 15 s. */
static inline bool wait_for_hash(struct nm_hashing *h, const struct nm_file_version *v,
                                 struct nm_hash128 *out)
{
    for (int i = 0; i < 1500; i++) {
        if (nm_hashing_find(h, -1, v, out) == 0)
            return true;
        sleep_ms(10);
    }
    return false;
}

static inline struct nm_hashing *pool(bool persist)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = persist;
    o.low_priority = false;
    o.small_file_bytes = 1024;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    return h;
}

#endif
