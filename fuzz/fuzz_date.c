/* HTTP-date parser (RFC 9110 §5.6.7): any accepted date formats to a 29-byte IMF-fixdate that
 * parses back to the same time, under several clocks for the rfc850 two-digit year. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "notmod/date.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int64_t nows[] = {
    0,          /* Thu, 01 Jan 1970 00:00:00 GMT */
    1705320000, /* Mon, 15 Jan 2024 12:00:00 GMT */
    4107542400, /* Mon, 01 Mar 2100 00:00:00 GMT */
    NM_DATE_MAX, INT64_MIN, INT64_MAX,
};

static void check(struct nm_slice s, int64_t now)
{
    int64_t t = INT64_MIN;
    if (nm_date_parse(s, now, &t) != 0) {
        if (t != INT64_MIN)
            __builtin_trap(); /* out written on failure */
        return;
    }
    if (t < NM_DATE_MIN || t > NM_DATE_MAX)
        __builtin_trap();

    char buf[NM_DATE_LEN + 1];
    if (nm_date_format(t, buf) != NM_DATE_LEN || strlen(buf) != NM_DATE_LEN)
        __builtin_trap();

    /* IMF-fixdate carries a four-digit year, so every clock reads it the same. */
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        int64_t back = INT64_MIN;
        if (nm_date_parse(nm_slice_make(buf, NM_DATE_LEN), nows[i], &back) != 0 || back != t)
            __builtin_trap();
    }

    char again[NM_DATE_LEN + 1];
    if (nm_date_format(t, again) != NM_DATE_LEN || memcmp(buf, again, sizeof(buf)) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A replayed empty file arrives as NULL; arithmetic on NULL is undefined. */
    if (data == NULL)
        data = (const uint8_t *)"";
    struct nm_slice s = nm_slice_make((const char *)data, size);
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++)
        check(s, nows[i]);
    return 0;
}
