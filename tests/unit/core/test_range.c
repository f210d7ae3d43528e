/* Byte ranges: RFC 9110 §14.1 and §14.2 as tables, through notmod/range.h. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "notmod/range.h"

#define CAP 8
#define U64 UINT64_MAX

struct rcase {
    const char *value;
    uint64_t length;
    enum nm_range_result want;
    size_t n;
    struct nm_range r[4];
};

static const char *result_name(enum nm_range_result r)
{
    switch (r) {
    case NM_RANGE_IGNORE:
        return "IGNORE";
    case NM_RANGE_SATISFIABLE:
        return "SATISFIABLE";
    case NM_RANGE_UNSATISFIABLE:
        return "UNSATISFIABLE";
    }
    return "?";
}

static enum nm_range_result eval_lines(const struct nm_slice *lines, size_t n_lines,
                                       uint64_t length, struct nm_range *out, size_t cap,
                                       size_t *n_out)
{
    struct nm_field f = {lines, n_lines};
    return nm_range_evaluate(f, length, out, cap, n_out);
}

/* Runs one row and checks the result, the ranges, and that nothing is written unless the set is
 * satisfiable (range.h: *n_out and out are written only for SATISFIABLE). */
static void check_row(const struct rcase *c, size_t cap)
{
    struct nm_slice line = nm_slice_from_cstr(c->value);
    struct nm_range out[CAP + 1];
    for (size_t i = 0; i < CAP + 1; i++)
        out[i] = (struct nm_range){0xAA, 0xBB};
    size_t n = 12345;
    enum nm_range_result got = eval_lines(&line, 1, c->length, out, cap, &n);
    cr_expect_eq(got, c->want, "\"%s\" on %" PRIu64 " bytes: got %s, want %s", c->value, c->length,
                 result_name(got), result_name(c->want));
    if (got != c->want)
        return;
    if (got != NM_RANGE_SATISFIABLE) {
        cr_expect_eq(n, 12345, "\"%s\": n_out written for %s", c->value, result_name(got));
        cr_expect(out[0].first == 0xAA && out[0].last == 0xBB, "\"%s\": out written", c->value);
        return;
    }
    cr_expect_eq(n, c->n, "\"%s\" on %" PRIu64 " bytes: %zu ranges, want %zu", c->value, c->length,
                 n, c->n);
    for (size_t i = 0; i < n && i < c->n; i++) {
        cr_expect(out[i].first == c->r[i].first && out[i].last == c->r[i].last,
                  "\"%s\" on %" PRIu64 " bytes: range %zu is %" PRIu64 "-%" PRIu64 ", want %" PRIu64
                  "-%" PRIu64,
                  c->value, c->length, i, out[i].first, out[i].last, c->r[i].first, c->r[i].last);
        cr_expect(out[i].first <= out[i].last && out[i].last < c->length,
                  "\"%s\": range %zu out of bounds", c->value, i);
    }
    cr_expect(out[n].first == 0xAA && out[n].last == 0xBB, "\"%s\": wrote past n_out", c->value);
}

#define RUN(table)                                                                                 \
    for (size_t i_ = 0; i_ < sizeof(table) / sizeof(table[0]); i_++)                               \
    check_row(&(table)[i_], CAP)

#define SAT1(a, b)                                                                                 \
    NM_RANGE_SATISFIABLE, 1,                                                                       \
    {                                                                                              \
        {                                                                                          \
            a, b                                                                                   \
        }                                                                                          \
    }
#define SAT2(a, b, c, d)                                                                           \
    NM_RANGE_SATISFIABLE, 2,                                                                       \
    {                                                                                              \
        {a, b},                                                                                    \
        {                                                                                          \
            c, d                                                                                   \
        }                                                                                          \
    }
#define SAT3(a, b, c, d, e, f)                                                                     \
    NM_RANGE_SATISFIABLE, 3,                                                                       \
    {                                                                                              \
        {a, b}, {c, d},                                                                            \
        {                                                                                          \
            e, f                                                                                   \
        }                                                                                          \
    }
#define IGN                                                                                        \
    NM_RANGE_IGNORE, 0,                                                                            \
    {                                                                                              \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }
#define UNSAT                                                                                      \
    NM_RANGE_UNSATISFIABLE, 0,                                                                     \
    {                                                                                              \
        {                                                                                          \
            0, 0                                                                                   \
        }                                                                                          \
    }

/* The examples of §14.1.2, on a representation of 10000 bytes. */
static const struct rcase rfc_examples[] = {
    {"bytes=0-499", 10000, SAT1(0, 499)},
    {"bytes=500-999", 10000, SAT1(500, 999)},
    {"bytes=-500", 10000, SAT1(9500, 9999)},
    {"bytes=9500-", 10000, SAT1(9500, 9999)},
    {"bytes=0-0,-1", 10000, SAT2(0, 0, 9999, 9999)},
    {"bytes=500-600,601-999", 10000, SAT1(500, 999)},
    {"bytes=500-700,601-999", 10000, SAT1(500, 999)},
};

Test(range, rfc_9110_byte_range_examples_select_the_documented_bytes)
{
    RUN(rfc_examples);
}

static const struct rcase int_ranges[] = {
    {"bytes=0-0", 1, SAT1(0, 0)},
    {"bytes=0-", 1, SAT1(0, 0)},
    {"bytes=5-5", 10, SAT1(5, 5)},
    {"bytes=9-", 10, SAT1(9, 9)},
    {"bytes=0-9", 10, SAT1(0, 9)},
    {"bytes=3-100", 10, SAT1(3, 9)},
    {"bytes=0-18446744073709551615", 10, SAT1(0, 9)},
    {"bytes=0-", U64, SAT1(0, U64 - 1)},
};

Test(range, int_range_selects_first_to_last_and_clamps_a_last_pos_past_the_end)
{
    RUN(int_ranges);
}

static const struct rcase suffixes[] = {
    {"bytes=-1", 10, SAT1(9, 9)},
    {"bytes=-10", 10, SAT1(0, 9)},
    {"bytes=-11", 10, SAT1(0, 9)},
    {"bytes=-5", 3, SAT1(0, 2)},
    {"bytes=-999999999999999999999999999999", 10, SAT1(0, 9)},
    {"bytes=-18446744073709551615", U64, SAT1(0, U64 - 1)},
    {"bytes=-18446744073709551614", U64, SAT1(1, U64 - 1)},
};

Test(range, suffix_range_selects_the_last_bytes_or_all_of_a_shorter_representation)
{
    RUN(suffixes);
}

static const struct rcase unsatisfiable[] = {
    {"bytes=10-", 10, UNSAT},
    {"bytes=10-20", 10, UNSAT},
    {"bytes=11-11", 10, UNSAT},
    {"bytes=-0", 10, UNSAT},
    {"bytes=10-,20-,-0", 10, UNSAT},
    {"bytes=18446744073709551615-", U64, UNSAT},
    {"bytes=20-30,2-3", 10, SAT1(2, 3)},
    {"bytes=-0,5-", 10, SAT1(5, 9)},
};

Test(range, set_without_a_satisfiable_range_is_unsatisfiable_and_others_are_dropped)
{
    RUN(unsatisfiable);
}

static const struct rcase syntax_errors[] = {
    {"", 10, IGN},
    {"bytes", 10, IGN},
    {"bytes=", 10, IGN},
    {"bytes=,", 10, IGN},
    {"bytes= , \t, ", 10, IGN},
    {"bytes=-", 10, IGN},
    {"bytes=--1", 10, IGN},
    {"bytes=1", 10, IGN},
    {"bytes=1-2-3", 10, IGN},
    {"bytes=1--2", 10, IGN},
    {"bytes=-1-2", 10, IGN},
    {"bytes=a-b", 10, IGN},
    {"bytes=1-b", 10, IGN},
    {"bytes=+1-2", 10, IGN},
    {"bytes=-+1", 10, IGN},
    {"bytes=0x1-2", 10, IGN},
    {"bytes=1.5-2", 10, IGN},
    {"bytes=0-1;q=1", 10, IGN},
    {"bytes=0 -1", 10, IGN},
    {"bytes=0- 1", 10, IGN},
    {"bytes=0-1 2-3", 10, IGN},
    {"bytes=0-1,x", 10, IGN},
    {"bytes==0-1", 10, IGN},
    {"bytes=0-1\x01", 10, IGN},
    {"bytes=0-1;2-3", 10, IGN},
};

Test(range, syntax_error_anywhere_ignores_the_whole_field)
{
    RUN(syntax_errors);
}

static const struct rcase first_after_last[] = {
    {"bytes=5-4", 10, IGN},
    {"bytes=1-0", 10, IGN},
    {"bytes=0-1,5-4", 10, IGN},
    {"bytes=20-10", 10, IGN},
    {"bytes=00000000000000000000000000000007-5", 10, IGN},
    {"bytes=10000000000000000000-9999999999999999999", 10, IGN},
    {"bytes=999999999999999999999999999999-999999999999999999999999999998", 10, IGN},
};

Test(range, first_pos_greater_than_last_pos_is_invalid_and_ignores_the_field)
{
    RUN(first_after_last);
}

static const struct rcase units[] = {
    {"Bytes=0-1", 10, SAT1(0, 1)}, {"BYTES=0-1", 10, SAT1(0, 1)}, {"bYtEs=0-1", 10, SAT1(0, 1)},
    {"items=0-1", 10, IGN},        {"byte=0-1", 10, IGN},         {"bytesx=0-1", 10, IGN},
    {"none=0-1", 10, IGN},         {"x-bytes=0-1", 10, IGN},      {"=0-1", 10, IGN},
    {"bytes 0-1", 10, IGN},        {"bytes =0-1", 10, IGN},
};

Test(range, bytes_unit_is_case_insensitive_and_other_units_are_ignored)
{
    RUN(units);
}

static const struct rcase lists[] = {
    {"bytes=0-1,4-5", 100, SAT2(0, 1, 4, 5)},
    {"bytes=0-1, 4-5", 100, SAT2(0, 1, 4, 5)},
    {"bytes=0-1 ,4-5", 100, SAT2(0, 1, 4, 5)},
    {"bytes=0-1\t,\t4-5", 100, SAT2(0, 1, 4, 5)},
    {"bytes=,0-1,,4-5,", 100, SAT2(0, 1, 4, 5)},
    {"bytes=, ,0-1 , , 4-5 ,,", 100, SAT2(0, 1, 4, 5)},
    {"bytes= 0-1", 100, SAT1(0, 1)},
    {" bytes=0-1 ", 100, SAT1(0, 1)},
    {"bytes=0-1,   ", 100, SAT1(0, 1)},
};

Test(range, list_accepts_ows_around_commas_and_empty_elements)
{
    RUN(lists);
}

static const struct rcase coalescing[] = {
    {"bytes=4-5,0-1", 100, SAT2(4, 5, 0, 1)},
    {"bytes=50-59,0-9,20-29", 100, SAT3(50, 59, 0, 9, 20, 29)},
    {"bytes=0-10,5-20", 100, SAT1(0, 20)},
    {"bytes=0-10,11-20", 100, SAT1(0, 20)},
    {"bytes=11-20,0-10", 100, SAT1(0, 20)},
    {"bytes=0-10,12-20", 100, SAT2(0, 10, 12, 20)},
    {"bytes=0-50,10-20", 100, SAT1(0, 50)},
    {"bytes=10-20,0-50", 100, SAT1(0, 50)},
    {"bytes=5-9,5-9", 100, SAT1(5, 9)},
    {"bytes=0-89,-10", 100, SAT1(0, 99)},
    {"bytes=0-1,2-3,4-5,6-7", 100, SAT1(0, 7)},
    {"bytes=90-,80-95,-5", 100, SAT1(80, 99)},
    {"bytes=0-0,99-99,50-50,98-98", 100, SAT3(0, 0, 98, 99, 50, 50)},
    {"bytes=60-69,0-9,8-12", 100, SAT2(60, 69, 0, 12)},
    {"bytes=60-69,8-12,0-9", 100, SAT2(60, 69, 0, 12)},
};

Test(range, ranges_keep_request_order_and_coalesce_when_they_overlap_or_touch)
{
    RUN(coalescing);
}

static const struct rcase zero_length[] = {
    {"bytes=0-", 0, UNSAT},    {"bytes=0-0", 0, UNSAT},
    {"bytes=5-10", 0, UNSAT},  {"bytes=-0", 0, UNSAT},
    {"bytes=0-,-0", 0, UNSAT}, {"bytes=-1", 0, IGN},
    {"bytes=0-,-1", 0, IGN},   {"bytes=-999999999999999999999999999999", 0, IGN},
    {"bytes=x", 0, IGN},
};

Test(range, zero_length_int_ranges_are_unsatisfiable_and_a_suffix_range_sends_it_whole)
{
    RUN(zero_length);
}

static const struct rcase huge_numbers[] = {
    {"bytes=999999999999999999999999999999-", 10, UNSAT},
    {"bytes=999999999999999999999999999999-999999999999999999999999999999", 10, UNSAT},
    {"bytes=999999999999999999999999999998-999999999999999999999999999999", 10, UNSAT},
    {"bytes=0-999999999999999999999999999999", 10, SAT1(0, 9)},
    {"bytes=18446744073709551616-", U64, UNSAT},
    {"bytes=18446744073709551615-18446744073709551616", U64, UNSAT},
    {"bytes=18446744073709551614-", U64, SAT1(U64 - 1, U64 - 1)},
    {"bytes=18446744073709551614-99999999999999999999999", U64, SAT1(U64 - 1, U64 - 1)},
    {"bytes=000000000000000000000000000005-7", 10, SAT1(5, 7)},
    {"bytes=5-000000000000000000000000000007", 10, SAT1(5, 7)},
    {"bytes=999999999999999999999999999999-,0-0", 10, SAT1(0, 0)},
};

Test(range, huge_numbers_do_not_overflow_a_first_pos_is_past_the_end_a_last_pos_clamps)
{
    RUN(huge_numbers);
}

static const struct rcase overlap_abuse[] = {
    {"bytes=0-,0-", 10, SAT1(0, 9)},         {"bytes=0-,0-,0-", 10, IGN},
    {"bytes=0-9,0-9,0-0", 10, IGN},          {"bytes=-10,-10,-1", 10, IGN},
    {"bytes=0-,0-,20-,30-", 10, SAT1(0, 9)}, {"bytes=0-,1-,2-", 1000, IGN},
    {"bytes=0-,-1000", 1000, SAT1(0, 999)},  {"bytes=0-,-1000,-1", 1000, IGN},
};

Test(range, set_requesting_more_than_twice_the_length_is_ignored)
{
    RUN(overlap_abuse);
}

/* "bytes=0-0,2-2,4-4,..." with n disjoint one-byte specs. */
static size_t make_disjoint(char *buf, size_t cap, unsigned n)
{
    size_t len = (size_t)snprintf(buf, cap, "bytes=");
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%u-%u", i ? "," : "", 2 * i, 2 * i);
    return len;
}

Test(range, exactly_max_specs_disjoint_ranges_are_served_when_cap_allows)
{
    static char buf[4096];
    static struct nm_range out[NM_RANGE_MAX_SPECS];
    struct nm_slice line = nm_slice_make(buf, make_disjoint(buf, sizeof(buf), NM_RANGE_MAX_SPECS));
    size_t n = 0;
    cr_assert_eq(eval_lines(&line, 1, 1000, out, NM_RANGE_MAX_SPECS, &n), NM_RANGE_SATISFIABLE,
                 "100 disjoint specs with cap 100 are satisfiable");
    cr_assert_eq(n, NM_RANGE_MAX_SPECS, "all of them are kept");
    for (size_t i = 0; i < n; i++)
        cr_expect(out[i].first == 2 * i && out[i].last == 2 * i, "range %zu", i);
}

Test(range, more_than_max_specs_ignores_the_field)
{
    static char buf[4096];
    static struct nm_range out[NM_RANGE_MAX_SPECS + 1];
    struct nm_slice line =
        nm_slice_make(buf, make_disjoint(buf, sizeof(buf), NM_RANGE_MAX_SPECS + 1));
    size_t n = 0;
    cr_assert_eq(eval_lines(&line, 1, 1000, out, NM_RANGE_MAX_SPECS + 1, &n), NM_RANGE_IGNORE,
                 "101 specs are ignored whatever the cap");
    /* 101 identical specs would coalesce to one: the count of specs sent is what matters. */
    size_t len = (size_t)snprintf(buf, sizeof(buf), "bytes=0-0");
    for (unsigned i = 0; i < NM_RANGE_MAX_SPECS; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, ",0-0");
    line = nm_slice_make(buf, len);
    cr_assert_eq(eval_lines(&line, 1, 1000, out, 1, &n), NM_RANGE_IGNORE,
                 "101 identical specs are ignored");
}

Test(range, empty_list_elements_do_not_count_as_specs)
{
    static char buf[4096];
    struct nm_range out[1];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "bytes=");
    for (unsigned i = 0; i < 1000; i++)
        buf[len++] = ',';
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "3-4");
    struct nm_slice line = nm_slice_make(buf, len);
    size_t n = 0;
    cr_assert_eq(eval_lines(&line, 1, 10, out, 1, &n), NM_RANGE_SATISFIABLE,
                 "1000 empty elements and one spec");
    cr_expect(n == 1 && out[0].first == 3 && out[0].last == 4, "3-4");
}

struct cap_case {
    const char *value;
    size_t cap;
    enum nm_range_result want;
};

static const struct cap_case caps[] = {
    {"bytes=0-0,2-2,4-4", 2, NM_RANGE_IGNORE},      {"bytes=0-0,2-2,4-4", 3, NM_RANGE_SATISFIABLE},
    {"bytes=0-0,1-1,2-2", 1, NM_RANGE_SATISFIABLE}, {"bytes=0-0", 0, NM_RANGE_IGNORE},
    {"bytes=0-0", 1, NM_RANGE_SATISFIABLE},         {"bytes=50-,0-0", 1, NM_RANGE_SATISFIABLE},
    {"bytes=50-,0-0,1-", 1, NM_RANGE_SATISFIABLE},  {"bytes=50-,0-0,2-", 1, NM_RANGE_IGNORE},
    {"bytes=0-0,5-5,20-", 1, NM_RANGE_IGNORE},      {"bytes=20-", 0, NM_RANGE_UNSATISFIABLE},
};

Test(range, more_ranges_than_cap_after_coalescing_ignores_the_field)
{
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        struct nm_slice line = nm_slice_from_cstr(caps[i].value);
        struct nm_range out[4];
        size_t n = 0;
        enum nm_range_result got =
            eval_lines(&line, 1, 10, caps[i].cap ? out : NULL, caps[i].cap, &n);
        cr_expect_eq(got, caps[i].want, "\"%s\" cap %zu: got %s, want %s", caps[i].value,
                     caps[i].cap, result_name(got), result_name(caps[i].want));
        if (got == NM_RANGE_SATISFIABLE)
            cr_expect(n <= caps[i].cap, "\"%s\": %zu ranges over cap", caps[i].value, n);
    }
}

Test(range, absent_field_is_ignored)
{
    struct nm_range out[1];
    size_t n = 7;
    cr_assert_eq(eval_lines(NULL, 0, 10, out, 1, &n), NM_RANGE_IGNORE, "no Range field");
    cr_expect_eq(n, 7, "n_out untouched");
}

Test(range, field_of_more_than_one_line_is_ignored)
{
    const struct nm_slice two[] = {NM_SLICE_LIT("bytes=0-1"), NM_SLICE_LIT("bytes=2-3")};
    const struct nm_slice split[] = {NM_SLICE_LIT("bytes=0-1"), NM_SLICE_LIT("2-3")};
    struct nm_range out[2];
    size_t n = 7;
    cr_expect_eq(eval_lines(two, 2, 10, out, 2, &n), NM_RANGE_IGNORE, "two ranges-specifiers");
    cr_expect_eq(eval_lines(split, 2, 10, out, 2, &n), NM_RANGE_IGNORE, "a set split in two");
    cr_expect_eq(n, 7, "n_out untouched");
}

Test(range, unsatisfiable_result_leaves_outputs_alone_for_the_416_content_range)
{
    /* §14.4, §15.5.17: the 416 carries "bytes * /length"; only the length is needed, and the
     * caller's out and n_out stay as they were. */
    struct nm_slice line = NM_SLICE_LIT("bytes=100-");
    struct nm_range out[1] = {{1, 2}};
    size_t n = 9;
    cr_assert_eq(eval_lines(&line, 1, 100, out, 1, &n), NM_RANGE_UNSATISFIABLE, "100- of 100");
    cr_expect(n == 9 && out[0].first == 1 && out[0].last == 2, "outputs untouched");
}

Test(range, returned_ranges_always_lie_inside_the_representation)
{
    /* §14.4: a Content-Range with last-pos < first-pos or complete-length <= last-pos is
     * invalid, so every range handed to the response layer is first <= last < length. */
    static const char *const values[] = {
        "bytes=0-",  "bytes=-1",      "bytes=-100",   "bytes=0-0",   "bytes=5-1000",
        "bytes=9-9", "bytes=0-3,6-9", "bytes=-3,0-2", "bytes=8-,-5", "bytes=1-1,3-3,5-5,7-7",
    };
    for (uint64_t length = 1; length <= 12; length++) {
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            struct nm_slice line = nm_slice_from_cstr(values[i]);
            struct nm_range out[CAP];
            size_t n = 0;
            if (eval_lines(&line, 1, length, out, CAP, &n) != NM_RANGE_SATISFIABLE)
                continue;
            for (size_t k = 0; k < n; k++) {
                cr_expect(out[k].first <= out[k].last && out[k].last < length,
                          "%s on %" PRIu64 ": range %zu", values[i], length, k);
                for (size_t j = 0; j < k; j++)
                    cr_expect(out[k].first > out[j].last + 1 || out[j].first > out[k].last + 1,
                              "%s on %" PRIu64 ": ranges %zu and %zu touch", values[i], length, j,
                              k);
            }
        }
    }
}
