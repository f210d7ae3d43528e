/* HTTP-date parsing and formatting (RFC 9110 §5.6.7). Expected timestamps were computed
 * independently of src/date.c (POSIX timegm on the same calendar fields). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "notmod/date.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Mon, 15 Jan 2024 12:00:00 GMT */
#define NOW_2024 1705320000LL
/* Sentinel that no valid parse produces. */
#define UNTOUCHED INT64_C(-777)

struct ok_case {
    const char *in;
    int64_t want;
};

struct bad_case {
    const char *in;
};

struct rfc850_case {
    int64_t now;
    const char *in;
    int64_t want; /* -1: rejected */
};

static void expect_ok(const struct ok_case *c, size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        int64_t t = UNTOUCHED;
        int rc = nm_date_parse(nm_slice_from_cstr(c[i].in), now, &t);
        cr_expect_eq(rc, 0, "parse \"%s\" returned %d", c[i].in, rc);
        cr_expect_eq(t, c[i].want, "parse \"%s\" gave %lld, want %lld", c[i].in, (long long)t,
                     (long long)c[i].want);
    }
}

static void expect_bad(const struct bad_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t t = UNTOUCHED;
        int rc = nm_date_parse(nm_slice_from_cstr(c[i].in), NOW_2024, &t);
        cr_expect_eq(rc, -EINVAL, "parse \"%s\" returned %d, want -EINVAL", c[i].in, rc);
        cr_expect_eq(t, UNTOUCHED, "parse \"%s\" wrote %lld on failure", c[i].in, (long long)t);
    }
}

Test(date, imf_fixdate_parses_to_seconds_since_epoch)
{
    static const struct ok_case cases[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Thu, 01 Jan 1970 00:00:01 GMT", 1},
        {"Fri, 31 Dec 9999 23:59:59 GMT", NM_DATE_MAX},
        {"Fri, 31 Dec 1999 23:59:59 GMT", 946684799},
        {"Sat, 01 Jan 2000 00:00:00 GMT", 946684800},
        {"Tue, 19 Jan 2038 03:14:07 GMT", 2147483647},
        {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL},
        {"Wed, 31 Jan 2024 00:00:00 GMT", 1706659200},
        {"Tue, 31 Dec 2024 00:00:00 GMT", 1735603200},
        {"Mon, 15 Jan 2074 12:00:00 GMT", 3283243200LL},
        {"Sat, 04 Mar 2141 00:00:00 GMT", 5401641600LL},
    };
    expect_ok(cases, N(cases), NOW_2024);
}

Test(date, rfc850_date_parses_with_long_day_names)
{
    static const struct ok_case cases[] = {
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
        {"Friday, 31-Dec-99 23:59:59 GMT", 946684799},
        {"Saturday, 01-Jan-00 00:00:00 GMT", 946684800},
        {"Wednesday, 01-Jan-20 00:00:00 GMT", 1577836800},
        {"Tuesday, 30-Apr-24 00:00:00 GMT", 1714435200},
        {"Monday, 30-Sep-24 00:00:00 GMT", 1727654400},
        {"Thursday, 29-Feb-24 23:59:59 GMT", 1709251199},
    };
    expect_ok(cases, N(cases), NOW_2024);
}

Test(date, asctime_date_parses_with_space_padded_or_two_digit_day)
{
    static const struct ok_case cases[] = {
        {"Sun Nov  6 08:49:37 1994", 784111777},
        /* §5.6.7: date3 = month SP ( 2DIGIT / ( SP DIGIT ) ), so "06" is allowed too. */
        {"Sun Nov 06 08:49:37 1994", 784111777},
        {"Thu Jan  1 00:00:00 1970", 0},
        {"Sat Nov 30 00:00:00 2024", 1732924800},
        {"Tue Feb 29 12:00:00 2000", 951825600},
        {"Fri Dec 31 23:59:59 9999", NM_DATE_MAX},
    };
    expect_ok(cases, N(cases), NOW_2024);
}

Test(date, three_formats_of_the_rfc_example_give_the_same_time)
{
    static const char *const forms[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    };
    for (size_t i = 0; i < N(forms); i++) {
        int64_t t = UNTOUCHED;
        cr_assert_eq(nm_date_parse(nm_slice_from_cstr(forms[i]), NOW_2024, &t), 0, "%s", forms[i]);
        cr_expect_eq(t, 784111777, "%s", forms[i]);
    }
}

Test(date, rfc850_two_digit_year_uses_fifty_year_rule)
{
    static const struct rfc850_case cases[] = {
        /* now = Mon, 15 Jan 2024 12:00:00: the window ends at 15 Jan 2074 12:00:00. */
        {NOW_2024, "Monday, 15-Jan-24 12:00:00 GMT", 1705320000},
        {NOW_2024, "Monday, 15-Jan-74 11:00:00 GMT", 3283239600LL},
        {NOW_2024, "Monday, 15-Jan-74 12:00:00 GMT", 3283243200LL},
        /* One second more than 50 years ahead: the past century. */
        {NOW_2024, "Tuesday, 15-Jan-74 12:00:01 GMT", 127483201},
        {NOW_2024, "Monday, 05-May-75 00:00:00 GMT", 168480000},
        {NOW_2024, "Wednesday, 01-Jan-70 00:00:00 GMT", 3155760000LL},
        /* A weekday that fits only the other century is a mismatch. */
        {NOW_2024, "Sunday, 05-May-75 00:00:00 GMT", -1},
        {NOW_2024, "Monday, 15-Jan-74 12:00:01 GMT", -1},
        /* now = 1 Jun 2090: 10 is 2110 (20 years ahead), 41 is 2041 (2141 is too far). */
        {3799958400LL, "Tuesday, 04-Mar-10 00:00:00 GMT", 4423334400LL},
        {3799958400LL, "Monday, 04-Mar-41 00:00:00 GMT", 2245968000LL},
        /* now = the epoch: the window is 1920-2020. */
        {0, "Wednesday, 01-Jan-20 00:00:00 GMT", 1577836800},
        {0, "Thursday, 01-Jan-70 00:00:01 GMT", 1},
        {0, "Wednesday, 01-Jan-20 00:00:01 GMT", -1}, /* 1920 was a Thursday */
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t t = UNTOUCHED;
        int rc = nm_date_parse(nm_slice_from_cstr(cases[i].in), cases[i].now, &t);
        if (cases[i].want < 0) {
            cr_expect_eq(rc, -EINVAL, "\"%s\" at now=%lld returned %d", cases[i].in,
                         (long long)cases[i].now, rc);
            cr_expect_eq(t, UNTOUCHED);
        } else {
            cr_expect_eq(rc, 0, "\"%s\" at now=%lld returned %d", cases[i].in,
                         (long long)cases[i].now, rc);
            cr_expect_eq(t, cases[i].want, "\"%s\" at now=%lld gave %lld", cases[i].in,
                         (long long)cases[i].now, (long long)t);
        }
    }
}

Test(date, rfc850_with_extreme_now_is_rejected_without_overflow)
{
    static const int64_t nows[] = {INT64_MIN, INT64_MIN + 1, INT64_MAX - 1, INT64_MAX};
    for (size_t i = 0; i < N(nows); i++) {
        int64_t t = UNTOUCHED;
        int rc = nm_date_parse(NM_SLICE_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), nows[i], &t);
        cr_expect_eq(rc, -EINVAL, "now=%lld returned %d", (long long)nows[i], rc);
        cr_expect_eq(t, UNTOUCHED);
    }
    /* The other formats carry a four-digit year and ignore now. */
    int64_t t = UNTOUCHED;
    cr_expect_eq(nm_date_parse(NM_SLICE_LIT("Sun, 06 Nov 1994 08:49:37 GMT"), INT64_MIN, &t), 0);
    cr_expect_eq(t, 784111777);
}

Test(date, feb_29_parses_only_in_leap_years)
{
    static const struct ok_case ok[] = {
        {"Tue, 29 Feb 2000 12:00:00 GMT", 951825600},
        {"Thu, 29 Feb 2024 23:59:59 GMT", 1709251199},
        {"Wed, 29 Feb 2096 00:00:00 GMT", 3981312000LL},
        {"Tue, 29 Feb 2400 00:00:00 GMT", 13574563200LL},
    };
    /* Each weekday is the one the day would have if it existed (the day after Feb 28), so
     * only the missing leap day can be the reason for the rejection. */
    static const struct bad_case bad[] = {
        {"Wed, 29 Feb 2023 00:00:00 GMT"}, /* not divisible by 4 */
        {"Mon, 29 Feb 2100 00:00:00 GMT"}, /* century, not divisible by 400 */
        {"Sat, 29 Feb 2200 00:00:00 GMT"},
        {"Thu, 29 Feb 2300 00:00:00 GMT"},
        {"Mon Feb 29 00:00:00 2100"},
        {"Wednesday, 29-Feb-23 00:00:00 GMT"},
        /* 1900 is not leap either. */
        {"Thu, 29 Feb 1900 00:00:00 GMT"},
    };
    expect_ok(ok, N(ok), NOW_2024);
    expect_bad(bad, N(bad));
}

Test(date, century_years_are_leap_only_when_divisible_by_400)
{
    static const struct {
        const char *feb28, *mar1;
        int days;
    } cases[] = {
        {"Mon, 28 Feb 2000 00:00:00 GMT", "Wed, 01 Mar 2000 00:00:00 GMT", 2},
        {"Sun, 28 Feb 2100 00:00:00 GMT", "Mon, 01 Mar 2100 00:00:00 GMT", 1},
        {"Fri, 28 Feb 2200 00:00:00 GMT", "Sat, 01 Mar 2200 00:00:00 GMT", 1},
        {"Tue, 28 Feb 2023 00:00:00 GMT", "Wed, 01 Mar 2023 00:00:00 GMT", 1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t a = 0, b = 0;
        cr_assert_eq(nm_date_parse(nm_slice_from_cstr(cases[i].feb28), NOW_2024, &a), 0, "%s",
                     cases[i].feb28);
        cr_assert_eq(nm_date_parse(nm_slice_from_cstr(cases[i].mar1), NOW_2024, &b), 0, "%s",
                     cases[i].mar1);
        cr_expect_eq(b - a, cases[i].days * 86400LL, "%s -> %s", cases[i].feb28, cases[i].mar1);
    }
    int64_t t = 0;
    cr_expect_eq(nm_date_parse(NM_SLICE_LIT("Sun, 28 Feb 2100 00:00:00 GMT"), NOW_2024, &t), 0);
    cr_expect_eq(t, 4107456000LL);
}

Test(date, day_must_exist_in_its_month)
{
    static const struct ok_case ok[] = {
        {"Tue, 30 Apr 2024 00:00:00 GMT", 1714435200},
        {"Sun, 30 Jun 2024 00:00:00 GMT", 1719705600},
        {"Mon, 30 Sep 2024 00:00:00 GMT", 1727654400},
        {"Sat, 30 Nov 2024 00:00:00 GMT", 1732924800},
    };
    static const struct bad_case bad[] = {
        {"Fri, 30 Feb 2024 00:00:00 GMT"}, {"Wed, 31 Apr 2024 00:00:00 GMT"},
        {"Mon, 31 Jun 2024 00:00:00 GMT"}, {"Tue, 31 Sep 2024 00:00:00 GMT"},
        {"Sun, 31 Nov 2024 00:00:00 GMT"}, {"Thu, 32 Jan 2024 00:00:00 GMT"},
        {"Sat, 00 Dec 2024 00:00:00 GMT"}, {"Sat Dec  0 00:00:00 2024"},
        {"Fri Feb 30 00:00:00 2024"},      {"Friday, 30-Feb-24 00:00:00 GMT"},
    };
    expect_ok(ok, N(ok), NOW_2024);
    expect_bad(bad, N(bad));
}

Test(date, weekday_must_match_the_date)
{
    static const struct bad_case bad[] = {
        {"Mon, 06 Nov 1994 08:49:37 GMT"},  {"Sat, 06 Nov 1994 08:49:37 GMT"},
        {"Monday, 06-Nov-94 08:49:37 GMT"}, {"Mon Nov  6 08:49:37 1994"},
        {"Fri, 01 Jan 1970 00:00:00 GMT"},  {"Sat, 31 Dec 9999 23:59:59 GMT"},
    };
    expect_bad(bad, N(bad));
}

Test(date, day_and_month_names_are_case_sensitive)
{
    static const struct bad_case bad[] = {
        {"sun, 06 Nov 1994 08:49:37 GMT"},  {"SUN, 06 Nov 1994 08:49:37 GMT"},
        {"Sun, 06 nov 1994 08:49:37 GMT"},  {"Sun, 06 NOV 1994 08:49:37 GMT"},
        {"sunday, 06-Nov-94 08:49:37 GMT"}, {"SUNDAY, 06-Nov-94 08:49:37 GMT"},
        {"Sunday, 06-nov-94 08:49:37 GMT"}, {"sun Nov  6 08:49:37 1994"},
        {"Sun nov  6 08:49:37 1994"},       {"Sun, 06 Nov 1994 08:49:37 Gmt"},
    };
    expect_bad(bad, N(bad));
}

Test(date, gmt_is_required_and_lowercase_gmt_is_rejected)
{
    static const struct bad_case bad[] = {
        {"Sun, 06 Nov 1994 08:49:37 gmt"},   {"Sun, 06 Nov 1994 08:49:37 UTC"},
        {"Sun, 06 Nov 1994 08:49:37 +0000"}, {"Sun, 06 Nov 1994 08:49:37"},
        {"Sun, 06 Nov 1994 08:49:37 UT"},    {"Sunday, 06-Nov-94 08:49:37 gmt"},
        {"Sunday, 06-Nov-94 08:49:37 EST"},  {"Sunday, 06-Nov-94 08:49:37"},
    };
    expect_bad(bad, N(bad));
}

Test(date, hour_minute_and_second_are_range_checked)
{
    static const struct bad_case bad[] = {
        {"Sun, 06 Nov 1994 24:00:00 GMT"},  {"Sun, 06 Nov 1994 99:00:00 GMT"},
        {"Sun, 06 Nov 1994 08:60:00 GMT"},  {"Sun, 06 Nov 1994 08:49:61 GMT"},
        {"Sun, 06 Nov 1994 08:49:99 GMT"},  {"Sun Nov  6 24:49:37 1994"},
        {"Sunday, 06-Nov-94 08:60:37 GMT"},
    };
    static const struct ok_case ok[] = {
        {"Sun, 06 Nov 1994 23:59:59 GMT", 784166399},
        {"Sun, 06 Nov 1994 00:00:00 GMT", 784080000},
    };
    expect_bad(bad, N(bad));
    expect_ok(ok, N(ok), NOW_2024);
}

Test(date, leap_second_reads_as_the_next_second)
{
    static const struct ok_case ok[] = {
        {"Sat, 31 Dec 2016 23:59:60 GMT", 1483228800},
        {"Sat Dec 31 23:59:60 2016", 1483228800},
        {"Saturday, 31-Dec-16 23:59:60 GMT", 1483228800},
        /* The contract allows :60 in any minute, like POSIX. */
        {"Sun, 06 Nov 1994 08:49:60 GMT", 784111800},
    };
    expect_ok(ok, N(ok), NOW_2024);

    char buf[NM_DATE_LEN + 1];
    cr_expect_eq(nm_date_format(1483228800, buf), NM_DATE_LEN);
    cr_expect_str_eq(buf, "Sun, 01 Jan 2017 00:00:00 GMT");
}

Test(date, leap_second_after_date_max_is_rejected)
{
    static const struct bad_case bad[] = {
        {"Fri, 31 Dec 9999 23:59:60 GMT"},
        {"Fri Dec 31 23:59:60 9999"},
    };
    expect_bad(bad, N(bad));
}

Test(date, surrounding_ows_is_allowed)
{
    static const struct ok_case ok[] = {
        {" Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
        {"Sun, 06 Nov 1994 08:49:37 GMT ", 784111777},
        {"\t \tSun, 06 Nov 1994 08:49:37 GMT\t \t", 784111777},
        {"  Sunday, 06-Nov-94 08:49:37 GMT\t", 784111777},
        {"\tSun Nov  6 08:49:37 1994 ", 784111777},
    };
    expect_ok(ok, N(ok), NOW_2024);
}

Test(date, anything_but_ows_after_the_date_is_rejected)
{
    static const struct bad_case bad[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMTx"},    {"Sun, 06 Nov 1994 08:49:37 GMT x"},
        {"Sun, 06 Nov 1994 08:49:37 GMT\r\n"}, {"Sun, 06 Nov 1994 08:49:37 GMT,"},
        {"Sun, 06 Nov 1994 08:49:37 GMT;"},    {"Sun Nov  6 08:49:37 1994 GMT"},
        {"Sun Nov  6 08:49:37 19945"},         {"Sunday, 06-Nov-94 08:49:37 GMT+1"},
        {"Sun, 06 Nov 1994 08:49:37 GMT (c)"}, {"\r\nSun, 06 Nov 1994 08:49:37 GMT"},
        {"xSun, 06 Nov 1994 08:49:37 GMT"},
    };
    expect_bad(bad, N(bad));

    static const char with_nul[] = "Sun, 06 Nov 1994 08:49:37 GMT\0";
    int64_t t = UNTOUCHED;
    cr_expect_eq(nm_date_parse(nm_slice_make(with_nul, sizeof(with_nul) - 1), NOW_2024, &t),
                 -EINVAL);
    cr_expect_eq(t, UNTOUCHED);
}

Test(date, misshapen_fields_are_rejected)
{
    static const struct bad_case bad[] = {
        {""},
        {"   "},
        {"Sun, 06 Nov 1994"},
        {"Sun, 6 Nov 1994 08:49:37 GMT"},
        {"Sun,  6 Nov 1994 08:49:37 GMT"},
        {"Sun 06 Nov 1994 08:49:37 GMT"},
        {"Sun,06 Nov 1994 08:49:37 GMT"},
        {"Sun, 06 Nov 94 08:49:37 GMT"},
        {"Sun, 06-Nov-1994 08:49:37 GMT"},
        {"Sun, 06 Nov 1994 8:49:37 GMT"},
        {"Sun, 06 Nov 1994 08.49.37 GMT"},
        {"Sun, 06 Nov 1994 08:49 GMT"},
        {"Sun, 06 Nov 1994  08:49:37 GMT"},
        {"Sun, 06 Nov +994 08:49:37 GMT"},
        {"Sun, 06 Nov 1994 08:49:-7 GMT"},
        {"Sun, 06 Nov 1994 08:49:3\xb7 GMT"},
        {"Sun, 0x Nov 1994 08:49:37 GMT"},
        {"Sun, 06 Foo 1994 08:49:37 GMT"},
        {"Sun, 06 November 1994 08:49:37 GMT"},
        {"Sunday, 06 Nov 1994 08:49:37 GMT"},
        {"Sun, 06-Nov-94 08:49:37 GMT"},
        {"Sunday, 06-Nov-1994 08:49:37 GMT"},
        {"Sunday, 6-Nov-94 08:49:37 GMT"},
        {"Sunday 06-Nov-94 08:49:37 GMT"},
        {"Sunday, 06 Nov 94 08:49:37 GMT"},
        {"Sun Nov 6 08:49:37 1994"},
        {"Sun Nov   6 08:49:37 1994"},
        {"Sun Nov  6 08:49:37 94"},
        {"Sun, Nov  6 08:49:37 1994"},
        {"Sun Nov 6  08:49:37 1994"},
        {"Sunday Nov  6 08:49:37 1994"},
        {"Sun, 06 Nov 0000 08:49:37 GMT"},
    };
    expect_bad(bad, N(bad));
}

Test(date, every_separator_and_digit_position_is_checked)
{
    /* Corrupting any one separator, or turning any digit into its ASCII neighbours '/' and ':',
     * must be rejected in each of the three formats. */
    static const char *const forms[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    };
    size_t checked = 0;
    for (size_t f = 0; f < N(forms); f++) {
        size_t len = strlen(forms[f]);
        for (size_t i = 0; i < len; i++) {
            char c = forms[f][i];
            static const char separators[] = " ,:-";
            const char *repl;
            if (strchr(separators, c) != NULL)
                repl = "_";
            else if (c >= '0' && c <= '9')
                repl = "/:";
            else
                continue;
            for (; *repl != '\0'; repl++) {
                char buf[40];
                memcpy(buf, forms[f], len);
                buf[i] = *repl;
                int64_t t = UNTOUCHED;
                cr_expect_eq(nm_date_parse(nm_slice_make(buf, len), NOW_2024, &t), -EINVAL, "%.*s",
                             (int)len, buf);
                cr_expect_eq(t, UNTOUCHED);
                checked++;
            }
        }
    }
    cr_expect_gt(checked, 60);
}

Test(date, dates_before_the_epoch_parse_to_negative_times)
{
    /* RFC 9110 §5.6.7 allows any four-digit year; §13.1.4 must then compare, not ignore. */
    static const struct {
        const char *in;
        int64_t want;
    } cases[] = {
        {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
        {"Wed Dec 31 23:59:59 1969", -1},
        {"Fri, 01 Jan 1960 00:00:00 GMT", -315619200},
        {"Thu, 01 Mar 1900 00:00:00 GMT", -2203891200LL},
        {"Sat, 01 Jan 0000 00:00:00 GMT", NM_DATE_MIN},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t t = UNTOUCHED;
        cr_expect_eq(nm_date_parse(nm_slice_from_cstr(cases[i].in), NOW_2024, &t), 0, "%s",
                     cases[i].in);
        cr_expect_eq(t, cases[i].want, "%s gave %lld", cases[i].in, (long long)t);
        char buf[NM_DATE_LEN + 1];
        cr_expect_eq(nm_date_format(cases[i].want, buf), NM_DATE_LEN);
    }
    int64_t t = UNTOUCHED;
    cr_expect_eq(nm_date_parse(nm_slice_from_cstr("Thu, 29 Feb 1900 00:00:00 GMT"), NOW_2024, &t),
                 -EINVAL, "1900 is not a leap year");
    /* A two-digit year more than 50 years ahead of the epoch falls in 1920-1969. */
    cr_expect_eq(nm_date_parse(nm_slice_from_cstr("Thursday, 01-Jan-20 00:00:01 GMT"), 0, &t), 0);
    cr_expect_eq(t, -1577923199);
}

Test(date, parse_reads_only_the_bytes_of_the_slice)
{
    static const char buf[] = "Sun, 06 Nov 1994 08:49:37 GMTjunk";
    int64_t t = UNTOUCHED;
    cr_expect_eq(nm_date_parse(nm_slice_make(buf, 29), NOW_2024, &t), 0);
    cr_expect_eq(t, 784111777);
    t = UNTOUCHED;
    cr_expect_eq(nm_date_parse(nm_slice_make(buf, 28), NOW_2024, &t), -EINVAL);
    cr_expect_eq(t, UNTOUCHED);
    cr_expect_eq(nm_date_parse(nm_slice_make(NULL, 0), NOW_2024, &t), -EINVAL);
    cr_expect_eq(t, UNTOUCHED);
}

Test(date, format_writes_imf_fixdate_for_known_times)
{
    static const struct ok_case cases[] = {
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Thu, 01 Jan 1970 00:00:01 GMT", 1},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
        {"Mon, 28 Feb 2000 00:00:00 GMT", 951696000},
        {"Tue, 29 Feb 2000 12:00:00 GMT", 951825600},
        {"Wed, 01 Mar 2000 00:00:00 GMT", 951868800},
        {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL},
        {"Mon, 01 Mar 2100 00:00:00 GMT", 4107542400LL},
        {"Tue, 29 Feb 2400 00:00:00 GMT", 13574563200LL},
        {"Fri, 31 Dec 9999 23:59:59 GMT", NM_DATE_MAX},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char buf[NM_DATE_LEN + 1];
        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(nm_date_format(cases[i].want, buf), NM_DATE_LEN);
        cr_expect_str_eq(buf, cases[i].in, "format %lld", (long long)cases[i].want);
    }
}

Test(date, format_of_zero_and_date_max_are_the_range_ends)
{
    char buf[NM_DATE_LEN + 1];
    cr_assert_eq(nm_date_format(0, buf), NM_DATE_LEN);
    cr_expect_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    cr_assert_eq(nm_date_format(NM_DATE_MAX, buf), NM_DATE_LEN);
    cr_expect_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    cr_expect_eq(strlen(buf), NM_DATE_LEN);
}

Test(date, format_out_of_range_returns_erange_and_writes_nothing)
{
    static const int64_t bad[] = {NM_DATE_MIN - 1, NM_DATE_MAX + 1, INT64_MIN, INT64_MAX,
                                  NM_DATE_MIN - 86400};
    for (size_t i = 0; i < N(bad); i++) {
        char buf[NM_DATE_LEN + 1];
        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(nm_date_format(bad[i], buf), -ERANGE, "t=%lld", (long long)bad[i]);
        for (size_t j = 0; j < sizeof(buf); j++)
            cr_expect_eq(buf[j], 'x', "t=%lld wrote byte %zu", (long long)bad[i], j);
    }
}

Test(date, parse_format_parse_round_trips_across_the_whole_range)
{
    /* A stride coprime with the day length visits every time of day and every weekday. */
    const int64_t stride = 86400LL * 13 + 3607;
    size_t n = 0;
    for (int64_t t = NM_DATE_MIN; t <= NM_DATE_MAX; t += stride, n++) {
        char buf[NM_DATE_LEN + 1];
        cr_assert_eq(nm_date_format(t, buf), NM_DATE_LEN, "t=%lld", (long long)t);
        cr_assert_eq(strlen(buf), NM_DATE_LEN);
        int64_t back = UNTOUCHED;
        cr_assert_eq(nm_date_parse(nm_slice_make(buf, NM_DATE_LEN), NOW_2024, &back), 0, "%s", buf);
        cr_assert_eq(back, t, "%s gave %lld, want %lld", buf, (long long)back, (long long)t);
    }
    cr_expect_gt(n, 250000);
}

Test(date, consecutive_days_advance_the_weekday)
{
    static const char days[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    for (int64_t d = 0; d < 200000; d += 7) {
        for (int k = 0; k < 7; k++) {
            char buf[NM_DATE_LEN + 1];
            cr_assert_eq(nm_date_format((d + k) * 86400 + 43200, buf), NM_DATE_LEN);
            cr_assert(memcmp(buf, days[k], 3) == 0, "day %lld: %s", (long long)(d + k), buf);
        }
    }
}

Test(date, rfc850_and_asctime_round_trip_through_imf_fixdate)
{
    static const char *const forms[] = {
        "Saturday, 31-Dec-16 23:59:60 GMT",
        "Thursday, 29-Feb-24 23:59:59 GMT",
        "Tue Feb 29 12:00:00 2000",
        "Sat Dec 31 23:59:60 2016",
    };
    for (size_t i = 0; i < N(forms); i++) {
        int64_t t = 0, back = 0;
        char buf[NM_DATE_LEN + 1];
        cr_assert_eq(nm_date_parse(nm_slice_from_cstr(forms[i]), NOW_2024, &t), 0, "%s", forms[i]);
        cr_assert_eq(nm_date_format(t, buf), NM_DATE_LEN);
        cr_assert_eq(nm_date_parse(nm_slice_from_cstr(buf), NOW_2024, &back), 0, "%s", buf);
        cr_expect_eq(back, t, "%s -> %s", forms[i], buf);
    }
}
