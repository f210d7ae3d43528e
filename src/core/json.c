/* JSON string escaping (RFC 8259 §7): UTF-8 validated per RFC 3629 §4, invalid bytes written as
 * PEP 383 surrogate escapes. */
#include "notmod/json.h"

#include "notmod/utf8.h"

#include <string.h>

/* The short escape of a character, or 0 when it has none. */
static char short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\f':
        return 'f';
    case '\r':
        return 'r';
    default:
        return 0;
    }
}

size_t nm_json_escape(struct nm_slice in, char *out, size_t out_cap, size_t *consumed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)in.ptr;
    size_t i = 0, o = 0;
    while (i < in.len) {
        size_t n = nm_utf8_sequence_len(p + i, in.len - i);
        char text[NM_JSON_ESCAPE_MAX];
        size_t text_len;
        char e = n == 1 ? short_escape(p[i]) : 0;
        if (e) {
            text[0] = '\\';
            text[1] = e;
            text_len = 2;
        } else if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) ||
                   (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)) {
            /* A byte outside UTF-8 gets U+DC00 + byte; a control, its code point. The C1
             * controls (C2 80..9F) are escaped too: some terminals act on them. */
            unsigned code = n == 0 ? 0xdc00u + p[i] : n == 1 ? p[i] : p[i + 1];
            memcpy(text, "\\u", 2);
            text[2] = hex[(code >> 12) & 15];
            text[3] = hex[(code >> 8) & 15];
            text[4] = hex[(code >> 4) & 15];
            text[5] = hex[code & 15];
            text_len = 6;
            if (n == 0)
                n = 1;
        } else {
            if (out_cap - o < n)
                break;
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        if (out_cap - o < text_len)
            break;
        memcpy(out + o, text, text_len);
        o += text_len;
        i += n;
    }
    *consumed = i;
    return o;
}
