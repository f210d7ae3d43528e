/* Fuzzes nm_range_evaluate. Input: one byte for the cap, one byte choosing the length, then the
 * Range field value ('\n' splits it into field lines). Asserts that every returned set is
 * pairwise disjoint, non-adjacent, inside the representation and within cap, and that nothing is
 * written for a result other than SATISFIABLE. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notmod/range.h"

#define MAX_LINES 4
#define SENTINEL 0x5A5A5A5A5A5A5A5AULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t pick_length(uint8_t b)
{
    static const uint64_t special[] = {0, 1, 2, 10, 100, 1000, 10000, UINT64_MAX, UINT64_MAX / 2};
    if (b < sizeof(special) / sizeof(special[0]))
        return special[b];
    return (uint64_t)b * 37;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cap = data[0] % (NM_RANGE_MAX_SPECS + 2);
    uint64_t length = pick_length(data[1]);
    const char *p = (const char *)data + 2;
    size_t len = size - 2;

    struct nm_slice lines[MAX_LINES];
    size_t n_lines = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && n_lines < MAX_LINES; i++) {
        if (i == len || p[i] == '\n') {
            lines[n_lines++] = nm_slice_make(p + start, i - start);
            start = i + 1;
        }
    }
    struct nm_field field = {lines, n_lines};

    struct nm_range out[NM_RANGE_MAX_SPECS + 2];
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        out[i] = (struct nm_range){SENTINEL, SENTINEL};
    size_t n = SIZE_MAX;
    enum nm_range_result r = nm_range_evaluate(field, length, out, cap, &n);

    if (r != NM_RANGE_SATISFIABLE) {
        if (r != NM_RANGE_IGNORE && r != NM_RANGE_UNSATISFIABLE)
            abort();
        if (n != SIZE_MAX || out[0].first != SENTINEL)
            abort();
        return 0;
    }
    if (n == 0 || n > cap || n > NM_RANGE_MAX_SPECS)
        abort();
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i].first > out[i].last || out[i].last >= length)
            abort();
        for (size_t j = 0; j < i; j++)
            if (out[i].first <= out[j].last + 1 && out[j].first <= out[i].last + 1)
                abort();
        total += out[i].last - out[i].first + 1;
    }
    /* Disjoint ranges inside the representation cannot add up to more than it. */
    if (total > length)
        abort();
    if (out[n].first != SENTINEL || out[n].last != SENTINEL)
        abort();

    /* The same field is evaluated the same way again (no hidden state). */
    struct nm_range again[NM_RANGE_MAX_SPECS + 2];
    size_t n2 = 0;
    if (nm_range_evaluate(field, length, again, cap, &n2) != r || n2 != n ||
        memcmp(again, out, n * sizeof(out[0])) != 0)
        abort();
    return 0;
}
