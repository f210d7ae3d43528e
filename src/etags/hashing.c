/* Content hashes once per file version: file versions, the hashing object's creation and
 * counters, and one file on its own as `notmod etag` hashes it. The memo (memo.c), the pool
 * (pool.c), the startup walk (walk.c) and the manifest check (manifest.c) do the rest. */
#include "hashing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attr.h"
#include "internal.h"
#include "memo.h"
#include "notmod/etag.h"
#include "pool.h"
#include "walk.h"

/* ---- versions -------------------------------------------------------------------------------- */

static int64_t ts_ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void nm_hashing_version_of(const struct stat *st, struct nm_file_version *out)
{
    out->dev = (uint64_t)st->st_dev;
    out->ino = (uint64_t)st->st_ino;
    out->size = (uint64_t)st->st_size;
    out->mtime_ns = ts_ns(st->st_mtim);
    out->ctime_ns = ts_ns(st->st_ctim);
}

bool nm_hashing_version_equal(const struct nm_file_version *a, const struct nm_file_version *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

bool nm_hashing_is_racy(const struct nm_file_version *v, int64_t now_ns)
{
    return now_ns - v->ctime_ns < NM_HASHING_RACY_NS;
}

int64_t nm_hashing_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts_ns(ts);
}

int nm_hashing_format_etag(struct nm_hash128 h, char *buf, size_t cap)
{
    return nm_etag_make_hash128(h.hi, h.lo, buf, cap);
}

/* ---- options, creation ----------------------------------------------------------------------- */

void nm_hashing_options_init(struct nm_hashing_options *o)
{
    o->threads = 2;
    o->max_entries = 1u << 20;
    o->small_file_bytes = 64 * 1024;
    o->persist = true;
    o->low_priority = true;
    o->store_dir = NULL;
    o->store_records = NM_ETAG_STORE_DEFAULT_RECORDS;
    o->root_dev = 0;
    o->root_ino = 0;
}

int nm_hashing_new(const struct nm_hashing_options *o, struct nm_hashing **out)
{
    struct nm_hashing *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->opt = *o;
    if (h->opt.max_entries < 16)
        h->opt.max_entries = 16;
    h->walk_root_fd = -1;
    /* Tests make every attribute write fail with this errno, as a full or broken disk would. */
    const char *fail = getenv("NOTMOD_TEST_XATTR_ERRNO");
    if (fail)
        h->fail_xattr_errno = atoi(fail);
    /* And every store write with this one. */
    fail = getenv("NOTMOD_TEST_STORE_ERRNO");
    if (fail)
        h->fail_store_errno = atoi(fail);
    int rc = 0;
    if (o->store_dir) {
        rc = nm_etag_store_open(o->store_dir, o->store_records, &h->store);
        if (rc < 0)
            goto fail_free_hashing;
    }
    rc = nm__memo_init(h);
    if (rc < 0)
        goto fail_close_store;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_cond_init(&h->space, NULL);
    rc = nm__pool_start(h);
    if (rc < 0) {
        nm_hashing_free(h);
        return rc;
    }
    *out = h;
    return 0;

fail_close_store:
    nm_etag_store_free(h->store);
fail_free_hashing:
    free(h);
    return rc;
}

void nm_hashing_free(struct nm_hashing *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    atomic_store(&h->stop, true);
    pthread_cond_broadcast(&h->work);
    pthread_cond_broadcast(&h->space);
    pthread_mutex_unlock(&h->lock);
    /* The walker first: it queues jobs, which the pool's stop closes. */
    nm__walk_stop(h);
    nm__pool_stop(h);
    nm__memo_cleanup(h);
    nm_manifest_free(h->manifest);
    free(h->manifest_kept);
    nm_etag_store_free(h->store);
    pthread_cond_destroy(&h->space);
    pthread_cond_destroy(&h->work);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

unsigned nm_hashing_generation(const struct nm_hashing *h)
{
    return atomic_load_explicit(&h->generation, memory_order_acquire);
}

/* ---- counters -------------------------------------------------------------------------------- */

void nm_hashing_count_small(struct nm_hashing *h, uint64_t bytes)
{
    nm__hashing_count(&h->small_files, 1);
    nm__hashing_count(&h->small_bytes, bytes);
}

void nm_hashing_get_stats(const struct nm_hashing *h, struct nm_hashing_stats *out)
{
    struct nm_hashing *m = (struct nm_hashing *)h;
    out->hashed_files = atomic_load(&m->hashed_files);
    out->hashed_bytes = atomic_load(&m->hashed_bytes);
    out->small_files = atomic_load(&m->small_files);
    out->small_bytes = atomic_load(&m->small_bytes);
    out->from_memo = atomic_load(&m->from_memo);
    out->from_xattr = atomic_load(&m->from_xattr);
    out->from_store = atomic_load(&m->from_store);
    out->from_manifest = atomic_load(&m->from_manifest);
    out->persisted = atomic_load(&m->persisted);
    out->persist_failed = atomic_load(&m->persist_failed);
    out->discarded = atomic_load(&m->discarded);
    out->waited_racy = atomic_load(&m->waited_racy);
    out->prehash_files = atomic_load(&m->prehash_files);
    out->prehash_done = atomic_load(&m->prehash_done);
    pthread_mutex_lock(&m->lock);
    out->queued = m->demand.n + m->background.n + m->delayed.n;
    pthread_mutex_unlock(&m->lock);
}

int nm_hashing_format_stats(const struct nm_hashing_stats *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "hashed_files=%llu hashed_bytes=%llu small_files=%llu small_bytes=%llu "
                     "from_xattr=%llu from_store=%llu from_manifest=%llu persisted=%llu "
                     "persist_failed=%llu discarded=%llu waited_racy=%llu prehash_files=%llu",
                     (unsigned long long)s->hashed_files, (unsigned long long)s->hashed_bytes,
                     (unsigned long long)s->small_files, (unsigned long long)s->small_bytes,
                     (unsigned long long)s->from_xattr, (unsigned long long)s->from_store,
                     (unsigned long long)s->from_manifest, (unsigned long long)s->persisted,
                     (unsigned long long)s->persist_failed, (unsigned long long)s->discarded,
                     (unsigned long long)s->waited_racy, (unsigned long long)s->prehash_files);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* ---- one file on its own --------------------------------------------------------------------- */

int nm_hashing_hash_file(int fd, const struct nm_hashing_file_options *o, struct nm_hash128 *out,
                         enum nm_hash_source *source, struct nm_file_version *v, int *stored)
{
    *stored = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            return -errno;
        if (S_ISDIR(st.st_mode))
            return -EISDIR;
        if (!S_ISREG(st.st_mode))
            return -EINVAL;
        struct nm_file_version was;
        nm_hashing_version_of(&st, &was);
        int64_t now = nm_hashing_now_ns();
        if (o->persist && nm_hashing_is_racy(&was, now)) {
            int64_t wait = was.ctime_ns + NM_HASHING_RACY_NS + 1000000 - now;
            if (wait > NM_HASHING_RACY_NS + 1000000)
                wait = NM_HASHING_RACY_NS + 1000000; /* a ctime in the future: wait once */
            struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
            if (attempt == 0)
                continue;
        }
        struct nm_hash128 h;
        bool from_xattr = false;
        if (was.size > o->small_file_bytes && !o->rehash && nm_attr_read(fd, &was, &h) == 0) {
            from_xattr = true;
        } else {
            int rc = nm_hash_fd(fd, was.size, NULL, &h);
            if (rc == -EAGAIN)
                continue;
            if (rc < 0)
                return rc;
            if (fstat(fd, &st) != 0)
                return -errno;
            struct nm_file_version after;
            nm_hashing_version_of(&st, &after);
            if (!nm_hashing_version_equal(&after, &was))
                continue;
        }
        *out = h;
        *source = from_xattr ? NM_HASH_XATTR : NM_HASH_HASHED;
        *v = was;
        if (!o->persist || from_xattr)
            return 0;
        struct nm_hash128 have;
        if (!o->rehash && nm_attr_read(fd, &was, &have) == 0 && have.hi == h.hi && have.lo == h.lo)
            return 0;
        if (nm_hashing_is_racy(&was, nm_hashing_now_ns())) {
            *stored = -EAGAIN;
            return 0;
        }
        int rc = nm_attr_write(fd, &was, h);
        if (rc < 0) {
            *stored = rc;
            return 0;
        }
        *stored = 1;
        if (fstat(fd, &st) == 0)
            nm_hashing_version_of(&st, v);
        return 0;
    }
    return -EAGAIN;
}
