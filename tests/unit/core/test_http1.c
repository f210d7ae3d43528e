/* HTTP/1.1 request heads and the chunked decoder (RFC 9112 §2-§3, §5-§7): what a strict parser
 * accepts, the exact status of each malformed or smuggling-prone head, and chunked framing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notmod/http1.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A literal with its exact length, NUL bytes included. */
#define LIT(s) s, sizeof(s) - 1

static const struct nm_http1_limits limits = {.max_target_bytes = 64, .max_head_bytes = 1024};

/* A request that no successful parse writes: used to show *req is left alone on failure. */
static void poison(struct nm_http1_request *r)
{
    memset(r, 0xa5, sizeof(*r));
}

static bool is_poisoned(const struct nm_http1_request *r)
{
    const unsigned char *p = (const unsigned char *)r;
    for (size_t i = 0; i < sizeof(*r); i++)
        if (p[i] != 0xa5)
            return false;
    return true;
}

static bool slice_is(struct nm_slice s, const char *want)
{
    return s.ptr != NULL && nm_slice_eq(s, nm_slice_from_cstr(want));
}

static struct nm_http1_request req;

/* Parses a whole string that must succeed in full; returns the request through `req`. */
static void parse_ok(const char *in)
{
    const char *reason = NULL;
    size_t len = strlen(in);
    int rc = nm_http1_parse_request(in, len, &limits, &req, &reason);
    cr_assert_eq(rc, (int)len, "parse of \"%s\" returned %d (%s), want %zu", in, rc,
                 reason ? reason : "no reason", len);
}

/* ---- valid heads ---- */

Test(http1, minimal_get_with_host_parses_every_part)
{
    parse_ok("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
    cr_expect(slice_is(req.method_token, "GET"));
    cr_expect_eq(req.method, NM_METHOD_GET);
    cr_expect(slice_is(req.target, "/index.html"));
    cr_expect_eq(req.minor_version, 1);
    cr_expect_eq(req.n_fields, 1);
    cr_expect(slice_is(req.fields[0].name, "Host"));
    cr_expect(slice_is(req.fields[0].value, "example.com"));
    cr_expect(slice_is(req.host, "example.com"));
    cr_expect_not(req.has_content_length);
    cr_expect_not(req.chunked);
    cr_expect(req.keep_alive);
    cr_expect_not(req.expect_continue);
}

Test(http1, method_tokens_map_to_their_enum_and_unknown_ones_to_other)
{
    static const struct {
        const char *in;
        enum nm_method want;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_GET},
        {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_HEAD},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_OPTIONS},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", NM_METHOD_POST},
        {"get / HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_OTHER},
        {"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_OTHER},
        {"M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", NM_METHOD_OTHER},
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i].in);
        cr_expect_eq(req.method, cases[i].want, "method of \"%s\"", cases[i].in);
    }
    parse_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_expect(slice_is(req.target, "*"));
}

Test(http1, http10_request_without_host_has_an_empty_host)
{
    parse_ok("GET / HTTP/1.0\r\n\r\n");
    cr_expect_eq(req.minor_version, 0);
    cr_expect_eq(req.host.len, 0);
    cr_expect_eq(req.n_fields, 0);
    cr_expect_not(req.keep_alive);
}

Test(http1, absolute_form_and_authority_form_targets_pass_through_unchanged)
{
    parse_ok("GET http://example.com:8080/a?b=c HTTP/1.1\r\nHost: other\r\n\r\n");
    cr_expect(slice_is(req.target, "http://example.com:8080/a?b=c"));
    cr_expect(slice_is(req.host, "other"));
    parse_ok("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    cr_expect(slice_is(req.target, "example.com:443"));
    cr_expect_eq(req.method, NM_METHOD_CONNECT);
}

Test(http1, up_to_two_leading_empty_lines_are_skipped_and_counted_in_the_length)
{
    static const char *const cases[] = {
        "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",     "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i]);
        cr_expect(slice_is(req.method_token, "GET"));
        cr_expect(slice_is(req.target, "/"));
    }
}

Test(http1, bare_lf_line_endings_are_accepted_alone_and_mixed_with_crlf)
{
    parse_ok("GET /x HTTP/1.1\nHost: a\nAccept: */*\n\n");
    cr_expect(slice_is(req.target, "/x"));
    cr_expect_eq(req.n_fields, 2);
    cr_expect(slice_is(req.fields[1].value, "*/*"));
    parse_ok("GET /x HTTP/1.1\r\nHost: a\nAccept: */*\r\n\n");
    cr_expect_eq(req.n_fields, 2);
    cr_expect(slice_is(req.host, "a"));
}

Test(http1, ows_around_field_values_is_trimmed_but_inner_spaces_kept)
{
    parse_ok("GET / HTTP/1.1\r\nHost:a\r\nX-A:  \t one two \t \r\nX-B:\r\nX-C: \t \r\n\r\n");
    cr_expect(slice_is(req.host, "a"));
    cr_expect(slice_is(req.fields[1].value, "one two"));
    cr_expect(req.fields[2].value.ptr != NULL, "an empty value is present, not absent");
    cr_expect_eq(req.fields[2].value.len, 0);
    cr_expect_eq(req.fields[3].value.len, 0);
}

Test(http1, obs_text_bytes_are_allowed_in_field_values)
{
    parse_ok("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \x80\xff\r\n\r\n");
    cr_expect(slice_is(req.fields[1].value, "caf\xc3\xa9 \x80\xff"));
}

Test(http1, field_names_are_found_case_insensitively)
{
    parse_ok("GET / HTTP/1.1\r\nhOsT: a\r\nIF-NONE-MATCH: \"x\"\r\n\r\n");
    cr_expect(slice_is(req.host, "a"));
    cr_expect(slice_is(req.fields[1].name, "IF-NONE-MATCH"), "names are kept as received");
    cr_expect(slice_is(nm_http1_find(&req, NM_SLICE_LIT("if-none-match")), "\"x\""));
    cr_expect(slice_is(nm_http1_find(&req, NM_SLICE_LIT("If-None-Match")), "\"x\""));
    struct nm_slice absent = nm_http1_find(&req, NM_SLICE_LIT("If-Match"));
    cr_expect_null(absent.ptr);
    cr_expect_eq(absent.len, 0);
    cr_expect_null(nm_http1_find(&req, NM_SLICE_LIT("If-None-Matc")).ptr);

    struct nm_slice lines[2];
    bool overflow = false;
    struct nm_field f = nm_http1_collect(&req, NM_SLICE_LIT("if-NONE-match"), lines, 2, &overflow);
    cr_expect_eq(f.n_lines, 1);
    cr_expect_eq(f.lines, lines);
    cr_expect(slice_is(lines[0], "\"x\""));
    cr_expect_not(overflow);
}

Test(http1, repeated_fields_are_collected_in_order_and_overflow_is_flagged)
{
    parse_ok("GET / HTTP/1.1\r\nIf-None-Match: \"a\"\r\nHost: h\r\nif-none-match: \"b\", \"c\"\r\n"
             "X: y\r\nIF-NONE-MATCH: W/\"d\"\r\n\r\n");
    struct nm_slice lines[3];
    bool overflow = true;
    struct nm_field f = nm_http1_collect(&req, NM_SLICE_LIT("If-None-Match"), lines, 3, &overflow);
    cr_expect_eq(f.n_lines, 3);
    cr_expect(slice_is(lines[0], "\"a\""));
    cr_expect(slice_is(lines[1], "\"b\", \"c\""));
    cr_expect(slice_is(lines[2], "W/\"d\""));
    cr_expect_not(overflow, "all lines fit, so nothing overflowed");
    cr_expect(slice_is(nm_http1_find(&req, NM_SLICE_LIT("if-none-match")), "\"a\""),
              "find returns the first line");

    struct nm_slice two[2] = {{NULL, 0}, {NULL, 0}};
    overflow = false;
    f = nm_http1_collect(&req, NM_SLICE_LIT("if-none-match"), two, 2, &overflow);
    cr_expect_eq(f.n_lines, 2);
    cr_expect(slice_is(two[0], "\"a\""));
    cr_expect(slice_is(two[1], "\"b\", \"c\""));
    cr_expect(overflow);

    overflow = false;
    f = nm_http1_collect(&req, NM_SLICE_LIT("if-none-match"), NULL, 0, &overflow);
    cr_expect_eq(f.n_lines, 0);
    cr_expect(overflow);

    overflow = true;
    f = nm_http1_collect(&req, NM_SLICE_LIT("If-Match"), two, 2, &overflow);
    cr_expect_eq(f.n_lines, 0);
    cr_expect_not(nm_field_is_present(f));
    cr_expect_not(overflow);
}

Test(http1, keep_alive_defaults_by_version_and_connection_tokens)
{
    static const struct {
        const char *in;
        bool want;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: foo ,\t keep-alive \r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i].in);
        cr_expect_eq(req.keep_alive, cases[i].want, "keep_alive of \"%s\"", cases[i].in);
    }
}

Test(http1, expect_100_continue_is_flagged_in_http11_only)
{
    parse_ok("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    cr_expect(req.expect_continue);
    parse_ok("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect:  100-Continue \r\n\r\n");
    cr_expect(req.expect_continue);
    parse_ok("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
    cr_expect_not(req.expect_continue);
    /* RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
    parse_ok("PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    cr_expect_not(req.expect_continue);
}

Test(http1, higher_http1_minor_versions_read_as_minor_one)
{
    static const char *const cases[] = {
        "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.9\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i]);
        cr_expect_eq(req.minor_version, 1, "minor of \"%s\"", cases[i]);
        cr_expect(req.keep_alive);
    }
    const char *reason = NULL;
    cr_expect_eq(nm_http1_parse_request(LIT("GET / HTTP/1.2\r\n\r\n"), &limits, &req, &reason),
                 -EBADMSG, "HTTP/1.2 needs Host like 1.1");
}

Test(http1, content_length_values_and_identical_repeats_are_accepted)
{
    static const struct {
        const char *in;
        uint64_t want;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", 7},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 ,\t5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n", 5},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", UINT64_MAX},
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i].in);
        cr_expect(req.has_content_length, "\"%s\"", cases[i].in);
        cr_expect_eq(req.content_length, cases[i].want, "length of \"%s\"", cases[i].in);
        cr_expect_not(req.chunked);
    }
}

Test(http1, transfer_encoding_ending_in_chunked_sets_chunked)
{
    static const char *const cases[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  CHUNKED \r\n\r\n",
    };
    for (size_t i = 0; i < N(cases); i++) {
        parse_ok(cases[i]);
        cr_expect(req.chunked, "\"%s\"", cases[i]);
        cr_expect_not(req.has_content_length);
    }
}

Test(http1, the_returned_length_stops_at_the_empty_line_so_pipelined_requests_follow)
{
    static const char in[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                             "HEAD /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
                             "GET /thr";
    const char *reason = NULL;
    int first = nm_http1_parse_request(in, sizeof(in) - 1, &limits, &req, &reason);
    cr_assert_eq(first, (int)strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));
    cr_expect(slice_is(req.target, "/one"));
    cr_expect(req.keep_alive);

    const char *rest = in + first;
    size_t rest_len = sizeof(in) - 1 - (size_t)first;
    int second = nm_http1_parse_request(rest, rest_len, &limits, &req, &reason);
    cr_assert_eq(second, (int)strlen("HEAD /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"));
    cr_expect_eq(req.method, NM_METHOD_HEAD);
    cr_expect(slice_is(req.target, "/two"));
    cr_expect(slice_is(req.host, "b"));
    cr_expect_not(req.keep_alive);
    cr_expect(req.target.ptr >= rest && req.target.ptr < rest + rest_len,
              "slices borrow from the given buffer");

    cr_expect_eq(
        nm_http1_parse_request(rest + second, rest_len - (size_t)second, &limits, &req, &reason),
        0);
}

Test(http1, content_after_the_head_is_not_part_of_the_returned_length)
{
    static const char in[] = "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    const char *reason = NULL;
    int rc = nm_http1_parse_request(in, sizeof(in) - 1, &limits, &req, &reason);
    cr_expect_eq(rc, (int)(sizeof(in) - 1 - 5));
    cr_expect_eq(req.content_length, 5);
}

Test(http1, every_proper_prefix_of_a_valid_head_is_incomplete)
{
    static const char *const cases[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\nGET /x HTTP/1.0\r\n\r\n",
        "GET /x HTTP/1.1\nHost: a\nX:\n\n",
        "HEAD /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nIf-None-Match: W/\"1\", \"2\"\r\n"
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nRange: bytes=0-99\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
        "Connection: close\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Empty: \t \r\nContent-Length: 5, 5\r\n\r\n",
    };
    for (size_t i = 0; i < N(cases); i++) {
        size_t len = strlen(cases[i]);
        for (size_t k = 0; k < len; k++) {
            const char *reason = NULL;
            struct nm_http1_request r;
            poison(&r);
            int rc = nm_http1_parse_request(cases[i], k, &limits, &r, &reason);
            cr_assert_eq(rc, 0, "prefix %zu of case %zu returned %d (%s)", k, i, rc,
                         reason ? reason : "-");
            cr_assert(is_poisoned(&r), "prefix %zu of case %zu wrote the request", k, i);
        }
        const char *reason = NULL;
        cr_expect_eq(nm_http1_parse_request(cases[i], len, &limits, &req, &reason), (int)len,
                     "case %zu in full", i);
    }
}

Test(http1, exactly_100_fields_are_accepted)
{
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < NM_HTTP1_MAX_FIELDS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    const struct nm_http1_limits big = {.max_target_bytes = 64, .max_head_bytes = sizeof(buf)};
    const char *reason = NULL;
    cr_assert_eq(nm_http1_parse_request(buf, n, &big, &req, &reason), (int)n, "%s",
                 reason ? reason : "-");
    cr_expect_eq(req.n_fields, NM_HTTP1_MAX_FIELDS);
    cr_expect(slice_is(req.fields[NM_HTTP1_MAX_FIELDS - 1].name, "X-99"));
}

Test(http1, a_target_of_exactly_max_target_bytes_is_accepted)
{
    char buf[256];
    char target[65];
    memset(target, 'a', 64);
    target[0] = '/';
    target[64] = '\0';
    int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
    const char *reason = NULL;
    cr_expect_eq(nm_http1_parse_request(buf, (size_t)n, &limits, &req, &reason), n);
    cr_expect_eq(req.target.len, 64);
}

Test(http1, a_head_of_exactly_max_head_bytes_is_accepted)
{
    char buf[1024];
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    memcpy(buf, start, sizeof(start) - 1);
    memset(buf + sizeof(start) - 1, 'v', sizeof(buf) - (sizeof(start) - 1) - 4);
    memcpy(buf + sizeof(buf) - 4, "\r\n\r\n", 4);
    const char *reason = NULL;
    cr_expect_eq(nm_http1_parse_request(buf, sizeof(buf), &limits, &req, &reason), (int)sizeof(buf),
                 "%s", reason ? reason : "-");
}

/* ---- malformed heads and smuggling attempts ---- */

struct bad_case {
    const char *in;
    size_t len;
    int want;
};

#define BAD(s, status)                                                                             \
    {                                                                                              \
        LIT(s), status                                                                             \
    }

static void expect_bad(const struct bad_case *c, size_t n, const struct nm_http1_limits *lim)
{
    for (size_t i = 0; i < n; i++) {
        const char *reason = NULL;
        struct nm_http1_request r;
        poison(&r);
        int rc = nm_http1_parse_request(c[i].in, c[i].len, lim, &r, &reason);
        cr_expect_eq(rc, c[i].want, "case %zu \"%.*s\" returned %d (%s), want %d", i, (int)c[i].len,
                     c[i].in, rc, reason ? reason : "no reason", c[i].want);
        cr_expect_not_null(reason, "case %zu has no reason", i);
        cr_expect(is_poisoned(&r), "case %zu wrote the request on failure", i);
    }
}

static const struct bad_case framing_cases[] = {
    /* RFC 9112 §6.1: Content-Length with Transfer-Encoding, in either order. */
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        -EBADMSG),
    /* RFC 9112 §6.3: differing or invalid Content-Length. */
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\n",
        -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,5\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5;\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", -EBADMSG),
    /* RFC 9112 §6.3: chunked must be the final coding. */
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
        "\r\n",
        -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", -EBADMSG),
    /* RFC 9112 §6.1: chunked is never applied twice. */
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -EBADMSG),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        "\r\n",
        -EBADMSG),
    /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
    BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -EBADMSG),
    /* RFC 9112 §6.1: a coding the server does not implement is 501. */
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -ENOSYS),
    BAD("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
        "\r\n",
        -ENOSYS),
};

static const struct bad_case field_cases[] = {
    /* RFC 9112 §5.2: obs-fold is rejected. */
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", -EBADMSG),
    /* RFC 9112 §2.2: whitespace between the start line and the first field. */
    BAD("GET / HTTP/1.1\r\n Host: a\r\n\r\n", -EBADMSG),
    /* RFC 9112 §5.1: no whitespace between field name and colon. */
    BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", -EBADMSG),
    /* RFC 9110 §5.5: NUL, CR, LF and other controls are never allowed in values. */
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[0m\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n", -EBADMSG),
    /* RFC 9112 §2.2: a CR that does not end a line. */
    BAD("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\rHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", -EBADMSG),
    /* RFC 9110 §5.1: a field name is a non-empty token followed by a colon. */
    BAD("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX\x80: z\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX\"y\": z\r\n\r\n", -EBADMSG),
    /* RFC 9112 §3.2: exactly one valid Host in HTTP/1.1. */
    BAD("GET / HTTP/1.1\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: example.com:abc\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: []\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n", -EBADMSG),
    /* RFC 9110 §10.1.1: only 100-continue is understood. */
    BAD("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n\r\n", -EOPNOTSUPP),
    BAD("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\n\r\n", -EOPNOTSUPP),
    BAD("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: 200-ok\r\n\r\n", -EOPNOTSUPP),
    BAD("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", -EOPNOTSUPP),
};

static const struct bad_case request_line_cases[] = {
    /* RFC 9112 §2.3, §3: a request line is method SP target SP HTTP/1.x, nothing else. */
    BAD("GET /\r\n\r\n", -EBADMSG),
    BAD("GET /\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -EPROTONOSUPPORT),
    BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -EPROTONOSUPPORT),
    BAD("GET / HTTP/3.0\r\nHost: a\r\n\r\n", -EPROTONOSUPPORT),
    BAD("GET / HTTP/0.9\r\nHost: a\r\n\r\n", -EPROTONOSUPPORT),
    BAD("GET / HTTP/1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / http/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1,1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/a.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.a\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP /1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -EBADMSG),
    BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET@ / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
    BAD("\n\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -EBADMSG),
};

Test(http1, framing_conflicts_and_bad_lengths_get_their_exact_status)
{
    expect_bad(framing_cases, N(framing_cases), &limits);
}

Test(http1, malformed_field_lines_and_host_get_their_exact_status)
{
    expect_bad(field_cases, N(field_cases), &limits);
}

Test(http1, malformed_request_lines_get_their_exact_status)
{
    expect_bad(request_line_cases, N(request_line_cases), &limits);
}

static const struct bad_case early_cases[] = {
    /* A request line that cannot become valid is rejected before its end arrives. */
    BAD("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", -EBADMSG),
    BAD("GET\t/", -EBADMSG),
    BAD("GE\0", -EBADMSG),
    BAD("GET / HTTP/1.1\r\nHost: a\r\n\rX", -EBADMSG),
};

Test(http1, bytes_that_cannot_start_a_request_are_rejected_before_the_line_ends)
{
    expect_bad(early_cases, N(early_cases), &limits);
}

/* Builds "GET /aaa...a HTTP/1.1\r\nHost: a\r\n\r\n" with a target of `target_len` bytes. */
static size_t long_target(char *buf, size_t cap, size_t target_len)
{
    cr_assert(target_len + 64 < cap);
    size_t n = 0;
    memcpy(buf, "GET /", 5);
    n = 5;
    memset(buf + n, 'a', target_len - 1);
    n += target_len - 1;
    static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    memcpy(buf + n, tail, sizeof(tail) - 1);
    return n + sizeof(tail) - 1;
}

Test(http1, a_target_over_the_cap_is_414_whole_or_while_still_arriving)
{
    char buf[512];
    size_t n = long_target(buf, sizeof(buf), 65);
    const struct bad_case cases[] = {
        {buf, n, -ENAMETOOLONG},                  /* the whole head */
        {buf, 4 + 65 + 1, -ENAMETOOLONG},         /* the target and the space after it */
        {buf, 4 + 65, -ENAMETOOLONG},             /* one byte over the cap, line still open */
        {buf, 4 + 65 + 5, -ENAMETOOLONG},         /* part of the version too */
        {buf, 4 + 65 + 9 + 2 + 4, -ENAMETOOLONG}, /* the request line is done, fields are not */
    };
    expect_bad(cases, N(cases), &limits);

    const char *reason = NULL;
    cr_expect_eq(nm_http1_parse_request(buf, 4 + 64, &limits, &req, &reason), 0,
                 "a target at the cap may still be followed by a space");

    n = long_target(buf, sizeof(buf), 300);
    const struct bad_case longer[] = {{buf, n, -ENAMETOOLONG}, {buf, 200, -ENAMETOOLONG}};
    expect_bad(longer, N(longer), &limits);
}

Test(http1, a_head_over_the_cap_is_431_whole_or_while_still_arriving)
{
    static char buf[2048];
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    memcpy(buf, start, sizeof(start) - 1);
    /* The head is one byte longer than the 1024-byte cap. */
    size_t head = 1025;
    memset(buf + sizeof(start) - 1, 'v', head - (sizeof(start) - 1) - 4);
    memcpy(buf + head - 4, "\r\n\r\n", 4);
    const struct bad_case cases[] = {
        {buf, head, -EMSGSIZE},     /* complete, one byte over */
        {buf, head - 1, -EMSGSIZE}, /* complete but for the last LF, at the cap */
        {buf, 1023, 0},             /* one byte under the cap */
        {buf, 1000, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *reason = NULL;
        int rc = nm_http1_parse_request(cases[i].in, cases[i].len, &limits, &req, &reason);
        cr_expect_eq(rc, cases[i].want, "case %zu returned %d, want %d", i, rc, cases[i].want);
        if (cases[i].want < 0)
            cr_expect_not_null(reason);
    }

    /* A request line alone that reaches the cap without a space. */
    memset(buf, 'G', sizeof(buf));
    const struct bad_case line[] = {{buf, 1024, -EMSGSIZE}, {buf, 2048, -EMSGSIZE}};
    expect_bad(line, N(line), &limits);

    /* Many short fields whose total passes the cap. */
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    while (n < 1100)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Field: value\r\n");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    const struct bad_case many[] = {{buf, n, -EMSGSIZE}, {buf, n - 2, -EMSGSIZE}};
    expect_bad(many, N(many), &limits);
}

Test(http1, more_than_100_fields_is_431)
{
    static char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i <= NM_HTTP1_MAX_FIELDS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    const struct nm_http1_limits big = {.max_target_bytes = 64, .max_head_bytes = sizeof(buf)};
    const struct bad_case cases[] = {{buf, n, -EMSGSIZE}};
    expect_bad(cases, N(cases), &big);
}

Test(http1, incomplete_input_under_the_cap_is_zero_and_leaves_the_request_alone)
{
    static const struct {
        const char *in;
        size_t len;
    } cases[] = {
        {LIT("")},
        {LIT("\r")},
        {LIT("\r\n")},
        {LIT("\r\n\r\n")},
        {LIT("GET")},
        {LIT("GET / HTTP/1.1")},
        {LIT("GET / HTTP/1.1\r")},
        {LIT("GET / HTTP/1.1\r\nHost: a\r\n")},
        {LIT("GET / HTTP/1.1\r\nHost: a\r\n\r")},
        {LIT("GET / HTTP/1.1\r\nHost: a\r\nX: \x01")},
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *reason = NULL;
        struct nm_http1_request r;
        poison(&r);
        int rc = nm_http1_parse_request(cases[i].in, cases[i].len, &limits, &r, &reason);
        cr_expect_eq(rc, 0, "case %zu returned %d", i, rc);
        cr_expect(is_poisoned(&r), "case %zu wrote the request", i);
    }
}

/* ---- chunked decoder ---- */

struct chunked_result {
    int64_t rc; /* total consumed, or the error */
    bool done;
};

static struct chunked_result feed_whole(const char *in, size_t len)
{
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = true;
    int64_t rc = nm_http1_chunked_feed(&d, in, len, &done);
    return (struct chunked_result){rc, done};
}

/* Feeds `step` bytes at a time; stops at the first error or at the end of the content. */
static struct chunked_result feed_steps(const char *in, size_t len, size_t step)
{
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = false;
    int64_t total = 0;
    size_t off = 0;
    while (off < len && !done) {
        size_t n = len - off < step ? len - off : step;
        int64_t rc = nm_http1_chunked_feed(&d, in + off, n, &done);
        if (rc < 0)
            return (struct chunked_result){rc, false};
        cr_assert(rc <= (int64_t)n);
        if (!done)
            cr_assert_eq(rc, (int64_t)n, "a decoder that is not done takes every byte");
        total += rc;
        off += (size_t)rc;
    }
    return (struct chunked_result){total, done};
}

struct chunked_case {
    const char *in;
    size_t len;
    int64_t want; /* consumed, or the error */
    bool done;
};

#define CHUNKED(s, want, done)                                                                     \
    {                                                                                              \
        LIT(s), want, done                                                                         \
    }

static const struct chunked_case chunked_cases[] = {
    CHUNKED("0\r\n\r\n", 5, true),
    CHUNKED("5\r\nhello\r\n0\r\n\r\n", 15, true),
    CHUNKED("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, true),
    CHUNKED("a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", 35, true),
    CHUNKED("1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", 42, true),
    CHUNKED("00005\r\nhello\r\n000\r\n\r\n", 21, true),
    CHUNKED("5;name=value\r\nhello\r\n0;last\r\n\r\n", 31, true),
    CHUNKED("5;a=\"quoted; value\";b\r\nhello\r\n0\r\n\r\n", 35, true),
    CHUNKED("5 ;a\r\nhello\r\n0\t; b = c\r\n\r\n", 26, true),
    CHUNKED("5\r\nhello\r\n0\r\nX-Trailer: yes\r\nChecksum: abc\r\n\r\n", 46, true),
    CHUNKED("0\r\nX:\r\n\r\n", 9, true),
    CHUNKED("5\r\nhel\r\n\r\n0\r\n\r\n", 15, true),
    /* Bytes after the end belong to the next request. */
    CHUNKED("0\r\n\r\nGET / HTTP/1.1\r\n", 5, true),
    CHUNKED("3\r\nabc\r\n0\r\n\r\n\r\n", 13, true),
    /* Incomplete content takes everything and is not done. */
    CHUNKED("", 0, false),
    CHUNKED("5", 1, false),
    CHUNKED("5\r\nhel", 6, false),
    CHUNKED("5\r\nhello\r\n0\r\n", 13, false),
    CHUNKED("5\r\nhello\r\n0\r\nX: y\r\n", 19, false),
    CHUNKED("0\r\n\r", 4, false),
    CHUNKED("fffffffffffffff\r\n", 17, false),
    /* Malformed framing. */
    CHUNKED("g\r\n", -EBADMSG, false),
    CHUNKED("\r\n", -EBADMSG, false),
    CHUNKED("-5\r\n", -EBADMSG, false),
    CHUNKED("+5\r\n", -EBADMSG, false),
    CHUNKED("0x5\r\nhello\r\n", -EBADMSG, false),
    CHUNKED(" 5\r\n", -EBADMSG, false),
    CHUNKED("5 6\r\nhello\r\n", -EBADMSG, false),
    CHUNKED("5 \r\nhello\r\n", -EBADMSG, false),
    CHUNKED(";a\r\n", -EBADMSG, false),
    CHUNKED("5\r\nhelloX\r\n", -EBADMSG, false),
    CHUNKED("5\r\nhello\rX", -EBADMSG, false),
    CHUNKED("5\r\nhello0\r\n\r\n", -EBADMSG, false),
    CHUNKED("5\rX", -EBADMSG, false),
    CHUNKED("5;a\rX", -EBADMSG, false),
    CHUNKED("5;a\0\r\n", -EBADMSG, false),
    CHUNKED("5;a\x01\r\n", -EBADMSG, false),
    CHUNKED("0\r\nX: a\rb\r\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\nX: \x02\r\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\n\rX", -EBADMSG, false),
    CHUNKED("0\r\n X: y\r\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\n: y\r\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\nX y\r\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\nX\0: y\r\n\r\n", -EBADMSG, false),
    /* RFC 9112 §7.1: framing lines end in CRLF only; a bare LF a proxy may read otherwise is
     * a smuggling vector. */
    CHUNKED("5\nhello\r\n0\r\n\r\n", -EBADMSG, false),
    CHUNKED("5;a=b\nhello\r\n0\r\n\r\n", -EBADMSG, false),
    CHUNKED("5\r\nhello\n0\r\n\r\n", -EBADMSG, false),
    CHUNKED("5\r\nhello\r\n0\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\nX-T: 1\n\r\n", -EBADMSG, false),
    CHUNKED("0\r\n\n", -EBADMSG, false),
    CHUNKED("0\n\nX", -EBADMSG, false),
    CHUNKED("5\nhello\n0\nX-T: 1\n\n", -EBADMSG, false),
    /* More data than the size line said. */
    CHUNKED("5\r\nhelloEXTRA\r\n0\r\n\r\n", -EBADMSG, false),
    CHUNKED("1\r\nab\r\n", -EBADMSG, false),
    /* Sizes: leading zeros are no digits of the value, 2^64 or more is malformed rather than
     * wrapped to a smaller one, and 2^64 - 1 is over even the cap of an uncapped decoder
     * (UINT64_MAX bytes, of which its size line took 16). */
    CHUNKED("0fffffffffffffff\r\n", 18, false),
    CHUNKED("ffffffffffffffff\r\n", -EFBIG, false),
    CHUNKED("0000000000000000\r\n\r\n", 20, true),
    CHUNKED("00000000000000000000000000000001\r\nx\r\n0\r\n\r\n", 42, true),
    CHUNKED("10000000000000000\r\n", -EBADMSG, false),
    CHUNKED("10000000000000000\r\n0\r\n\r\n", -EBADMSG, false),
    CHUNKED("fffffffffffffffff\r\n", -EBADMSG, false),
    CHUNKED("ffffffffffffffffffffffffffffffff\r\n", -EBADMSG, false),
};

Test(http1, chunked_content_is_framed_with_extensions_and_trailers)
{
    for (size_t i = 0; i < N(chunked_cases); i++) {
        const struct chunked_case *c = &chunked_cases[i];
        struct chunked_result r = feed_whole(c->in, c->len);
        cr_expect_eq(r.rc, c->want, "case %zu \"%.*s\": %lld, want %lld", i, (int)c->len, c->in,
                     (long long)r.rc, (long long)c->want);
        if (c->want >= 0)
            cr_expect_eq(r.done, c->done, "case %zu done", i);
    }
}

Test(http1, chunked_content_fed_in_any_steps_gives_the_same_result)
{
    static const size_t steps[] = {1, 2, 3, 7};
    for (size_t i = 0; i < N(chunked_cases); i++) {
        const struct chunked_case *c = &chunked_cases[i];
        for (size_t s = 0; s < N(steps); s++) {
            struct chunked_result r = feed_steps(c->in, c->len, steps[s]);
            cr_expect_eq(r.rc, c->want, "case %zu by %zu: %lld, want %lld", i, steps[s],
                         (long long)r.rc, (long long)c->want);
            if (c->want >= 0)
                cr_expect_eq(r.done, c->done, "case %zu by %zu done", i, steps[s]);
        }
    }
}

Test(http1, chunked_content_split_at_every_point_gives_the_same_result)
{
    static const char in[] =
        "1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\nxyz\r\n0\r\nT: v\r\n\r\nNEXT";
    size_t len = sizeof(in) - 1, want = len - 4;
    for (size_t cut = 0; cut <= len; cut++) {
        struct nm_http1_chunked d;
        nm_http1_chunked_init(&d);
        bool done = true;
        int64_t a = nm_http1_chunked_feed(&d, in, cut, &done);
        cr_assert_geq(a, 0, "cut %zu", cut);
        if (done) {
            cr_expect_eq((size_t)a, want, "cut %zu", cut);
            continue;
        }
        cr_assert_eq((size_t)a, cut);
        int64_t b = nm_http1_chunked_feed(&d, in + cut, len - cut, &done);
        cr_expect(done, "cut %zu", cut);
        cr_expect_eq((size_t)(a + b), want, "cut %zu", cut);
    }
}

Test(http1, a_finished_decoder_consumes_nothing_more)
{
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = false;
    cr_assert_eq(nm_http1_chunked_feed(&d, LIT("0\r\n\r\n"), &done), 5);
    cr_assert(done);
    done = false;
    cr_expect_eq(nm_http1_chunked_feed(&d, LIT("5\r\nhello\r\n"), &done), 0);
    cr_expect(done);
    nm_http1_chunked_init(&d);
    cr_expect_eq(nm_http1_chunked_feed(&d, LIT("0\r\n\r\n"), &done), 5, "init resets");
}

Test(http1, a_large_chunk_is_skipped_without_holding_its_data)
{
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = true;
    cr_assert_eq(nm_http1_chunked_feed(&d, LIT("100000\r\n"), &done), 8);
    cr_expect_not(done);
    static char data[4096];
    memset(data, 'x', sizeof(data));
    for (size_t left = 0x100000; left > 0; left -= sizeof(data))
        cr_assert_eq(nm_http1_chunked_feed(&d, data, sizeof(data), &done), (int64_t)sizeof(data));
    cr_expect_not(done);
    cr_expect_eq(nm_http1_chunked_feed(&d, LIT("\r\n0\r\n\r\n"), &done), 7);
    cr_expect(done);
}

/* The decoder's result for `in` under a cap, fed whole and in steps of 1, 2, 3 and 7: the same
 * every time (http1.h: errors are found in byte order). */
static int64_t feed_capped(const char *in, size_t len, uint64_t max_bytes)
{
    static const size_t steps[] = {0, 1, 2, 3, 7};
    int64_t first = 0;
    for (size_t s = 0; s < N(steps); s++) {
        struct nm_http1_chunked d;
        nm_http1_chunked_init_max(&d, max_bytes);
        size_t step = steps[s] ? steps[s] : len;
        int64_t total = 0;
        bool done = false;
        for (size_t off = 0; off < len && !done;) {
            size_t n = len - off < step ? len - off : step;
            int64_t rc = nm_http1_chunked_feed(&d, in + off, n, &done);
            if (rc < 0) {
                total = rc;
                break;
            }
            total += rc;
            off += n;
        }
        if (s == 0)
            first = total;
        cr_expect_eq(total, first, "\"%.*s\" cap %llu by %zu: %lld, whole %lld", (int)len, in,
                     (unsigned long long)max_bytes, step, (long long)total, (long long)first);
    }
    return first;
}

/* http1.h: with a cap, a chunk that cannot fit is 413 at the end of its size, before its data;
 * content past the cap is 413 at the byte past it; content within it is framed as without. */
Test(http1, a_capped_decoder_refuses_content_over_the_cap_at_the_first_byte_that_shows_it)
{
    cr_expect_eq(feed_capped(LIT("100000\r\n"), 1u << 20), -EFBIG, "a 1 MiB chunk in 1 MiB");
    cr_expect_eq(feed_capped(LIT("ffffffffffffffff;x\r\n"), 1u << 20), -EFBIG);
    cr_expect_eq(feed_capped(LIT("5\r\nhello\r\n0\r\n\r\n"), 15), 15, "exactly the cap");
    cr_expect_eq(feed_capped(LIT("5\r\nhello\r\n0\r\n\r\n"), 14), -EFBIG, "one byte over");
    cr_expect_eq(feed_capped(LIT("5\r\nhello\r\n0\r\n\r\nNEXT"), 15), 15, "the rest is not ours");
    cr_expect_eq(feed_capped(LIT("5\r\nhello\r\nzz"), 12), -EBADMSG, "malformed within the cap");
    cr_expect_eq(feed_capped(LIT("5\r\nhello\r\nzz"), 10), -EFBIG, "the cap comes first");
    cr_expect_eq(feed_capped(LIT("10000000000000000\r\n"), 1u << 20), -EBADMSG,
                 "2^64 is malformed");
    cr_expect_eq(feed_capped(LIT("0\r\n\r\n"), 0), -EFBIG, "a cap of 0 takes nothing");
    /* An extension that uses up the room: the data stops at the cap, wherever the split. */
    cr_expect_eq(feed_capped(LIT("4;ext\r\nabc"), 10), 10, "up to the cap, then waits");
    cr_expect_eq(feed_capped(LIT("4;ext\r\nabcd"), 10), -EFBIG, "the byte at the cap");
    cr_expect_eq(feed_capped(LIT("3\r\nabc\r\n0\r\n\r\n"), UINT64_MAX), 13);
}

/* A size line of leading zeros is capped like an extension line. */
Test(http1, an_overlong_size_line_is_413)
{
    static char buf[8192];
    memset(buf, '0', 5000);
    memcpy(buf + 5000, "5\r\nhello\r\n0\r\n\r\n", 15);
    cr_expect_eq(feed_whole(buf, 5015).rc, -EFBIG);
    cr_expect_eq(feed_steps(buf, 5015, 7).rc, -EFBIG);
    struct chunked_result r = feed_whole(buf + 5000 - 4000, 4015);
    cr_expect_eq(r.rc, 4015, "4000 zeros and a digit fit the line cap");
    cr_expect(r.done);
}

/* Extension and trailer lines over the decoder's line cap. */
Test(http1, an_overlong_extension_or_trailer_line_is_413)
{
    static char buf[16384];
    size_t n;

    memcpy(buf, "5;", 2);
    memset(buf + 2, 'e', 8000);
    memcpy(buf + 8002, "\r\nhello\r\n0\r\n\r\n", 15);
    n = 8002 + 15;
    cr_expect_eq(feed_whole(buf, n).rc, -EFBIG);
    cr_expect_eq(feed_steps(buf, n, 1).rc, -EFBIG);

    memcpy(buf, "0\r\nX: ", 6);
    memset(buf + 6, 't', 8000);
    memcpy(buf + 8006, "\r\n\r\n", 4);
    n = 8006 + 4;
    cr_expect_eq(feed_whole(buf, n).rc, -EFBIG);
    cr_expect_eq(feed_steps(buf, n, 3).rc, -EFBIG);

    memcpy(buf, "0\r\n", 3);
    memset(buf + 3, 'T', 8000);
    memcpy(buf + 8003, ": v\r\n\r\n", 7);
    n = 8003 + 7;
    cr_expect_eq(feed_whole(buf, n).rc, -EFBIG, "a long trailer name counts too");

    /* Many short trailer lines are fine: the cap is per line. */
    n = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "T-%d: value\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    struct chunked_result r = feed_whole(buf, n);
    cr_expect_eq(r.rc, (int64_t)n);
    cr_expect(r.done);
}

Test(http1, a_chunked_request_head_and_its_content_parse_in_sequence)
{
    static const char in[] = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
                             "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *reason = NULL;
    size_t len = sizeof(in) - 1;
    int head = nm_http1_parse_request(in, len, &limits, &req, &reason);
    cr_assert_gt(head, 0);
    cr_assert(req.chunked);
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = false;
    int64_t body = nm_http1_chunked_feed(&d, in + head, len - (size_t)head, &done);
    cr_assert(done);
    cr_assert_eq(body, (int64_t)strlen("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"));
    const char *next = in + head + body;
    int second = nm_http1_parse_request(next, len - (size_t)(next - in), &limits, &req, &reason);
    cr_expect_eq(second, (int)strlen("GET /next HTTP/1.1\r\nHost: a\r\n\r\n"));
    cr_expect(slice_is(req.target, "/next"));
}

Test(http1, host_values_of_every_valid_form_are_accepted)
{
    static const char *const hosts[] = {
        "",      "example.com", "EXAMPLE.com:80",   "example.com:", "127.0.0.1:8080",
        "[::1]", "[::1]:8080",  "[v1.fe80::a+en1]", "a%20b",        "xn--bcher-kva.example",
    };
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        char head[256];
        snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", hosts[i]);
        struct nm_http1_request parsed;
        const char *why = NULL;
        cr_expect_gt(nm_http1_parse_request(head, strlen(head), &limits, &parsed, &why), 0,
                     "Host: %s (%s)", hosts[i], why ? why : "");
    }
}

/* ---- response heads (RFC 9112 §4, §5) ---- */

static struct nm_http1_field rfields[8];
static struct nm_http1_response resp;

/* Parses a whole response head that must succeed in full. */
static void parse_response_ok(const char *in)
{
    size_t len = strlen(in);
    int rc = nm_http1_parse_response(in, len, rfields, N(rfields), &resp);
    cr_assert_eq(rc, (int)len, "parse of \"%s\" returned %d, want %zu", in, rc, len);
}

Test(http1, a_response_head_gives_status_reason_and_fields_borrowed_from_the_buffer)
{
    static const char in[] = "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nDate:  x \r\n\r\nstray";
    int rc = nm_http1_parse_response(in, sizeof(in) - 1, rfields, N(rfields), &resp);
    cr_assert_eq(rc, (int)(sizeof(in) - 1 - strlen("stray")));
    cr_expect_eq(resp.status, 304);
    cr_expect_eq(resp.minor_version, 1);
    cr_expect(slice_is(resp.reason, "Not Modified"));
    cr_expect_eq(resp.fields, rfields);
    cr_expect_eq(resp.n_fields, 2);
    cr_expect_eq(resp.n_dropped, 0);
    cr_expect(slice_is(resp.fields[0].name, "ETag"));
    cr_expect(slice_is(resp.fields[0].value, "\"a\""));
    cr_expect(slice_is(resp.fields[1].value, "x"), "OWS around the value is dropped");
    cr_expect(resp.fields[0].name.ptr > in && resp.fields[1].value.ptr < in + rc);
}

Test(http1, a_response_without_reason_phrase_or_with_bare_lf_is_read_as_clients_must)
{
    parse_response_ok("HTTP/1.1 200\r\nX: y\r\n\r\n");
    cr_expect_eq(resp.status, 200);
    cr_expect_eq(resp.reason.len, 0);
    parse_response_ok("HTTP/1.1 204 \r\n\r\n");
    cr_expect_eq(resp.reason.len, 0);
    cr_expect_eq(resp.n_fields, 0);
    parse_response_ok("HTTP/1.0 404 Not  Found \nServer: s\n\n");
    cr_expect_eq(resp.minor_version, 0);
    cr_expect(slice_is(resp.reason, "Not  Found "), "the reason is kept as sent");
    cr_expect(slice_is(resp.fields[0].value, "s"));
    parse_response_ok("HTTP/1.7 599 x\r\n\r\n");
    cr_expect_eq(resp.minor_version, 1, "HTTP/1.x with x > 1 reads as 1.1");
    parse_response_ok("HTTP/1.1 999 Custom\r\n\r\n");
    cr_expect_eq(resp.status, 999);
    parse_response_ok("HTTP/1.1 200 D\xe9j\xe0 vu\r\n\r\n");
    cr_expect(slice_is(resp.reason, "D\xe9j\xe0 vu"), "obs-text is allowed in the reason");
}

Test(http1, response_field_lines_past_the_cap_are_counted_not_refused)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    struct nm_http1_field two[2];
    int rc = nm_http1_parse_response(in, sizeof(in) - 1, two, 2, &resp);
    cr_assert_eq(rc, (int)sizeof(in) - 1);
    cr_expect_eq(resp.n_fields, 2);
    cr_expect_eq(resp.n_dropped, 2);
    cr_expect(slice_is(two[1].name, "B"));
    cr_expect_eq(nm_http1_parse_response(in, sizeof(in) - 1, NULL, 0, &resp), rc);
    cr_expect_eq(resp.n_dropped, 4);
}

Test(http1, response_fields_share_the_request_field_grammar)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\n X: a\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nX(y): z\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -EBADMSG},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(
            nm_http1_parse_response(cases[i].in, strlen(cases[i].in), rfields, N(rfields), &resp),
            cases[i].want, "%s", cases[i].in);
}

Test(http1, malformed_status_lines_and_other_versions_are_refused)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        {"SSH-2.0-OpenSSH_9.6\r\n", -EBADMSG},
        {"S", -EBADMSG},
        {"\x15\x03\x03\x00\x02", -EBADMSG},
        {"HTTP/1.1 2x0 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 099 Low\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 2000 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 20\r\n\r\n", -EBADMSG},
        {"HTTP/1.1  200 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 O\x7fK\r\n\r\n", -EBADMSG},
        {"http/1.1 200 OK\r\n\r\n", -EBADMSG},
        {"HTTP/1.1 200 OK\rX: y\r\n\r\n", -EBADMSG},
        {"HTTP/2.0 200 OK\r\n\r\n", -EPROTONOSUPPORT},
        {"HTTP/0.9 200 OK\r\n\r\n", -EPROTONOSUPPORT},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(
            nm_http1_parse_response(cases[i].in, strlen(cases[i].in), rfields, N(rfields), &resp),
            cases[i].want, "%s", cases[i].in);
}

Test(http1, an_incomplete_response_head_is_zero_and_leaves_the_response_alone)
{
    static const char *const cases[] = {
        "",
        "H",
        "HTTP/",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK\r\n",
        "HTTP/1.1 200 OK\r\nA: b\r\n",
        "HTTP/1.1 200 OK\r\n\r",
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct nm_http1_response r;
        memset(&r, 0xa5, sizeof(r));
        struct nm_http1_response before = r;
        cr_expect_eq(nm_http1_parse_response(cases[i], strlen(cases[i]), rfields, N(rfields), &r),
                     0, "\"%s\"", cases[i]);
        cr_expect(memcmp(&r, &before, sizeof(r)) == 0, "\"%s\" wrote the response", cases[i]);
    }
}

Test(http1, interim_heads_are_followed_by_the_final_one)
{
    static const char in[] = "HTTP/1.1 100 Continue\r\n\r\n"
                             "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                             "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    const char *p = in;
    size_t left = sizeof(in) - 1;
    int statuses[3], n = 0;
    for (;;) {
        int rc = nm_http1_parse_response(p, left, rfields, N(rfields), &resp);
        cr_assert_gt(rc, 0);
        cr_assert_lt(n, 3);
        statuses[n++] = resp.status;
        p += rc;
        left -= (size_t)rc;
        if (!nm_http1_response_is_interim(&resp))
            break;
    }
    cr_expect_eq(n, 3);
    cr_expect_eq(statuses[0], 100);
    cr_expect_eq(statuses[1], 103);
    cr_expect_eq(statuses[2], 200);
    cr_expect_eq(left, 0);
    parse_response_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n");
    cr_expect_not(nm_http1_response_is_interim(&resp), "after 101 no HTTP head follows");
}

Test(http1, fields_of_any_array_are_collected_like_a_requests)
{
    parse_response_ok("HTTP/1.1 200 OK\r\nVary: a\r\nX: y\r\nvary: b\r\nVARY: c\r\n\r\n");
    struct nm_slice lines[2];
    bool overflow = false;
    struct nm_field f = nm_http1_fields_collect(resp.fields, resp.n_fields, NM_SLICE_LIT("Vary"),
                                                lines, 2, &overflow);
    cr_expect_eq(f.n_lines, 2);
    cr_expect(slice_is(lines[0], "a"));
    cr_expect(slice_is(lines[1], "b"));
    cr_expect(overflow);
}

Test(http1, each_error_maps_to_the_status_a_server_answers_it_with)
{
    static const struct {
        int err, status;
    } cases[] = {
        {-EBADMSG, 400},  {-EFBIG, 413},  {-ENAMETOOLONG, 414},    {-EOPNOTSUPP, 417},
        {-EMSGSIZE, 431}, {-ENOSYS, 501}, {-EPROTONOSUPPORT, 505}, {-ENOMEM, 500},
        {0, 500},         {-400, 500},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(nm_http1_status_of(cases[i].err), cases[i].status, "error %d", cases[i].err);
}
