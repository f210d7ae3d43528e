/* Borrowed slices and multi-line fields (RFC 9110 §5.1, §5.3, §5.6.3). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "notmod/slice.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(slice, literal_and_cstr_slices_exclude_the_nul)
{
    struct nm_slice a = NM_SLICE_LIT("ETag");
    struct nm_slice b = nm_slice_from_cstr("ETag");
    cr_expect_eq(a.len, 4);
    cr_expect_eq(b.len, 4);
    cr_expect(nm_slice_eq(a, b));
    struct nm_slice e = NM_SLICE_LIT("");
    cr_expect_eq(e.len, 0);
}

Test(slice, make_borrows_the_callers_bytes)
{
    static const char buf[] = "abcdef";
    struct nm_slice s = nm_slice_make(buf + 2, 3);
    cr_expect_eq(s.ptr, buf + 2);
    cr_expect_eq(s.len, 3);
    cr_expect(nm_slice_eq(s, NM_SLICE_LIT("cde")));
}

Test(slice, eq_is_octet_exact_and_length_sensitive)
{
    static const struct {
        const char *a, *b;
        bool eq;
    } cases[] = {
        {"", "", true},          {"a", "a", true},       {"a", "A", false},
        {"abc", "ab", false},    {"ab", "abc", false},   {"\xff", "\xff", true},
        {"\xff", "\xfe", false}, {"etag", "etag", true},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(nm_slice_eq(nm_slice_from_cstr(cases[i].a), nm_slice_from_cstr(cases[i].b)),
                     cases[i].eq, "\"%s\" vs \"%s\"", cases[i].a, cases[i].b);
}

Test(slice, empty_slices_are_equal_whatever_their_pointer)
{
    cr_expect(nm_slice_eq(nm_slice_make(NULL, 0), NM_SLICE_LIT("")));
    cr_expect(nm_slice_case_eq(nm_slice_make(NULL, 0), nm_slice_make("x", 0)));
}

Test(slice, case_eq_folds_ascii_letters_only)
{
    static const struct {
        const char *a, *b;
        bool eq;
    } cases[] = {
        {"Host", "host", true},
        {"ETAG", "etag", true},
        {"If-None-Match", "if-none-match", true},
        {"Z", "z", true},
        {"", "", true},
        {"a", "b", false},
        {"abc", "ab", false},
        /* Neighbours of the letter ranges must not fold: '@' '[' '`' '{'. */
        {"@", "`", false},
        {"[", "{", false},
        {"a-b", "a_b", false},
        /* Non-ASCII bytes are compared as they are (§5.1 field names are tokens). */
        {"\xc0", "\xe0", false},
        {"\xc9", "\xc9", true},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(
            nm_slice_case_eq(nm_slice_from_cstr(cases[i].a), nm_slice_from_cstr(cases[i].b)),
            cases[i].eq, "\"%s\" vs \"%s\"", cases[i].a, cases[i].b);
}

Test(slice, trim_ows_removes_only_spaces_and_tabs_at_both_ends)
{
    static const struct {
        const char *in;
        size_t skip, len;
    } cases[] = {
        {"a", 0, 1},
        {" a ", 1, 1},
        {"\t\ta b\t", 2, 3},
        {"", 0, 0},
        {"   ", 0, 0},
        {" \t \t", 0, 0},
        /* CR, LF, VT and FF are not OWS (§5.6.3). */
        {"\r\na\r\n", 0, 5},
        {"\va\f", 0, 3},
        {"  \"x\" , \"y\"  ", 2, 9},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_slice in = nm_slice_from_cstr(cases[i].in);
        struct nm_slice out = nm_slice_trim_ows(in);
        cr_expect_eq(out.len, cases[i].len, "\"%s\"", cases[i].in);
        if (cases[i].len > 0)
            cr_expect_eq(out.ptr, in.ptr + cases[i].skip, "\"%s\"", cases[i].in);
    }
}

Test(slice, trim_ows_reads_only_the_bytes_of_the_slice)
{
    static const char buf[] = " a  b";
    struct nm_slice out = nm_slice_trim_ows(nm_slice_make(buf, 3));
    cr_expect_eq(out.ptr, buf + 1);
    cr_expect_eq(out.len, 1);
}

Test(slice, field_is_present_when_it_has_lines)
{
    const struct nm_slice lines[] = {NM_SLICE_LIT("")};
    cr_expect_not(nm_field_is_present((struct nm_field){NULL, 0}));
    cr_expect(nm_field_is_present((struct nm_field){lines, 1}));
}
