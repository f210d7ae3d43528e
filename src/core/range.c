/* Byte ranges (RFC 9110 §14.1, §14.2): the "bytes" ranges-specifier parsed and evaluated against a
 * representation length in one pass, with the CVE-2011-3192 limits of §17.15. */
#include "notmod/range.h"

#include <stdbool.h>

#include "notmod/token.h"

/* A run of DIGITs. `value` saturates at UINT64_MAX; `digits` (leading zeros dropped) keeps the
 * exact number so that first-pos and last-pos compare right however long they are (§14.1.1:
 * recipients MUST anticipate large numerals and avoid conversion overflows). */
struct number {
    uint64_t value;
    const char *digits;
    size_t n_digits;
};

/* One range-spec as written: an int-range (first "-" [last]) or a suffix-range ("-" suffix). */
struct spec {
    bool is_suffix;
    bool has_last;
    struct number first; /* or the suffix-length */
    struct number last;
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads 1*DIGIT at p; returns the number of bytes read, 0 when there is no digit. */
static size_t scan_number(const char *p, const char *end, struct number *out)
{
    const char *start = p;
    uint64_t v = 0;
    while (p < end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        p++;
    }
    const char *digits = start;
    while (digits + 1 < p && *digits == '0')
        digits++;
    out->value = v;
    out->digits = digits;
    out->n_digits = (size_t)(p - digits);
    return (size_t)(p - start);
}

/* a > b on the exact decimal values. */
static bool number_gt(const struct number *a, const struct number *b)
{
    if (a->n_digits != b->n_digits)
        return a->n_digits > b->n_digits;
    for (size_t i = 0; i < a->n_digits; i++)
        if (a->digits[i] != b->digits[i])
            return a->digits[i] > b->digits[i];
    return false;
}

/* Parses one range-spec at p; returns the bytes read, or 0 on a syntax error. */
static size_t scan_spec(const char *p, const char *end, struct spec *out)
{
    const char *start = p;
    *out = (struct spec){0};
    if (p < end && *p == '-') {
        out->is_suffix = true;
        size_t n = scan_number(p + 1, end, &out->first);
        return n == 0 ? 0 : 1 + n;
    }
    size_t n = scan_number(p, end, &out->first);
    if (n == 0)
        return 0;
    p += n;
    if (p == end || *p != '-')
        return 0;
    p++;
    n = scan_number(p, end, &out->last);
    if (n > 0) {
        out->has_last = true;
        p += n;
        /* §14.1.1: an int-range whose last-pos is less than its first-pos is invalid. */
        if (number_gt(&out->first, &out->last))
            return 0;
    }
    return (size_t)(p - start);
}

/* Resolves a spec against `length` (§14.1.2). Returns false when it is unsatisfiable. */
static bool resolve(const struct spec *s, uint64_t length, struct nm_range *out)
{
    if (s->is_suffix) {
        uint64_t suffix = s->first.value;
        if (suffix == 0 || length == 0)
            return false;
        /* A suffix longer than the representation selects all of it. */
        out->first = suffix >= length ? 0 : length - suffix;
        out->last = length - 1;
        return true;
    }
    /* A saturated first-pos stands for a value >= UINT64_MAX >= length: unsatisfiable. */
    if (s->first.value >= length)
        return false;
    out->first = s->first.value;
    /* A missing or too large (possibly saturated) last-pos means the rest of the data. */
    out->last = s->has_last && s->last.value < length ? s->last.value : length - 1;
    return true;
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A satisfiable range and the position of its range-spec in the field. */
struct ranked {
    struct nm_range r;
    size_t pos;
};

static bool before_by_offset(const struct ranked *a, const struct ranked *b)
{
    return a->r.first < b->r.first || (a->r.first == b->r.first && a->r.last < b->r.last);
}

static bool before_by_position(const struct ranked *a, const struct ranked *b)
{
    return a->pos < b->pos;
}

/* Stable insertion sort: at most NM_RANGE_MAX_SPECS elements. */
static void sort_ranked(struct ranked *r, size_t n,
                        bool (*before)(const struct ranked *, const struct ranked *))
{
    for (size_t i = 1; i < n; i++) {
        struct ranked x = r[i];
        size_t j = i;
        while (j > 0 && before(&x, &r[j - 1])) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

/* Merges overlapping and adjacent neighbours of an array sorted by offset; a merged range takes
 * the earliest position of its members. Returns the new count. */
static size_t coalesce(struct ranked *r, size_t n)
{
    if (n == 0)
        return 0;
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        /* r[k].r.last < length <= UINT64_MAX, so the + 1 cannot wrap. */
        if (r[i].r.first <= r[k].r.last + 1) {
            if (r[i].r.last > r[k].r.last)
                r[k].r.last = r[i].r.last;
            if (r[i].pos < r[k].pos)
                r[k].pos = r[i].pos;
        } else {
            r[++k] = r[i];
        }
    }
    return k + 1;
}

enum nm_range_result nm_range_evaluate(struct nm_field range, uint64_t length, struct nm_range *out,
                                       size_t cap, size_t *n_out)
{
    /* Range is a single ranges-specifier (§14.2), not a list: two lines are not one valid value. */
    if (range.n_lines != 1)
        return NM_RANGE_IGNORE;
    struct nm_slice v = nm_slice_trim_ows(range.lines[0]);
    const char *p = v.ptr;
    const char *end = v.ptr + v.len;

    const char *eq = p;
    while (eq < end && *eq != '=')
        eq++;
    if (eq == end)
        return NM_RANGE_IGNORE;
    /* §14.1: range units are case-insensitive; §14.2: an origin server MUST ignore a Range with a
     * unit it does not understand. No OWS is allowed around "=". */
    if (!nm_slice_case_eq(nm_slice_make(p, (size_t)(eq - p)), NM_SLICE_LIT("bytes")))
        return NM_RANGE_IGNORE;
    p = eq + 1;

    struct ranked sat[NM_RANGE_MAX_SPECS];
    size_t n_specs = 0, n_sat = 0;
    bool empty_suffix = false;
    uint64_t requested = 0;
    /* §14.2, §17.15: more than twice the representation asked for means heavy overlap. */
    uint64_t limit = length > UINT64_MAX / 2 ? UINT64_MAX : length * 2;

    /* 1#range-spec as a recipient reads it (§5.6.1.2): empty elements and OWS around commas are
     * accepted; OWS before the first element too, since nothing else could be meant. */
    for (;;) {
        while (p < end && (nm_token_is_ows((unsigned char)*p) || *p == ','))
            p++;
        if (p == end)
            break;
        struct spec s;
        size_t n = scan_spec(p, end, &s);
        if (n == 0)
            return NM_RANGE_IGNORE;
        p += n;
        while (p < end && nm_token_is_ows((unsigned char)*p))
            p++;
        if (p < end && *p != ',')
            return NM_RANGE_IGNORE;
        if (++n_specs > NM_RANGE_MAX_SPECS)
            return NM_RANGE_IGNORE;
        struct nm_range r;
        if (resolve(&s, length, &r)) {
            sat[n_sat] = (struct ranked){r, n_sat};
            n_sat++;
            requested = add_saturating(requested, r.last - r.first + 1);
        } else if (s.is_suffix && s.first.value > 0) {
            /* §14.1.2: with zero length, a non-zero suffix-range is still satisfiable. */
            empty_suffix = true;
        }
    }
    if (n_specs == 0)
        return NM_RANGE_IGNORE;
    if (n_sat == 0)
        /* The satisfiable suffix of an empty representation selects all of it, nothing, which
         * no 206 can describe: send the whole (empty) representation, as §14.2 allows. */
        return empty_suffix ? NM_RANGE_IGNORE : NM_RANGE_UNSATISFIABLE;
    if (requested > limit)
        return NM_RANGE_IGNORE;

    sort_ranked(sat, n_sat, before_by_offset);
    size_t n = coalesce(sat, n_sat);
    if (n > cap)
        return NM_RANGE_IGNORE;
    sort_ranked(sat, n, before_by_position);
    for (size_t i = 0; i < n; i++)
        out[i] = sat[i].r;
    *n_out = n;
    return NM_RANGE_SATISFIABLE;
}
