/* Private-cache rules (RFC 9111): Cache-Control, Age, current age, freshness lifetime with the
 * heuristic, Vary, storage exclusions, 304 selection and freshening. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "notmod/cachectl.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define HDR(n, v)                                                                                  \
    {                                                                                              \
        {n, sizeof(n) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }

static struct nm_slice lines_buf[8];

static struct nm_field one(const char *s)
{
    lines_buf[0] = nm_slice_from_cstr(s);
    return (struct nm_field){lines_buf, 1};
}

static struct nm_cachectl cc_of(const char *s)
{
    struct nm_cachectl cc;
    cr_assert_eq(nm_cachectl_parse(one(s), &cc), 0);
    return cc;
}

/* Cache-Control (§5.2) */

Test(cachectl, directives_are_case_insensitive_and_take_token_or_quoted_arguments)
{
    struct nm_cachectl cc = cc_of("Max-Age=\"60\", NO-CACHE, must-revalidate");
    cr_assert(cc.flags & NM_CACHECTL_MAX_AGE);
    cr_assert_eq(cc.max_age_s, 60);
    cr_assert(cc.flags & NM_CACHECTL_NO_CACHE);
    cr_assert(cc.flags & NM_CACHECTL_MUST_REVALIDATE);
    cr_assert_not(cc.flags & NM_CACHECTL_MALFORMED);
}

Test(cachectl, quoted_commas_do_not_split_members)
{
    struct nm_cachectl cc = cc_of("no-cache=\"Set-Cookie, X-Foo\", max-age=5");
    cr_assert(cc.flags & NM_CACHECTL_NO_CACHE);
    cr_assert_eq(cc.max_age_s, 5);
    cr_assert_not(cc.flags & NM_CACHECTL_MALFORMED);
}

Test(cachectl, empty_list_elements_are_not_malformed)
{
    struct nm_cachectl cc = cc_of(" , no-store ,, ");
    cr_assert(cc.flags & NM_CACHECTL_NO_STORE);
    cr_assert_not(cc.flags & NM_CACHECTL_MALFORMED);
}

Test(cachectl, junk_members_are_skipped_and_flagged)
{
    struct nm_cachectl cc = cc_of("max-age=10 junk, private, =5");
    cr_assert(cc.flags & NM_CACHECTL_MALFORMED);
    cr_assert(cc.flags & NM_CACHECTL_PRIVATE);
    cr_assert(cc.flags & NM_CACHECTL_INVALID_FRESHNESS);
}

Test(cachectl, non_integer_or_conflicting_max_age_is_invalid_freshness)
{
    cr_assert(cc_of("max-age=abc").flags & NM_CACHECTL_INVALID_FRESHNESS);
    cr_assert(cc_of("max-age").flags & NM_CACHECTL_INVALID_FRESHNESS);
    cr_assert(cc_of("max-age=-1").flags & NM_CACHECTL_INVALID_FRESHNESS);
    cr_assert(cc_of("max-age=5, max-age=6").flags & NM_CACHECTL_INVALID_FRESHNESS);
    cr_assert_not(cc_of("max-age=5, max-age=5").flags & NM_CACHECTL_INVALID_FRESHNESS);
}

Test(cachectl, huge_delta_seconds_saturate_at_2_to_the_31)
{
    struct nm_cachectl cc = cc_of("max-age=99999999999999999999999");
    cr_assert_eq(cc.max_age_s, NM_CACHECTL_DELTA_MAX);
}

Test(cachectl, directives_across_lines_combine)
{
    struct nm_slice l[] = {NM_SLICE_LIT("public"), NM_SLICE_LIT("max-age=7")};
    struct nm_cachectl cc;
    nm_cachectl_parse((struct nm_field){l, 2}, &cc);
    cr_assert(cc.flags & NM_CACHECTL_PUBLIC);
    cr_assert_eq(cc.max_age_s, 7);
}

/* Age (§5.1) */

Test(cachectl, age_uses_the_first_member_and_ignores_invalid_values)
{
    cr_assert_eq(nm_cachectl_age_value(one("30")), 30);
    cr_assert_eq(nm_cachectl_age_value(one(" 30 , 40")), 30);
    cr_assert_eq(nm_cachectl_age_value(one("-3")), -1);
    cr_assert_eq(nm_cachectl_age_value(one("abc")), -1);
    cr_assert_eq(nm_cachectl_age_value((struct nm_field){NULL, 0}), -1);
}

Test(cachectl, singleton_dates_must_agree)
{
    int64_t t;
    struct nm_slice l[] = {NM_SLICE_LIT("Sun, 06 Nov 1994 08:49:37 GMT"),
                           NM_SLICE_LIT("Sun, 06 Nov 1994 08:49:38 GMT")};
    cr_assert_eq(nm_cachectl_date((struct nm_field){l, 1}, 0, &t), 0);
    cr_assert_eq(t, 784111777);
    cr_assert_eq(nm_cachectl_date((struct nm_field){l, 2}, 0, &t), -EINVAL);
    cr_assert_eq(nm_cachectl_date((struct nm_field){l, 0}, 0, &t), -ENOENT);
    cr_assert_eq(nm_cachectl_date(one("0"), 0, &t), -EINVAL);
}

/* Age calculation (§4.2.3) and freshness lifetime (§4.2.1, §4.2.2) */

#define T0 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */

struct fixture {
    struct nm_slice cc, expires, date, lm, age;
};

static struct nm_freshness eval(const char *cc, const char *expires, const char *date,
                                const char *lm, const char *age, int status, int64_t req_t,
                                int64_t resp_t, int64_t now, bool heuristic)
{
    static struct fixture f;
    f.cc = nm_slice_from_cstr(cc ? cc : "");
    f.expires = nm_slice_from_cstr(expires ? expires : "");
    f.date = nm_slice_from_cstr(date ? date : "");
    f.lm = nm_slice_from_cstr(lm ? lm : "");
    f.age = nm_slice_from_cstr(age ? age : "");
    struct nm_cachectl_response r = {
        .status = status,
        .cache_control = {&f.cc, cc ? 1 : 0},
        .expires = {&f.expires, expires ? 1 : 0},
        .date = {&f.date, date ? 1 : 0},
        .last_modified = {&f.lm, lm ? 1 : 0},
        .age = {&f.age, age ? 1 : 0},
        .request_time = req_t,
        .response_time = resp_t,
    };
    struct nm_cachectl_policy p = {
        .heuristic = heuristic, .heuristic_max_s = 86400, .heuristic_percent = 10};
    struct nm_freshness fr;
    cr_assert_eq(nm_cachectl_evaluate(&r, &p, now, &fr), 0);
    return fr;
}

#define DATE_T0 "Sun, 06 Nov 1994 08:49:37 GMT"
#define DATE_T0_PLUS_100 "Sun, 06 Nov 1994 08:51:17 GMT"
#define DATE_T0_MINUS_10D "Thu, 27 Oct 1994 08:49:37 GMT"
#define DATE_T0_MINUS_100D "Sat, 30 Jul 1994 08:49:37 GMT"

Test(cachectl, current_age_adds_response_delay_to_age_and_resident_time)
{
    /* Sent at T0-2, received at T0, Age: 10, now T0+5: corrected initial age 12, plus 5. */
    struct nm_freshness fr =
        eval("max-age=60", NULL, DATE_T0, NULL, "10", 200, T0 - 2, T0, T0 + 5, true);
    cr_assert_eq(fr.current_age_s, 17);
    cr_assert_eq(fr.lifetime_s, 60);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_MAX_AGE);
    cr_assert(fr.fresh);
}

Test(cachectl, apparent_age_from_a_date_in_the_past_wins_when_larger)
{
    /* Date 100 s before receipt, no Age: apparent_age 100. */
    struct nm_freshness fr =
        eval("max-age=60", NULL, DATE_T0, NULL, NULL, 200, T0 + 100, T0 + 100, T0 + 100, true);
    cr_assert_eq(fr.current_age_s, 100);
    cr_assert_not(fr.fresh);
}

Test(cachectl, a_date_in_the_future_gives_no_negative_age)
{
    struct nm_freshness fr =
        eval("max-age=60", NULL, DATE_T0_PLUS_100, NULL, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.current_age_s, 0);
    cr_assert(fr.fresh);
}

Test(cachectl, a_missing_date_uses_the_response_time)
{
    struct nm_freshness fr = eval("max-age=60", NULL, NULL, NULL, NULL, 200, T0, T0, T0 + 59, true);
    cr_assert_eq(fr.current_age_s, 59);
    cr_assert(fr.fresh);
    fr = eval("max-age=60", NULL, NULL, NULL, NULL, 200, T0, T0, T0 + 60, true);
    cr_assert_not(fr.fresh, "fresh means lifetime > age, strictly");
}

Test(cachectl, max_age_wins_over_expires)
{
    struct nm_freshness fr =
        eval("max-age=10", DATE_T0_PLUS_100, DATE_T0, NULL, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.lifetime_s, 10);
}

Test(cachectl, expires_minus_date_is_the_lifetime)
{
    struct nm_freshness fr =
        eval(NULL, DATE_T0_PLUS_100, DATE_T0, NULL, NULL, 200, T0, T0, T0 + 50, true);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_EXPIRES);
    cr_assert_eq(fr.lifetime_s, 100);
    cr_assert(fr.fresh);
}

Test(cachectl, an_invalid_expires_means_already_expired_and_no_heuristic)
{
    struct nm_freshness fr =
        eval(NULL, "0", DATE_T0, DATE_T0_MINUS_10D, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_EXPIRES);
    cr_assert_eq(fr.lifetime_s, 0);
    cr_assert_not(fr.fresh);
}

Test(cachectl, heuristic_is_a_tenth_of_the_time_since_last_modified)
{
    struct nm_freshness fr =
        eval(NULL, NULL, DATE_T0, DATE_T0_MINUS_10D, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_HEURISTIC);
    cr_assert_eq(fr.lifetime_s, 86400);
    cr_assert(fr.fresh);
}

Test(cachectl, heuristic_is_capped)
{
    struct nm_freshness fr =
        eval(NULL, NULL, DATE_T0, DATE_T0_MINUS_100D, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.lifetime_s, 86400);
}

Test(cachectl, heuristic_can_be_turned_off)
{
    struct nm_freshness fr =
        eval(NULL, NULL, DATE_T0, DATE_T0_MINUS_10D, NULL, 200, T0, T0, T0, false);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_NONE);
    cr_assert_eq(fr.lifetime_s, 0);
    cr_assert_not(fr.fresh);
}

Test(cachectl, heuristic_needs_last_modified_and_a_heuristically_cacheable_status)
{
    cr_assert_eq(eval(NULL, NULL, DATE_T0, NULL, NULL, 200, T0, T0, T0, true).source,
                 NM_CACHECTL_SOURCE_NONE);
    cr_assert_eq(eval(NULL, NULL, DATE_T0, DATE_T0_MINUS_10D, NULL, 302, T0, T0, T0, true).source,
                 NM_CACHECTL_SOURCE_NONE);
    cr_assert_eq(eval(NULL, NULL, DATE_T0, DATE_T0_MINUS_10D, NULL, 404, T0, T0, T0, true).source,
                 NM_CACHECTL_SOURCE_HEURISTIC);
}

Test(cachectl, no_explicit_expiry_but_cache_control_without_max_age_still_allows_heuristic)
{
    struct nm_freshness fr =
        eval("public", NULL, DATE_T0, DATE_T0_MINUS_10D, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_HEURISTIC);
}

Test(cachectl, no_cache_is_never_fresh_and_never_served_stale)
{
    struct nm_freshness fr =
        eval("max-age=600, no-cache", NULL, DATE_T0, NULL, NULL, 200, T0, T0, T0, true);
    cr_assert_not(fr.fresh);
    cr_assert_not(fr.may_serve_stale);
}

Test(cachectl, must_revalidate_forbids_serving_stale)
{
    cr_assert_not(eval("max-age=0, must-revalidate", NULL, NULL, NULL, NULL, 200, T0, T0, T0, true)
                      .may_serve_stale);
    cr_assert(eval("max-age=0", NULL, NULL, NULL, NULL, 200, T0, T0, T0, true).may_serve_stale);
}

Test(cachectl, invalid_max_age_makes_the_response_stale)
{
    struct nm_freshness fr =
        eval("max-age=soon", DATE_T0_PLUS_100, DATE_T0, NULL, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_INVALID);
    cr_assert_not(fr.fresh);
}

Test(cachectl, s_maxage_is_ignored_by_a_private_cache)
{
    struct nm_freshness fr = eval("s-maxage=600", NULL, DATE_T0, NULL, NULL, 200, T0, T0, T0, true);
    cr_assert_eq(fr.lifetime_s, 0);
}

/* Vary (§4.1) */

Test(cachectl, vary_star_never_matches)
{
    struct nm_http1_field req[] = {HDR("Accept", "*/*")};
    cr_assert(nm_cachectl_vary_is_any(one("Accept, *")));
    cr_assert_not(nm_cachectl_vary_matches(one("*"), req, 1, req, 1));
}

Test(cachectl, vary_compares_the_named_request_fields)
{
    struct nm_http1_field a[] = {HDR("Accept-Encoding", "gzip"), HDR("User-Agent", "x")};
    struct nm_http1_field b[] = {HDR("accept-encoding", " gzip "), HDR("User-Agent", "y")};
    struct nm_http1_field c[] = {HDR("Accept-Encoding", "br")};
    cr_assert(nm_cachectl_vary_matches(one("Accept-Encoding"), a, 2, b, 2));
    cr_assert_not(nm_cachectl_vary_matches(one("accept-encoding"), a, 2, c, 1));
    cr_assert_not(nm_cachectl_vary_matches(one("Accept-Encoding, User-Agent"), a, 2, b, 2));
}

Test(cachectl, vary_absent_in_both_requests_matches_and_absent_in_one_does_not)
{
    struct nm_http1_field a[] = {HDR("Accept-Language", "fr")};
    cr_assert(nm_cachectl_vary_matches(one("Accept-Encoding"), a, 1, NULL, 0));
    cr_assert_not(nm_cachectl_vary_matches(one("Accept-Language"), a, 1, NULL, 0));
    cr_assert(nm_cachectl_vary_matches((struct nm_field){NULL, 0}, a, 1, NULL, 0));
}

/* Storage (§3.1) */

Test(cachectl, hop_by_hop_and_connection_listed_fields_are_not_stored)
{
    struct nm_field conn = one("close, X-Secret");
    cr_assert(nm_cachectl_is_unstorable(NM_SLICE_LIT("transfer-encoding"), conn));
    cr_assert(nm_cachectl_is_unstorable(NM_SLICE_LIT("Keep-Alive"), conn));
    cr_assert(nm_cachectl_is_unstorable(NM_SLICE_LIT("x-secret"), conn));
    cr_assert_not(nm_cachectl_is_unstorable(NM_SLICE_LIT("ETag"), conn));
    cr_assert_not(nm_cachectl_is_unstorable(NM_SLICE_LIT("Content-Length"), conn));
}

/* Selecting and freshening with a 304 (§4.3.4) */

static const struct nm_http1_field stored[] = {
    HDR("Date", DATE_T0_MINUS_10D),           HDR("ETag", "\"v1\""),
    HDR("Last-Modified", DATE_T0_MINUS_100D), HDR("Content-Length", "2100000"),
    HDR("Content-Type", "text/css"),          HDR("Cache-Control", "max-age=60"),
};

Test(cachectl, a_304_with_the_same_strong_etag_selects_the_stored_response)
{
    struct nm_http1_field r[] = {HDR("ETag", "\"v1\"")};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), r, 1, T0), NM_CACHECTL_SELECT_MATCH);
}

Test(cachectl, a_304_with_another_etag_must_not_freshen)
{
    struct nm_http1_field r[] = {HDR("ETag", "\"v2\"")};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), r, 1, T0), NM_CACHECTL_SELECT_MISMATCH);
    struct nm_http1_field bad[] = {HDR("ETag", "v1")};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), bad, 1, T0),
                 NM_CACHECTL_SELECT_MISMATCH);
}

Test(cachectl, a_weak_304_etag_selects_by_weak_comparison)
{
    struct nm_http1_field r[] = {HDR("ETag", "W/\"v1\"")};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), r, 1, T0), NM_CACHECTL_SELECT_MATCH);
    struct nm_http1_field weak_stored[] = {HDR("ETag", "W/\"v1\"")};
    struct nm_http1_field strong[] = {HDR("ETag", "\"v1\"")};
    cr_assert_eq(nm_cachectl_select_304(weak_stored, 1, strong, 1, T0), NM_CACHECTL_SELECT_MISMATCH,
                 "a strong validator needs a strong match");
}

Test(cachectl, without_a_strong_etag_a_304_last_modified_must_equal_the_stored_one)
{
    struct nm_http1_field same[] = {HDR("Last-Modified", DATE_T0_MINUS_100D)};
    struct nm_http1_field other[] = {HDR("Last-Modified", DATE_T0_MINUS_10D)};
    struct nm_http1_field weak_other[] = {HDR("ETag", "W/\"v1\""),
                                          HDR("Last-Modified", DATE_T0_MINUS_10D)};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), same, 1, T0), NM_CACHECTL_SELECT_MATCH);
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), other, 1, T0),
                 NM_CACHECTL_SELECT_MISMATCH);
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), weak_other, 2, T0),
                 NM_CACHECTL_SELECT_MISMATCH);
}

Test(cachectl, a_matching_strong_etag_selects_even_when_last_modified_moved)
{
    /* RFC 9111 §4.3.4: each strong validator identifies the stored response on its own (the
     * same bytes uploaded again get a new date, not a new content tag). */
    struct nm_http1_field both[] = {HDR("ETag", "\"v1\""), HDR("Last-Modified", DATE_T0_MINUS_10D)};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), both, 2, T0), NM_CACHECTL_SELECT_MATCH);
}

Test(cachectl, a_304_without_validators_is_reported_as_such)
{
    struct nm_http1_field r[] = {HDR("Date", DATE_T0)};
    cr_assert_eq(nm_cachectl_select_304(stored, N(stored), r, 1, T0),
                 NM_CACHECTL_SELECT_NO_VALIDATOR);
}

static const struct nm_http1_field *find(const struct nm_http1_field *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (nm_slice_case_eq(h[i].name, nm_slice_from_cstr(name)))
            return &h[i];
    return NULL;
}

Test(cachectl, freshening_replaces_fields_but_never_takes_content_length_or_framing)
{
    struct nm_http1_field r[] = {
        HDR("Date", DATE_T0),
        HDR("Cache-Control", "max-age=3600"),
        HDR("Content-Length", "0"),
        HDR("Transfer-Encoding", "chunked"),
        HDR("Connection", "X-Hop"),
        HDR("X-Hop", "1"),
        HDR("Content-Encoding", "gzip"),
        HDR("X-New", "yes"),
    };
    struct nm_http1_field out[32];
    int n = nm_cachectl_freshen(stored, N(stored), r, N(r), out, N(out));
    cr_assert_gt(n, 0);
    cr_assert(nm_slice_eq(find(out, (size_t)n, "Date")->value, NM_SLICE_LIT(DATE_T0)));
    cr_assert(
        nm_slice_eq(find(out, (size_t)n, "Cache-Control")->value, NM_SLICE_LIT("max-age=3600")));
    cr_assert(nm_slice_eq(find(out, (size_t)n, "Content-Length")->value, NM_SLICE_LIT("2100000")));
    cr_assert(nm_slice_eq(find(out, (size_t)n, "ETag")->value, NM_SLICE_LIT("\"v1\"")));
    cr_assert_null(find(out, (size_t)n, "Transfer-Encoding"));
    cr_assert_null(find(out, (size_t)n, "Connection"));
    cr_assert_null(find(out, (size_t)n, "X-Hop"));
    cr_assert_null(find(out, (size_t)n, "Content-Encoding"));
    cr_assert_not_null(find(out, (size_t)n, "X-New"));
    cr_assert_eq(n, 7);
}

Test(cachectl, freshening_replaces_every_line_of_a_repeated_field)
{
    struct nm_http1_field s[] = {HDR("Cache-Control", "max-age=1"), HDR("Cache-Control", "public")};
    struct nm_http1_field r[] = {HDR("cache-control", "no-cache")};
    struct nm_http1_field out[4];
    int n = nm_cachectl_freshen(s, 2, r, 1, out, N(out));
    cr_assert_eq(n, 1);
    cr_assert(nm_slice_eq(out[0].value, NM_SLICE_LIT("no-cache")));
}

Test(cachectl, freshening_reports_a_full_output_array)
{
    struct nm_http1_field r[] = {HDR("X-A", "1"), HDR("X-B", "2")};
    struct nm_http1_field out[3];
    cr_assert_eq(nm_cachectl_freshen(stored, N(stored), r, 2, out, N(out)), -ENOSPC);
}

Test(cachectl, field_collects_lines_case_insensitively_up_to_the_cap)
{
    struct nm_http1_field h[] = {HDR("Vary", "a"), HDR("X", "y"), HDR("vary", "b"),
                                 HDR("VARY", "c")};
    struct nm_slice l[2];
    struct nm_field f = nm_cachectl_field(h, N(h), "Vary", l, 2);
    cr_assert_eq(f.n_lines, 2);
    cr_assert(nm_slice_eq(f.lines[1], NM_SLICE_LIT("b")));
}

Test(cachectl, token_iteration_skips_empty_members_across_lines)
{
    struct nm_slice l[] = {NM_SLICE_LIT(" a ,, b"), NM_SLICE_LIT(""), NM_SLICE_LIT("c,")};
    struct nm_cachectl_token_iter it;
    struct nm_slice t;
    const char *want[] = {"a", "b", "c"};
    size_t k = 0;
    nm_cachectl_token_iter_init(&it, (struct nm_field){l, 3});
    while (nm_cachectl_token_iter_next(&it, &t)) {
        cr_assert_lt(k, N(want));
        cr_assert(nm_slice_eq(t, nm_slice_from_cstr(want[k])));
        k++;
    }
    cr_assert_eq(k, 3);
}
