/* Entity tags (RFC 9110 §8.8.3): parsing, list scanning, comparison, formatting and makers.
 * Expected base64url strings were computed with an independent RFC 4648 encoder. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "notmod/etag.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct nm_etag tag(const char *text)
{
    struct nm_etag t;
    cr_assert_eq(nm_etag_parse(nm_slice_from_cstr(text), &t), 0, "fixture %s", text);
    return t;
}

static struct nm_field one_line(const struct nm_slice *line)
{
    return (struct nm_field){line, 1};
}

/* Collects the iterator's tags as formatted text joined by '|', for compact expectations. */
static void scan_to_text(struct nm_field f, char *out, size_t cap)
{
    struct nm_etag_iter it;
    struct nm_etag t;
    size_t n = 0;
    out[0] = '\0';
    nm_etag_iter_init(&it, f);
    while (nm_etag_iter_next(&it, &t)) {
        char buf[256];
        int len = nm_etag_format(&t, buf, sizeof(buf));
        cr_assert_gt(len, 0);
        cr_assert_lt(n + (size_t)len + 2, cap);
        if (n > 0)
            out[n++] = '|';
        memcpy(out + n, buf, (size_t)len);
        n += (size_t)len;
        out[n] = '\0';
    }
}

Test(etag, well_formed_tags_parse_with_their_quotes_and_weakness)
{
    static const struct {
        const char *in;
        bool weak;
        const char *opaque;
    } cases[] = {
        {"\"xyzzy\"", false, "\"xyzzy\""},
        {"W/\"xyzzy\"", true, "\"xyzzy\""},
        {"\"\"", false, "\"\""},
        {"W/\"\"", true, "\"\""},
        {"\"!\"", false, "\"!\""},
        {"\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\"", false,
         "\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\""},
        {"\"a,b\"", false, "\"a,b\""},
        {"\"W/\"", false, "\"W/\""},
        {"\"w/x\"", false, "\"w/x\""},
        {" \"abc\" ", false, "\"abc\""},
        {"\t W/\"abc\"\t ", true, "\"abc\""},
        {"\"0123456789abcdef\"", false, "\"0123456789abcdef\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag t = {{NULL, 0}, false};
        cr_expect_eq(nm_etag_parse(nm_slice_from_cstr(cases[i].in), &t), 0, "%s", cases[i].in);
        cr_expect_eq(t.weak, cases[i].weak, "%s", cases[i].in);
        cr_expect(nm_slice_eq(t.opaque, nm_slice_from_cstr(cases[i].opaque)), "%s", cases[i].in);
    }
}

Test(etag, obs_text_bytes_are_etagc)
{
    static const char *const cases[] = {"\"\x80\"", "\"\xff\"", "\"caf\xc3\xa9\"",
                                        "W/\"\x80\x9f\xa0\xfe\""};
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag t;
        cr_expect_eq(nm_etag_parse(nm_slice_from_cstr(cases[i]), &t), 0, "case %zu", i);
    }
}

Test(etag, malformed_tags_are_rejected_and_out_is_untouched)
{
    static const char *const cases[] = {
        "",          "   ",         "abc",          "\"unterminated", "W/abc",     "\"a\"b",
        "w/\"abc\"", "W /\"abc\"",  "W/ \"abc\"",   "W\"abc\"",       "/\"abc\"",  "W/",
        "\"",        "\"a b\"",     "\"a\tb\"",     "\"a\"b\"",       "\"a\x7f\"", "\"a\x01\"",
        "\"a\x1f\"", "*",           "\"a\", \"b\"", "\"a\",",         "'abc'",     "\"abc\"\r\n",
        "\"abc\" x", "W/W/\"abc\"",
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag t = {{"sentinel", 8}, true};
        cr_expect_eq(nm_etag_parse(nm_slice_from_cstr(cases[i]), &t), -EINVAL, "\"%s\"", cases[i]);
        cr_expect_eq(t.opaque.len, 8, "\"%s\" wrote out", cases[i]);
        cr_expect(t.weak);
    }
}

Test(etag, nul_inside_a_tag_is_rejected)
{
    static const char text[] = "\"a\0b\"";
    struct nm_etag t;
    cr_expect_eq(nm_etag_parse(nm_slice_make(text, sizeof(text) - 1), &t), -EINVAL);
}

Test(etag, parse_reads_only_the_bytes_of_the_slice)
{
    static const char text[] = "\"abc\"def";
    struct nm_etag t;
    cr_expect_eq(nm_etag_parse(nm_slice_make(text, 5), &t), 0);
    cr_expect_eq(t.opaque.ptr, text);
    cr_expect_eq(t.opaque.len, 5);
    cr_expect_eq(nm_etag_parse(nm_slice_make(text, 4), &t), -EINVAL);
    cr_expect_eq(nm_etag_parse(nm_slice_make(NULL, 0), &t), -EINVAL);
}

Test(etag, comparison_follows_the_rfc_9110_table)
{
    /* RFC 9110 §8.8.3.2, plus octet-exactness. */
    static const struct {
        const char *a, *b;
        bool strong, weak;
    } cases[] = {
        {"W/\"1\"", "W/\"1\"", false, true},
        {"W/\"1\"", "W/\"2\"", false, false},
        {"W/\"1\"", "\"1\"", false, true},
        {"\"1\"", "\"1\"", true, true},
        {"\"1\"", "\"2\"", false, false},
        {"\"a\"", "\"A\"", false, false},
        {"\"\"", "\"\"", true, true},
        {"\"abc\"", "\"abcd\"", false, false},
        {"\"\xc3\xa9\"", "\"\xc3\xa9\"", true, true},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag a = tag(cases[i].a), b = tag(cases[i].b);
        cr_expect_eq(nm_etag_matches_strong(&a, &b), cases[i].strong, "%s vs %s", cases[i].a,
                     cases[i].b);
        cr_expect_eq(nm_etag_matches_strong(&b, &a), cases[i].strong, "%s vs %s", cases[i].b,
                     cases[i].a);
        cr_expect_eq(nm_etag_matches_weak(&a, &b), cases[i].weak, "%s vs %s", cases[i].a,
                     cases[i].b);
        cr_expect_eq(nm_etag_matches_weak(&b, &a), cases[i].weak, "%s vs %s", cases[i].b,
                     cases[i].a);
    }
}

Test(etag, weak_tag_matches_strong_tag_weakly_but_never_strongly)
{
    struct nm_etag w = tag("W/\"v1\""), s = tag("\"v1\"");
    cr_expect(nm_etag_matches_weak(&w, &s));
    cr_expect_not(nm_etag_matches_strong(&w, &s));
    cr_expect_not(nm_etag_matches_strong(&w, &w));
}

Test(etag, list_scan_skips_empty_elements_and_ows_including_tabs)
{
    static const struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"\"a\", \"b\", W/\"c\"", "\"a\"|\"b\"|W/\"c\""},
        {",\t, \"a\" ,,\t\"b\"\t,", "\"a\"|\"b\""},
        {"\"a\",\"b\"", "\"a\"|\"b\""},
        {"", ""},
        {" \t , ,, \t", ""},
        {"\"a,b\", \"c\"", "\"a,b\"|\"c\""},
        {"W/\"\", \"\"", "W/\"\"|\"\""},
        {"\t\"x\"\t", "\"x\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_slice line = nm_slice_from_cstr(cases[i].line);
        char got[512];
        scan_to_text(one_line(&line), got, sizeof(got));
        cr_expect_str_eq(got, cases[i].want, "list \"%s\"", cases[i].line);
    }
}

Test(etag, malformed_member_is_skipped_and_scan_continues)
{
    static const struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"abc, \"a\"", "\"a\""},
        {"\"a\", abc, \"b\"", "\"a\"|\"b\""},
        {"W/abc, \"b\"", "\"b\""},
        {"\"a\"b, \"c\"", "\"c\""},
        {"\"x\" \"y\", \"z\"", "\"z\""},
        {"w/\"a\", \"b\"", "\"b\""},
        {"W/ \"a\", \"b\"", "\"b\""},
        {"\"a b\", \"c\"", "\"c\""},
        /* The comma inside the quotes does not end the malformed member. */
        {"\"a,b\"x, \"c\"", "\"c\""},
        {"W/\"a,b\"x, \"c\", \"d\"", "\"c\"|\"d\""},
        {"*, \"a\"", "\"a\""},
        {"\"a\", *", "\"a\""},
        {"*", ""},
        {"\"a\", \"unterminated", "\"a\""},
        {"\"a\"\x01, \"b\"", "\"b\""},
        {"\"a\";q=1, \"b\"", "\"b\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_slice line = nm_slice_from_cstr(cases[i].line);
        char got[512];
        scan_to_text(one_line(&line), got, sizeof(got));
        cr_expect_str_eq(got, cases[i].want, "list \"%s\"", cases[i].line);
    }
}

Test(etag, unbalanced_quote_swallows_the_rest_of_its_line_only)
{
    /* A comma after an odd number of DQUOTEs is inside a quoted run, so it ends nothing; the
     * next field line is a new list (§5.3) and is scanned normally. */
    const struct nm_slice lines[] = {
        NM_SLICE_LIT("\"unterminated, \"b\", \"c\""),
        NM_SLICE_LIT("\"d\""),
    };
    char got[512];
    scan_to_text((struct nm_field){lines, 2}, got, sizeof(got));
    cr_expect_str_eq(got, "\"d\"");
}

Test(etag, repeated_field_lines_form_one_list)
{
    const struct nm_slice lines[] = {
        NM_SLICE_LIT("\"a\""),          NM_SLICE_LIT(""),
        NM_SLICE_LIT("W/\"b\", \"c\""), NM_SLICE_LIT(" , "),
        NM_SLICE_LIT("\"unterminated"), NM_SLICE_LIT("\t\"d\""),
    };
    char got[512];
    scan_to_text((struct nm_field){lines, N(lines)}, got, sizeof(got));
    cr_expect_str_eq(got, "\"a\"|W/\"b\"|\"c\"|\"d\"");

    /* A tag does not continue across a line boundary. */
    const struct nm_slice split[] = {NM_SLICE_LIT("\"ab"), NM_SLICE_LIT("c\"")};
    scan_to_text((struct nm_field){split, 2}, got, sizeof(got));
    cr_expect_str_eq(got, "");
}

Test(etag, iterator_tags_borrow_from_the_field_lines)
{
    const char *text = "  \"a\" , W/\"bb\"";
    struct nm_slice line = nm_slice_from_cstr(text);
    struct nm_etag_iter it;
    struct nm_etag t;
    nm_etag_iter_init(&it, one_line(&line));
    cr_assert(nm_etag_iter_next(&it, &t));
    cr_expect_eq(t.opaque.ptr, text + 2);
    cr_expect_eq(t.opaque.len, 3);
    cr_expect_not(t.weak);
    cr_assert(nm_etag_iter_next(&it, &t));
    cr_expect_eq(t.opaque.ptr, text + 10);
    cr_expect_eq(t.opaque.len, 4);
    cr_expect(t.weak);
    cr_expect_not(nm_etag_iter_next(&it, &t));
    /* The end is sticky. */
    cr_expect_not(nm_etag_iter_next(&it, &t));
}

Test(etag, absent_field_yields_no_tags_and_matches_nothing)
{
    struct nm_field none = {NULL, 0};
    struct nm_etag_iter it;
    struct nm_etag t = tag("\"a\"");
    nm_etag_iter_init(&it, none);
    cr_expect_not(nm_etag_iter_next(&it, &t));
    cr_expect_not(nm_etag_list_matches_weak(none, &t));
    cr_expect_not(nm_etag_list_matches_strong(none, &t));
    cr_expect_not(nm_etag_list_is_any(none));
}

Test(etag, long_list_is_scanned_to_the_end)
{
    static char line[4 * 1000 + 1];
    size_t n = 0;
    for (int i = 0; i < 1000; i++) {
        line[n++] = '"';
        line[n++] = (char)('a' + i % 26);
        line[n++] = '"';
        line[n++] = ',';
    }
    struct nm_slice s = nm_slice_make(line, n);
    struct nm_etag_iter it;
    struct nm_etag t;
    int count = 0;
    nm_etag_iter_init(&it, one_line(&s));
    while (nm_etag_iter_next(&it, &t))
        count++;
    cr_expect_eq(count, 1000);
}

Test(etag, star_is_any_only_as_the_whole_value)
{
    static const struct {
        const char *line;
        bool any;
    } cases[] = {
        {"*", true},      {" * ", true},       {"\t*\t", true},     {"*,*", false},
        {"\"*\"", false}, {"*, \"a\"", false}, {"**", false},       {"", false},
        {"W/*", false},   {"* ,", false},      {"\"a\", *", false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_slice line = nm_slice_from_cstr(cases[i].line);
        cr_expect_eq(nm_etag_list_is_any(one_line(&line)), cases[i].any, "\"%s\"", cases[i].line);
    }
    const struct nm_slice two[] = {NM_SLICE_LIT("*"), NM_SLICE_LIT("*")};
    cr_expect_not(nm_etag_list_is_any((struct nm_field){two, 2}));
}

Test(etag, star_in_a_list_matches_no_tag)
{
    struct nm_slice line = NM_SLICE_LIT("*");
    struct nm_etag t = tag("\"a\"");
    cr_expect_not(nm_etag_list_matches_weak(one_line(&line), &t));
    cr_expect_not(nm_etag_list_matches_strong(one_line(&line), &t));
}

Test(etag, list_matching_uses_strong_or_weak_comparison)
{
    const struct nm_slice lines[] = {NM_SLICE_LIT("W/\"a\", junk"), NM_SLICE_LIT("\"b\"")};
    struct nm_field f = {lines, 2};
    static const struct {
        const char *tag;
        bool strong, weak;
    } cases[] = {
        {"\"a\"", false, true},   {"W/\"a\"", false, true}, {"\"b\"", true, true},
        {"W/\"b\"", false, true}, {"\"c\"", false, false},  {"\"junk\"", false, false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag t = tag(cases[i].tag);
        cr_expect_eq(nm_etag_list_matches_strong(f, &t), cases[i].strong, "%s", cases[i].tag);
        cr_expect_eq(nm_etag_list_matches_weak(f, &t), cases[i].weak, "%s", cases[i].tag);
    }
}

Test(etag, format_writes_the_tag_text_with_a_nul)
{
    static const char *const cases[] = {"\"abc\"", "W/\"abc\"", "\"\"", "W/\"\"", "\"\xc3\xa9\""};
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_etag t = tag(cases[i]);
        char buf[32];
        size_t len = strlen(cases[i]);
        cr_expect_eq(nm_etag_format(&t, buf, sizeof(buf)), (int)len, "%s", cases[i]);
        cr_expect_str_eq(buf, cases[i]);
        struct nm_etag back;
        cr_assert_eq(nm_etag_parse(nm_slice_from_cstr(buf), &back), 0);
        cr_expect_eq(back.weak, t.weak);
        cr_expect(nm_slice_eq(back.opaque, t.opaque));
    }
}

Test(etag, format_returns_enospc_without_writing_when_cap_is_short)
{
    struct nm_etag t = tag("W/\"abc\"");
    char buf[16];
    memset(buf, 'x', sizeof(buf));
    cr_expect_eq(nm_etag_format(&t, buf, 7), -ENOSPC);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_expect_eq(buf[i], 'x');
    cr_expect_eq(nm_etag_format(&t, NULL, 0), -ENOSPC);
    cr_expect_eq(nm_etag_format(&t, buf, 8), 7);
    cr_expect_str_eq(buf, "W/\"abc\"");
}

Test(etag, hash128_is_unpadded_base64url_most_significant_bit_first)
{
    static const struct {
        uint64_t hi, lo;
        const char *want;
    } cases[] = {
        {0, 0, "\"AAAAAAAAAAAAAAAAAAAAAA\""},
        /* 128 = 21 * 6 + 2: the last character holds 2 bits and 4 zero bits. */
        {UINT64_MAX, UINT64_MAX, "\"_____________________w\""},
        {0, 1, "\"AAAAAAAAAAAAAAAAAAAAAQ\""},
        {0, 3, "\"AAAAAAAAAAAAAAAAAAAAAw\""},
        {UINT64_C(0x8000000000000000), 0, "\"gAAAAAAAAAAAAAAAAAAAAA\""},
        {1, 0, "\"AAAAAAAAAAEAAAAAAAAAAA\""},
        {0, UINT64_MAX, "\"AAAAAAAAAAD__________w\""},
        {UINT64_MAX, 0, "\"__________8AAAAAAAAAAA\""},
        {UINT64_C(0xfbff000000000000), 0, "\"-_8AAAAAAAAAAAAAAAAAAA\""},
        {UINT64_C(0x0123456789abcdef), UINT64_C(0xfedcba9876543210), "\"ASNFZ4mrze_-3LqYdlQyEA\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char buf[NM_ETAG_MAX + 1];
        cr_expect_eq(nm_etag_make_hash128(cases[i].hi, cases[i].lo, buf, sizeof(buf)), 24);
        cr_expect_str_eq(buf, cases[i].want);
        struct nm_etag t;
        cr_expect_eq(nm_etag_parse(nm_slice_from_cstr(buf), &t), 0);
        cr_expect_not(t.weak);
    }
}

Test(etag, hash128_needs_room_for_quotes_and_nul)
{
    char buf[25];
    memset(buf, 'x', sizeof(buf));
    cr_expect_eq(nm_etag_make_hash128(0, 0, buf, 24), -ENOSPC);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_expect_eq(buf[i], 'x');
    cr_expect_eq(nm_etag_make_hash128(0, 0, NULL, 0), -ENOSPC);
    cr_expect_eq(nm_etag_make_hash128(0, 0, buf, 25), 24);
    cr_expect_eq(buf[24], '\0');
}

Test(etag, metadata_is_lowercase_hex_size_dash_mtime)
{
    static const struct {
        uint64_t size;
        int64_t mtime_ns;
        const char *want;
    } cases[] = {
        {0, 0, "\"0-0\""},
        {16, 255, "\"10-ff\""},
        {1234, 1700000000123456789LL, "\"4d2-17979cfe3d85cd15\""},
        {UINT64_MAX, INT64_MAX, "\"ffffffffffffffff-7fffffffffffffff\""},
        {0xABCDEF, 0xA, "\"abcdef-a\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char buf[NM_ETAG_MAX + 1];
        int want_len = (int)strlen(cases[i].want);
        cr_expect_eq(nm_etag_make_metadata(cases[i].size, cases[i].mtime_ns, buf, sizeof(buf)),
                     want_len, "%s", cases[i].want);
        cr_expect_str_eq(buf, cases[i].want);
    }
}

Test(etag, metadata_refuses_mtime_before_the_epoch_and_short_buffers)
{
    char buf[NM_ETAG_MAX + 1];
    memset(buf, 'x', sizeof(buf));
    cr_expect_eq(nm_etag_make_metadata(1, -1, buf, sizeof(buf)), -ERANGE);
    cr_expect_eq(nm_etag_make_metadata(1, INT64_MIN, buf, sizeof(buf)), -ERANGE);
    /* "10-ff" with quotes is 7 bytes: 8 with the NUL. */
    cr_expect_eq(nm_etag_make_metadata(16, 255, buf, 7), -ENOSPC);
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_expect_eq(buf[i], 'x');
    cr_expect_eq(nm_etag_make_metadata(16, 255, buf, 8), 7);
    cr_expect_str_eq(buf, "\"10-ff\"");
}

Test(etag, version_is_quoted_as_given)
{
    static const char *const ok[] = {"v1.2.3", "!", "build-2024_01#7", "\x80\xff", "a/b=c?d"};
    for (size_t i = 0; i < N(ok); i++) {
        char buf[NM_ETAG_MAX + 1], want[NM_ETAG_MAX + 1];
        size_t len = strlen(ok[i]);
        want[0] = '"';
        memcpy(want + 1, ok[i], len);
        want[len + 1] = '"';
        want[len + 2] = '\0';
        cr_expect_eq(nm_etag_make_version(nm_slice_from_cstr(ok[i]), buf, sizeof(buf)),
                     (int)len + 2);
        cr_expect_str_eq(buf, want);
    }
}

Test(etag, version_refuses_empty_too_long_or_non_etagc_bytes)
{
    static const char *const bad[] = {"", "a\"b", "a b", "\t", "a\x7f", "a\x01", "\r\n", "x\x1f"};
    for (size_t i = 0; i < N(bad); i++) {
        char buf[NM_ETAG_MAX + 1];
        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(nm_etag_make_version(nm_slice_from_cstr(bad[i]), buf, sizeof(buf)), -EINVAL,
                     "case %zu", i);
        cr_expect_eq(buf[0], 'x');
    }
    static const char nul[] = "a\0b";
    char buf[NM_ETAG_MAX + 1];
    cr_expect_eq(nm_etag_make_version(nm_slice_make(nul, 3), buf, sizeof(buf)), -EINVAL);

    char longest[NM_ETAG_MAX - 1];
    memset(longest, 'v', sizeof(longest));
    cr_expect_eq(nm_etag_make_version(nm_slice_make(longest, NM_ETAG_MAX - 2), buf, sizeof(buf)),
                 NM_ETAG_MAX);
    cr_expect_eq(strlen(buf), NM_ETAG_MAX);
    cr_expect_eq(nm_etag_make_version(nm_slice_make(longest, NM_ETAG_MAX - 1), buf, sizeof(buf)),
                 -EINVAL);
}

Test(etag, version_returns_enospc_when_cap_is_short)
{
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    cr_expect_eq(nm_etag_make_version(NM_SLICE_LIT("abcde"), buf, 7), -ENOSPC);
    cr_expect_eq(buf[0], 'x');
    cr_expect_eq(nm_etag_make_version(NM_SLICE_LIT("abcde"), buf, 8), 7);
    cr_expect_str_eq(buf, "\"abcde\"");
}

Test(etag, every_made_tag_parses_as_a_strong_tag_within_etag_max)
{
    char buf[NM_ETAG_MAX + 1];
    struct nm_etag t;
    int len = nm_etag_make_hash128(UINT64_MAX, 42, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    cr_expect_leq(len, NM_ETAG_MAX);
    cr_expect_eq(nm_etag_parse(nm_slice_make(buf, (size_t)len), &t), 0);
    cr_expect_not(t.weak);
    len = nm_etag_make_metadata(UINT64_MAX, INT64_MAX, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    cr_expect_leq(len, NM_ETAG_MAX);
    cr_expect_eq(nm_etag_parse(nm_slice_make(buf, (size_t)len), &t), 0);
    cr_expect_not(t.weak);
}
