/* The on-the-fly variant cache: a table of (version, coding) slots under one mutex, a FIFO of
 * jobs for one low-priority thread, and an LRU list of finished slots within the byte budget. */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

#define N_BUCKETS 4096u

struct nm_variants_cache_entry {
    atomic_uint refs;
    void *bytes; /* from the codec, freed with free() */
    size_t len;
    struct nm_hash128 hash;
};

enum slot_state {
    SLOT_QUEUED,      /* a job for it waits or runs */
    SLOT_READY,       /* entry holds the coded bytes */
    SLOT_NOT_SMALLER, /* coding did not pay: remembered so it is not tried again */
};

struct slot {
    struct nm_variants_cache_key key;
    uint64_t key_hash;
    enum slot_state state;
    struct nm_variants_cache_entry *entry;
    struct slot *chain;
    struct slot *lru_prev, *lru_next; /* finished slots only, most recently used first */
};

struct job {
    struct slot *slot;
    int fd;    /* -1 when mem holds the source */
    char *mem; /* a copy of a source held in memory */
    struct job *next;
};

struct nm_variants_cache {
    struct nm_variants_cache_options opt;
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t idle; /* the queue emptied and the thread finished its job */
    pthread_t thread;
    bool stop;
    bool busy;
    struct job *head, *tail;
    size_t queued;
    struct slot *buckets[N_BUCKETS];
    struct slot *lru_head, *lru_tail;
    struct nm_variants_cache_stats stats;
};

/* A finished slot costs its coded bytes and its bookkeeping. */
static uint64_t cost_of(const struct slot *s)
{
    return sizeof(*s) + (s->entry ? s->entry->len : 0);
}

void nm_variants_cache_options_init(struct nm_variants_cache_options *o)
{
    o->budget_bytes = (uint64_t)64 << 20;
    o->queue_max = 256;
    o->low_priority = true;
}

static uint64_t hash_key(const struct nm_variants_cache_key *k)
{
    uint64_t in[7] = {k->dev,
                      k->ino,
                      k->size,
                      (uint64_t)k->mtime_ns,
                      k->hash.hi,
                      (uint64_t)k->ctime_ns ^ k->hash.lo,
                      (uint64_t)k->coding};
    struct nm_hash128 h = nm_hash_bytes(in, sizeof(in));
    return h.lo;
}

static bool same_key(const struct nm_variants_cache_key *a, const struct nm_variants_cache_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns && a->hash.hi == b->hash.hi &&
           a->hash.lo == b->hash.lo && a->coding == b->coding;
}

static void lru_unlink(struct nm_variants_cache *c, struct slot *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(struct nm_variants_cache *c, struct slot *s)
{
    s->lru_prev = NULL;
    s->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = s;
    c->lru_head = s;
    if (!c->lru_tail)
        c->lru_tail = s;
}

/* Takes a slot out of the table and frees it; a finished one leaves the LRU list and the
 * budget too. */
static void slot_remove(struct nm_variants_cache *c, struct slot *s)
{
    struct slot **pp = &c->buckets[s->key_hash % N_BUCKETS];
    while (*pp != s)
        pp = &(*pp)->chain;
    *pp = s->chain;
    if (s->state != SLOT_QUEUED) {
        lru_unlink(c, s);
        c->stats.bytes -= cost_of(s);
        if (s->state == SLOT_READY)
            c->stats.entries--;
    }
    nm_variants_cache_entry_release(s->entry);
    free(s);
}

static struct slot *slot_find(struct nm_variants_cache *c, const struct nm_variants_cache_key *k,
                              uint64_t kh)
{
    for (struct slot *s = c->buckets[kh % N_BUCKETS]; s; s = s->chain)
        if (s->key_hash == kh && same_key(&s->key, k))
            return s;
    return NULL;
}

static void evict_over_budget(struct nm_variants_cache *c)
{
    while (c->stats.bytes > c->opt.budget_bytes && c->lru_tail) {
        slot_remove(c, c->lru_tail);
        c->stats.evicted++;
    }
}

/* ---- the job ---- */

static int64_t ts_ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool is_version(const struct stat *st, const struct nm_variants_cache_key *k)
{
    return (uint64_t)st->st_dev == k->dev && (uint64_t)st->st_ino == k->ino &&
           (uint64_t)st->st_size == k->size && ts_ns(st->st_mtim) == k->mtime_ns &&
           ts_ns(st->st_ctim) == k->ctime_ns;
}

/* Reads key's version whole from fd into a new buffer: fstat before and after must show that
 * version, and nothing may follow its last byte. */
static int read_version(int fd, const struct nm_variants_cache_key *k, char **out)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !is_version(&st, k))
        return -ESTALE;
    char *buf = malloc(k->size ? k->size : 1);
    if (!buf)
        return -ENOMEM;
    uint64_t got = 0;
    while (got < k->size) {
        ssize_t n = pread(fd, buf + got, (size_t)(k->size - got), (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail_free_buf;
        got += (uint64_t)n;
    }
    char extra;
    if (pread(fd, &extra, 1, (off_t)k->size) != 0 || fstat(fd, &st) != 0 || !is_version(&st, k))
        goto fail_free_buf;
    *out = buf;
    return 0;
fail_free_buf:
    free(buf);
    return -ESTALE;
}

static int level_of(enum nm_coding coding)
{
    switch (coding) {
    case NM_CODING_GZIP:
        return NM_VARIANTS_CACHE_LEVEL_GZIP;
    case NM_CODING_ZSTD:
        return NM_VARIANTS_CACHE_LEVEL_ZSTD;
    case NM_CODING_BR:
        return NM_VARIANTS_CACHE_LEVEL_BR;
    default:
        return NM_VARIANTS_LEVEL_DEFAULT;
    }
}

/* Runs one job without the lock: 0 and *out, -ENODATA when coding does not pay, or another
 * negative errno when the source changed or failed. */
static int run_job(const struct job *j, struct nm_variants_cache_entry **out)
{
    const struct nm_variants_cache_key *k = &j->slot->key;
    char *src = j->mem;
    int rc = 0;
    if (!src)
        rc = read_version(j->fd, k, &src);
    if (rc < 0)
        return rc;
    struct nm_hash128 h = nm_hash_bytes(src, (size_t)k->size);
    void *coded = NULL;
    size_t coded_len = 0;
    if (h.hi != k->hash.hi || h.lo != k->hash.lo)
        rc = -ESTALE; /* not the bytes the caller's tag describes */
    if (rc == 0)
        rc = nm_variants_codec_compress(k->coding, level_of(k->coding), src, (size_t)k->size,
                                        &coded, &coded_len);
    if (src != j->mem)
        free(src);
    if (rc < 0)
        return rc;
    if (coded_len >= k->size) {
        free(coded);
        return -ENODATA;
    }
    struct nm_variants_cache_entry *e = malloc(sizeof(*e));
    if (!e) {
        free(coded);
        return -ENOMEM;
    }
    atomic_init(&e->refs, 1);
    e->bytes = coded;
    e->len = coded_len;
    e->hash = nm_hash_bytes(coded, coded_len);
    *out = e;
    return 0;
}

static void lower_priority(void)
{
    setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
}

static void *cache_main(void *arg)
{
    struct nm_variants_cache *c = arg;
    if (c->opt.low_priority)
        lower_priority();
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && !c->head)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->stop)
            break;
        struct job *j = c->head;
        c->head = j->next;
        if (!c->head)
            c->tail = NULL;
        c->queued--;
        c->busy = true;
        pthread_mutex_unlock(&c->lock);

        struct nm_variants_cache_entry *e = NULL;
        int rc = run_job(j, &e);
        if (j->fd >= 0)
            close(j->fd);
        free(j->mem);

        pthread_mutex_lock(&c->lock);
        struct slot *s = j->slot;
        free(j);
        if (rc == 0 || rc == -ENODATA) {
            s->state = rc == 0 ? SLOT_READY : SLOT_NOT_SMALLER;
            s->entry = e;
            c->stats.bytes += cost_of(s);
            if (rc == 0) {
                c->stats.compressed++;
                c->stats.entries++;
            } else {
                c->stats.not_smaller++;
            }
            lru_push_front(c, s);
            evict_over_budget(c);
        } else {
            c->stats.discarded++;
            slot_remove(c, s);
        }
        c->busy = false;
        if (!c->head)
            pthread_cond_broadcast(&c->idle);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- the interface ---- */

int nm_variants_cache_new(const struct nm_variants_cache_options *o, struct nm_variants_cache **out)
{
    struct nm_variants_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->opt = *o;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->idle, NULL);
    if (pthread_create(&c->thread, NULL, cache_main, c) != 0) {
        pthread_cond_destroy(&c->idle);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -EAGAIN;
    }
    *out = c;
    return 0;
}

void nm_variants_cache_free(struct nm_variants_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_broadcast(&c->work);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    while (c->head) {
        struct job *j = c->head;
        c->head = j->next;
        if (j->fd >= 0)
            close(j->fd);
        free(j->mem);
        free(j);
    }
    for (size_t i = 0; i < N_BUCKETS; i++)
        while (c->buckets[i])
            slot_remove(c, c->buckets[i]);
    pthread_cond_destroy(&c->idle);
    pthread_cond_destroy(&c->work);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Queues the first job of a version, under the lock. */
static int queue_job(struct nm_variants_cache *c, const struct nm_variants_cache_key *k,
                     uint64_t kh, int fd, const void *mem)
{
    if (c->queued >= c->opt.queue_max) {
        c->stats.refused++;
        return -EAGAIN;
    }
    struct job *j = calloc(1, sizeof(*j));
    struct slot *s = calloc(1, sizeof(*s));
    if (!j || !s)
        goto fail_free;
    j->fd = -1;
    if (mem) {
        j->mem = malloc(k->size ? k->size : 1);
        if (!j->mem)
            goto fail_free;
        memcpy(j->mem, mem, (size_t)k->size);
    } else {
        j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (j->fd < 0)
            goto fail_free;
    }
    s->key = *k;
    s->key_hash = kh;
    s->state = SLOT_QUEUED;
    s->chain = c->buckets[kh % N_BUCKETS];
    c->buckets[kh % N_BUCKETS] = s;
    j->slot = s;
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->queued++;
    pthread_cond_signal(&c->work);
    return -EAGAIN;
fail_free:
    if (j)
        free(j->mem);
    free(j);
    free(s);
    return -EAGAIN;
}

int nm_variants_cache_get(struct nm_variants_cache *c, const struct nm_variants_cache_key *key,
                          int fd, const void *mem, struct nm_variants_cache_entry **out)
{
    if (key->coding != NM_CODING_GZIP && key->coding != NM_CODING_ZSTD &&
        key->coding != NM_CODING_BR)
        return -EINVAL;
    /* A source whose coded bytes could exceed the budget would evict itself at once. */
    if (key->size + sizeof(struct slot) > c->opt.budget_bytes)
        return -ENODATA;
    uint64_t kh = hash_key(key);
    pthread_mutex_lock(&c->lock);
    struct slot *s = slot_find(c, key, kh);
    int rc;
    if (!s) {
        rc = queue_job(c, key, kh, fd, mem);
    } else if (s->state == SLOT_QUEUED) {
        rc = -EAGAIN;
    } else {
        lru_unlink(c, s);
        lru_push_front(c, s);
        rc = s->state == SLOT_READY ? 0 : -ENODATA;
        if (rc == 0)
            *out = nm_variants_cache_entry_acquire(s->entry);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int nm_variants_cache_drain(struct nm_variants_cache *c, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    while ((c->head || c->busy) && rc == 0)
        if (pthread_cond_timedwait(&c->idle, &c->lock, &until) == ETIMEDOUT)
            rc = -ETIMEDOUT;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

const char *nm_variants_cache_entry_bytes(const struct nm_variants_cache_entry *e)
{
    return e->bytes;
}

size_t nm_variants_cache_entry_len(const struct nm_variants_cache_entry *e)
{
    return e->len;
}

struct nm_hash128 nm_variants_cache_entry_hash(const struct nm_variants_cache_entry *e)
{
    return e->hash;
}

struct nm_variants_cache_entry *nm_variants_cache_entry_acquire(struct nm_variants_cache_entry *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void nm_variants_cache_entry_release(struct nm_variants_cache_entry *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(e->bytes);
    free(e);
}

void nm_variants_cache_get_stats(struct nm_variants_cache *c, struct nm_variants_cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}
