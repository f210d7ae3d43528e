/* Well-formed UTF-8 per RFC 3629 §4. */
#include "notmod/utf8.h"

size_t nm_utf8_sequence_len(const unsigned char *p, size_t len)
{
    unsigned char c = p[0];
    /* The second byte's range depends on the first: that table excludes overlong forms (C0, C1,
     * E0 80..9F, F0 80..8F), the surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..,
     * F5..FF). */
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (len < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}
