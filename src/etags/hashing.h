/* Content hashes for ETags: XXH3-128 of a file's bytes, paid once per file version. A
 * process-wide memo keyed by (dev, ino) and checked by (size, mtime_ns, ctime_ns), the
 * ETag store outside the tree across restarts (store.h), the user.notmod.etag extended attribute
 * stamped at deploy time and written only when asked (attr.h), a deploy manifest (manifest.h),
 * and a small pool of low-priority threads so that no event loop ever waits for a hash. Format:
 * docs/etags.md. The object's functions live by concern: hashing.c (versions, creation,
 * counters, one file on its own), memo.c (lookups, persistence), pool.c, walk.c, manifest.c. */
#ifndef NOTMOD_HASHING_H
#define NOTMOD_HASHING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/base.h"

/* One version of one file, as fstat(2) describes it. */
struct nm_file_version {
    uint64_t dev;
    uint64_t ino;
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
};

/* A version whose ctime is less than this old when it is looked at is "racy": a write in the same
 * timestamp tick could leave size, mtime and ctime as they were (git's racy-clean problem, and
 * filesystems with 1 or 2 second timestamps). A racy version is never hashed from disk, trusted
 * from the memo or persisted; it waits until it is this old. */
#define NM_HASHING_RACY_NS 2000000000LL

void nm_hashing_version_of(const struct stat *st, struct nm_file_version *out);
bool nm_hashing_version_equal(const struct nm_file_version *a, const struct nm_file_version *b);

/* True when v's ctime is within NM_HASHING_RACY_NS of now_ns (or after it). */
bool nm_hashing_is_racy(const struct nm_file_version *v, int64_t now_ns);

/* CLOCK_REALTIME in nanoseconds, the clock file timestamps come from. */
int64_t nm_hashing_now_ns(void);

/* The content hash of bytes and of a file's bytes: nm_hash_bytes and nm_hash_fd (base/hash.h),
 * under the names the server has always called. */
static inline struct nm_hash128 nm_hashing_hash_bytes(const void *p, size_t n)
{
    return nm_hash_bytes(p, n);
}

static inline int nm_hashing_hash_fd(int fd, uint64_t size, const atomic_bool *stop,
                                     struct nm_hash128 *out)
{
    return nm_hash_fd(fd, size, stop, out);
}

/* The ETag for a hash: nm_etag_make_hash128, 24 bytes with the quotes. */
int nm_hashing_format_etag(struct nm_hash128 h, char *buf, size_t cap);

/* Where a known hash came from. */
enum nm_hash_source {
    NM_HASH_HASHED = 0, /* read and hashed in this process */
    NM_HASH_XATTR,
    NM_HASH_MANIFEST,
    NM_HASH_STORE,
};

/* One file on its own, without memo or pool, as `notmod etag` does it. */
struct nm_hashing_file_options {
    uint64_t small_file_bytes; /* up to this size the bytes are always hashed, as the server does */
    bool rehash;               /* ignore the attribute */
    bool persist;              /* store the attribute when it is not already valid */
};

/* The hash the server would use for the open regular file fd: its bytes up to small_file_bytes,
 * else a valid attribute (unless rehash), else its bytes. With persist, a racy version is first
 * waited out (about NM_HASHING_RACY_NS at most) so that the stored value can be trusted. Writes
 * the version the hash describes (after any attribute write) to *v, and to *stored 1 when an
 * attribute was written, 0 when none was wanted or needed, or the write's -errno. Returns 0,
 * -EAGAIN when the file kept changing while read, -EISDIR or -EINVAL for a directory or special
 * file, or the read's -errno. */
int nm_hashing_hash_file(int fd, const struct nm_hashing_file_options *o, struct nm_hash128 *out,
                         enum nm_hash_source *source, struct nm_file_version *v, int *stored);

struct nm_hashing_options {
    unsigned threads;          /* hashing threads; 0 hashes nothing in the background */
    size_t max_entries;        /* memo capacity; the oldest finished entries go first */
    uint64_t small_file_bytes; /* files up to this size are hashed from memory by their reader */
    bool persist;              /* write the attribute after hashing (into the served tree) */
    bool low_priority;         /* nice 19 and the lowest best-effort I/O priority for the pool */
    /* The ETag store (store.h) in this directory, which must exist, holding store_records
     * records, its keys naming the served root (root_dev, root_ino): hashes are read from it
     * and written to it after hashing, instead of the attribute (persist is then ignored).
     * NULL: no store. */
    const char *store_dir;
    size_t store_records;
    uint64_t root_dev, root_ino;
    /* Hears, once per filesystem, that an attribute write there failed with ENOSPC, EDQUOT or
     * EIO, after which writes there pause for a while, and once per process that a store write
     * failed, after which store writes pause (NULL: nobody). Called from a pool thread or a
     * caller of nm_hashing_remember, without the hashing's lock. */
    __attribute__((format(printf, 1, 2))) void (*warn)(const char *fmt, ...);
};

void nm_hashing_options_init(struct nm_hashing_options *o);

struct nm_hashing;

/* Creates the memo, opens the store (its errors are returned as they are: -EACCES, -EROFS ...)
 * and, with threads > 0, starts the pool. Returns 0 or -errno. */
int nm_hashing_new(const struct nm_hashing_options *o, struct nm_hashing **out);

/* Stops the pool and the prehash walk (a hash in progress is abandoned at its next chunk), joins
 * the threads and frees everything. NULL is a no-op. */
void nm_hashing_free(struct nm_hashing *h);

/* Looks for v's hash: in the memo, then (with fd >= 0, fd being the file at version v) in the
 * store and in fd's attribute; one found outside the memo enters it. Returns 0 and *out, or
 * -ENOENT. Thread-safe. */
int nm_hashing_find(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                    struct nm_hash128 *out);

/* Records a hash the caller computed from fd while fd was at version v (v not racy), persists it
 * in the store or the attribute when the options say so, and returns the version the file has
 * afterwards (its ctime moves when the attribute is written) in *now_v, which may be NULL. */
void nm_hashing_remember(struct nm_hashing *h, int fd, const struct nm_file_version *v,
                         struct nm_hash128 hash, struct nm_file_version *now_v);

/* Forgets v: its file has no name left (unlinked, or renamed over), so no lookup by path can
 * ask for it again, and a deploy or writer that keeps making new files would otherwise leave one
 * entry per file it ever replaced, up to max_entries. The entry goes only when it holds v's hash
 * (not a job in progress, not a write of the attribute). Thread-safe. */
void nm_hashing_forget(struct nm_hashing *h, const struct nm_file_version *v);

/* Asks the pool to hash version v of the open file fd (duplicated; the caller keeps fd). One job
 * per version whoever asks; a racy version waits in the queue until it is old enough. Returns 0
 * when a job is queued or running, -EIO when this version failed to hash less than 30 s ago,
 * -EBUSY when the queue is full, -ENOTSUP without a pool, or -errno from dup. */
int nm_hashing_request(struct nm_hashing *h, int fd, const struct nm_file_version *v);

/* Increases whenever a job finishes, however it ends: a reader waiting for a hash needs to look
 * again only when this has moved. Lock-free. */
unsigned nm_hashing_generation(const struct nm_hashing *h);

/* The change check of a response in progress: true when the file at version `was` now has
 * version `now` only because this process wrote the attribute (same size and mtime, ctime moved
 * by that write). */
bool nm_hashing_is_own_change(struct nm_hashing *h, const struct nm_file_version *was,
                              const struct nm_file_version *now);

/* Counters, all since nm_hashing_new. */
struct nm_hashing_stats {
    uint64_t hashed_files; /* streamed from disk to hash them (pool or caller) */
    uint64_t hashed_bytes;
    uint64_t small_files; /* hashed from memory by the reader that serves them */
    uint64_t small_bytes;
    uint64_t from_memo;      /* versions found hashed in memory (nm_hashing_find) */
    uint64_t from_xattr;     /* versions whose hash the attribute supplied */
    uint64_t from_store;     /* versions whose hash the store supplied */
    uint64_t from_manifest;  /* manifest entries kept (their bytes checked or to be hashed) */
    uint64_t persisted;      /* store records or attributes written */
    uint64_t persist_failed; /* store or attribute writes that failed */
    uint64_t discarded;      /* hashes thrown away because the file changed while hashed */
    uint64_t waited_racy;    /* jobs that waited for their version to stop being racy */
    uint64_t prehash_files;  /* files the startup walk looked at */
    bool prehash_done;
    uint64_t queued; /* jobs waiting to be hashed now (demand, background and delayed) */
};

void nm_hashing_get_stats(const struct nm_hashing *h, struct nm_hashing_stats *out);

/* Counts a small file hashed from memory (for the stats only). Lock-free. */
void nm_hashing_count_small(struct nm_hashing *h, uint64_t bytes);

/* Writes the counters as one line of "key=value" pairs with a NUL. Returns the length or
 * -ENOSPC. */
int nm_hashing_format_stats(const struct nm_hashing_stats *s, char *buf, size_t cap);

/* Starts the startup walk on its own idle-priority thread: every regular file under root_fd
 * (not following symlinks; names starting with '.' only when dotfiles is set) larger than
 * small_file_bytes gets its hash from the memo, the attribute or a background job. `done` is
 * called on that thread once every job the walk queued has finished. Returns 0, -ENOTSUP without
 * a pool, -EALREADY, or -errno. */
int nm_hashing_prehash(struct nm_hashing *h, int root_fd, bool dotfiles,
                       void (*done)(struct nm_hashing *h, void *arg), void *arg);

#endif
