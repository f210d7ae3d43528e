/* Fuzzes JSON string escaping: the output, quoted, is a JSON string under a strict reading of
 * RFC 8259 §7 and §8.1; decoding it (each \udcXX as byte XX, as Python's surrogateescape does)
 * gives back the input exactly; valid UTF-8 without controls is copied unchanged; and escaping
 * in small pieces gives the same text as escaping at once. */
#include "notmod/json.h"
#include "notmod/slice.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* The length of the UTF-8 sequence at p under RFC 3629 §4's table, or 0 when invalid. Written
 * apart from the one in src/json.c, from the table rather than from byte ranges. */
static size_t utf8_decode(const uint8_t *p, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

static size_t utf8_encode(uint32_t c, uint8_t *out)
{
    if (c < 0x80) {
        out[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (uint8_t)(0xc0 | (c >> 6));
        out[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (c >> 12));
        out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | (c >> 18));
    out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

/* Reads the inside of a JSON string (RFC 8259 §7: no '"', '\' or control unescaped; §8.1:
 * UTF-8) and decodes it the way json.loads then .encode("utf-8", "surrogateescape") would.
 * Returns the decoded length, or -1 when the text is not a valid JSON string body or holds a
 * surrogate that surrogateescape would not map back to a byte. */
static long decode(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t c;
        if (s[i] == '"' || s[i] < 0x20)
            return -1;
        if (s[i] != '\\') {
            size_t n = utf8_decode(s + i, len - i, &c);
            if (n == 0)
                return -1;
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        if (i + 1 >= len)
            return -1;
        uint8_t e = s[i + 1];
        i += 2;
        static const char simple[] = "\"\\/bfnrt", value[] = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(simple, e) : NULL;
        if (k) {
            out[o++] = (uint8_t)value[k - simple];
            continue;
        }
        if (e != 'u' || len - i < 4)
            return -1;
        c = 0;
        for (int d = 0; d < 4; d++) {
            int v = nm_hex_digit_value((unsigned char)s[i + (size_t)d]);
            if (v < 0)
                return -1;
            c = c << 4 | (uint32_t)v;
        }
        i += 4;
        if (c >= 0xdc80 && c <= 0xdcff)
            out[o++] = (uint8_t)(c - 0xdc00);
        else if (c >= 0xd800 && c <= 0xdfff)
            return -1;
        else
            o += utf8_encode(c, out + o);
    }
    return (long)o;
}

static bool is_plain_utf8(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t n = utf8_decode(s + i, len - i, &c);
        if (n == 0 || c < 0x20 || c == '"' || c == '\\' || (c >= 0x7f && c <= 0x9f))
            return false;
        i += n;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[MAX_IN * NM_JSON_ESCAPE_MAX], pieces[MAX_IN * NM_JSON_ESCAPE_MAX];
    static uint8_t back[MAX_IN * NM_JSON_ESCAPE_MAX];
    if (size == 0 || size > MAX_IN)
        return 0;
    /* The first byte picks the piece size for the chunked run; the rest is the input. */
    size_t piece = NM_JSON_ESCAPE_MAX + data[0] % 16;
    struct nm_slice in = nm_slice_make((const char *)data + 1, size - 1);

    size_t used;
    size_t n = nm_json_escape(in, out, sizeof(out), &used);
    check(used == in.len);
    check(n <= in.len * NM_JSON_ESCAPE_MAX);

    long m = decode((const uint8_t *)out, n, back);
    check(m >= 0);
    check((size_t)m == in.len && memcmp(back, in.ptr, in.len) == 0);
    for (size_t i = 0; i < n; i++)
        check((uint8_t)out[i] >= 0x20 && out[i] != 0x7f);

    if (is_plain_utf8((const uint8_t *)in.ptr, in.len))
        check(n == in.len && memcmp(out, in.ptr, n) == 0);

    size_t off = 0, len = 0;
    for (size_t rounds = 0; off < in.len; rounds++) {
        check(rounds < in.len);
        len +=
            nm_json_escape(nm_slice_make(in.ptr + off, in.len - off), pieces + len, piece, &used);
        check(used > 0);
        off += used;
    }
    check(len == n && memcmp(pieces, out, n) == 0);
    return 0;
}
