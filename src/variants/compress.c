/* notmod compress over a tree: for each compressible file, one sidecar per coding, written by
 * temporary file and rename with the record of its source, and only when it saves enough. */
#include "compress.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "codec.h"
#include "record.h"

/* Deeper trees are refused rather than held open one descriptor per level. */
#define MAX_DEPTH 128

/* Extensions of types worth compressing; woff, woff2, images, audio, video and archives are
 * compressed already. */
static const char *const compressible[] = {
    "html", "htm", "xhtml", "css", "txt",  "csv",    "md",          "ics", "vtt",
    "js",   "mjs", "cjs",   "map", "json", "jsonld", "xml",         "svg", "rss",
    "atom", "xsl", "wasm",  "ttf", "otf",  "eot",    "webmanifest",
};

bool nm_variants_compress_is_compressible_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return false;
    for (size_t i = 0; i < sizeof(compressible) / sizeof(compressible[0]); i++)
        if (strcasecmp(dot + 1, compressible[i]) == 0)
            return true;
    return false;
}

bool nm_variants_compress_is_sidecar_name(const char *name)
{
    size_t len = strlen(name);
    for (int c = NM_CODING_IDENTITY + 1; c < NM_CODING_COUNT; c++) {
        const char *suffix = nm_coding_suffix((enum nm_coding)c);
        size_t n = strlen(suffix);
        if (len > n && strcmp(name + len - n, suffix) == 0)
            return true;
    }
    return false;
}

struct walk {
    const struct nm_variants_compress_options *o;
    struct nm_variants_compress_counts *c;
    int first_err;
};

static void fail(struct walk *w, const char *path, int err)
{
    if (w->first_err == 0)
        w->first_err = err;
    if (w->o->on_error)
        w->o->on_error(w->o->arg, path, err);
}

/* Reads the size bytes of fd, then checks that the file is still the version fstat showed, so
 * the hash and the sidecars are of one version. Returns 0, -EAGAIN when it changed, -ENOMEM or
 * -errno. */
static int read_source(int fd, const struct stat *st, unsigned char **out)
{
    size_t size = (size_t)st->st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return -ENOMEM;
    int rc;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail_free_buf;
        }
        if (n == 0) {
            rc = -EAGAIN;
            goto fail_free_buf;
        }
        got += (size_t)n;
    }
    struct stat now;
    if (fstat(fd, &now) != 0) {
        rc = -errno;
        goto fail_free_buf;
    }
    if (now.st_size != st->st_size || now.st_mtim.tv_sec != st->st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != st->st_mtim.tv_nsec) {
        rc = -EAGAIN;
        goto fail_free_buf;
    }
    *out = buf;
    return 0;

fail_free_buf:
    free(buf);
    return rc;
}

static int64_t mtime_ns_of(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* What is beside the source under a sidecar's name. */
enum existing { EXISTING_NONE, EXISTING_CURRENT, EXISTING_STALE };

static int examine_sidecar(int dir_fd, const char *name, enum nm_coding coding,
                           struct nm_hash128 hash, int64_t source_mtime_ns, enum existing *out,
                           uint64_t *size)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT)
            return -errno;
        *out = EXISTING_NONE;
        return 0;
    }
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode)) {
        *out = EXISTING_STALE; /* a symlink or such: replaced by a file of our own */
        return 0;
    }
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    bool current =
        nm_variants_sidecar_is_current(fd, coding, hash, source_mtime_ns, mtime_ns_of(&st));
    close(fd);
    *out = current ? EXISTING_CURRENT : EXISTING_STALE;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes bytes as dir_fd/name: a temporary file beside it, fsync'd, given the record, renamed
 * over name. Returns 0 or -errno; on failure the temporary file is gone. */
static int write_sidecar(int dir_fd, const char *name, enum nm_coding coding, mode_t mode,
                         const void *bytes, size_t len, struct nm_hash128 hash)
{
    char tmp[NAME_MAX + 1];
    int n = snprintf(tmp, sizeof(tmp), ".%s.tmp.%ld", name, (long)getpid());
    if (n < 0 || n >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) {
        /* Left by an earlier process of the same pid that was killed mid-write. */
        unlinkat(dir_fd, tmp, 0);
        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    }
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, bytes, len);
    if (rc < 0)
        goto fail_unlink_tmp;
    if (fsync(fd) != 0) {
        rc = -errno;
        goto fail_unlink_tmp;
    }
    struct nm_variants_record rec = {
        .source = hash, .has_own = true, .own = nm_hash_bytes(bytes, len)};
    rc = nm_variants_record_write(fd, coding, &rec);
    /* Without user attributes the sidecar is judged by its age, and it is newer than its source. */
    if (rc < 0 && rc != -ENOTSUP)
        goto fail_unlink_tmp;
    if (renameat(dir_fd, tmp, dir_fd, name) != 0) {
        rc = -errno;
        goto fail_unlink_tmp;
    }
    close(fd);
    return 0;

fail_unlink_tmp:
    close(fd);
    unlinkat(dir_fd, tmp, 0);
    return rc;
}

/* One coding of one source; may_write is false for a source under min_size_bytes. Returns 1
 * when a sidecar was written, 0 when none was, or -errno; *served is lowered to the size of a
 * sidecar kept or written. */
static int do_coding(struct walk *w, int dir_fd, const char *name, const char *shown,
                     enum nm_coding coding, const struct stat *st, const unsigned char *bytes,
                     struct nm_hash128 hash, bool may_write, uint64_t *served)
{
    const char *suffix = nm_coding_suffix(coding);
    char sidecar[NAME_MAX + 1], sidecar_shown[PATH_MAX];
    int n = snprintf(sidecar, sizeof(sidecar), "%s%s", name, suffix);
    int m = snprintf(sidecar_shown, sizeof(sidecar_shown), "%s%s", shown, suffix);
    if (n < 0 || n >= (int)sizeof(sidecar) || m < 0 || m >= (int)sizeof(sidecar_shown)) {
        fail(w, shown, -ENAMETOOLONG);
        return -ENAMETOOLONG;
    }
    enum existing ex;
    uint64_t existing_size = 0;
    int rc = examine_sidecar(dir_fd, sidecar, coding, hash, mtime_ns_of(st), &ex, &existing_size);
    if (rc < 0) {
        fail(w, sidecar_shown, rc);
        return rc;
    }
    if (ex == EXISTING_CURRENT) {
        w->c->up_to_date++;
        if (existing_size < *served)
            *served = existing_size;
        return 0;
    }
    uint64_t size = (uint64_t)st->st_size;
    void *out = NULL;
    size_t out_len = 0;
    bool worth = may_write;
    if (worth) {
        rc = nm_variants_codec_compress(coding, w->o->level, bytes, (size_t)size, &out, &out_len);
        if (rc < 0) {
            fail(w, sidecar_shown, rc);
            return rc;
        }
        /* At most (100 - min_saving)% of the source. */
        worth = (uint64_t)out_len * 100 <= size * (100 - w->o->min_saving_pct);
        if (!worth)
            w->c->skipped_saving++;
    }
    if (!worth) {
        free(out);
        if (ex == EXISTING_STALE) {
            if (unlinkat(dir_fd, sidecar, 0) != 0 && errno != ENOENT) {
                rc = -errno;
                fail(w, sidecar_shown, rc);
                return rc;
            }
            w->c->removed++;
        }
        return 0;
    }
    rc = write_sidecar(dir_fd, sidecar, coding, st->st_mode & 0666, out, out_len, hash);
    free(out);
    if (rc < 0) {
        fail(w, sidecar_shown, rc);
        return rc;
    }
    w->c->written++;
    if (out_len < *served)
        *served = out_len;
    return 1;
}

/* One regular file dir_fd/name. Returns 1 when a sidecar was written, else 0 (failures are
 * reported and counted here). */
static int do_file(struct walk *w, int dir_fd, const char *name, const char *shown)
{
    struct nm_variants_compress_counts *c = w->c;
    c->files_seen++;
    if (!nm_variants_compress_is_compressible_name(name)) {
        c->skipped_type++;
        return 0;
    }
    int rc;
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        goto fail_report;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail_close_fd;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (!S_ISREG(st.st_mode) || size > NM_VARIANTS_MAX_SOURCE_BYTES) {
        c->skipped_size += S_ISREG(st.st_mode);
        close(fd);
        return 0;
    }
    unsigned char *bytes = NULL;
    rc = read_source(fd, &st, &bytes);
    if (rc < 0)
        goto fail_close_fd;
    close(fd);
    struct nm_hash128 hash = nm_hash_bytes(bytes, (size_t)size);
    /* A source under the minimum gets no sidecar, but its stale ones still go. */
    bool may_write = size >= w->o->min_size_bytes;
    if (!may_write)
        c->skipped_size++;
    uint64_t served = size;
    int wrote = 0;
    bool failed = false;
    for (int i = NM_CODING_IDENTITY + 1; i < NM_CODING_COUNT; i++) {
        enum nm_coding coding = (enum nm_coding)i;
        if (!(w->o->codings & NM_CODING_BIT(coding)))
            continue;
        int r = do_coding(w, dir_fd, name, shown, coding, &st, bytes, hash, may_write, &served);
        failed |= r < 0;
        wrote |= r > 0;
    }
    free(bytes);
    if (may_write) {
        c->bytes_before += size;
        c->bytes_after += served;
    }
    c->failed += failed;
    return wrote;

fail_close_fd:
    close(fd);
fail_report:
    fail(w, shown, rc);
    c->failed++;
    return 0;
}

static void walk_dir(struct walk *w, int dir_fd, const char *shown, int depth);

static void do_entry(struct walk *w, int dir_fd, const char *name, unsigned char type,
                     const char *shown, int depth, bool *wrote)
{
    if (type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            fail(w, shown, -errno);
            return;
        }
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_LNK;
    }
    if (type == DT_DIR) {
        if (depth >= MAX_DEPTH) {
            fail(w, shown, -ELOOP);
            return;
        }
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            fail(w, shown, -errno);
            return;
        }
        walk_dir(w, fd, shown, depth + 1);
        close(fd);
        return;
    }
    if (type != DT_REG || nm_variants_compress_is_sidecar_name(name))
        return;
    *wrote |= do_file(w, dir_fd, name, shown) > 0;
    if (w->o->on_file)
        w->o->on_file(w->o->arg, shown, w->c);
}

static void walk_dir(struct walk *w, int dir_fd, const char *shown, int depth)
{
    struct nm_dir d;
    int n = nm_dir_read(dir_fd, SIZE_MAX, &d);
    if (n < 0) {
        fail(w, shown, n);
        return;
    }
    size_t len = strlen(shown);
    bool slash = len > 0 && shown[len - 1] == '/';
    bool wrote = false;
    for (size_t i = 0; i < d.count; i++) {
        const char *name = d.entries[i].name;
        if (name[0] == '.')
            continue;
        char child[PATH_MAX];
        int m = snprintf(child, sizeof(child), "%s%s%s", shown, slash ? "" : "/", name);
        if (m < 0 || m >= (int)sizeof(child)) {
            fail(w, shown, -ENAMETOOLONG);
            continue;
        }
        do_entry(w, dir_fd, name, d.entries[i].type, child, depth, &wrote);
    }
    nm_dir_free(&d);
    /* The renames themselves survive a crash only once the directory is on disk. */
    if (wrote && fsync(dir_fd) != 0)
        fail(w, shown, -errno);
}

int nm_variants_compress_tree(const char *path, const struct nm_variants_compress_options *o,
                              struct nm_variants_compress_counts *counts)
{
    struct walk w = {o, counts, 0};
    struct stat st;
    if (stat(path, &st) != 0) {
        fail(&w, path, -errno);
        return w.first_err;
    }
    if (S_ISDIR(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            fail(&w, path, -errno);
            return w.first_err;
        }
        walk_dir(&w, fd, path, 0);
        close(fd);
        return w.first_err;
    }
    /* One file: its directory is the one the sidecars go to. */
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    char dir[PATH_MAX];
    int n = slash ? snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path + 1), path)
                  : snprintf(dir, sizeof(dir), ".");
    if (n < 0 || n >= (int)sizeof(dir)) {
        fail(&w, path, -ENAMETOOLONG);
        return w.first_err;
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        fail(&w, path, -errno);
        return w.first_err;
    }
    bool wrote = false;
    do_entry(&w, dir_fd, name, DT_UNKNOWN, path, 0, &wrote);
    if (wrote && fsync(dir_fd) != 0)
        fail(&w, path, -errno);
    close(dir_fd);
    return w.first_err;
}
