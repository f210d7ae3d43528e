/* Content hashes once per file version: the memo, the attribute, the pool, the startup walk and
 * the manifest check. One mutex guards the memo and the queues; the hash itself runs unlocked. */
#include "hashing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "notmod/etag.h"

#define CHUNK_BYTES (256u << 10)
#define FAILED_RETRY_NS (30 * 1000000000LL)
#define MAX_DEMAND_JOBS 4096
#define MAX_BACKGROUND_JOBS 64
#define MAX_WALK_DEPTH 64
#define MAX_NO_XATTR_DEVS 16

#define IOPRIO_WHO_PROCESS_ 1
#define IOPRIO_CLASS_BE_ 2
#define IOPRIO_CLASS_IDLE_ 3
#define IOPRIO_VALUE(cls, data) (((cls) << 13) | (data))

/* ---- versions, bytes, attributes ------------------------------------------------------------ */

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

struct nm_hash128 nm_hashing_hash_bytes(const void *p, size_t n)
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    return (struct nm_hash128){h.high64, h.low64};
}

int nm_hashing_hash_fd(int fd, uint64_t size, const atomic_bool *stop, struct nm_hash128 *out)
{
    XXH3_state_t *state = XXH3_createState();
    /* Page-aligned: copying from the page cache into a buffer 16 bytes off a page boundary
     * (what malloc returns for this size) ran three times slower (docs/benchmarks.md). */
    char *chunk = aligned_alloc(4096, CHUNK_BYTES);
    int rc = -ENOMEM;
    if (!state || !chunk)
        goto out;
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    XXH3_128bits_reset(state);
    uint64_t off = 0;
    while (off < size) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
            rc = -ECANCELED;
            goto out;
        }
        size_t want = size - off < CHUNK_BYTES ? (size_t)(size - off) : CHUNK_BYTES;
        ssize_t n = pread(fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EAGAIN; /* shrank while being read */
            goto out;
        }
        XXH3_128bits_update(state, chunk, (size_t)n);
        off += (uint64_t)n;
    }
    char extra;
    ssize_t n;
    do
        n = pread(fd, &extra, 1, (off_t)size);
    while (n < 0 && errno == EINTR);
    if (n != 0) {
        rc = n < 0 ? -errno : -EAGAIN; /* grew while being read */
        goto out;
    }
    XXH128_hash_t h = XXH3_128bits_digest(state);
    *out = (struct nm_hash128){h.high64, h.low64};
    rc = 0;
out:
    free(chunk);
    XXH3_freeState(state);
    return rc;
}

int nm_hashing_format_etag(struct nm_hash128 h, char *buf, size_t cap)
{
    return nm_etag_make_hash128(h.hi, h.lo, buf, cap);
}

int nm_hashing_xattr_format(const struct nm_hashing_record *r, char *buf, size_t cap)
{
    char tag[NM_ETAG_MAX + 1];
    int t = nm_etag_make_hash128(r->hash.hi, r->hash.lo, tag, sizeof(tag));
    if (t < 0 || r->mtime_ns < 0 || r->ctime_max_ns < 0)
        return -EINVAL;
    tag[t - 1] = '\0'; /* the 22 characters between the quotes */
    int n = snprintf(buf, cap, "1 %llu %lld %lld %s", (unsigned long long)r->size,
                     (long long)r->mtime_ns, (long long)r->ctime_max_ns, tag + 1);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static bool parse_decimal(const char **p, const char *end, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || *s < '0' || *s > '9' ||
        (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return true;
}

int nm_hashing_xattr_parse(const char *val, size_t len, struct nm_hashing_record *out)
{
    const char *p = val, *end = val + len;
    uint64_t sz, mt, ct;
    if (len < 2 || p[0] != '1' || p[1] != ' ')
        return -EINVAL;
    p += 2;
    if (!parse_decimal(&p, end, UINT64_MAX, &sz) || p == end || *p++ != ' ')
        return -EINVAL;
    if (!parse_decimal(&p, end, INT64_MAX, &mt) || p == end || *p++ != ' ')
        return -EINVAL;
    if (!parse_decimal(&p, end, INT64_MAX, &ct) || p == end || *p++ != ' ')
        return -EINVAL;
    if (end - p != 22)
        return -EINVAL;
    /* The 22 characters are a content tag's inside: decode by re-making candidates would be
     * slow, so decode base64url directly and insist that re-encoding gives the same text. */
    uint64_t hi = 0, lo = 0;
    unsigned bits = 0;
    for (int i = 0; i < 22; i++) {
        unsigned char c = (unsigned char)p[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0)
            return -EINVAL;
        for (int b = 5; b >= 0; b--, bits++) {
            unsigned bit = (unsigned)(v >> b) & 1;
            if (bits < 64)
                hi = hi << 1 | bit;
            else if (bits < 128)
                lo = lo << 1 | bit;
            else if (bit)
                return -EINVAL;
        }
    }
    char again[NM_ETAG_MAX + 1];
    if (nm_etag_make_hash128(hi, lo, again, sizeof(again)) != 24 || memcmp(again + 1, p, 22) != 0)
        return -EINVAL;
    *out = (struct nm_hashing_record){sz, (int64_t)mt, (int64_t)ct, {hi, lo}};
    return 0;
}

int nm_hashing_xattr_read(int fd, const struct nm_file_version *v, struct nm_hash128 *out)
{
    char val[NM_HASHING_XATTR_MAX + 1];
    ssize_t n = fgetxattr(fd, NM_HASHING_XATTR, val, sizeof(val) - 1);
    if (n < 0)
        return errno == ERANGE ? -ENODATA : -errno;
    struct nm_hashing_record r;
    if (nm_hashing_xattr_parse(val, (size_t)n, &r) != 0 || r.size != v->size ||
        r.mtime_ns != v->mtime_ns || v->ctime_ns > r.ctime_max_ns)
        return -ENODATA;
    *out = r.hash;
    return 0;
}

int nm_hashing_xattr_write(int fd, const struct nm_file_version *v, struct nm_hash128 h)
{
    /* The version is checked right before the clock is read: a rewrite that restored size and
     * mtime before this point is refused, one after it moves the ctime past the bound. */
    struct stat st;
    struct nm_file_version now;
    if (fstat(fd, &st) != 0)
        return -errno;
    nm_hashing_version_of(&st, &now);
    if (!nm_hashing_version_equal(&now, v))
        return -EAGAIN;
    struct nm_hashing_record r = {v->size, v->mtime_ns,
                                  nm_hashing_now_ns() + NM_HASHING_XATTR_SLACK_NS, h};
    char val[NM_HASHING_XATTR_MAX + 1];
    int n = nm_hashing_xattr_format(&r, val, sizeof(val));
    if (n < 0)
        return n;
    return fsetxattr(fd, NM_HASHING_XATTR, val, (size_t)n, 0) == 0 ? 0 : -errno;
}

/* ---- the memo -------------------------------------------------------------------------------- */

enum entry_state {
    ST_NONE = 0, /* nothing known yet (a job could not be queued): never answers */
    ST_HASHED,
    ST_PENDING, /* a job for v is queued or running */
    ST_FAILED,  /* hashing v failed at failed_at_ns */
};

struct job;

struct entry {
    struct nm_file_version v;
    int64_t prev_ctime_ns; /* v's ctime before this process wrote the attribute */
    bool has_prev_ctime;
    bool persisting; /* the attribute is being written: ctime is about to move */
    enum entry_state state;
    enum nm_hash_source source;
    struct nm_hash128 hash;
    int64_t failed_at_ns;
    struct job *job; /* the queued job while PENDING and not yet running */
    bool walk_waits; /* counted in bg_outstanding until this version settles */
    struct entry *chain;
    struct entry *older, *newer; /* insertion order, for eviction */
};

struct job {
    struct nm_file_version v;
    int fd;
    bool background; /* queued by the startup walk: runs after every demand job */
    int64_t not_before_ns;
    struct job *next;
};

struct queue {
    struct job *head, *tail;
    size_t n;
};

struct nm_hashing {
    struct nm_hashing_options opt;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a job was queued, or stop */
    pthread_cond_t space; /* a background job finished */

    struct entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t n_entries;
    struct entry *oldest, *newest;

    struct queue demand, background, delayed;
    size_t bg_outstanding; /* entries the walk waits for (walk_waits) */

    pthread_t *threads;
    unsigned n_threads;
    pthread_t walker;
    bool walker_started;
    atomic_bool stop;
    atomic_uint generation;

    uint64_t no_xattr_devs[MAX_NO_XATTR_DEVS];
    size_t n_no_xattr_devs;

    struct nm_manifest *manifest;
    bool *manifest_kept;

    int walk_root_fd;
    bool walk_dotfiles;
    void (*walk_done)(struct nm_hashing *h, void *arg);
    void *walk_done_arg;

    _Atomic uint64_t hashed_files, hashed_bytes, small_files, small_bytes, from_xattr,
        from_manifest, persisted, discarded, waited_racy, prehash_files;
    atomic_bool prehash_done;
};

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static size_t bucket_of(const struct nm_hashing *h, uint64_t dev, uint64_t ino)
{
    uint64_t k = (ino * 0x9E3779B97F4A7C15ull) ^ (dev * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(k ^ (k >> 29)) & (h->n_buckets - 1);
}

static struct entry *memo_get(struct nm_hashing *h, uint64_t dev, uint64_t ino)
{
    struct entry *e = h->buckets[bucket_of(h, dev, ino)];
    while (e && (e->v.dev != dev || e->v.ino != ino))
        e = e->chain;
    return e;
}

/* The startup walk stops waiting for an entry once its version settles, fails or is replaced. */
static void walk_release(struct nm_hashing *h, struct entry *e)
{
    if (!e->walk_waits)
        return;
    e->walk_waits = false;
    h->bg_outstanding--;
    pthread_cond_broadcast(&h->space);
}

static void memo_unlink(struct nm_hashing *h, struct entry *e)
{
    walk_release(h, e);
    struct entry **pp = &h->buckets[bucket_of(h, e->v.dev, e->v.ino)];
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
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < h->n_buckets; i++) {
        struct entry *e = h->buckets[i];
        while (e) {
            struct entry *next = e->chain;
            uint64_t k = (e->v.ino * 0x9E3779B97F4A7C15ull) ^ (e->v.dev * 0xC2B2AE3D27D4EB4Full);
            size_t j = (size_t)(k ^ (k >> 29)) & (n - 1);
            e->chain = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
}

/* The entry for (dev, ino), created (and the oldest settled entry evicted when full). */
static struct entry *memo_put(struct nm_hashing *h, const struct nm_file_version *v)
{
    struct entry *e = memo_get(h, v->dev, v->ino);
    if (e)
        return e;
    if (h->n_entries >= h->opt.max_entries) {
        struct entry *old = h->oldest;
        while (old && old->state == ST_PENDING)
            old = old->newer;
        if (!old)
            return NULL;
        memo_unlink(h, old);
    }
    if (h->n_entries >= h->n_buckets)
        memo_grow(h);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->v = *v;
    size_t b = bucket_of(h, v->dev, v->ino);
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

/* True when e describes v: the same version, or v is the version before our attribute write. */
static bool entry_describes(const struct entry *e, const struct nm_file_version *v)
{
    if (nm_hashing_version_equal(&e->v, v))
        return true;
    return e->has_prev_ctime && e->v.dev == v->dev && e->v.ino == v->ino && e->v.size == v->size &&
           e->v.mtime_ns == v->mtime_ns && e->prev_ctime_ns == v->ctime_ns;
}

/* ---- options, creation --------------------------------------------------------------------- */

void nm_hashing_options_init(struct nm_hashing_options *o)
{
    o->threads = 2;
    o->max_entries = 1u << 20;
    o->small_file_bytes = 64 * 1024;
    o->persist = true;
    o->low_priority = true;
}

static void *pool_main(void *arg);

int nm_hashing_new(const struct nm_hashing_options *o, struct nm_hashing **out)
{
    struct nm_hashing *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->opt = *o;
    if (h->opt.max_entries < 16)
        h->opt.max_entries = 16;
    h->n_buckets = 1024;
    h->buckets = calloc(h->n_buckets, sizeof(*h->buckets));
    h->walk_root_fd = -1;
    if (!h->buckets) {
        free(h);
        return -ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_cond_init(&h->space, NULL);
    if (o->threads) {
        h->threads = calloc(o->threads, sizeof(*h->threads));
        if (!h->threads) {
            nm_hashing_free(h);
            return -ENOMEM;
        }
        for (unsigned i = 0; i < o->threads; i++) {
            if (pthread_create(&h->threads[i], NULL, pool_main, h) != 0) {
                nm_hashing_free(h);
                return -EAGAIN;
            }
            h->n_threads++;
        }
    }
    *out = h;
    return 0;
}

static void free_queue(struct queue *q)
{
    while (q->head) {
        struct job *j = q->head;
        q->head = j->next;
        close(j->fd);
        free(j);
    }
    q->tail = NULL;
    q->n = 0;
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
    for (unsigned i = 0; i < h->n_threads; i++)
        pthread_join(h->threads[i], NULL);
    if (h->walker_started)
        pthread_join(h->walker, NULL);
    free(h->threads);
    free_queue(&h->demand);
    free_queue(&h->background);
    free_queue(&h->delayed);
    while (h->oldest)
        memo_unlink(h, h->oldest);
    free(h->buckets);
    if (h->walk_root_fd >= 0)
        close(h->walk_root_fd);
    nm_manifest_free(h->manifest);
    free(h->manifest_kept);
    pthread_cond_destroy(&h->space);
    pthread_cond_destroy(&h->work);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- lookups and persistence --------------------------------------------------------------- */

int nm_hashing_find(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                    struct nm_hash128 *out)
{
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, v->dev, v->ino);
    if (e && e->state == ST_HASHED && entry_describes(e, v)) {
        *out = e->hash;
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    pthread_mutex_unlock(&h->lock);
    if (fd < 0)
        return -ENOENT;
    struct nm_hash128 x;
    if (nm_hashing_xattr_read(fd, v, &x) != 0)
        return -ENOENT;
    count(&h->from_xattr, 1);
    pthread_mutex_lock(&h->lock);
    e = memo_put(h, v);
    /* A job queued for this version finds the entry settled and skips the work. */
    if (e && (e->state != ST_PENDING || nm_hashing_version_equal(&e->v, v))) {
        walk_release(h, e);
        e->v = *v;
        e->state = ST_HASHED;
        e->source = NM_HASH_XATTR;
        e->hash = x;
        e->has_prev_ctime = false;
    }
    pthread_mutex_unlock(&h->lock);
    *out = x;
    return 0;
}

static bool dev_has_no_xattr(struct nm_hashing *h, uint64_t dev)
{
    for (size_t i = 0; i < h->n_no_xattr_devs; i++)
        if (h->no_xattr_devs[i] == dev)
            return true;
    return false;
}

/* Publishes a hash for v and writes the attribute; the entry follows the ctime our write made. */
static void settle(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                   struct nm_hash128 hash, bool only_if_pending, struct nm_file_version *now_v)
{
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, v->dev, v->ino);
    if (only_if_pending && !(e && e->state == ST_PENDING && nm_hashing_version_equal(&e->v, v))) {
        pthread_mutex_unlock(&h->lock);
        count(&h->discarded, 1);
        return;
    }
    if (!e)
        e = memo_put(h, v);
    bool persist = h->opt.persist && !dev_has_no_xattr(h, v->dev);
    if (e) {
        e->v = *v;
        e->state = ST_HASHED;
        e->source = NM_HASH_HASHED;
        e->hash = hash;
        e->has_prev_ctime = false;
        e->job = NULL;
        e->persisting = persist;
    }
    pthread_mutex_unlock(&h->lock);
    if (now_v)
        *now_v = *v;
    if (!persist || nm_hashing_is_racy(v, nm_hashing_now_ns()))
        goto done;
    int rc = nm_hashing_xattr_write(fd, v, hash);
    struct stat st;
    struct nm_file_version after;
    bool same = rc == 0 && fstat(fd, &st) == 0;
    if (same) {
        nm_hashing_version_of(&st, &after);
        same = after.dev == v->dev && after.ino == v->ino && after.size == v->size &&
               after.mtime_ns == v->mtime_ns;
    }
    if (rc == 0)
        count(&h->persisted, 1);
    pthread_mutex_lock(&h->lock);
    if (rc == -ENOTSUP || rc == -EROFS) {
        if (!dev_has_no_xattr(h, v->dev) && h->n_no_xattr_devs < MAX_NO_XATTR_DEVS)
            h->no_xattr_devs[h->n_no_xattr_devs++] = v->dev;
    }
    e = memo_get(h, v->dev, v->ino);
    if (e && e->state == ST_HASHED && nm_hashing_version_equal(&e->v, v)) {
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
        walk_release(h, e);
    pthread_mutex_unlock(&h->lock);
    return;
done:
    pthread_mutex_lock(&h->lock);
    e = memo_get(h, v->dev, v->ino);
    if (e && nm_hashing_version_equal(&e->v, v))
        e->persisting = false;
    if (e)
        walk_release(h, e);
    pthread_mutex_unlock(&h->lock);
}

void nm_hashing_remember(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                         struct nm_hash128 hash, struct nm_file_version *now_v)
{
    count(&h->hashed_files, 1);
    count(&h->hashed_bytes, v->size);
    settle(h, fd, v, hash, false, now_v);
}

bool nm_hashing_is_own_change(struct nm_hashing *h, const struct nm_file_version *was,
                              const struct nm_file_version *now)
{
    if (was->dev != now->dev || was->ino != now->ino || was->size != now->size ||
        was->mtime_ns != now->mtime_ns)
        return false;
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, was->dev, was->ino);
    bool own = e && e->state == ST_HASHED && e->v.size == was->size &&
               e->v.mtime_ns == was->mtime_ns &&
               (e->v.ctime_ns == was->ctime_ns ||
                (e->has_prev_ctime && e->prev_ctime_ns == was->ctime_ns)) &&
               (e->persisting || e->v.ctime_ns == now->ctime_ns);
    pthread_mutex_unlock(&h->lock);
    return own;
}

unsigned nm_hashing_generation(const struct nm_hashing *h)
{
    return atomic_load_explicit(&h->generation, memory_order_acquire);
}

/* ---- the pool ---------------------------------------------------------------------------------
 */

static void push_job(struct queue *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

static struct job *pop_job(struct queue *q)
{
    struct job *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    j->next = NULL;
    return j;
}

static bool remove_job(struct queue *q, struct job *j)
{
    struct job **pp = &q->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return false;
    *pp = j->next;
    if (q->tail == j)
        q->tail = prev;
    q->n--;
    j->next = NULL;
    return true;
}

/* Queues a job for v (under the lock). fd is owned by the job from here on. */
static int queue_job(struct nm_hashing *h, struct entry *e, int fd, bool background)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->v = e->v;
    j->fd = fd;
    j->background = background;
    e->state = ST_PENDING;
    e->job = j;
    e->has_prev_ctime = false;
    e->persisting = false;
    push_job(background ? &h->background : &h->demand, j);
    pthread_cond_signal(&h->work);
    return 0;
}

int nm_hashing_request(struct nm_hashing *h, int fd, const struct nm_file_version *v)
{
    if (h->n_threads == 0)
        return -ENOTSUP;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, v->dev, v->ino);
    if (e && entry_describes(e, v)) {
        if (e->state == ST_HASHED)
            goto out;
        if (e->state == ST_PENDING) {
            /* Someone is waiting now: a walk's job moves ahead of the rest of the walk. */
            if (e->job && remove_job(&h->background, e->job))
                push_job(&h->demand, e->job);
            goto out;
        }
        if (nm_hashing_now_ns() - e->failed_at_ns < FAILED_RETRY_NS) {
            rc = -EIO;
            goto out;
        }
    }
    if (h->demand.n >= MAX_DEMAND_JOBS) {
        rc = -EBUSY;
        goto out;
    }
    if (e && e->state == ST_PENDING && e->job) {
        /* A job for an older version of the file: it would only be discarded. */
        if (remove_job(&h->demand, e->job) || remove_job(&h->background, e->job) ||
            remove_job(&h->delayed, e->job)) {
            close(e->job->fd);
            free(e->job);
        }
        e->job = NULL;
    }
    if (e)
        walk_release(h, e);
    if (!e)
        e = memo_put(h, v);
    if (!e) {
        rc = -ENOMEM;
        goto out;
    }
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) {
        rc = -errno;
        goto out;
    }
    e->v = *v;
    rc = queue_job(h, e, dupfd, false);
    if (rc < 0)
        close(dupfd);
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

enum job_end { END_HASHED, END_CHANGED, END_FAILED, END_STOPPED, END_SKIPPED };

static void finish_job(struct nm_hashing *h, struct job *j, enum job_end how)
{
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, j->v.dev, j->v.ino);
    if (e && e->job == j)
        e->job = NULL;
    if (e && e->state == ST_PENDING && nm_hashing_version_equal(&e->v, &j->v)) {
        if (how == END_FAILED) {
            walk_release(h, e);
            e->state = ST_FAILED;
            e->failed_at_ns = nm_hashing_now_ns();
        } else if (how != END_HASHED && how != END_SKIPPED) {
            memo_unlink(h, e);
        }
    }
    pthread_cond_broadcast(&h->space);
    pthread_mutex_unlock(&h->lock);
    if (how == END_CHANGED)
        count(&h->discarded, 1);
    atomic_fetch_add_explicit(&h->generation, 1, memory_order_release);
    close(j->fd);
    free(j);
}

/* Runs one job; returns false when it went back to wait out its racy window. */
static bool run_job(struct nm_hashing *h, struct job *j)
{
    struct stat st;
    struct nm_file_version cur;
    pthread_mutex_lock(&h->lock);
    struct entry *e = memo_get(h, j->v.dev, j->v.ino);
    bool wanted = e && e->state == ST_PENDING && nm_hashing_version_equal(&e->v, &j->v);
    if (e && e->job == j)
        e->job = NULL;
    pthread_mutex_unlock(&h->lock);
    if (!wanted) {
        finish_job(h, j, END_SKIPPED);
        return true;
    }
    if (fstat(j->fd, &st) != 0) {
        finish_job(h, j, END_FAILED);
        return true;
    }
    nm_hashing_version_of(&st, &cur);
    if (!nm_hashing_version_equal(&cur, &j->v)) {
        finish_job(h, j, END_CHANGED);
        return true;
    }
    int64_t now = nm_hashing_now_ns();
    if (nm_hashing_is_racy(&cur, now)) {
        /* Hashing now could describe bytes that a same-tick write changes unseen: wait until a
         * later write is bound to move the timestamps. */
        j->not_before_ns = cur.ctime_ns + NM_HASHING_RACY_NS + 1000000;
        pthread_mutex_lock(&h->lock);
        e = memo_get(h, j->v.dev, j->v.ino);
        if (e && e->state == ST_PENDING && nm_hashing_version_equal(&e->v, &j->v))
            e->job = j;
        push_job(&h->delayed, j);
        pthread_mutex_unlock(&h->lock);
        count(&h->waited_racy, 1);
        return false;
    }
    struct nm_hash128 hash;
    int rc = nm_hashing_hash_fd(j->fd, j->v.size, &h->stop, &hash);
    if (rc == -ECANCELED) {
        finish_job(h, j, END_STOPPED);
        return true;
    }
    if (rc == 0 && fstat(j->fd, &st) == 0) {
        nm_hashing_version_of(&st, &cur);
        if (!nm_hashing_version_equal(&cur, &j->v))
            rc = -EAGAIN;
    }
    if (rc == -EAGAIN) {
        finish_job(h, j, END_CHANGED);
        return true;
    }
    if (rc < 0) {
        finish_job(h, j, END_FAILED);
        return true;
    }
    count(&h->hashed_files, 1);
    count(&h->hashed_bytes, j->v.size);
    settle(h, j->fd, &j->v, hash, true, NULL);
    finish_job(h, j, END_HASHED);
    return true;
}

static void lower_priority(int ioprio_class, int ioprio_level, bool idle_sched)
{
    pid_t tid = gettid();
    if (idle_sched) {
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    } else {
        setpriority(PRIO_PROCESS, (id_t)tid, 19);
    }
    syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS_, tid, IOPRIO_VALUE(ioprio_class, ioprio_level));
}

static void *pool_main(void *arg)
{
    struct nm_hashing *h = arg;
    if (h->opt.low_priority)
        lower_priority(IOPRIO_CLASS_BE_, 7, false);
    pthread_mutex_lock(&h->lock);
    while (!atomic_load(&h->stop)) {
        int64_t now = nm_hashing_now_ns(), next = INT64_MAX;
        for (struct job *d = h->delayed.head, *nx; d; d = nx) {
            nx = d->next;
            if (d->not_before_ns <= now) {
                remove_job(&h->delayed, d);
                push_job(d->background ? &h->background : &h->demand, d);
            } else if (d->not_before_ns < next) {
                next = d->not_before_ns;
            }
        }
        struct job *j = pop_job(&h->demand);
        if (!j)
            j = pop_job(&h->background);
        if (j) {
            pthread_mutex_unlock(&h->lock);
            run_job(h, j);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&h->work, &h->lock);
        } else {
            struct timespec until = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            pthread_cond_timedwait(&h->work, &h->lock, &until);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* ---- the startup walk -------------------------------------------------------------------------
 */

/* Gives one file its hash from the memo or attribute, or queues a background job (taking fd). */
static void prehash_file(struct nm_hashing *h, int fd)
{
    struct stat st;
    struct nm_file_version v;
    count(&h->prehash_files, 1);
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
    struct entry *e = memo_get(h, v.dev, v.ino);
    if (atomic_load(&h->stop) ||
        (e && (e->state == ST_HASHED || e->state == ST_PENDING) && entry_describes(e, &v))) {
        /* Hashed already, or someone asked first: the walk still waits for that job. */
        if (e && e->state == ST_PENDING && !e->walk_waits && !atomic_load(&h->stop)) {
            e->walk_waits = true;
            h->bg_outstanding++;
        }
        pthread_mutex_unlock(&h->lock);
        close(fd);
        return;
    }
    if (e && e->state == ST_PENDING && e->job &&
        (remove_job(&h->demand, e->job) || remove_job(&h->background, e->job) ||
         remove_job(&h->delayed, e->job))) {
        close(e->job->fd);
        free(e->job);
        e->job = NULL;
    }
    if (e)
        walk_release(h, e);
    else
        e = memo_put(h, &v);
    int rc = -ENOMEM;
    if (e) {
        e->v = v;
        rc = queue_job(h, e, fd, true);
    }
    if (rc < 0) {
        close(fd);
    } else {
        e->walk_waits = true;
        h->bg_outstanding++;
    }
    pthread_mutex_unlock(&h->lock);
}

static bool is_hidden_name(const char *name)
{
    return name[0] == '.';
}

static void walk(struct nm_hashing *h, int dirfd, int depth)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *de;
    while (!atomic_load(&h->stop) && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        /* The served tree: names starting with '.' are 404 unless dotfiles are allowed, but
         * "/.well-known" at the top is served. */
        if (is_hidden_name(name) && !h->walk_dotfiles &&
            !(depth == 0 && strcmp(name, ".well-known") == 0))
            continue;
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < MAX_WALK_DEPTH) {
            int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                walk(h, sub, depth + 1);
        } else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > h->opt.small_file_bytes) {
            int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            if (fd >= 0)
                prehash_file(h, fd);
        }
    }
    closedir(d);
}

static void *walker_main(void *arg)
{
    struct nm_hashing *h = arg;
    if (h->opt.low_priority)
        lower_priority(IOPRIO_CLASS_IDLE_, 0, true);
    int fd = openat(h->walk_root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        walk(h, fd, 0);
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

/* ---- the manifest ------------------------------------------------------------------------------
 */

static const char *check_entry(struct nm_hashing *h, int root_fd, const struct nm_manifest_entry *e,
                               char *why, size_t why_cap)
{
    int fd = openat(root_fd, e->path + 1, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, why_cap, "cannot open: %s", strerror(errno));
        return why;
    }
    struct stat st;
    const char *bad = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bad = "not a regular file";
        goto out;
    }
    struct nm_file_version v;
    nm_hashing_version_of(&st, &v);
    if (v.size != e->size) {
        snprintf(why, why_cap, "size is %llu, the manifest says %llu", (unsigned long long)v.size,
                 (unsigned long long)e->size);
        bad = why;
        goto out;
    }
    if (v.size <= h->opt.small_file_bytes) {
        struct nm_hash128 x;
        int rc = nm_hashing_hash_fd(fd, v.size, NULL, &x);
        if (rc < 0) {
            snprintf(why, why_cap, "cannot read: %s", strerror(-rc));
            bad = why;
        } else if (x.hi != e->hash_hi || x.lo != e->hash_lo) {
            bad = "content differs from the manifest's ETag";
        }
        goto out;
    }
    /* A large file is never taken at the manifest's word: a same-size rewrite that kept the
     * mtime would then go out under the old tag. Its hash comes from the attribute (written
     * from its bytes, checked against this version) or from the pool; the manifest's
     * Last-Modified applies once that hash equals the manifest's (nm_hashing_manifest_...). */
    struct nm_hash128 x;
    if (nm_hashing_xattr_read(fd, &v, &x) == 0 && (x.hi != e->hash_hi || x.lo != e->hash_lo))
        bad = "content differs from the manifest's ETag";
out:
    close(fd);
    return bad;
}

int nm_hashing_use_manifest(struct nm_hashing *h, int root_fd, struct nm_manifest *m,
                            void (*warn)(void *arg, const char *path, const char *why), void *arg)
{
    if (h->manifest) {
        nm_manifest_free(m);
        return -EALREADY;
    }
    size_t n = nm_manifest_count(m);
    bool *kept = calloc(n ? n : 1, sizeof(*kept));
    if (!kept) {
        nm_manifest_free(m);
        return -ENOMEM;
    }
    int n_kept = 0;
    for (size_t i = 0; i < n; i++) {
        const struct nm_manifest_entry *e = nm_manifest_at(m, i);
        char why[160];
        const char *bad = check_entry(h, root_fd, e, why, sizeof(why));
        if (bad) {
            if (warn)
                warn(arg, e->path, bad);
            continue;
        }
        kept[i] = true;
        n_kept++;
    }
    count(&h->from_manifest, (uint64_t)n_kept);
    h->manifest = m;
    h->manifest_kept = kept;
    return n_kept;
}

bool nm_hashing_manifest_last_modified(const struct nm_hashing *h, const char *path, uint64_t size,
                                       struct nm_hash128 hash, int64_t *out)
{
    if (!h->manifest)
        return false;
    const struct nm_manifest_entry *e = nm_manifest_find(h->manifest, path);
    if (!e || !h->manifest_kept[e - nm_manifest_at(h->manifest, 0)] || e->size != size ||
        e->hash_hi != hash.hi || e->hash_lo != hash.lo)
        return false;
    *out = e->last_modified;
    return true;
}

/* ---- counters ---------------------------------------------------------------------------------
 */

void nm_hashing_count_small(struct nm_hashing *h, uint64_t bytes)
{
    count(&h->small_files, 1);
    count(&h->small_bytes, bytes);
}

void nm_hashing_get_stats(const struct nm_hashing *h, struct nm_hashing_stats *out)
{
    struct nm_hashing *m = (struct nm_hashing *)h;
    out->hashed_files = atomic_load(&m->hashed_files);
    out->hashed_bytes = atomic_load(&m->hashed_bytes);
    out->small_files = atomic_load(&m->small_files);
    out->small_bytes = atomic_load(&m->small_bytes);
    out->from_xattr = atomic_load(&m->from_xattr);
    out->from_manifest = atomic_load(&m->from_manifest);
    out->persisted = atomic_load(&m->persisted);
    out->discarded = atomic_load(&m->discarded);
    out->waited_racy = atomic_load(&m->waited_racy);
    out->prehash_files = atomic_load(&m->prehash_files);
    out->prehash_done = atomic_load(&m->prehash_done);
}

int nm_hashing_format_stats(const struct nm_hashing_stats *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "hashed_files=%llu hashed_bytes=%llu small_files=%llu small_bytes=%llu "
                     "from_xattr=%llu from_manifest=%llu persisted=%llu discarded=%llu "
                     "waited_racy=%llu prehash_files=%llu",
                     (unsigned long long)s->hashed_files, (unsigned long long)s->hashed_bytes,
                     (unsigned long long)s->small_files, (unsigned long long)s->small_bytes,
                     (unsigned long long)s->from_xattr, (unsigned long long)s->from_manifest,
                     (unsigned long long)s->persisted, (unsigned long long)s->discarded,
                     (unsigned long long)s->waited_racy, (unsigned long long)s->prehash_files);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

/* ---- one file on its own ------------------------------------------------------------------- */

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
        if (was.size > o->small_file_bytes && !o->rehash &&
            nm_hashing_xattr_read(fd, &was, &h) == 0) {
            from_xattr = true;
        } else {
            int rc = nm_hashing_hash_fd(fd, was.size, NULL, &h);
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
        if (!o->rehash && nm_hashing_xattr_read(fd, &was, &have) == 0 && have.hi == h.hi &&
            have.lo == h.lo)
            return 0;
        if (nm_hashing_is_racy(&was, nm_hashing_now_ns())) {
            *stored = -EAGAIN;
            return 0;
        }
        int rc = nm_hashing_xattr_write(fd, &was, h);
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
