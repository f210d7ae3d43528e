/* Helpers shared by the client layer's unit tests. */
#ifndef NOTMOD_TEST_CLIENT_FIXTURE_H
#define NOTMOD_TEST_CLIENT_FIXTURE_H

#include <criterion/criterion.h>
#include <string.h>

#include "notmod/http1.h"

/* Header lines "Name: value\n..." as fields pointing into text (which must outlive them). */
static inline size_t fields_of(const char *text, struct nm_http1_field *out, size_t cap)
{
    size_t n = 0;
    while (text && *text && n < cap) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        const char *colon = memchr(text, ':', len);
        cr_assert_not_null(colon, "%s", text);
        out[n].name = nm_slice_make(text, (size_t)(colon - text));
        out[n].value =
            nm_slice_trim_ows(nm_slice_make(colon + 1, len - (size_t)(colon + 1 - text)));
        n++;
        text = nl ? nl + 1 : NULL;
    }
    return n;
}

#endif
