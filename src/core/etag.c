/* Entity tags (RFC 9110 §8.8.3): parsing, #entity-tag list scanning (§5.6.1, §5.3), strong and
 * weak comparison (§8.8.3.2), and the three ways of making a tag. */
#include "notmod/etag.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "notmod/token.h"

/* etagc = %x21 / %x23-7E / obs-text (§8.8.3): visible ASCII but DQUOTE, and any byte >= 0x80. */
static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/* Reads one entity-tag at p[0..len) and returns the number of bytes it spans, or 0 when the
 * bytes there do not start with a well-formed tag. */
static size_t scan_tag(const char *p, size_t len, struct nm_etag *out)
{
    size_t i = 0;
    bool weak = false;
    /* §8.8.3: the weakness indicator is the case-sensitive "W/". */
    if (len >= 2 && p[0] == 'W' && p[1] == '/') {
        weak = true;
        i = 2;
    }
    if (i >= len || p[i] != '"')
        return 0;
    size_t open = i++;
    while (i < len && is_etagc((unsigned char)p[i]))
        i++;
    if (i >= len || p[i] != '"')
        return 0;
    i++;
    out->opaque = nm_slice_make(p + open, i - open);
    out->weak = weak;
    return i;
}

int nm_etag_parse(struct nm_slice s, struct nm_etag *out)
{
    s = nm_slice_trim_ows(s);
    struct nm_etag tag;
    size_t n = scan_tag(s.ptr, s.len, &tag);
    if (n == 0 || n != s.len)
        return -EINVAL;
    *out = tag;
    return 0;
}

bool nm_etag_matches_strong(const struct nm_etag *a, const struct nm_etag *b)
{
    return !a->weak && !b->weak && nm_slice_eq(a->opaque, b->opaque);
}

bool nm_etag_matches_weak(const struct nm_etag *a, const struct nm_etag *b)
{
    return nm_slice_eq(a->opaque, b->opaque);
}

bool nm_etag_list_is_any(struct nm_field f)
{
    /* §13.1.1, §13.1.2: "*" is an alternative to the list, not a member; a second field line
     * makes the combined value "*, ..." (§5.3), which is a list. */
    return f.n_lines == 1 && nm_slice_eq(nm_slice_trim_ows(f.lines[0]), NM_SLICE_LIT("*"));
}

void nm_etag_iter_init(struct nm_etag_iter *it, struct nm_field f)
{
    it->field = f;
    it->line = 0;
    it->pos = 0;
}

bool nm_etag_iter_next(struct nm_etag_iter *it, struct nm_etag *out)
{
    /* §5.3: each field line is its own list; a line boundary ends a member like a comma. */
    for (; it->line < it->field.n_lines; it->line++, it->pos = 0) {
        const char *p = it->field.lines[it->line].ptr;
        size_t len = it->field.lines[it->line].len;
        while (it->pos < len) {
            size_t start = it->pos;
            /* §5.6.1: empty list elements and the OWS around them are ignored. */
            if (nm_token_is_ows((unsigned char)p[start]) || p[start] == ',') {
                it->pos++;
                continue;
            }
            struct nm_etag tag;
            size_t n = scan_tag(p + start, len - start, &tag);
            if (n > 0) {
                size_t end = start + n;
                while (end < len && nm_token_is_ows((unsigned char)p[end]))
                    end++;
                if (end == len || p[end] == ',') {
                    it->pos = end;
                    *out = tag;
                    return true;
                }
            }
            /* A malformed member is dropped whole: up to the next comma that is not inside a
             * quoted opaque-tag (which may itself hold commas), or the end of the line. */
            bool quoted = false;
            size_t i = start;
            while (i < len && (quoted || p[i] != ',')) {
                if (p[i] == '"')
                    quoted = !quoted;
                i++;
            }
            it->pos = i;
        }
    }
    return false;
}

static bool list_matches(struct nm_field f, const struct nm_etag *tag, bool strong)
{
    struct nm_etag_iter it;
    struct nm_etag t;
    nm_etag_iter_init(&it, f);
    while (nm_etag_iter_next(&it, &t))
        if (strong ? nm_etag_matches_strong(&t, tag) : nm_etag_matches_weak(&t, tag))
            return true;
    return false;
}

bool nm_etag_list_matches_strong(struct nm_field f, const struct nm_etag *tag)
{
    return list_matches(f, tag, true);
}

bool nm_etag_list_matches_weak(struct nm_field f, const struct nm_etag *tag)
{
    return list_matches(f, tag, false);
}

int nm_etag_format(const struct nm_etag *tag, char *buf, size_t cap)
{
    size_t prefix = tag->weak ? 2 : 0;
    size_t len = prefix + tag->opaque.len;
    if (len >= cap || len > INT_MAX)
        return -ENOSPC;
    if (tag->weak)
        memcpy(buf, "W/", 2);
    if (tag->opaque.len > 0)
        memcpy(buf + prefix, tag->opaque.ptr, tag->opaque.len);
    buf[len] = '\0';
    return (int)len;
}

int nm_etag_make_hash128(uint64_t hi, uint64_t lo, char *buf, size_t cap)
{
    /* RFC 4648 §5: the URL- and filename-safe alphabet; no padding, so every char is etagc. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    enum { CHARS = 22, LEN = CHARS + 2 };
    if (cap < LEN + 1)
        return -ENOSPC;
    buf[0] = '"';
    /* 128 bits = 21 groups of 6 and a last group of 2, padded with 4 zero bits on the right. */
    for (int i = 0; i < CHARS; i++) {
        int shift = 122 - 6 * i; /* bit offset of this group's least significant bit */
        unsigned v;
        if (shift >= 64) {
            v = (unsigned)(hi >> (shift - 64));
        } else if (shift > 58) {
            v = (unsigned)((hi << (64 - shift)) | (lo >> shift));
        } else if (shift >= 0) {
            v = (unsigned)(lo >> shift);
        } else {
            v = (unsigned)(lo << -shift);
        }
        buf[1 + i] = alphabet[v & 63];
    }
    buf[LEN - 1] = '"';
    buf[LEN] = '\0';
    return LEN;
}

static size_t put_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

int nm_etag_make_metadata(uint64_t size, int64_t mtime_ns, char *buf, size_t cap)
{
    if (mtime_ns < 0)
        return -ERANGE;
    char tmp[2 + 16 + 1 + 16 + 1];
    size_t n = 0;
    tmp[n++] = '"';
    n += put_hex(tmp + n, size);
    tmp[n++] = '-';
    n += put_hex(tmp + n, (uint64_t)mtime_ns);
    tmp[n++] = '"';
    if (n >= cap)
        return -ENOSPC;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return (int)n;
}

int nm_etag_make_version(struct nm_slice version, char *buf, size_t cap)
{
    if (version.len == 0 || version.len > NM_ETAG_MAX - 2)
        return -EINVAL;
    for (size_t i = 0; i < version.len; i++)
        if (!is_etagc((unsigned char)version.ptr[i]))
            return -EINVAL;
    size_t len = version.len + 2;
    if (len >= cap)
        return -ENOSPC;
    buf[0] = '"';
    memcpy(buf + 1, version.ptr, version.len);
    buf[len - 1] = '"';
    buf[len] = '\0';
    return (int)len;
}
