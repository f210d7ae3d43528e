/* Request-path normalization: percent-decoding (RFC 3986 §2.1), dot-segment removal
 * (RFC 3986 §5.2.4) and re-encoding for Location and href (RFC 3986 §3.3). */
#include "notmod/path.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Bytes that can never appear raw in a request-target: controls and SP end the request-target
 * (RFC 9112 §3), and '#' starts a fragment, which a client never sends (RFC 9110 §7.1). Other
 * bytes outside pchar are taken literally, as they name a file just as well. */
static bool is_forbidden_raw(unsigned char c)
{
    return is_control(c) || c == ' ' || c == '#';
}

/* Removes the last segment of the path built so far; the path ends in '/' before and after,
 * and the root is never removed (RFC 3986 §5.2.4 step 2.C applied to "/.." yields "/"). */
static size_t pop_segment(const char *buf, size_t len)
{
    if (len <= 1)
        return 1;
    len--;
    while (len > 0 && buf[len - 1] != '/')
        len--;
    return len;
}

int nm_path_normalize(struct nm_slice target, char *out, size_t cap)
{
    /* Built here, not in out, so that out is written only on success. */
    char buf[NM_PATH_MAX + 1];
    size_t limit = NM_PATH_MAX;

    if (target.len == 0 || target.ptr == NULL || target.ptr[0] != '/')
        return -EINVAL;

    /* The query is dropped, but the whole target must still be one well-formed token. */
    size_t end = target.len;
    for (size_t i = 0; i < target.len; i++) {
        unsigned char c = (unsigned char)target.ptr[i];
        if (is_forbidden_raw(c))
            return -EINVAL;
        if (c == '?' && end == target.len)
            end = i;
    }
    /* Even "/" needs two bytes with its NUL. */
    if (cap < 2)
        return -ENAMETOOLONG;
    if (cap - 1 < limit)
        limit = cap - 1;

    /* Invariant: buf[0..len) is the output so far and ends with '/'. Each raw segment is decoded
     * straight after it; "." and ".." are recognised only once decoded, so "%2e%2e" is "..". An
     * encoded '/' is refused, so raw and decoded segment boundaries are the same. */
    const char *p = target.ptr;
    size_t i = 1;
    size_t len = 1;
    buf[0] = '/';
    while (i <= end) {
        size_t seg = len;
        while (i < end && p[i] != '/') {
            unsigned char c = (unsigned char)p[i];
            if (c == '%') {
                int hi = i + 2 < end ? nm_hex_digit_value((unsigned char)p[i + 1]) : -1;
                int lo = hi >= 0 ? nm_hex_digit_value((unsigned char)p[i + 2]) : -1;
                if (lo < 0)
                    return -EINVAL;
                c = (unsigned char)(hi << 4 | lo);
                if (is_control(c) || c == '/')
                    return -EINVAL;
                i += 3;
            } else {
                i++;
            }
            if (len >= limit)
                return -ENAMETOOLONG;
            buf[len++] = (char)c;
        }
        size_t seg_len = len - seg;
        bool more = i < end; /* p[i] == '/' */
        if (seg_len == 0 || (seg_len == 1 && buf[seg] == '.')) {
            /* "//" collapses; "." is dropped (§5.2.4 steps 2.B and 2.D). */
            len = seg;
        } else if (seg_len == 2 && buf[seg] == '.' && buf[seg + 1] == '.') {
            len = pop_segment(buf, seg);
        } else if (more) {
            if (len >= limit)
                return -ENAMETOOLONG;
            buf[len++] = '/';
        }
        /* A "." or ".." that ends the path leaves the trailing '/' behind: §5.2.4 step 2.C
         * turns the final "/.." into "/", so "/a/b/.." is "/a/". */
        i++;
    }

    memcpy(out, buf, len);
    out[len] = '\0';
    return (int)len;
}

bool nm_path_is_hidden(const char *path)
{
    static const char well_known[] = ".well-known";
    const char *s = path;
    bool first = true;

    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        size_t n = strcspn(s, "/");
        if (s[0] == '.') {
            /* RFC 8615 reserves /.well-known/ for site metadata such as ACME challenges. */
            bool is_well_known =
                first && n == sizeof(well_known) - 1 && memcmp(s, well_known, n) == 0;
            if (!is_well_known)
                return true;
        }
        first = false;
        s += n;
    }
    return false;
}

/* RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@", plus '/' between
 * segments. '%' itself is not kept, so decoding the result gives back the input. */
static bool is_kept(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~/!$&'()*+,;=:@", c) != NULL;
}

int nm_path_encode(const char *path, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t need = 0;

    for (const unsigned char *s = (const unsigned char *)path; *s; s++)
        need += is_kept(*s) ? 1 : 3;
    if (need >= cap || need > INT_MAX)
        return -ENOSPC;

    size_t n = 0;
    for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
        if (is_kept(*s)) {
            out[n++] = (char)*s;
        } else {
            out[n++] = '%';
            out[n++] = hex[*s >> 4];
            out[n++] = hex[*s & 0x0f];
        }
    }
    out[n] = '\0';
    return (int)n;
}
