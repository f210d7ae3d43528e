/* The file table: a normalized URL path maps to one version of one file, opened once, with its
 * validators and header lines rendered once. One table per worker: no locks on the hot path. */
#ifndef NOTMOD_FILECACHE_H
#define NOTMOD_FILECACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "etags/etags.h"
#include "mime.h"
#include "notmod/etag.h"
#include "variants/variants.h"

/* The header fields of a version's common responses, rendered once (handler.c: the 304's and the
 * 200's fields that depend only on the version and the site's configuration, as "Name: value\r\n"
 * lines) and copied whole into every such response after. Its contents are the handler's; the
 * table only frees it with the entry. */
#define NM_FILE_HEAD_BYTES 640
struct nm_file_head {
    uint64_t config_serial;  /* nm_site.config_serial it was rendered under */
    bool as_variant;         /* rendered for the version answered as another file's variant */
    bool unfit[2];           /* the 304's [0] or 200's [1] fields did not fit: never rendered */
    uint16_t off[2], len[2]; /* where each is in bytes; len 0 before it is rendered */
    uint16_t used;
    char bytes[NM_FILE_HEAD_BYTES];
};

/* One version of one file: (dev, ino, size, mtime_ns, ctime_ns) identify it. */
struct nm_file {
    unsigned refs;
    char *path; /* normalized URL path, the key */
    uint64_t key_hash;
    struct nm_file *chain;               /* next in the hash bucket */
    struct nm_file *lru_prev, *lru_next; /* most recently used first */
    bool in_table;

    int fd; /* -1 for a file held in memory (data): it is not read again */
    dev_t dev;
    ino_t ino;
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
    bool is_dir;

    bool has_etag;
    struct nm_etag etag; /* points into etag_text */
    char etag_text[NM_ETAG_MAX + 1];
    bool hash_pending;          /* content ETag not known yet: served without one meanwhile */
    unsigned hash_generation;   /* nm_hashing_generation when the memo was last asked */
    bool racy;                  /* bytes read too soon after a change to be trusted next time */
    struct nm_hashing *hashing; /* for the change check; NULL without a pool */
    bool has_content_hash;      /* content mode, once known: the hash the ETag was made from */
    struct nm_hash128 content_hash;

    /* A sidecar (a path ending in .br, .zst or .gz while its coding is in cfg->precompressed):
     * its coding and what nm_variants_record_read said while the descriptor was open (0 and
     * record, -ENODATA for no record, another negative errno for a bad one). Others:
     * NM_CODING_IDENTITY. */
    enum nm_coding sidecar_coding;
    int record_rc;
    struct nm_variants_record record;
    bool stale_warned; /* this sidecar version was logged as stale once */

    /* Variants of this version made on the fly (variants/cache.h), by coding: entries made once
     * each is ready, held until this one goes; fly_refused has the codings that did not pay. An
     * entry of fly[] is a view: fd -1, data the cached bytes, fly_entry its reference to them
     * (its data is then not freed), path NULL, never in a table. */
    struct nm_file *fly[NM_CODING_COUNT];
    unsigned fly_refused;
    struct nm_variants_cache_entry *fly_entry;

    bool has_last_modified; /* false for the fake epoch mtimes 0 and 1 */
    int64_t last_modified;  /* whole seconds; the response clamps it to Date */

    const char *content_type; /* lives as long as the mime table */
    char cache_control[NM_CACHE_CONTROL_MAX + 1];
    int64_t max_age; /* from cache_control, -1 when none */

    /* The bytes, for files up to small_file_bytes while the table's budget has room for them
     * (cfg->hold_budget_bytes): hashed and served from these. */
    char *data;
    uint64_t racy_held_bytes; /* data of a larger racy version, held (nm_filecache_lookup) */

    /* A read lease on fd (fcntl F_SETLEASE), taken before the version was read, whose break
     * notice goes to the thread that loaded the entry: while it holds, no one can open the file
     * for writing or truncate it, so its bytes are the version's and may go by sendfile. */
    bool leased;
    bool stale; /* the lease broke: the next lookup loads the file again */

    /* Watching (nm_filecache_set_watch): the table's watch generation when this entry was last
     * confirmed under watched directories, 0 when the next lookup must stat it. `missing` is
     * the error a cached absence answers (a sidecar that is not there), 0 for a file. */
    uint64_t watch_gen;
    int missing;

    /* The pre-rendered fields of this version's 200 and 304 (struct nm_file_head), made by the
     * handler at the first such response; NULL before. Freed with the entry; never copied. */
    struct nm_file_head *head;
};

struct nm_filecache;

/* Takes the root directory (an O_PATH or O_DIRECTORY descriptor the cache does not own) and the
 * settings and mime table, which must outlive the cache. Returns 0 or -ENOMEM. */
int nm_filecache_new(const struct nm_config *cfg, const struct nm_mime_table *mime, int root_fd,
                     struct nm_filecache **out);

/* Content ETags through a process-wide hashing object (which must outlive the cache and every
 * entry): files held in memory are hashed from those bytes; larger ones take their hash from the
 * memo, the attribute, or (up to cfg->hash_threshold_bytes and not racy) a hash done here;
 * anything else is asked of the pool and served without an ETag until the hash exists. Without
 * it, every file is hashed here when loaded. Call before the first lookup. */
void nm_filecache_set_hashing(struct nm_filecache *fc, struct nm_hashing *h);

/* Learns of changes from inotify rather than a stat per lookup: `inotify_fd` (non-blocking, not
 * taken) gets a watch on the directory of each loaded entry and on its ancestors up to the root,
 * added lazily and before the stat it vouches for. An entry confirmed by a stat is then found
 * again without one until nm_filecache_note_event marks it (an event naming it, or its
 * directory for a directory entry), or marks everything (a directory renamed, removed or
 * created, a watched directory's own move or removal, a dropped watch, a queue overflow). An
 * entry keeps the stat per lookup when it cannot be watched: a filesystem other than ext2/3/4,
 * xfs, btrfs or tmpfs, a watch refused (the ENOSPC of max_user_watches), a symlink, more than
 * one link, another device than its directory, a racy version, more watched directories than
 * the cap. With watching, a missing sidecar (a path with a suffix of cfg->precompressed) is
 * remembered as missing until an event names it. Call before the first lookup; -1 (the
 * default) keeps a stat per lookup. */
void nm_filecache_set_watch(struct nm_filecache *fc, int inotify_fd);

/* Whether inotify sees every change of the filesystem holding path: ext2/3/4, xfs, btrfs and
 * tmpfs, whose changes all pass through this kernel. Network and FUSE filesystems, overlays and
 * the rest are not trusted. */
bool nm_filecache_is_watchable_fs(const char *path);

/* Takes one event read from the table's inotify descriptor (wd -1 with IN_Q_OVERFLOW marks
 * everything). Events of watches the table does not know are ignored. */
void nm_filecache_note_event(struct nm_filecache *fc, int wd, uint32_t mask, const char *name);

/* Releases every entry the table holds; entries still referenced live until released. */
void nm_filecache_free(struct nm_filecache *fc);

/* Finds the current version of `path` (a normalized path from nm_path_normalize). A stat per
 * call (none for an entry watched and not marked since, see nm_filecache_set_watch) tells
 * whether the cached version is still current; a changed file is opened, hashed and
 * rendered again, and so is one held in memory whose version was racy (nm_hashing_is_racy) when
 * read. With content ETags a racy version above small_file_bytes, up to hash_threshold_bytes, is
 * held in memory too (read whole, tagged with the hash of those bytes and sent from them; not
 * kept in the table, which would load it again anyway) while the worker's racy files hold at
 * most 8 MiB, counted until each entry's last reference goes;
 * beyond that it goes out untagged until it settles, and once settled it is loaded as a large
 * file again. A pending entry takes its ETag (and a manifest's Last-Modified) once the pool's
 * generation moves and the memo has it. Resolution never leaves the root: symlinks are followed
 * only while they stay beneath it, unless the config allows all. Returns 0 and a new reference in
 * *out, or -ENOENT (also a symlink out of the root, so it answers as a missing file does),
 * -EACCES (unreadable, not a regular file or directory, a symlink loop), -ENOTDIR, -EMFILE,
 * -ENOMEM, -EIO. A file up to small_file_bytes is held in memory (data) while the table's held
 * bytes stay within cfg->hold_budget_bytes: to make room the least recently used held entries
 * leave the table (loaded again at their next lookup), and a file larger than the whole budget
 * is served from its descriptor. On -EMFILE, -ENFILE or -ENOMEM the coldest entries (up to 64) are
 * let go and the load is tried once more, so the table shrinks under a descriptor or memory limit.
 * Without openat2 (ENOSYS, or EPERM from a seccomp profile that predates it), and for a path
 * openat2 saw leave the root, the path is resolved a name at a time and each link's target read as
 * text, so a link out of the root is -ENOENT whatever its target is (missing, a loop, unreadable)
 * and nothing outside the root is opened or stat'ed, the per-call stat included; an absolute target
 * inside the root (as its real path or as configured) is followed.
 */
int nm_filecache_lookup(struct nm_filecache *fc, const char *path, struct nm_file **out);

struct nm_file *nm_file_acquire(struct nm_file *f);

/* Drops a reference; the last one closes the descriptor and frees the entry. NULL is a no-op. */
void nm_file_release(struct nm_file *f);

/* True when the open file still has the size, mtime and ctime it had when it was hashed, or
 * differs only by the ctime this process's own attribute write moved, or only by the ctime its
 * unlink moved (no link left: renamed over or deleted) when that version had settled (was not
 * racy): a response that is sending it checks this after reading its last bytes and before they
 * leave. */
bool nm_file_is_unchanged(const struct nm_file *f);

/* The real-time signal a broken lease is told by (with the descriptor in si_fd). Every thread
 * must block it, and SIGIO (sent instead when the queue of real-time signals is full), before the
 * first lookup of a cache whose cfg->sendfile is on; the loading thread reads them (signalfd). */
int nm_filecache_lease_signal(void);

/* True while f's read lease holds: taken when it was loaded (cfg->sendfile on, a regular file
 * larger than cfg->small_file_bytes, and the kernel agreed), and neither broken nor let go since.
 * One fcntl when f was leased; a lease found broken makes f stale, but is kept until
 * nm_file_unlease (or the last release) lets it go. */
bool nm_file_is_leased(struct nm_file *f);

/* Lets f's lease go (F_UNLCK), so that a writer whose open broke it goes on, and makes f stale:
 * a lookup loads the file again. A no-op for an entry without a lease. */
void nm_file_unlease(struct nm_file *f);

/* The lease on descriptor fd broke: the table's entry with that descriptor, if any, lets its lease
 * go and is loaded again at its next lookup. fd -1 (notices were lost) checks every leased entry
 * of the table. A notice for a lease that holds (its descriptor was closed and the number reused)
 * changes nothing. Returns how many entries let their lease go. */
int nm_filecache_lease_broken(struct nm_filecache *fc, int fd);

/* Counters, for the server's log and tests: lookups, hits, files and bytes hashed by this
 * cache (from memory or inline), and entries that got their ETag later from the pool. */
struct nm_filecache_stats {
    uint64_t lookups;
    uint64_t hits;
    uint64_t hashed_files;
    uint64_t hashed_bytes;
    uint64_t pending_filled;
    uint64_t racy_held;  /* racy versions above small_file_bytes read whole (nm_filecache_lookup) */
    uint64_t stat_calls; /* lookups that asked the filesystem (a stat) */
    uint64_t watched_dirs; /* directories with a watch now */
    uint64_t held_files;   /* entries of the table whose bytes are held (data), now */
    uint64_t held_bytes;   /* their sizes added up: never above cfg->hold_budget_bytes */
    uint64_t held_evicted; /* held entries let go to make room under the budget */
};

void nm_filecache_get_stats(const struct nm_filecache *fc, struct nm_filecache_stats *out);

#endif
