/* ETag manifests: building, canonical text, a strict parser for untrusted files, and the check
 * of each entry against the served tree at startup. */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "memo.h"
#include "notmod/date.h"
#include "notmod/etag.h"
#include "notmod/path.h"

#define ETAG_LEN 24 /* two quotes and 22 base64url characters */
#define MAX_ENCODED_PATH (3 * NM_PATH_MAX)

struct nm_manifest {
    struct nm_manifest_entry *entries;
    size_t n, cap;
};

int nm_manifest_new(struct nm_manifest **out)
{
    struct nm_manifest *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
}

void nm_manifest_free(struct nm_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free((char *)m->entries[i].path);
    free(m->entries);
    free(m);
}

/* A path is accepted when its encoded form normalizes back to it: decoded, no dot segments, no
 * "//", no controls; and it names a file, so it has no trailing '/'. */
static bool is_canonical_path(const char *path, char *enc, size_t enc_cap)
{
    size_t len = strlen(path);
    if (len < 2 || path[0] != '/' || path[len - 1] == '/' || len > NM_PATH_MAX)
        return false;
    int n = nm_path_encode(path, enc, enc_cap);
    if (n < 0)
        return false;
    char back[NM_PATH_MAX + 1];
    int b = nm_path_normalize(nm_slice_make(enc, (size_t)n), back, sizeof(back));
    return b >= 0 && (size_t)b == len && memcmp(back, path, len) == 0;
}

static int push(struct nm_manifest *m, char *path, uint64_t size, uint64_t hi, uint64_t lo,
                int64_t lm)
{
    if (m->n == NM_MANIFEST_MAX_ENTRIES)
        return -E2BIG;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct nm_manifest_entry *e = realloc(m->entries, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        m->entries = e;
        m->cap = cap;
    }
    m->entries[m->n++] = (struct nm_manifest_entry){path, size, hi, lo, lm};
    return 0;
}

int nm_manifest_add(struct nm_manifest *m, const char *path, uint64_t size, uint64_t hash_hi,
                    uint64_t hash_lo, int64_t last_modified)
{
    char buf[MAX_ENCODED_PATH + 1];
    if (last_modified < 0 || last_modified > NM_DATE_MAX ||
        !is_canonical_path(path, buf, sizeof(buf)))
        return -EINVAL;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int rc = push(m, copy, size, hash_hi, hash_lo, last_modified);
    if (rc < 0)
        free(copy);
    return rc;
}

static int cmp_entries(const void *a, const void *b)
{
    const struct nm_manifest_entry *x = a, *y = b;
    return strcmp(x->path, y->path);
}

int nm_manifest_sort(struct nm_manifest *m)
{
    if (m->n > 1)
        qsort(m->entries, m->n, sizeof(*m->entries), cmp_entries);
    for (size_t i = 1; i < m->n; i++)
        if (strcmp(m->entries[i - 1].path, m->entries[i].path) == 0)
            return -EEXIST;
    return 0;
}

int nm_manifest_format(const struct nm_manifest *m, struct nm_buf *out)
{
    size_t start = out->len;
    int rc = nm_buf_append_str(out, NM_MANIFEST_MAGIC "\n");
    char enc[MAX_ENCODED_PATH + 1], tag[NM_ETAG_MAX + 1], date[NM_DATE_LEN + 1];
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        const struct nm_manifest_entry *e = &m->entries[i];
        int n = nm_path_encode(e->path, enc, sizeof(enc));
        int t = nm_etag_make_hash128(e->hash_hi, e->hash_lo, tag, sizeof(tag));
        int d = nm_date_format(e->last_modified, date);
        if (n < 0 || t < 0 || d < 0) {
            rc = -EINVAL;
            break;
        }
        rc = nm_buf_appendf(out, "%s %llu %s %s\n", enc, (unsigned long long)e->size, tag, date);
    }
    if (rc < 0)
        out->len = start;
    return rc;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* The 128 bits of a content tag; only the exact text nm_etag_make_hash128 writes is accepted. */
static bool decode_tag(const char *p, size_t len, uint64_t *hi, uint64_t *lo)
{
    struct nm_hash128 h;
    if (len != ETAG_LEN || p[0] != '"' || p[ETAG_LEN - 1] != '"' ||
        nm_hash_parse_b64url(p + 1, ETAG_LEN - 2, &h) != 0)
        return false;
    *hi = h.hi;
    *lo = h.lo;
    return true;
}

/* Only the IMF-fixdate nm_date_format would write for the same second. */
static bool parse_date(const char *p, size_t len, int64_t *out)
{
    if (len != NM_DATE_LEN)
        return false;
    int64_t t;
    if (nm_date_parse(nm_slice_make(p, len), 0, &t) != 0)
        return false;
    char again[NM_DATE_LEN + 1];
    if (nm_date_format(t, again) != NM_DATE_LEN || memcmp(again, p, len) != 0)
        return false;
    *out = t;
    return true;
}

static const char *parse_line(struct nm_manifest *m, const char *p, size_t len, int *rc)
{
    *rc = -EINVAL;
    const char *sp1 = memchr(p, ' ', len);
    if (!sp1 || sp1 == p)
        return "missing path";
    size_t plen = (size_t)(sp1 - p);
    if (plen > MAX_ENCODED_PATH)
        return "path too long";
    const char *rest = sp1 + 1;
    size_t rlen = len - plen - 1;
    const char *sp2 = memchr(rest, ' ', rlen);
    uint64_t size;
    if (!sp2 || !nm__parse_decimal(rest, (size_t)(sp2 - rest), UINT64_MAX, &size))
        return "bad size";
    rlen -= (size_t)(sp2 - rest) + 1;
    rest = sp2 + 1;
    uint64_t hi, lo;
    if (rlen < ETAG_LEN + 1 || rest[ETAG_LEN] != ' ' || !decode_tag(rest, ETAG_LEN, &hi, &lo))
        return "bad ETag";
    int64_t lm;
    if (!parse_date(rest + ETAG_LEN + 1, rlen - ETAG_LEN - 1, &lm))
        return "bad Last-Modified";

    char decoded[NM_PATH_MAX + 1], enc[MAX_ENCODED_PATH + 1];
    int n = nm_path_normalize(nm_slice_make(p, plen), decoded, sizeof(decoded));
    if (n < 0 || !is_canonical_path(decoded, enc, sizeof(enc)) || strlen(enc) != plen ||
        memcmp(enc, p, plen) != 0)
        return "path not canonical";
    if (m->n > 0) {
        int c = strcmp(m->entries[m->n - 1].path, decoded);
        if (c == 0)
            return "duplicate path";
        if (c > 0)
            return "paths out of order";
    }
    char *copy = strdup(decoded);
    if (!copy) {
        *rc = -ENOMEM;
        return "out of memory";
    }
    *rc = push(m, copy, size, hi, lo, lm);
    if (*rc < 0) {
        free(copy);
        return *rc == -E2BIG ? "too many entries" : "out of memory";
    }
    return NULL;
}

int nm_manifest_parse(const char *text, size_t len, struct nm_manifest **out, size_t *err_line,
                      const char **err_what)
{
    struct nm_manifest *m;
    int rc = nm_manifest_new(&m);
    if (rc < 0)
        return rc;
    const char *what = NULL;
    size_t line = 1, pos = 0;
    static const char magic[] = NM_MANIFEST_MAGIC "\n";
    if (len < sizeof(magic) - 1 || memcmp(text, magic, sizeof(magic) - 1) != 0) {
        rc = -EINVAL;
        what = "not a notmod-manifest 1 file";
        goto fail;
    }
    pos = sizeof(magic) - 1;
    while (pos < len) {
        line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (!nl) {
            rc = -EINVAL;
            what = "last line does not end with a newline";
            goto fail;
        }
        size_t llen = (size_t)(nl - (text + pos));
        if (memchr(text + pos, '\0', llen) || memchr(text + pos, '\r', llen)) {
            rc = -EINVAL;
            what = "control character";
            goto fail;
        }
        what = parse_line(m, text + pos, llen, &rc);
        if (what)
            goto fail;
        pos += llen + 1;
    }
    *out = m;
    return 0;
fail:
    nm_manifest_free(m);
    *err_line = line;
    *err_what = what;
    return rc;
}

size_t nm_manifest_count(const struct nm_manifest *m)
{
    return m->n;
}

const struct nm_manifest_entry *nm_manifest_at(const struct nm_manifest *m, size_t i)
{
    return &m->entries[i];
}

const struct nm_manifest_entry *nm_manifest_find(const struct nm_manifest *m, const char *path)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->entries[mid].path, path);
        if (c == 0)
            return &m->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- the check at startup -------------------------------------------------------------------- */

/* Opens an entry for reading the way a request is: resolved beneath the root (openat2
 * RESOLVE_BENEATH; a path that leaves it is -EXDEV, even one that would come back), as an O_PATH
 * descriptor first, reopened only when it is a regular file, so a device, a FIFO or /proc is
 * never opened. Without openat2 (ENOSYS, or EPERM from a seccomp profile older than it) an entry
 * that is itself a symlink is not followed, and whatever is reached is still only read when it is
 * a regular file. Returns the descriptor, -EXDEV (or -ELOOP) for a path that leaves the root,
 * -EINVAL for anything but a regular file, or the negative errno of the open. */
static int open_entry(int root_fd, const char *rel)
{
    struct open_how how = {
        .flags = O_PATH | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long pfd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
    if (pfd < 0 && (errno == ENOSYS || errno == EPERM))
        pfd = openat(root_fd, rel, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (pfd < 0)
        return -errno;
    struct stat st;
    if (fstat((int)pfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close((int)pfd);
        return -EINVAL;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", (int)pfd);
    int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int err = errno;
    close((int)pfd);
    return fd >= 0 ? fd : -err;
}

static const char *check_entry(struct nm_hashing *h, int root_fd, const struct nm_manifest_entry *e,
                               char *why, size_t why_cap)
{
    int fd = open_entry(root_fd, e->path + 1);
    if (fd == -EXDEV || fd == -ELOOP)
        return "leaves the root";
    if (fd == -EINVAL)
        return "not a regular file";
    if (fd < 0) {
        snprintf(why, why_cap, "cannot open: %s", strerror(-fd));
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
        int rc = nm_hash_fd(fd, v.size, NULL, &x);
        if (rc < 0) {
            snprintf(why, why_cap, "cannot read: %s", strerror(-rc));
            bad = why;
        } else if (x.hi != e->hash_hi || x.lo != e->hash_lo) {
            bad = "content differs from the manifest's ETag";
        }
        goto out;
    }
    /* A large file is never taken at the manifest's word: a same-size rewrite that kept the
     * mtime would then go out under the old tag. Its hash comes from the store or the attribute
     * (written from its bytes, checked against this version) or from the pool; the manifest's
     * Last-Modified applies once that hash equals the manifest's (nm_hashing_manifest_...). */
    struct nm_hash128 x;
    enum nm_hash_source source;
    if (nm__persisted_find(h, fd, &v, &x, &source) == 0 &&
        (x.hi != e->hash_hi || x.lo != e->hash_lo))
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
    nm__hashing_count(&h->from_manifest, (uint64_t)n_kept);
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
