/* The per-worker file table: open once, hash and render once per version; a stat per request, or
 * none while inotify watches the directories and reports no change (docs/etags.md). */
#include "filecache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "notmod/path.h"
#include "variants/variants.h"

#define MAX_ENTRIES 8192
#define READ_TRIES 3
#define RACY_HELD_MAX_BYTES (8u << 20) /* racy files above small_file_bytes held, per worker */

/* Bytes this worker (a thread) holds for racy files read whole (hold_racy), until the last
 * reference to each goes: the responses still sending one count too. */
static _Thread_local uint64_t racy_held_bytes;

#define LEASE_SIGNAL_OFFSET 3 /* above SIGRTMIN, which glibc may move past the ones it keeps */

#define MAX_DIRS 16384    /* watched directories per table; deeper than that, a stat per lookup */
#define DIR_BUCKETS 1024u /* a power of two */

#ifndef IN_MASK_CREATE
#define IN_MASK_CREATE 0x10000000 /* Linux 4.18: fail with EEXIST rather than share a watch */
#endif

/* Every way a name in a watched directory can come to name other bytes or metadata. */
#define WATCH_MASK                                                                                 \
    (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |            \
     IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)

/* A directory of the tree with an inotify watch: its URL path ("/" or "/a/b/") and whether what
 * it reports can be trusted (wd -1: it cannot be watched, its entries are stat'ed). */
struct dir_watch {
    char *path;
    size_t len;
    uint64_t path_hash;
    int wd;
    dev_t dev;
    struct dir_watch *path_next, *wd_next;
};

struct nm_filecache {
    const struct nm_config *cfg;
    const struct nm_mime_table *mime;
    int root_fd;
    bool have_openat2;
    struct nm_hashing *hashing;
    struct nm_file **buckets;
    size_t n_buckets; /* a power of two */
    size_t n_entries;
    struct nm_file *lru_head, *lru_tail;
    struct nm_filecache_stats stats;
    int watch_fd;       /* inotify, -1 when not watching */
    uint64_t watch_gen; /* entries confirmed at another generation are stat'ed again; never 0 */
    struct dir_watch *dirs_by_path[DIR_BUCKETS];
    struct dir_watch *dirs_by_wd[DIR_BUCKETS];
    size_t n_dirs;
};

static uint64_t hash_path(const char *s)
{
    return nm_hash_bytes(s, strlen(s)).lo;
}

void nm_filecache_set_hashing(struct nm_filecache *fc, struct nm_hashing *h)
{
    fc->hashing = h;
}

int nm_filecache_new(const struct nm_config *cfg, const struct nm_mime_table *mime, int root_fd,
                     struct nm_filecache **out)
{
    struct nm_filecache *fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    fc->n_buckets = 4096;
    fc->buckets = calloc(fc->n_buckets, sizeof(*fc->buckets));
    if (!fc->buckets) {
        free(fc);
        return -ENOMEM;
    }
    fc->cfg = cfg;
    fc->mime = mime;
    fc->root_fd = root_fd;
    fc->have_openat2 = true;
    fc->watch_fd = -1;
    fc->watch_gen = 1;
    *out = fc;
    return 0;
}

struct nm_file *nm_file_acquire(struct nm_file *f)
{
    f->refs++;
    return f;
}

static void drop_data(struct nm_file *f)
{
    if (f->racy_held_bytes)
        munmap(f->data, f->racy_held_bytes);
    else
        free(f->data);
    racy_held_bytes -= f->racy_held_bytes;
    f->racy_held_bytes = 0;
    f->data = NULL;
}

void nm_file_release(struct nm_file *f)
{
    if (!f || --f->refs > 0)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int c = 0; c < NM_CODING_COUNT; c++)
        nm_file_release(f->fly[c]);
    if (f->fly_entry)
        nm_variants_cache_entry_release(f->fly_entry);
    else
        drop_data(f);
    free(f->head);
    free(f->path);
    free(f);
}

static void lru_unlink(struct nm_filecache *fc, struct nm_file *f)
{
    if (f->lru_prev)
        f->lru_prev->lru_next = f->lru_next;
    else
        fc->lru_head = f->lru_next;
    if (f->lru_next)
        f->lru_next->lru_prev = f->lru_prev;
    else
        fc->lru_tail = f->lru_prev;
    f->lru_prev = f->lru_next = NULL;
}

static void lru_push_front(struct nm_filecache *fc, struct nm_file *f)
{
    f->lru_prev = NULL;
    f->lru_next = fc->lru_head;
    if (fc->lru_head)
        fc->lru_head->lru_prev = f;
    fc->lru_head = f;
    if (!fc->lru_tail)
        fc->lru_tail = f;
}

static void version_of_file(const struct nm_file *f, struct nm_file_version *v);

/* A file read from its descriptor whose last name is gone (renamed over or deleted): no lookup
 * can reach that version again, so the memo forgets it rather than keep an entry per file a
 * writer ever replaced. */
static void forget_if_unlinked(struct nm_filecache *fc, struct nm_file *f)
{
    struct stat st;
    if (!fc->hashing || f->fd < 0 || !f->has_content_hash || fstat(f->fd, &st) != 0 ||
        st.st_nlink > 0)
        return;
    struct nm_file_version v;
    version_of_file(f, &v);
    nm_hashing_forget(fc->hashing, &v);
}

/* The bytes an entry of the table holds for its body, counted against cfg->hold_budget_bytes: a
 * file read whole when loaded. A racy version's mapping (hold_racy) never enters the table and
 * has its own bound; a view's bytes (fly) belong to the variants cache. */
static uint64_t held_size(const struct nm_file *f)
{
    return f->data && !f->racy_held_bytes && !f->fly_entry ? f->size : 0;
}

static void table_remove(struct nm_filecache *fc, struct nm_file *f)
{
    forget_if_unlinked(fc, f);
    if (held_size(f)) {
        fc->stats.held_files--;
        fc->stats.held_bytes -= f->size;
    }
    struct nm_file **pp = &fc->buckets[f->key_hash & (fc->n_buckets - 1)];
    while (*pp != f)
        pp = &(*pp)->chain;
    *pp = f->chain;
    lru_unlink(fc, f);
    f->in_table = false;
    fc->n_entries--;
    nm_file_release(f);
}

static void evict_if_full(struct nm_filecache *fc)
{
    while (fc->n_entries >= MAX_ENTRIES && fc->lru_tail)
        table_remove(fc, fc->lru_tail);
}

/* ---- watching: inotify in place of a stat per lookup ---- */

static struct nm_file *find_entry(const struct nm_filecache *fc, const char *path, uint64_t h)
{
    struct nm_file *f = fc->buckets[h & (fc->n_buckets - 1)];
    while (f && (f->key_hash != h || strcmp(f->path, path) != 0))
        f = f->chain;
    return f;
}

static void table_insert(struct nm_filecache *fc, struct nm_file *nf, uint64_t h)
{
    evict_if_full(fc);
    nf->key_hash = h;
    nf->chain = fc->buckets[h & (fc->n_buckets - 1)];
    fc->buckets[h & (fc->n_buckets - 1)] = nf;
    nf->in_table = true;
    lru_push_front(fc, nf);
    fc->n_entries++;
    if (held_size(nf)) {
        fc->stats.held_files++;
        fc->stats.held_bytes += nf->size;
    }
}

/* Room under the budget for a body of `size` bytes about to be read whole: the coldest held
 * bodies are let go first. An entry let go leaves the table rather than go on from its
 * descriptor: a held file's descriptor was closed once its bytes were read (thousands of small
 * files must not keep as many open), and a descriptor opened again could be another version, so
 * the next lookup loads it again (held, letting colder bodies go in turn). Responses still
 * sending a body that was let go keep it until they end. False when the body alone is over the
 * budget: it is served from its descriptor then, as a larger file is. */
static bool make_room(struct nm_filecache *fc, uint64_t size)
{
    uint64_t budget = fc->cfg->hold_budget_bytes;
    if (size > budget)
        return false;
    for (struct nm_file *f = fc->lru_tail; f && fc->stats.held_bytes + size > budget;) {
        struct nm_file *colder = f;
        f = f->lru_prev;
        if (held_size(colder)) {
            table_remove(fc, colder);
            fc->stats.held_evicted++;
        }
    }
    return true;
}

void nm_filecache_set_watch(struct nm_filecache *fc, int inotify_fd)
{
    fc->watch_fd = inotify_fd;
}

static void mark_all(struct nm_filecache *fc)
{
    if (++fc->watch_gen == 0)
        fc->watch_gen = 1;
}

static void unlink_dir(struct nm_filecache *fc, struct dir_watch *d)
{
    struct dir_watch **pp = &fc->dirs_by_path[d->path_hash & (DIR_BUCKETS - 1)];
    while (*pp != d)
        pp = &(*pp)->path_next;
    *pp = d->path_next;
    pp = &fc->dirs_by_wd[(unsigned)d->wd & (DIR_BUCKETS - 1)];
    while (*pp != d)
        pp = &(*pp)->wd_next;
    *pp = d->wd_next;
    fc->n_dirs--;
    if (d->wd >= 0)
        fc->stats.watched_dirs--;
}

/* Forgets the directories whose path starts with prefix, and their watches: a directory moved
 * away keeps its watch (it follows the inode), which no longer speaks for this path. */
static void drop_dirs_under(struct nm_filecache *fc, const char *prefix, size_t len)
{
    for (size_t b = 0; b < DIR_BUCKETS; b++) {
        struct dir_watch *d = fc->dirs_by_path[b];
        while (d) {
            struct dir_watch *next = d->path_next;
            if (d->len >= len && memcmp(d->path, prefix, len) == 0) {
                unlink_dir(fc, d);
                if (d->wd >= 0)
                    inotify_rm_watch(fc->watch_fd, d->wd);
                free(d->path);
                free(d);
            }
            d = next;
        }
    }
}

static void drop_dirs_of_wd(struct nm_filecache *fc, int wd, bool remove_watch)
{
    struct dir_watch *d = fc->dirs_by_wd[(unsigned)wd & (DIR_BUCKETS - 1)];
    while (d) {
        struct dir_watch *next = d->wd_next;
        if (d->wd == wd) {
            unlink_dir(fc, d);
            if (remove_watch)
                inotify_rm_watch(fc->watch_fd, wd);
            remove_watch = false;
            free(d->path);
            free(d);
        }
        d = next;
    }
}

/* Filesystems whose every change passes through this kernel's VFS, so inotify sees it: no
 * network or FUSE filesystem (another client's write raises no event), no overlay. */
bool nm_filecache_is_watchable_fs(const char *p)
{
    struct statfs sf;
    if (statfs(p, &sf) != 0)
        return false;
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:     /* ext2, ext3, ext4 */
    case 0x58465342: /* xfs */
    case 0x9123683E: /* btrfs */
    case 0x01021994: /* tmpfs */
        return true;
    default:
        return false;
    }
}

/* The record of directory dpath ("/" or "/a/b/"), watched now if it was not: NULL when it
 * cannot be watched (its entries then keep a stat per lookup). *added says the watch is new, so
 * a stat made before it is not vouched for. */
static struct dir_watch *ensure_dir(struct nm_filecache *fc, const char *dpath, size_t dlen,
                                    bool *added)
{
    uint64_t h = nm_hash_bytes(dpath, dlen).lo;
    struct dir_watch *d = fc->dirs_by_path[h & (DIR_BUCKETS - 1)];
    while (d && (d->path_hash != h || d->len != dlen || memcmp(d->path, dpath, dlen) != 0))
        d = d->path_next;
    if (d)
        return d->wd >= 0 ? d : NULL;
    if (fc->n_dirs >= MAX_DIRS)
        return NULL;
    char p[64 + NM_PATH_MAX];
    int n = snprintf(p, sizeof(p), "/proc/self/fd/%d/%.*s", fc->root_fd, (int)dlen - 1, dpath + 1);
    if (n < 0 || (size_t)n >= sizeof(p))
        return NULL;
    if (p[n - 1] == '/')
        p[n - 1] = '\0'; /* no trailing slash: it would follow a symlink the flags refuse */
    /* Below the root a symlink is not watched (its target's events come from elsewhere); the
     * root itself is reached through the descriptor's magic link. */
    uint32_t flags = WATCH_MASK | IN_ONLYDIR | IN_MASK_CREATE | (dlen > 1 ? IN_DONT_FOLLOW : 0);
    int wd = inotify_add_watch(fc->watch_fd, p, flags);
    if (wd < 0 && errno != ENOSPC && errno != ENOMEM)
        return NULL; /* not there, not a directory, watched under another path: asked again */
    struct stat st;
    if (wd >= 0 && (!nm_filecache_is_watchable_fs(p) || stat(p, &st) != 0)) {
        inotify_rm_watch(fc->watch_fd, wd);
        wd = -1;
    }
    d = calloc(1, sizeof(*d));
    char *copy = d ? malloc(dlen + 1) : NULL;
    if (!copy) {
        free(d);
        if (wd >= 0)
            inotify_rm_watch(fc->watch_fd, wd);
        return NULL;
    }
    memcpy(copy, dpath, dlen);
    copy[dlen] = '\0';
    *d = (struct dir_watch){.path = copy, .len = dlen, .path_hash = h, .wd = wd};
    if (wd >= 0)
        d->dev = st.st_dev;
    d->path_next = fc->dirs_by_path[h & (DIR_BUCKETS - 1)];
    fc->dirs_by_path[h & (DIR_BUCKETS - 1)] = d;
    d->wd_next = fc->dirs_by_wd[(unsigned)wd & (DIR_BUCKETS - 1)];
    fc->dirs_by_wd[(unsigned)wd & (DIR_BUCKETS - 1)] = d;
    fc->n_dirs++;
    if (wd < 0)
        return NULL;
    fc->stats.watched_dirs++;
    *added = true;
    return d;
}

/* Watches every directory above path's last component, from the root down, before the stat
 * they will vouch for: a rename of any of them is then an event. Returns the innermost, or NULL
 * when one cannot be watched (or for "/", which has none). */
static struct dir_watch *watch_parents(struct nm_filecache *fc, const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    struct dir_watch *d = NULL;
    bool added = false;
    for (size_t i = 0; i < len; i++) {
        if (path[i] != '/')
            continue;
        d = ensure_dir(fc, path, i + 1, &added);
        if (!d)
            return NULL;
    }
    return d;
}

/* Whether an entry just confirmed by a stat (st, made after its parents were watched) may be
 * found again without one until an event marks it. */
static bool is_trustworthy(struct nm_filecache *fc, const struct nm_file *f, const struct stat *st,
                           struct dir_watch *parent)
{
    struct nm_file_version v = {(uint64_t)f->dev, (uint64_t)f->ino, f->size, f->mtime_ns,
                                f->ctime_ns};
    /* A racy version keeps the existing rules (docs/etags.md, "Racy versions"): a stat, or a
     * read for bytes held in memory, at every lookup until it settles. */
    if ((f->racy && f->data) || nm_hashing_is_racy(&v, nm_hashing_now_ns()))
        return false;
    if (!f->is_dir)
        /* Another link's writes are reported to its own directory; a bind mount's to none. */
        return parent && st->st_nlink == 1 && parent->dev == f->dev;
    size_t len = strlen(f->path);
    while (len > 1 && f->path[len - 1] == '/')
        len--;
    char own[NM_PATH_MAX + 2];
    if (len + 2 > sizeof(own))
        return false;
    memcpy(own, f->path, len);
    if (len > 1)
        own[len++] = '/';
    bool added = false;
    struct dir_watch *d = (len == 1 || parent) ? ensure_dir(fc, own, len, &added) : NULL;
    /* Its own watch came after this stat: the next lookup stats again, under it. */
    return d && !added && d->dev == f->dev;
}

static void mark_path(struct nm_filecache *fc, const char *path)
{
    struct nm_file *f = find_entry(fc, path, hash_path(path));
    if (f)
        f->watch_gen = 0;
}

void nm_filecache_note_event(struct nm_filecache *fc, int wd, uint32_t mask, const char *name)
{
    if (fc->watch_fd < 0)
        return;
    if (mask & IN_Q_OVERFLOW) {
        mark_all(fc); /* events were lost: nothing is known */
        return;
    }
    struct dir_watch *d = fc->dirs_by_wd[(unsigned)wd & (DIR_BUCKETS - 1)];
    while (d && d->wd != wd)
        d = d->wd_next;
    if (!d || wd < 0)
        return;
    if (mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
        /* The directory left this path (or its watch went): everything beneath it, and its
         * subdirectories' watches, no longer say anything about the paths they were set for. */
        char *prefix = strdup(d->path);
        drop_dirs_of_wd(fc, wd, (mask & IN_MOVE_SELF) != 0);
        if (prefix)
            drop_dirs_under(fc, prefix, strlen(prefix));
        free(prefix);
        mark_all(fc);
        return;
    }
    char p[NM_PATH_MAX + NAME_MAX + 4];
    /* The directory's own entries ("/a/" and "/a"): its listing changes with any name in it. */
    mark_path(fc, d->path);
    if (d->len > 1) {
        memcpy(p, d->path, d->len - 1);
        p[d->len - 1] = '\0';
        mark_path(fc, p);
    }
    if (!name || !*name || d->len + strlen(name) + 2 > sizeof(p))
        return;
    int n = snprintf(p, sizeof(p), "%s%s/", d->path, name);
    if ((mask & IN_ISDIR) && (mask & (IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE))) {
        /* A directory renamed, replaced or removed: every path beneath it may name other
         * files now, and its watches (which follow the inodes) speak for other paths. */
        drop_dirs_under(fc, p, (size_t)n);
        mark_all(fc);
        return;
    }
    mark_path(fc, p);
    p[n - 1] = '\0';
    mark_path(fc, p);
}

/* A sidecar that is not there, remembered while its directory's watch says nothing: the handler
 * asks for every configured coding of every file it serves. */
static void remember_missing(struct nm_filecache *fc, const char *path, uint64_t h, int err)
{
    struct nm_file *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->refs = 1;
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return;
    }
    f->missing = err;
    f->watch_gen = fc->watch_gen;
    table_insert(fc, f, h);
}

void nm_filecache_free(struct nm_filecache *fc)
{
    if (!fc)
        return;
    while (fc->lru_head)
        table_remove(fc, fc->lru_head);
    drop_dirs_under(fc, "/", 1);
    free(fc->buckets);
    free(fc);
}

static int64_t ts_ns(struct timespec ts)
{
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool same_version(const struct nm_file *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino && f->size == (uint64_t)st->st_size &&
           f->mtime_ns == ts_ns(st->st_mtim) && f->ctime_ns == ts_ns(st->st_ctim);
}

/* A file renamed over (or deleted) while open: the unlink moved its ctime, not its bytes. With no
 * link left no path reaches it; a write through a descriptor opened before would move the mtime
 * to the clock, which cannot equal the mtime of a version whose ctime settled more than the racy
 * window ago (docs/etags.md, "Racy versions"). A deploy that renames files into place must not
 * cut short the responses sending the files it replaces. */
static bool only_unlinked(const struct nm_file *f, const struct stat *st,
                          const struct nm_file_version *was)
{
    return st->st_nlink == 0 && f->dev == st->st_dev && f->ino == st->st_ino &&
           f->size == (uint64_t)st->st_size && f->mtime_ns == ts_ns(st->st_mtim) &&
           !nm_hashing_is_racy(was, nm_hashing_now_ns());
}

bool nm_file_is_unchanged(const struct nm_file *f)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return false;
    if (same_version(f, &st))
        return true;
    struct nm_file_version was = {(uint64_t)f->dev, (uint64_t)f->ino, f->size, f->mtime_ns,
                                  f->ctime_ns},
                           now;
    if (only_unlinked(f, &st, &was))
        return true;
    if (!f->hashing)
        return false;
    nm_hashing_version_of(&st, &now);
    return nm_hashing_is_own_change(f->hashing, &was, &now);
}

int nm_filecache_lease_signal(void)
{
    return SIGRTMIN + LEASE_SIGNAL_OFFSET;
}

bool nm_file_is_leased(struct nm_file *f)
{
    if (!f->leased || f->stale)
        return false;
    /* A break pending reads as F_UNLCK, and so does a lease the kernel took back after
     * lease-break-time. The lease itself is let go only by nm_file_unlease, once the responses
     * that spliced the file have been cut. */
    if (fcntl(f->fd, F_GETLEASE) == F_RDLCK)
        return true;
    f->stale = true;
    return false;
}

void nm_file_unlease(struct nm_file *f)
{
    if (!f->leased)
        return;
    fcntl(f->fd, F_SETLEASE, F_UNLCK);
    f->leased = false;
    f->stale = true;
}

int nm_filecache_lease_broken(struct nm_filecache *fc, int fd)
{
    int n = 0;
    for (struct nm_file *f = fc->lru_head; f; f = f->lru_next) {
        if (!f->leased || (fd >= 0 && f->fd != fd) || fcntl(f->fd, F_GETLEASE) == F_RDLCK)
            continue;
        nm_file_unlease(f);
        n++;
    }
    return n;
}

/* The read lease of a file served from its descriptor, taken before its version is read: from
 * then on no one can open it for writing (or truncate it) without the kernel telling this thread
 * first and waiting for the lease to go, so the version about to be read stays the bytes until
 * the notice is handled. A lease is refused while anyone has the file open for writing (EAGAIN),
 * to a process that does not own it without CAP_LEASE (EACCES), with leases off, or by a file
 * system without them: the body is then copied and checked (send.c). Signal and owner are set
 * first, so no break can find the lease without them. */
static void take_lease(struct nm_filecache *fc, struct nm_file *f)
{
    struct stat st;
    if (!fc->cfg->sendfile || fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size <= fc->cfg->small_file_bytes)
        return;
    /* An unblocked real-time signal would end the process: a thread that does not read the
     * notices (nm_filecache_lease_signal) takes no lease. */
    sigset_t blocked;
    if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0 ||
        !sigismember(&blocked, nm_filecache_lease_signal()) || !sigismember(&blocked, SIGIO))
        return;
    struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = gettid()};
    if (fcntl(f->fd, F_SETSIG, nm_filecache_lease_signal()) != 0 ||
        fcntl(f->fd, F_SETOWN_EX, &owner) != 0)
        return;
    f->leased = fcntl(f->fd, F_SETLEASE, F_RDLCK) == 0;
}

/* Opens for reading what an O_PATH descriptor names, only when it is a regular file or a
 * directory: opening a device node or a FIFO can have side effects, so its type is looked at
 * first, without opening it. Closes pfd. */
static int reopen_servable(struct nm_filecache *fc, int pfd, const char *rel)
{
    struct stat st;
    if (fstat(pfd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        close(pfd);
        return -EACCES;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", pfd);
    int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT && rel) /* no /proc: the checked path, opened again */
        fd = openat(fc->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int err = errno;
    close(pfd);
    return fd >= 0 ? fd : -err;
}

/* `target` less the root it begins with, as the canonical root (`root`) or as configured (an
 * absolute cfg->root, which may pass through links of its own): NULL when it begins with neither,
 * which means it points out of the root. */
static const char *strip_root(const struct nm_filecache *fc, const char *root, const char *target)
{
    const char *roots[2] = {root, fc->cfg->root};
    for (int i = 0; i < 2; i++) {
        const char *r = roots[i];
        if (!r || r[0] != '/')
            continue;
        size_t n = strlen(r);
        while (n > 1 && r[n - 1] == '/')
            n--;
        if (n == 1)
            return target + 1; /* the root is "/" */
        if (strncmp(target, r, n) == 0 && (target[n] == '/' || target[n] == '\0'))
            return target + n;
    }
    return NULL;
}

/* Without openat2, or for a path openat2 saw leave the root (EXDEV): resolves one component at
 * a time from the root, reading each symlink and splicing its target into what is left, so a link
 * out of the root (an absolute target elsewhere, a ".." above it) is known as such from its text,
 * before anything outside is opened or stat'ed: -ENOENT, a missing file's answer, whatever the
 * target is. Returns an O_PATH descriptor, or -ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG, -errno. */
static int walk_beneath(struct nm_filecache *fc, const char *rel)
{
    char root[PATH_MAX], at[PATH_MAX], rest[PATH_MAX], target[PATH_MAX], spliced[PATH_MAX];
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fc->root_fd);
    ssize_t rn = readlink(link, root, sizeof(root) - 1);
    root[rn > 0 ? rn : 0] = '\0';
    size_t at_len = 0, pos = 0;
    at[0] = '\0';
    if (snprintf(rest, sizeof(rest), "%s", rel) >= (int)sizeof(rest))
        return -ENAMETOOLONG;
    for (int links = 0;;) {
        while (rest[pos] == '/')
            pos++;
        if (!rest[pos]) { /* the root itself, or a name with a trailing slash: a directory */
            int dfd = openat(fc->root_fd, at_len ? at : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
            return dfd >= 0 ? dfd : -errno;
        }
        size_t n = strcspn(rest + pos, "/");
        const char *name = rest + pos;
        pos += n;
        if (n == 1 && name[0] == '.')
            continue;
        if (n == 2 && name[0] == '.' && name[1] == '.') {
            if (at_len == 0)
                return -ENOENT; /* above the root */
            while (at_len > 0 && at[at_len - 1] != '/')
                at_len--;
            at_len -= at_len > 0; /* the slash before the last name */
            at[at_len] = '\0';
            continue;
        }
        if (at_len + 1 + n >= sizeof(at))
            return -ENAMETOOLONG;
        size_t was = at_len;
        if (at_len)
            at[at_len++] = '/';
        memcpy(at + at_len, name, n);
        at_len += n;
        at[at_len] = '\0';
        int pfd = openat(fc->root_fd, at, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
            return -errno;
        struct stat st;
        if (fstat(pfd, &st) != 0) {
            int err = errno;
            close(pfd);
            return -err;
        }
        bool last = rest[pos + strspn(rest + pos, "/")] == '\0';
        if (!S_ISLNK(st.st_mode)) {
            if (!last && !S_ISDIR(st.st_mode)) {
                close(pfd);
                return -ENOTDIR;
            }
            if (last && rest[pos] == '\0')
                return pfd;
            close(pfd);
            continue;
        }
        /* At most 40 links per resolution, the kernel's bound (path_resolution(7)). */
        ssize_t tn = ++links > 40 ? -1 : readlinkat(pfd, "", target, sizeof(target) - 1);
        int err = links > 40 ? ELOOP : errno;
        close(pfd);
        if (tn <= 0)
            return tn == 0 ? -ENOENT : -err;
        target[tn] = '\0';
        at_len = was;
        at[at_len] = '\0';
        const char *from = target;
        if (target[0] == '/') {
            from = strip_root(fc, root, target);
            if (!from)
                return -ENOENT; /* an absolute target out of the root */
            at_len = 0;
            at[0] = '\0';
        }
        if (snprintf(spliced, sizeof(spliced), "%s%s", from, rest + pos) >= (int)sizeof(spliced))
            return -ENAMETOOLONG;
        memcpy(rest, spliced, sizeof(rest));
        pos = 0;
    }
}

/* An O_PATH descriptor of a path relative to the root, resolved without leaving it; a path that
 * leaves it is -ENOENT. */
static int path_beneath(struct nm_filecache *fc, const char *rel)
{
    if (fc->cfg->follow_all_symlinks) {
        int pfd = openat(fc->root_fd, rel, O_PATH | O_CLOEXEC);
        return pfd >= 0 ? pfd : -errno;
    }
    if (fc->have_openat2) {
        struct open_how how = {
            .flags = O_PATH | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long pfd = syscall(SYS_openat2, fc->root_fd, rel, &how, sizeof(how));
        if (pfd >= 0)
            return (int)pfd;
        /* EXDEV: the path left the root on the way, by an absolute link (which may name a place
         * inside it) or a "..": the walk decides, from the links' text. A seccomp profile older
         * than openat2 refuses it with EPERM rather than ENOSYS: O_PATH opens fail with EPERM
         * for no other reason, so both mean the call is not there. */
        if (errno != ENOSYS && errno != EPERM && errno != EXDEV)
            return -errno;
        if (errno == ENOSYS || errno == EPERM)
            fc->have_openat2 = false;
    }
    /* Kernels before 5.6, or a path that left the root on the way. */
    int pfd = walk_beneath(fc, rel);
    if (pfd < 0)
        return pfd;
    /* The walk looked at each name once; one renamed under it since could have moved it: the
     * inode reached must still lie beneath the root. */
    char link[64], root[PATH_MAX], got[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fc->root_fd);
    ssize_t rn = readlink(link, root, sizeof(root) - 1);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", pfd);
    ssize_t gn = readlink(link, got, sizeof(got) - 1);
    if (rn <= 0 || gn <= 0) {
        close(pfd);
        return -EACCES;
    }
    root[rn] = got[gn] = '\0';
    size_t rl = (size_t)rn;
    bool inside = strncmp(root, got, rl) == 0 &&
                  (got[rl] == '/' || got[rl] == '\0' || (rl == 1 && root[0] == '/'));
    if (!inside) {
        /* The same answer as a missing file: nothing about the outside is revealed. */
        close(pfd);
        return -ENOENT;
    }
    return pfd;
}

/* Opens a path relative to the root without leaving it; a path that ends outside it is -ENOENT. */
static int open_beneath(struct nm_filecache *fc, const char *rel)
{
    int pfd = path_beneath(fc, rel);
    if (pfd < 0)
        return pfd;
    return reopen_servable(fc, pfd, fc->cfg->follow_all_symlinks ? rel : NULL);
}

/* The stat of a path relative to the root, resolved as open_beneath does: nothing outside the
 * root is stat'ed, and a path that leaves it is -ENOENT. */
static int stat_beneath(struct nm_filecache *fc, const char *rel, struct stat *st)
{
    if (fc->cfg->follow_all_symlinks)
        return fstatat(fc->root_fd, rel, st, 0) == 0 ? 0 : -errno;
    int pfd = path_beneath(fc, rel);
    if (pfd < 0)
        return pfd;
    int rc = fstat(pfd, st) == 0 ? 0 : -errno;
    close(pfd);
    return rc;
}

static int read_all(int fd, char *buf, uint64_t size)
{
    uint64_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EAGAIN; /* shrank while being read */
        got += (uint64_t)n;
    }
    char extra;
    return pread(fd, &extra, 1, (off_t)size) == 0 ? 0 : -EAGAIN; /* or grew */
}

static void version_of_file(const struct nm_file *f, struct nm_file_version *v)
{
    *v = (struct nm_file_version){(uint64_t)f->dev, (uint64_t)f->ino, f->size, f->mtime_ns,
                                  f->ctime_ns};
}

static void set_content_etag(struct nm_filecache *fc, struct nm_file *f, struct nm_hash128 h)
{
    int n = nm_hashing_format_etag(h, f->etag_text, sizeof(f->etag_text));
    if (n < 0)
        return;
    f->etag.opaque = nm_slice_make(f->etag_text, (size_t)n);
    f->etag.weak = false;
    f->has_etag = true;
    f->hash_pending = false;
    f->has_content_hash = true;
    f->content_hash = h;
    /* The manifest's date only for the bytes it describes: same path, size and hash. */
    int64_t lm;
    if (fc->hashing && nm_hashing_manifest_last_modified(fc->hashing, f->path, f->size, h, &lm)) {
        f->last_modified = lm;
        f->has_last_modified = lm > 1;
    }
}

/* A file not held in memory: a known hash, one computed here when small and settled enough, or
 * a job for the pool while the file is served without an ETag. */
static int content_hash_of_fd(struct nm_filecache *fc, struct nm_file *f)
{
    struct nm_file_version v;
    version_of_file(f, &v);
    struct nm_hash128 h;
    if (!fc->hashing) {
        int rc = nm_hashing_hash_fd(f->fd, f->size, NULL, &h);
        if (rc < 0)
            return rc;
        fc->stats.hashed_files++;
        fc->stats.hashed_bytes += f->size;
        set_content_etag(fc, f, h);
        return 0;
    }
    if (nm_hashing_find(fc->hashing, f->fd, &v, &h) == 0) {
        set_content_etag(fc, f, h);
        return 0;
    }
    if (f->size <= fc->cfg->hash_threshold_bytes && !nm_hashing_is_racy(&v, nm_hashing_now_ns())) {
        int rc = nm_hashing_hash_fd(f->fd, f->size, NULL, &h);
        if (rc < 0)
            return rc;
        if (!nm_file_is_unchanged(f))
            return -EAGAIN;
        struct nm_file_version now;
        nm_hashing_remember(fc->hashing, f->fd, &v, h, &now);
        f->ctime_ns = now.ctime_ns; /* our attribute write moved it */
        fc->stats.hashed_files++;
        fc->stats.hashed_bytes += f->size;
        set_content_etag(fc, f, h);
        return 0;
    }
    f->hash_pending = true;
    f->hash_generation = nm_hashing_generation(fc->hashing);
    nm_hashing_request(fc->hashing, f->fd, &v); /* a refusal is retried when a job ends */
    return 0;
}

/* A pending entry looks at the memo again only after some job has finished. */
static void refresh_pending(struct nm_filecache *fc, struct nm_file *f)
{
    unsigned g = nm_hashing_generation(fc->hashing);
    if (g == f->hash_generation)
        return;
    struct nm_file_version v;
    version_of_file(f, &v);
    struct nm_hash128 h;
    if (nm_hashing_find(fc->hashing, -1, &v, &h) == 0) {
        set_content_etag(fc, f, h);
        fc->stats.pending_filled++;
        return;
    }
    nm_hashing_request(fc->hashing, f->fd, &v);
    f->hash_generation = g;
}

static int make_etag(struct nm_filecache *fc, struct nm_file *f)
{
    int n;
    f->has_etag = false;
    f->hash_pending = false;
    switch (fc->cfg->etag_mode) {
    case NM_ETAG_CONTENT:
        if (!f->data)
            return content_hash_of_fd(fc, f);
        /* Held in memory: the tag is computed from the very bytes that will be sent. */
        set_content_etag(fc, f, nm_hashing_hash_bytes(f->data, f->size));
        fc->stats.hashed_files++;
        fc->stats.hashed_bytes += f->size;
        if (fc->hashing)
            nm_hashing_count_small(fc->hashing, f->size);
        return 0;
    case NM_ETAG_METADATA:
        n = nm_etag_make_metadata(f->size, f->mtime_ns, f->etag_text, sizeof(f->etag_text));
        break;
    case NM_ETAG_VERSION:
        n = snprintf(f->etag_text, sizeof(f->etag_text), "%s", fc->cfg->etag_version);
        break;
    default:
        return 0;
    }
    if (n < 0)
        return n;
    f->has_etag = true;
    f->etag.opaque = nm_slice_make(f->etag_text, (size_t)n);
    f->etag.weak = false;
    return 0;
}

/* A racy version (f->racy) above small_file_bytes, up to the hash threshold, with content
 * ETags: read whole, then hashed and served from those bytes as a small file is, so that a
 * rewrite in the same timestamp tick cannot change what is sent under the tag unseen. The lookup
 * loads it again while it is racy, so it is not kept in the table: its memory lives only as long
 * as the responses sending it; once the file settles it is a large file as usual. Beyond the
 * worker's bound (RACY_HELD_MAX_BYTES) nothing is read: it goes out untagged until it settles.
 * Returns 0, or a read_all error. */
static int hold_racy(struct nm_filecache *fc, struct nm_file *f)
{
    if (!f->racy || fc->cfg->etag_mode != NM_ETAG_CONTENT ||
        f->size > fc->cfg->hash_threshold_bytes || racy_held_bytes + f->size > RACY_HELD_MAX_BYTES)
        return 0;
    /* Mapped, not malloc'ed: a megabyte that lives two seconds goes back to the system when
     * freed, rather than raising malloc's mmap threshold and staying in a worker's arena. */
    void *p = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    f->data = p;
    f->racy_held_bytes = f->size;
    racy_held_bytes += f->size;
    fc->stats.racy_held++;
    return read_all(f->fd, f->data, f->size);
}

/* The coding whose sidecar suffix ends `path`, when sidecars of that coding are served. */
static enum nm_coding sidecar_coding_of(const struct nm_config *cfg, const char *path)
{
    size_t plen = strlen(path);
    for (size_t i = 0; i < cfg->n_precompressed; i++) {
        const char *suffix = nm_coding_suffix(cfg->precompressed[i]);
        size_t n = suffix ? strlen(suffix) : 0;
        if (n > 0 && plen > n + 1 && strcmp(path + plen - n, suffix) == 0)
            return cfg->precompressed[i];
    }
    return NM_CODING_IDENTITY;
}

/* Opens, snapshots, reads (small files) and hashes one version. A file that changes while it is
 * read or hashed is tried again, so the tag always describes the bytes it was computed from. */
static int load(struct nm_filecache *fc, const char *path, struct nm_file **out)
{
    const char *rel = path[1] ? path + 1 : ".";
    struct nm_file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->refs = 1;
    f->fd = -1;
    f->hashing = fc->hashing;
    f->path = strdup(path);
    int rc = f->path ? 0 : -ENOMEM;
    if (rc < 0)
        goto fail;
    f->fd = open_beneath(fc, rel);
    if (f->fd < 0) {
        rc = f->fd;
        goto fail;
    }
    take_lease(fc, f); /* before the version is read: see take_lease */
    for (int attempt = 0;; attempt++) {
        struct stat st;
        if (fstat(f->fd, &st) != 0) {
            rc = -errno;
            goto fail;
        }
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = (uint64_t)st.st_size;
        f->mtime_ns = ts_ns(st.st_mtim);
        f->ctime_ns = ts_ns(st.st_ctim);
        f->is_dir = S_ISDIR(st.st_mode);
        int64_t mtime = f->mtime_ns / 1000000000;
        f->has_last_modified = mtime > 1;
        f->last_modified = mtime;
        struct nm_file_version v;
        version_of_file(f, &v);
        f->racy = nm_hashing_is_racy(&v, nm_hashing_now_ns());
        if (f->is_dir)
            break;
        if (!S_ISREG(st.st_mode)) {
            rc = -EACCES;
            goto fail;
        }
        drop_data(f);
        rc = 0;
        if (f->size <= fc->cfg->small_file_bytes && make_room(fc, f->size)) {
            f->data = malloc(f->size ? f->size : 1);
            if (!f->data) {
                rc = -ENOMEM;
                goto fail;
            }
            rc = read_all(f->fd, f->data, f->size);
        } else {
            rc = hold_racy(fc, f);
        }
        if (rc == 0)
            rc = make_etag(fc, f);
        f->sidecar_coding = sidecar_coding_of(fc->cfg, path);
        /* Read before the change check: a record written after these bytes moves the ctime,
         * so the version is read again rather than vouched for by a record of newer bytes. */
        if (rc == 0 && f->sidecar_coding != NM_CODING_IDENTITY)
            f->record_rc = nm_variants_record_read(f->fd, f->sidecar_coding, &f->record);
        if (rc == 0 && nm_file_is_unchanged(f))
            break;
        if (rc != 0 && rc != -EAGAIN)
            goto fail;
        if (attempt + 1 == READ_TRIES) {
            rc = -EAGAIN;
            goto fail;
        }
    }

    f->content_type = nm_mime_lookup(fc->mime, path);
    const char *cc =
        nm_config_cache_control(fc->cfg, path, f->cache_control, sizeof(f->cache_control));
    if (cc != f->cache_control)
        snprintf(f->cache_control, sizeof(f->cache_control), "%s", cc);
    f->max_age = nm_config_max_age_of(f->cache_control);
    if (f->data) {
        /* Served from memory and revalidated by path: the descriptor is not needed again, and
         * thousands of small files must not hold thousands of descriptors. A lease (a file that
         * shrank while loading) goes with it. */
        close(f->fd);
        f->fd = -1;
        f->leased = false;
    }
    *out = f;
    return 0;
fail:
    nm_file_release(f);
    return rc == -ELOOP ? -EACCES : rc;
}

static void hit(struct nm_filecache *fc, struct nm_file *f, struct nm_file **out)
{
    fc->stats.hits++;
    if (f->hash_pending)
        refresh_pending(fc, f);
    lru_unlink(fc, f);
    lru_push_front(fc, f);
    *out = nm_file_acquire(f);
}

/* The stat of a lookup. Watching, the last component is not followed first: an entry reached
 * through a symlink is stat'ed again at every lookup (its target's directory reports its
 * changes, not this one), so *via_link says so. */
static int stat_path(struct nm_filecache *fc, const char *rel, struct stat *st, bool *via_link)
{
    fc->stats.stat_calls++;
    *via_link = false;
    int rc = stat_beneath(fc, rel, st);
    if (rc == 0 && fc->watch_fd >= 0) {
        /* Resolved beneath the root: only then is its last component looked at itself. */
        struct stat link;
        *via_link =
            fstatat(fc->root_fd, rel, &link, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(link.st_mode);
    }
    return rc;
}

int nm_filecache_lookup(struct nm_filecache *fc, const char *path, struct nm_file **out)
{
    fc->stats.lookups++;
    uint64_t h = hash_path(path);
    struct nm_file *f = find_entry(fc, path, h);
    /* Watched and no event since it was confirmed (docs/etags.md, "Watching"). */
    if (f && f->watch_gen == fc->watch_gen && !f->stale) {
        if (f->missing) {
            lru_unlink(fc, f);
            lru_push_front(fc, f);
            return f->missing;
        }
        hit(fc, f, out);
        return 0;
    }

    /* The watches go first, so that a change after the stat below is an event. */
    struct dir_watch *parent = fc->watch_fd >= 0 ? watch_parents(fc, path) : NULL;
    const char *rel = path[1] ? path + 1 : ".";
    struct stat st;
    bool via_link;
    int err = stat_path(fc, rel, &st, &via_link);
    if (err != 0) {
        if (f)
            table_remove(fc, f);
        if (err == -ENOENT && parent && sidecar_coding_of(fc->cfg, path) != NM_CODING_IDENTITY)
            remember_missing(fc, path, h, err);
        return err == -ELOOP ? -EACCES : err;
    }
    /* In-memory bytes of a racy version may predate a write that left the stat unchanged. */
    if (f && !f->missing && same_version(f, &st) && !(f->racy && f->data) && !f->stale) {
        f->watch_gen =
            parent && !via_link && is_trustworthy(fc, f, &st, parent) ? fc->watch_gen : 0;
        hit(fc, f, out);
        return 0;
    }
    if (f)
        table_remove(fc, f);

    struct nm_file *nf;
    int rc = load(fc, path, &nf);
    if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM) {
        /* Give descriptors (or the memory of files held in it) back from the coldest entries
         * and try once more: under a memory limit the table shrinks rather than failing. */
        for (int i = 0; i < 64 && fc->lru_tail; i++)
            table_remove(fc, fc->lru_tail);
        rc = load(fc, path, &nf);
    }
    if (rc < 0)
        return rc;
    if (nf->racy_held_bytes) {
        *out = nf; /* never a hit while racy: kept only as long as its responses (hold_racy) */
        return 0;
    }
    /* The watches were there before the stat, and the load's own stat came after it. */
    if (parent && !via_link && is_trustworthy(fc, nf, &st, parent))
        nf->watch_gen = fc->watch_gen;
    table_insert(fc, nf, h);
    *out = nm_file_acquire(nf);
    return 0;
}

void nm_filecache_get_stats(const struct nm_filecache *fc, struct nm_filecache_stats *out)
{
    *out = fc->stats;
}
