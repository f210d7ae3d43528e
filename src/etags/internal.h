/* What the modules of src/etags share and no other folder sees: the hashing object, its memo
 * entries and its jobs. One mutex, `lock`, guards the memo, the queues and bg_outstanding; the
 * counters are atomic and the hash itself runs unlocked. */
#ifndef NOTMOD_ETAGS_INTERNAL_H
#define NOTMOD_ETAGS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashing.h"
#include "manifest.h"
#include "store.h"

#define NM_HASHING_MAX_NO_XATTR_DEVS 16

/* How long attribute writes on a filesystem, or store writes, pause after one failed for want of
 * space or with an I/O error: long enough that a full disk does not see a write per hashed file. */
#define NM_HASHING_XATTR_BACKOFF_NS (60 * 1000000000LL)

enum nm_memo_state {
    NM_MEMO_NONE = 0, /* nothing known yet (a job could not be queued): never answers */
    NM_MEMO_HASHED,
    NM_MEMO_PENDING, /* a job for v is queued or running */
    NM_MEMO_FAILED,  /* hashing v failed at failed_at_ns */
};

struct nm_job;

/* What the process knows of one file (dev, ino): the last version it saw and that version's
 * hash, or the job that is to find it. */
struct nm_memo_entry {
    struct nm_file_version v;
    int64_t prev_ctime_ns; /* v's ctime before this process wrote the attribute */
    bool has_prev_ctime;
    bool persisting; /* the attribute is being written: ctime is about to move */
    enum nm_memo_state state;
    enum nm_hash_source source;
    struct nm_hash128 hash;
    int64_t failed_at_ns;
    struct nm_job *job; /* the queued job while PENDING and not yet running */
    bool walk_waits;    /* counted in bg_outstanding until this version settles */
    struct nm_memo_entry *chain;
    struct nm_memo_entry *older, *newer; /* insertion order, for eviction */
};

/* Hashing one version of one file on a pool thread. */
struct nm_job {
    struct nm_file_version v;
    int fd;
    bool background; /* queued by the startup walk: runs after every demand job */
    int64_t not_before_ns;
    struct nm_job *next;
};

struct nm_job_queue {
    struct nm_job *head, *tail;
    size_t n;
};

struct nm_hashing {
    struct nm_hashing_options opt;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a job was queued, or stop */
    pthread_cond_t space; /* a background job finished */

    struct nm_memo_entry **buckets;
    size_t n_buckets; /* a power of two */
    size_t n_entries;
    struct nm_memo_entry *oldest, *newest;

    struct nm_job_queue demand, background, delayed;
    size_t bg_outstanding; /* entries the walk waits for (walk_waits) */

    pthread_t *threads;
    unsigned n_threads;
    pthread_t walker;
    bool walker_started;
    atomic_bool stop;
    atomic_uint generation;

    /* Filesystems where attribute writes failed: no more writes there before retry_at_ns
     * (INT64_MAX when they cannot succeed: ENOTSUP, EROFS). */
    struct {
        uint64_t dev;
        int64_t retry_at_ns;
    } no_xattr_devs[NM_HASHING_MAX_NO_XATTR_DEVS];
    size_t n_no_xattr_devs;
    int fail_xattr_errno; /* NOTMOD_TEST_XATTR_ERRNO: every attribute write fails with it */

    struct nm_etag_store *store; /* NULL without one */
    int64_t store_retry_at_ns;   /* no store writes before this (INT64_MAX: never again) */
    bool store_warned;           /* a failed store write was reported */
    int fail_store_errno;        /* NOTMOD_TEST_STORE_ERRNO: every store write fails with it */

    struct nm_manifest *manifest;
    bool *manifest_kept;

    int walk_root_fd;
    bool walk_dotfiles;
    void (*walk_done)(struct nm_hashing *h, void *arg);
    void *walk_done_arg;

    _Atomic uint64_t hashed_files, hashed_bytes, small_files, small_bytes, from_memo, from_xattr,
        from_store, from_manifest, persisted, persist_failed, discarded, waited_racy, prehash_files;
    atomic_bool prehash_done;
};

/* Reads exactly len ASCII digits, without a leading zero (unless the number is 0), as a number
 * up to max: the one spelling of a number the attribute and the manifest accept. */
static inline bool nm__parse_decimal(const char *p, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || (len > 1 && p[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Adds n to one of the counters. Lock-free. */
static inline void nm__hashing_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

#endif
