/* Sorted directory listings, and the private directories of the on-disk caches. */
#include "dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Entries point into `names` only once reading is done: until then they hold offsets, because
 * the names grow by realloc. */
struct reader {
    struct nm_dir_entry *entries;
    size_t count, cap;
    char *names;
    size_t names_len, names_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size)
            return -ENOMEM;
        n *= 2;
    }
    void *q = realloc(*p, n * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int add(struct reader *r, const char *name, unsigned char type)
{
    size_t len = strlen(name) + 1;
    int rc = grow((void **)&r->entries, &r->cap, r->count + 1, sizeof(*r->entries), 64);
    rc = rc ? rc : grow((void **)&r->names, &r->names_cap, r->names_len + len, 1, 4096);
    if (rc < 0)
        return rc;
    memcpy(r->names + r->names_len, name, len);
    r->entries[r->count++] =
        (struct nm_dir_entry){.name = (const char *)(uintptr_t)r->names_len, .type = type};
    r->names_len += len;
    return 0;
}

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const struct nm_dir_entry *)a)->name, ((const struct nm_dir_entry *)b)->name);
}

int nm_dir_read(int dir_fd, size_t max_entries, struct nm_dir *out)
{
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    /* The count is the return value. */
    if (max_entries > INT_MAX)
        max_entries = INT_MAX;
    struct reader r = {0};
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            rc = -errno;
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (r.count == max_entries) {
            rc = -EMSGSIZE;
            break;
        }
        if ((rc = add(&r, de->d_name, de->d_type)) < 0)
            break;
    }
    closedir(d);
    if (rc < 0)
        goto fail_free;
    for (size_t i = 0; i < r.count; i++)
        r.entries[i].name = r.names + (uintptr_t)r.entries[i].name;
    if (r.count > 1)
        qsort(r.entries, r.count, sizeof(*r.entries), cmp_entries);
    *out = (struct nm_dir){.entries = r.entries, .count = r.count, .names = r.names};
    return (int)r.count;

fail_free:
    free(r.entries);
    free(r.names);
    return rc;
}

void nm_dir_free(struct nm_dir *d)
{
    free(d->entries);
    free(d->names);
    *d = (struct nm_dir){0};
}

int nm_dir_make_private(const char *path)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -errno;
        tmp[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (access(path, W_OK | X_OK) != 0)
        return -errno;
    return 0;
}
