/* Compressed variants made by the server itself, for files without sidecars: one process-wide
 * cache of (source version, coding) -> coded bytes, filled by one background thread at low
 * priority from a bounded queue, least recently used entries dropped past a byte budget. A caller
 * never waits: it asks, and is told the bytes are ready or not yet. */
#ifndef NOTMOD_VARIANTS_CACHE_H
#define NOTMOD_VARIANTS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/coding.h"

/* The level each coding is compressed at here: fast ones, the same on every replica, so that the
 * same source gives the same bytes (codec.h) and therefore the same strong tag. */
#define NM_VARIANTS_CACHE_LEVEL_GZIP 6
#define NM_VARIANTS_CACHE_LEVEL_ZSTD 3
#define NM_VARIANTS_CACHE_LEVEL_BR 5

/* One version of a source and its content hash: what the coded bytes are made from. */
struct nm_variants_cache_key {
    uint64_t dev;
    uint64_t ino;
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
    struct nm_hash128 hash; /* XXH3-128 of the source bytes (nm_hash_bytes) */
    enum nm_coding coding;  /* gzip, zstd or br */
};

/* The cache; thread-safe. */
struct nm_variants_cache;

/* Coded bytes, shared: alive while the cache or any holder keeps a reference. */
struct nm_variants_cache_entry;

struct nm_variants_cache_options {
    uint64_t budget_bytes; /* coded bytes kept by the cache (entries held elsewhere live on) */
    size_t queue_max;      /* jobs waiting for the thread; more are refused */
    bool low_priority;     /* nice 19 and the lowest best-effort I/O priority for the thread */
};

struct nm_variants_cache_stats {
    uint64_t compressed;  /* jobs that produced an entry */
    uint64_t not_smaller; /* jobs whose output would not have been smaller than the source */
    uint64_t discarded;   /* jobs whose source changed, or could not be read or coded */
    uint64_t refused;     /* asks not queued: queue full */
    uint64_t evicted;     /* entries dropped for the budget */
    uint64_t bytes;       /* coded bytes the cache holds now */
    uint64_t entries;     /* ready entries the cache holds now */
};

/* Fills the defaults: 64 MiB, 256 queued jobs, low priority. */
void nm_variants_cache_options_init(struct nm_variants_cache_options *o);

/* Starts the thread. Returns 0, -ENOMEM or -EAGAIN. */
int nm_variants_cache_new(const struct nm_variants_cache_options *o,
                          struct nm_variants_cache **out);

/* Stops the thread (the job it runs is finished first), closes the queued jobs and drops the
 * cache's references; entries held elsewhere live until released. NULL is a no-op. */
void nm_variants_cache_free(struct nm_variants_cache *c);

/* Asks for the coded bytes of key. Returns 0 and a new reference in *out when they are ready;
 * -EAGAIN when they are not yet: the first ask of a version queues one job (later asks while it
 * is queued or running queue nothing), reading the source from `mem` (key->size bytes, copied
 * now) or else from `fd` (duplicated now; read later, and used only when fstat shows key's
 * version before and after the read and the bytes hash to key->hash); -ENODATA when the coded
 * bytes would not be smaller than the source (remembered, not tried again for that version);
 * -EINVAL for an identity or unknown coding. A job whose source changed or failed leaves
 * nothing behind, so a later ask queues it again. Never blocks on a job; thread-safe. */
int nm_variants_cache_get(struct nm_variants_cache *c, const struct nm_variants_cache_key *key,
                          int fd, const void *mem, struct nm_variants_cache_entry **out);

/* Waits until the queue is empty and the thread idle, up to timeout_ms. Returns 0 or -ETIMEDOUT.
 * For tests and benchmarks. */
int nm_variants_cache_drain(struct nm_variants_cache *c, int timeout_ms);

/* The coded bytes of an entry (valid while the reference is held), their length, and their
 * XXH3-128 (the entry's content tag is made from it). */
const char *nm_variants_cache_entry_bytes(const struct nm_variants_cache_entry *e);
size_t nm_variants_cache_entry_len(const struct nm_variants_cache_entry *e);
struct nm_hash128 nm_variants_cache_entry_hash(const struct nm_variants_cache_entry *e);

/* References: the last release frees the bytes. Thread-safe; releasing NULL is a no-op. */
struct nm_variants_cache_entry *nm_variants_cache_entry_acquire(struct nm_variants_cache_entry *e);
void nm_variants_cache_entry_release(struct nm_variants_cache_entry *e);

void nm_variants_cache_get_stats(struct nm_variants_cache *c, struct nm_variants_cache_stats *out);

#endif
