/* ETag manifests: building, canonical text, and a strict parser for untrusted files. */
#include "manifest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- parsing ------------------------------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* The 128 bits of a content tag; only the exact text nm_etag_make_hash128 writes is accepted. */
static bool decode_tag(const char *p, size_t len, uint64_t *hi, uint64_t *lo)
{
    if (len != ETAG_LEN || p[0] != '"' || p[ETAG_LEN - 1] != '"')
        return false;
    uint64_t h = 0, l = 0;
    unsigned bits = 0;
    for (size_t i = 1; i < ETAG_LEN - 1; i++) {
        int v = b64url_value((unsigned char)p[i]);
        if (v < 0)
            return false;
        for (int b = 5; b >= 0; b--) {
            unsigned bit = (unsigned)(v >> b) & 1;
            if (bits < 64)
                h = h << 1 | bit;
            else if (bits < 128)
                l = l << 1 | bit;
            else if (bit)
                return false; /* the 4 padding bits are zero */
            bits++;
        }
    }
    char again[NM_ETAG_MAX + 1];
    if (nm_etag_make_hash128(h, l, again, sizeof(again)) != ETAG_LEN ||
        memcmp(again, p, ETAG_LEN) != 0)
        return false;
    *hi = h;
    *lo = l;
    return true;
}

static bool parse_size(const char *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && p[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
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
    if (!sp2 || !parse_size(rest, (size_t)(sp2 - rest), &size))
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
