/* The memo of hashes by file, and what reads and writes it: lookups, publishing a hash and
 * persisting it in the store or the attribute, and the change check of responses in progress. */
#include "memo.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attr.h"
#include "walk.h"

static size_t bucket_index(uint64_t dev, uint64_t ino, size_t n_buckets)
{
    uint64_t k = (ino * 0x9E3779B97F4A7C15ull) ^ (dev * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(k ^ (k >> 29)) & (n_buckets - 1);
}

int nm__memo_init(struct nm_hashing *h)
{
    h->n_buckets = 1024;
    h->buckets = calloc(h->n_buckets, sizeof(*h->buckets));
    return h->buckets ? 0 : -ENOMEM;
}

void nm__memo_cleanup(struct nm_hashing *h)
{
    while (h->oldest)
        nm__memo_unlink(h, h->oldest);
    free(h->buckets);
    h->buckets = NULL;
}

struct nm_memo_entry *nm__memo_get(struct nm_hashing *h, uint64_t dev, uint64_t ino)
{
    struct nm_memo_entry *e = h->buckets[bucket_index(dev, ino, h->n_buckets)];
    while (e && (e->v.dev != dev || e->v.ino != ino))
        e = e->chain;
    return e;
}

void nm__memo_unlink(struct nm_hashing *h, struct nm_memo_entry *e)
{
    nm__walk_release(h, e);
    struct nm_memo_entry **pp = &h->buckets[bucket_index(e->v.dev, e->v.ino, h->n_buckets)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        h->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        h->newest = e->older;
    h->n_entries--;
    free(e);
}

static void memo_grow(struct nm_hashing *h)
{
    size_t n = h->n_buckets * 2;
    struct nm_memo_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < h->n_buckets; i++) {
        struct nm_memo_entry *e = h->buckets[i];
        while (e) {
            struct nm_memo_entry *next = e->chain;
            size_t j = bucket_index(e->v.dev, e->v.ino, n);
            e->chain = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
}

struct nm_memo_entry *nm__memo_put(struct nm_hashing *h, const struct nm_file_version *v)
{
    struct nm_memo_entry *e = nm__memo_get(h, v->dev, v->ino);
    if (e)
        return e;
    if (h->n_entries >= h->opt.max_entries) {
        struct nm_memo_entry *old = h->oldest;
        while (old && old->state == NM_MEMO_PENDING)
            old = old->newer;
        if (!old)
            return NULL;
        nm__memo_unlink(h, old);
    }
    if (h->n_entries >= h->n_buckets)
        memo_grow(h);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->v = *v;
    size_t b = bucket_index(v->dev, v->ino, h->n_buckets);
    e->chain = h->buckets[b];
    h->buckets[b] = e;
    e->older = h->newest;
    if (h->newest)
        h->newest->newer = e;
    else
        h->oldest = e;
    h->newest = e;
    h->n_entries++;
    return e;
}

bool nm__memo_describes(const struct nm_memo_entry *e, const struct nm_file_version *v)
{
    if (nm_hashing_version_equal(&e->v, v))
        return true;
    return e->has_prev_ctime && e->v.dev == v->dev && e->v.ino == v->ino && e->v.size == v->size &&
           e->v.mtime_ns == v->mtime_ns && e->prev_ctime_ns == v->ctime_ns;
}

/* e now holds v's hash, from where it came. */
static void publish(struct nm_memo_entry *e, const struct nm_file_version *v,
                    enum nm_hash_source source, struct nm_hash128 hash)
{
    e->v = *v;
    e->state = NM_MEMO_HASHED;
    e->source = source;
    e->hash = hash;
    e->has_prev_ctime = false;
}

static void store_key_of(const struct nm_hashing *h, const struct nm_file_version *v,
                         struct nm_etag_store_key *k)
{
    *k = (struct nm_etag_store_key){h->opt.root_dev, h->opt.root_ino, v->dev,     v->ino,
                                    v->size,         v->mtime_ns,     v->ctime_ns};
}

int nm__persisted_find(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                       struct nm_hash128 *out, enum nm_hash_source *source)
{
    struct nm_etag_store_key k;
    store_key_of(h, v, &k);
    if (fd < 0) /* the caller asks the memo only */
        return -ENOENT;
    if (h->store && nm_etag_store_get(h->store, &k, out) == 0) {
        *source = NM_HASH_STORE;
        return 0;
    }
    if (nm_attr_read(fd, v, out) == 0) {
        *source = NM_HASH_XATTR;
        return 0;
    }
    return -ENOENT;
}

int nm_hashing_find(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                    struct nm_hash128 *out)
{
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, v->dev, v->ino);
    if (e && e->state == NM_MEMO_HASHED && nm__memo_describes(e, v)) {
        *out = e->hash;
        pthread_mutex_unlock(&h->lock);
        nm__hashing_count(&h->from_memo, 1);
        return 0;
    }
    pthread_mutex_unlock(&h->lock);
    struct nm_hash128 x;
    enum nm_hash_source source;
    if (nm__persisted_find(h, fd, v, &x, &source) != 0)
        return -ENOENT;
    nm__hashing_count(source == NM_HASH_STORE ? &h->from_store : &h->from_xattr, 1);
    pthread_mutex_lock(&h->lock);
    e = nm__memo_put(h, v);
    /* A job queued for this version finds the entry settled and skips the work. */
    if (e && (e->state != NM_MEMO_PENDING || nm_hashing_version_equal(&e->v, v))) {
        nm__walk_release(h, e);
        publish(e, v, source, x);
    }
    pthread_mutex_unlock(&h->lock);
    *out = x;
    return 0;
}

void nm_hashing_forget(struct nm_hashing *h, const struct nm_file_version *v)
{
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, v->dev, v->ino);
    if (e && e->state == NM_MEMO_HASHED && !e->persisting && !e->walk_waits &&
        nm__memo_describes(e, v))
        nm__memo_unlink(h, e);
    pthread_mutex_unlock(&h->lock);
}

/* Attribute writes on dev are paused (the lock is held). */
static bool dev_has_no_xattr(struct nm_hashing *h, uint64_t dev)
{
    for (size_t i = 0; i < h->n_no_xattr_devs; i++)
        if (h->no_xattr_devs[i].dev == dev)
            return nm_hashing_now_ns() < h->no_xattr_devs[i].retry_at_ns;
    return false;
}

/* After a write failed with rc, pauses writes on dev: for good when the filesystem cannot hold
 * attributes, for NM_HASHING_XATTR_BACKOFF_NS when it is full or failing. Returns true the first
 * time dev is paused for a fault worth a warning (the lock is held). */
static bool pause_xattr_writes(struct nm_hashing *h, uint64_t dev, int rc)
{
    int64_t retry_at_ns;
    if (rc == -ENOTSUP || rc == -EROFS)
        retry_at_ns = INT64_MAX;
    else if (rc == -ENOSPC || rc == -EDQUOT || rc == -EIO)
        retry_at_ns = nm_hashing_now_ns() + NM_HASHING_XATTR_BACKOFF_NS;
    else
        return false;
    for (size_t i = 0; i < h->n_no_xattr_devs; i++) {
        if (h->no_xattr_devs[i].dev == dev) {
            h->no_xattr_devs[i].retry_at_ns = retry_at_ns;
            return false;
        }
    }
    if (h->n_no_xattr_devs == NM_HASHING_MAX_NO_XATTR_DEVS)
        return false;
    h->no_xattr_devs[h->n_no_xattr_devs].dev = dev;
    h->no_xattr_devs[h->n_no_xattr_devs].retry_at_ns = retry_at_ns;
    h->n_no_xattr_devs++;
    /* A tree without attributes, or mounted read-only, is a setup, not a fault. */
    return retry_at_ns != INT64_MAX;
}

/* Writes v's record to the store, unless v is racy or writes are paused. A failed write pauses
 * them: for good when the store cannot be written at all, for NM_HASHING_XATTR_BACKOFF_NS when it
 * is full or failing; the first failure is reported, later ones only counted. */
static void store_write(struct nm_hashing *h, const struct nm_file_version *v,
                        struct nm_hash128 hash)
{
    int64_t now = nm_hashing_now_ns();
    pthread_mutex_lock(&h->lock);
    bool paused = now < h->store_retry_at_ns;
    pthread_mutex_unlock(&h->lock);
    if (paused || nm_hashing_is_racy(v, now))
        return;
    struct nm_etag_store_key k;
    store_key_of(h, v, &k);
    int rc = h->fail_store_errno ? -h->fail_store_errno : nm_etag_store_put(h->store, &k, hash);
    if (rc == 0) {
        nm__hashing_count(&h->persisted, 1);
        return;
    }
    nm__hashing_count(&h->persist_failed, 1);
    bool transient = rc == -ENOSPC || rc == -EDQUOT || rc == -EIO;
    pthread_mutex_lock(&h->lock);
    h->store_retry_at_ns =
        transient ? nm_hashing_now_ns() + NM_HASHING_XATTR_BACKOFF_NS : INT64_MAX;
    bool warn = !h->store_warned;
    h->store_warned = true;
    pthread_mutex_unlock(&h->lock);
    if (warn && h->opt.warn) {
        if (transient)
            h->opt.warn("cannot store ETags in the ETag store: %s; keeping them in memory, "
                        "retrying in %lld s",
                        strerror(-rc), NM_HASHING_XATTR_BACKOFF_NS / 1000000000LL);
        else
            h->opt.warn("cannot store ETags in the ETag store: %s; keeping them in memory",
                        strerror(-rc));
    }
}

void nm__memo_settle(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                     struct nm_hash128 hash, bool only_if_pending, struct nm_file_version *now_v)
{
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, v->dev, v->ino);
    if (only_if_pending &&
        !(e && e->state == NM_MEMO_PENDING && nm_hashing_version_equal(&e->v, v))) {
        pthread_mutex_unlock(&h->lock);
        nm__hashing_count(&h->discarded, 1);
        return;
    }
    if (!e)
        e = nm__memo_put(h, v);
    if (h->store) {
        if (e) {
            publish(e, v, NM_HASH_HASHED, hash);
            e->job = NULL;
        }
        pthread_mutex_unlock(&h->lock);
        if (now_v)
            *now_v = *v;
        store_write(h, v, hash);
        goto done;
    }
    bool persist = h->opt.persist && !dev_has_no_xattr(h, v->dev);
    if (e) {
        publish(e, v, NM_HASH_HASHED, hash);
        e->job = NULL;
        e->persisting = persist;
    }
    pthread_mutex_unlock(&h->lock);
    if (now_v)
        *now_v = *v;
    if (!persist || nm_hashing_is_racy(v, nm_hashing_now_ns()))
        goto done;
    int rc = h->fail_xattr_errno ? -h->fail_xattr_errno : nm_attr_write(fd, v, hash);
    struct stat st;
    struct nm_file_version after;
    bool same = rc == 0 && fstat(fd, &st) == 0;
    if (same) {
        nm_hashing_version_of(&st, &after);
        same = after.dev == v->dev && after.ino == v->ino && after.size == v->size &&
               after.mtime_ns == v->mtime_ns;
    }
    if (rc == 0)
        nm__hashing_count(&h->persisted, 1);
    else if (rc != -EAGAIN)
        nm__hashing_count(&h->persist_failed, 1);
    pthread_mutex_lock(&h->lock);
    bool warn = pause_xattr_writes(h, v->dev, rc);
    e = nm__memo_get(h, v->dev, v->ino);
    if (e && e->state == NM_MEMO_HASHED && nm_hashing_version_equal(&e->v, v)) {
        if (same && after.ctime_ns != v->ctime_ns) {
            e->prev_ctime_ns = v->ctime_ns;
            e->has_prev_ctime = true;
            e->v.ctime_ns = after.ctime_ns;
            if (now_v)
                *now_v = after;
        }
        e->persisting = false;
    }
    /* The startup walk is done with this file only now that its attribute is written: a
     * restart right after "prehash done" finds every attribute in place. */
    if (e)
        nm__walk_release(h, e);
    pthread_mutex_unlock(&h->lock);
    if (warn && h->opt.warn)
        h->opt.warn("cannot store ETags in the " NM_ATTR_NAME
                    " attribute: %s; keeping them in memory, retrying in %lld s",
                    strerror(-rc), NM_HASHING_XATTR_BACKOFF_NS / 1000000000LL);
    return;
done:
    pthread_mutex_lock(&h->lock);
    e = nm__memo_get(h, v->dev, v->ino);
    if (e && nm_hashing_version_equal(&e->v, v))
        e->persisting = false;
    if (e)
        nm__walk_release(h, e);
    pthread_mutex_unlock(&h->lock);
}

void nm_hashing_remember(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                         struct nm_hash128 hash, struct nm_file_version *now_v)
{
    nm__hashing_count(&h->hashed_files, 1);
    nm__hashing_count(&h->hashed_bytes, v->size);
    nm__memo_settle(h, fd, v, hash, false, now_v);
}

bool nm_hashing_is_own_change(struct nm_hashing *h, const struct nm_file_version *was,
                              const struct nm_file_version *now)
{
    if (was->dev != now->dev || was->ino != now->ino || was->size != now->size ||
        was->mtime_ns != now->mtime_ns)
        return false;
    pthread_mutex_lock(&h->lock);
    struct nm_memo_entry *e = nm__memo_get(h, was->dev, was->ino);
    bool own = e && e->state == NM_MEMO_HASHED && e->v.size == was->size &&
               e->v.mtime_ns == was->mtime_ns &&
               (e->v.ctime_ns == was->ctime_ns ||
                (e->has_prev_ctime && e->prev_ctime_ns == was->ctime_ns)) &&
               (e->persisting || e->v.ctime_ns == now->ctime_ns);
    pthread_mutex_unlock(&h->lock);
    return own;
}
