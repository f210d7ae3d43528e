/* The startup walk: every regular file of the served tree larger than small_file_bytes gets its
 * hash from the memo, the attribute or a background job, directories in name order. */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memo.h"
#include "pool.h"

#define MAX_BACKGROUND_JOBS 64
#define MAX_WALK_DEPTH 64

void nm__walk_release(struct nm_hashing *h, struct nm_memo_entry *e)
{
    if (!e->walk_waits)
        return;
    e->walk_waits = false;
    h->bg_outstanding--;
    pthread_cond_broadcast(&h->space);
}

void nm__walk_stop(struct nm_hashing *h)
{
    if (h->walker_started)
        pthread_join(h->walker, NULL);
    h->walker_started = false;
    if (h->walk_root_fd >= 0)
        close(h->walk_root_fd);
    h->walk_root_fd = -1;
}

/* Gives one file its hash from the memo or attribute, or queues a background job (taking fd). */
static void prehash_file(struct nm_hashing *h, int fd)
{
    struct stat st;
    struct nm_file_version v;
    nm__hashing_count(&h->prehash_files, 1);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    nm_hashing_version_of(&st, &v);
    struct nm_hash128 x;
    if (nm_hashing_find(h, fd, &v, &x) == 0) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&h->lock);
    while (h->background.n + h->delayed.n >= MAX_BACKGROUND_JOBS && !atomic_load(&h->stop))
        pthread_cond_wait(&h->space, &h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, v.dev, v.ino);
    if (atomic_load(&h->stop) ||
        (e && (e->state == NM_MEMO_HASHED || e->state == NM_MEMO_PENDING) &&
         nm__memo_describes(e, &v))) {
        /* Hashed already, or someone asked first: the walk still waits for that job. */
        if (e && e->state == NM_MEMO_PENDING && !e->walk_waits && !atomic_load(&h->stop)) {
            e->walk_waits = true;
            h->bg_outstanding++;
        }
        pthread_mutex_unlock(&h->lock);
        close(fd);
        return;
    }
    e = nm__pool_queue(h, e, &v, fd, true);
    if (e) {
        e->walk_waits = true;
        h->bg_outstanding++;
    } else {
        close(fd);
    }
    pthread_mutex_unlock(&h->lock);
}

/* Visits the directory dir_fd names (the caller keeps dir_fd), in name order. */
static void walk(struct nm_hashing *h, int dir_fd, int depth)
{
    struct nm_dir d;
    /* No cap below nm_dir_read's own: the walk is to see the whole tree. */
    if (nm_dir_read(dir_fd, SIZE_MAX, &d) < 0)
        return;
    for (size_t i = 0; i < d.count && !atomic_load(&h->stop); i++) {
        const char *name = d.entries[i].name;
        unsigned char type = d.entries[i].type;
        /* Neither a directory nor a regular file (a symlink, say): nothing to visit or hash. */
        if (type != DT_UNKNOWN && type != DT_DIR && type != DT_REG)
            continue;
        /* The served tree: names starting with '.' are 404 unless dotfiles are allowed, but
         * "/.well-known" at the top is served. */
        if (name[0] == '.' && !h->walk_dotfiles &&
            !(depth == 0 && strcmp(name, ".well-known") == 0))
            continue;
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < MAX_WALK_DEPTH) {
            int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                walk(h, sub, depth + 1);
                close(sub);
            }
        } else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > h->opt.small_file_bytes) {
            int fd =
                openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            if (fd >= 0)
                prehash_file(h, fd);
        }
    }
    nm_dir_free(&d);
}

static void *walker_main(void *arg)
{
    struct nm_hashing *h = arg;
    if (h->opt.low_priority)
        nm__pool_lower_priority(true);
    walk(h, h->walk_root_fd, 0);
    pthread_mutex_lock(&h->lock);
    while (h->bg_outstanding > 0 && !atomic_load(&h->stop))
        pthread_cond_wait(&h->space, &h->lock);
    bool stopped = atomic_load(&h->stop);
    pthread_mutex_unlock(&h->lock);
    if (!stopped) {
        atomic_store(&h->prehash_done, true);
        if (h->walk_done)
            h->walk_done(h, h->walk_done_arg);
    }
    return NULL;
}

int nm_hashing_prehash(struct nm_hashing *h, int root_fd, bool dotfiles,
                       void (*done)(struct nm_hashing *h, void *arg), void *arg)
{
    if (h->n_threads == 0)
        return -ENOTSUP;
    if (h->walker_started)
        return -EALREADY;
    h->walk_root_fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
    if (h->walk_root_fd < 0)
        return -errno;
    h->walk_dotfiles = dotfiles;
    h->walk_done = done;
    h->walk_done_arg = arg;
    if (pthread_create(&h->walker, NULL, walker_main, h) != 0)
        return -EAGAIN;
    h->walker_started = true;
    return 0;
}
