/* Entity tags (RFC 9110 §8.8.3): the input is a field whose lines are split on '\n'. Every tag
 * the list iterator yields lies within its line and re-parses alone to the same tag; a strong
 * match implies a weak match; the iterator ends; the makers write tags that parse. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "notmod/etag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 64
#define MAX_INPUT 8192

static void check_reparse(const struct nm_etag *t)
{
    static char buf[MAX_INPUT + 4];
    int len = nm_etag_format(t, buf, sizeof(buf));
    if (len < 2 || (size_t)len != t->opaque.len + (t->weak ? 2 : 0) || buf[len] != '\0')
        __builtin_trap();
    struct nm_etag back;
    if (nm_etag_parse(nm_slice_make(buf, (size_t)len), &back) != 0)
        __builtin_trap();
    if (back.weak != t->weak || !nm_slice_eq(back.opaque, t->opaque))
        __builtin_trap();
    /* Exactly one byte too few is refused. */
    if (nm_etag_format(t, buf, (size_t)len) != -ENOSPC)
        __builtin_trap();
}

static void check_pair(const struct nm_etag *a, const struct nm_etag *b)
{
    bool strong = nm_etag_matches_strong(a, b), weak = nm_etag_matches_weak(a, b);
    if (strong && !weak)
        __builtin_trap();
    if (strong != nm_etag_matches_strong(b, a) || weak != nm_etag_matches_weak(b, a))
        __builtin_trap();
    if (strong && (a->weak || b->weak))
        __builtin_trap();
}

static void check_makers(const uint8_t *data, size_t size)
{
    char buf[NM_ETAG_MAX + 1];
    struct nm_etag t;
    uint64_t hi = 0, lo = 0;
    for (size_t i = 0; i < 16 && i < size; i++) {
        if (i < 8)
            hi = hi << 8 | data[i];
        else
            lo = lo << 8 | data[i];
    }
    int len = nm_etag_make_hash128(hi, lo, buf, sizeof(buf));
    if (len != 24 || nm_etag_parse(nm_slice_make(buf, 24), &t) != 0 || t.weak)
        __builtin_trap();

    int64_t mtime_ns = (int64_t)(lo & INT64_MAX);
    len = nm_etag_make_metadata(hi, mtime_ns, buf, sizeof(buf));
    if (len < 5 || len > NM_ETAG_MAX || nm_etag_parse(nm_slice_make(buf, (size_t)len), &t) != 0)
        __builtin_trap();
    if (nm_etag_make_metadata(hi, -1 - mtime_ns, buf, sizeof(buf)) != -ERANGE)
        __builtin_trap();

    len = nm_etag_make_version(nm_slice_make((const char *)data, size), buf, sizeof(buf));
    if (len >= 0) {
        if ((size_t)len != size + 2 || len > NM_ETAG_MAX)
            __builtin_trap();
        if (nm_etag_parse(nm_slice_make(buf, (size_t)len), &t) != 0 || t.weak ||
            memcmp(t.opaque.ptr + 1, data, size) != 0)
            __builtin_trap();
    } else if (len != -EINVAL) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A replayed empty file arrives as NULL; arithmetic on NULL is undefined. */
    if (data == NULL)
        data = (const uint8_t *)"";
    if (size > MAX_INPUT)
        return 0;
    const char *text = (const char *)data;

    struct nm_etag whole;
    bool whole_ok = nm_etag_parse(nm_slice_make(text, size), &whole) == 0;
    if (whole_ok) {
        if (whole.opaque.ptr < text || whole.opaque.ptr + whole.opaque.len > text + size)
            __builtin_trap();
        check_reparse(&whole);
    }

    struct nm_slice lines[MAX_LINES];
    size_t n_lines = 0, start = 0;
    for (size_t i = 0; i < size && n_lines < MAX_LINES - 1; i++) {
        if (data[i] == '\n') {
            lines[n_lines++] = nm_slice_make(text + start, i - start);
            start = i + 1;
        }
    }
    lines[n_lines++] = nm_slice_make(text + start, size - start);
    struct nm_field f = {lines, n_lines};

    struct nm_etag_iter it;
    struct nm_etag t, first = {{NULL, 0}, false};
    size_t count = 0;
    nm_etag_iter_init(&it, f);
    while (nm_etag_iter_next(&it, &t)) {
        /* Each tag is at least two bytes and they do not overlap: the scan must end. */
        if (++count > size / 2 + 1)
            __builtin_trap();
        if (it.line >= n_lines)
            __builtin_trap();
        const struct nm_slice *l = &lines[it.line];
        if (t.opaque.len < 2 || t.opaque.ptr < l->ptr ||
            t.opaque.ptr + t.opaque.len > l->ptr + l->len)
            __builtin_trap();
        if (t.opaque.ptr[0] != '"' || t.opaque.ptr[t.opaque.len - 1] != '"')
            __builtin_trap();
        check_reparse(&t);
        check_pair(&t, &t);
        if (count == 1)
            first = t;
        check_pair(&first, &t);
        if (whole_ok)
            check_pair(&whole, &t);
        /* A tag of the list is found by the list match functions. */
        if (count <= 16) {
            if (!nm_etag_list_matches_weak(f, &t))
                __builtin_trap();
            if (nm_etag_list_matches_strong(f, &t) != !t.weak)
                __builtin_trap();
        }
    }
    if (nm_etag_iter_next(&it, &t))
        __builtin_trap(); /* the end is sticky */
    if (nm_etag_list_is_any(f) && count != 0)
        __builtin_trap();
    if (whole_ok && nm_etag_list_matches_strong(f, &whole) && !nm_etag_list_matches_weak(f, &whole))
        __builtin_trap();

    check_makers(data, size);
    return 0;
}
