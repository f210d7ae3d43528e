/* The fetch policy of notmod get: its decisions as tables (RFC 9111 §4.2, §4.3, §3, §4.1), and
 * nm_fetch_run against a real store with canned exchanges. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/policy.h"
#include "fixture.h"

#define NOW 1000000000LL     /* Sun, 09 Sep 2001 01:46:40 GMT */
#define RECEIVED (NOW - 100) /* when the stored response arrived */
#define D_RECEIVED "Sun, 09 Sep 2001 01:45:00 GMT"
#define D_10_DAYS "Thu, 30 Aug 2001 01:45:00 GMT" /* ten days before RECEIVED */

/* "Name: value" lines separated by '\n' into fields borrowing from text. */
/* A stored 200 received at RECEIVED with the given response and request lines. */
static struct nm_store_entry *entry_of(const char *headers, const char *request)
{
    struct nm_store_entry *e = malloc(sizeof(*e));
    cr_assert_not_null(e);
    nm_store_entry_init(e);
    e->url = NM_SLICE_LIT("http://example.test/a");
    e->status = 200;
    e->request_time = RECEIVED;
    e->response_time = RECEIVED;
    e->n_headers = fields_of(headers, e->headers, NM_STORE_MAX_HEADERS);
    e->n_request = fields_of(request, e->request, NM_STORE_MAX_REQUEST);
    return e;
}

static void entry_free(struct nm_store_entry *e)
{
    nm_store_entry_cleanup(e);
    free(e);
}

static struct nm_client_response *response_of(int status, const char *headers)
{
    struct nm_client_response *r = malloc(sizeof(*r));
    cr_assert_not_null(r);
    nm_client_response_init(r);
    r->status = status;
    r->n_headers = fields_of(headers, r->headers, NM_CLIENT_MAX_HEADERS);
    r->request_time = NOW - 1;
    r->response_time = NOW;
    return r;
}

static void response_free(struct nm_client_response *r)
{
    nm_client_response_cleanup(r);
    free(r);
}

struct stored_row {
    const char *headers, *stored_request, *request;
    bool no_heuristic, revalidate, reload;
    enum nm_policy_stored want;
};

Test(policy, a_stored_response_is_used_fresh_revalidated_or_not_at_all)
{
    static const struct stored_row rows[] = {
        {"Cache-Control: max-age=600", NULL, NULL, false, false, false, NM_POLICY_STORED_FRESH},
        {"Cache-Control: max-age=60", NULL, NULL, false, false, false, NM_POLICY_STORED_REVALIDATE},
        {"Cache-Control: max-age=600", NULL, NULL, false, true, false, NM_POLICY_STORED_REVALIDATE},
        {"Cache-Control: max-age=600, no-cache", NULL, NULL, false, false, false,
         NM_POLICY_STORED_REVALIDATE},
        {"Cache-Control: max-age=600", NULL, NULL, false, false, true, NM_POLICY_STORED_IGNORED},
        /* §4.2.2: 10% of the ten days since Last-Modified is a day. */
        {"Date: " D_RECEIVED "\nLast-Modified: " D_10_DAYS, NULL, NULL, false, false, false,
         NM_POLICY_STORED_FRESH},
        {"Date: " D_RECEIVED "\nLast-Modified: " D_10_DAYS, NULL, NULL, true, false, false,
         NM_POLICY_STORED_REVALIDATE},
        /* §4.1 */
        {"Cache-Control: max-age=600\nVary: Accept-Language", "Accept-Language: fr",
         "Accept-Language: de", false, false, false, NM_POLICY_STORED_VARIES},
        {"Cache-Control: max-age=600\nVary: Accept-Language", "Accept-Language: fr",
         "Accept-Language: fr", false, false, false, NM_POLICY_STORED_FRESH},
        {"Cache-Control: max-age=600\nVary: *", NULL, NULL, false, false, false,
         NM_POLICY_STORED_VARIES},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct stored_row *row = &rows[i];
        struct nm_store_entry *e = entry_of(row->headers, row->stored_request);
        struct nm_http1_field req[4];
        size_t n_req = fields_of(row->request, req, 4);
        struct nm_policy p = {
            .heuristic = !row->no_heuristic, .revalidate = row->revalidate, .reload = row->reload};
        struct nm_freshness fr;
        cr_expect_eq(nm_policy_use_stored(&p, e, req, n_req, NOW, &fr), row->want, "row %zu", i);
        entry_free(e);
    }
}

Test(policy, the_heuristic_lifetime_is_a_tenth_of_the_age_since_last_modified_capped_at_a_day)
{
    struct nm_store_entry *e = entry_of("Date: " D_RECEIVED "\nLast-Modified: " D_10_DAYS, NULL);
    struct nm_policy p = {.heuristic = true};
    struct nm_freshness fr;
    nm_policy_freshness(&p, e, NOW, &fr);
    cr_assert_eq(fr.source, NM_CACHECTL_SOURCE_HEURISTIC);
    cr_assert_eq(fr.lifetime_s, NM_POLICY_HEURISTIC_MAX_S);
    cr_assert_eq(fr.current_age_s, 100);
    entry_free(e);
}

struct conditions_row {
    const char *headers;
    const char *inm, *ims; /* NULL: not sent */
};

Test(policy, stored_validators_are_sent_back_exactly_as_received)
{
    static const struct conditions_row rows[] = {
        {"ETag: \"v1\"\nLast-Modified: " D_10_DAYS, "\"v1\"", D_10_DAYS},
        {"ETag: W/\"v1\"", "W/\"v1\"", NULL},
        {"ETag: \"v1\"\nETag: \"v2\"", NULL, NULL}, /* two tags are no single validator */
        {"ETag: v1", NULL, NULL},                   /* not an entity-tag */
        {"Last-Modified: yesterday", NULL, NULL},
        {"Cache-Control: max-age=60", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_store_entry *e = entry_of(rows[i].headers, NULL);
        struct nm_http1_field out[NM_POLICY_MAX_CONDITIONS];
        size_t n = nm_policy_conditions(e, NOW, out);
        size_t k = 0;
        if (rows[i].inm) {
            cr_assert_gt(n, k, "row %zu", i);
            cr_expect(nm_slice_eq(out[k].name, NM_SLICE_LIT("If-None-Match")), "row %zu", i);
            cr_expect(nm_slice_eq(out[k++].value, nm_slice_from_cstr(rows[i].inm)), "row %zu", i);
        }
        if (rows[i].ims) {
            cr_assert_gt(n, k, "row %zu", i);
            cr_expect(nm_slice_eq(out[k].name, NM_SLICE_LIT("If-Modified-Since")), "row %zu", i);
            cr_expect(nm_slice_eq(out[k++].value, nm_slice_from_cstr(rows[i].ims)), "row %zu", i);
        }
        cr_expect_eq(n, k, "row %zu", i);
        entry_free(e);
    }
}

struct response_row {
    bool conditional; /* the stored entry's validators were sent */
    int status;
    const char *headers;
    enum nm_policy_next want;
};

Test(policy, a_response_is_taken_freshens_the_stored_one_or_leads_to_a_fetch_again)
{
    static const struct response_row rows[] = {
        {false, 200, "ETag: \"v2\"", NM_POLICY_NEXT_TAKE},
        {true, 200, "ETag: \"v2\"", NM_POLICY_NEXT_TAKE},
        {true, 404, NULL, NM_POLICY_NEXT_HTTP_ERROR},
        {false, 301, "Location: /b", NM_POLICY_NEXT_HTTP_ERROR},
        {false, 304, "ETag: \"v1\"", NM_POLICY_NEXT_STRAY_304},
        {true, 304, "ETag: \"v1\"", NM_POLICY_NEXT_FRESHEN},
        {true, 304, NULL, NM_POLICY_NEXT_FRESHEN}, /* no validator: it answers what was asked */
        /* §4.3.4: a 304 for another representation must not freshen the stored one. */
        {true, 304, "ETag: \"v2\"", NM_POLICY_NEXT_REFETCH},
    };
    struct nm_store_entry *e = entry_of("ETag: \"v1\"", NULL);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_http1_field h[4];
        size_t n = fields_of(rows[i].headers, h, 4);
        cr_expect_eq(
            nm_policy_on_response(rows[i].conditional ? e : NULL, rows[i].status, h, n, NOW),
            rows[i].want, "row %zu", i);
    }
    entry_free(e);
}

struct store_row {
    bool no_store;
    const char *headers;
    enum nm_policy_store want, want_freshened;
};

Test(policy, a_response_is_stored_unless_the_user_or_the_server_says_otherwise)
{
    static const struct store_row rows[] = {
        {false, "Cache-Control: max-age=60", NM_POLICY_STORE, NM_POLICY_STORE},
        {true, "Cache-Control: max-age=60", NM_POLICY_STORE_UNWANTED, NM_POLICY_STORE_UNWANTED},
        {false, "Cache-Control: private, no-store", NM_POLICY_STORE_NO_STORE,
         NM_POLICY_STORE_NO_STORE},
        {true, "Cache-Control: no-store", NM_POLICY_STORE_UNWANTED, NM_POLICY_STORE_UNWANTED},
        /* Vary: * keeps a 200 out; a 304 cannot make a stored response unusable that way. */
        {false, "Vary: *", NM_POLICY_STORE_VARY_ANY, NM_POLICY_STORE},
        {false, "Vary: Accept-Language", NM_POLICY_STORE, NM_POLICY_STORE},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_policy p = {.no_store = rows[i].no_store};
        struct nm_store_entry *e = entry_of(rows[i].headers, NULL);
        cr_expect_eq(nm_policy_store(&p, e->headers, e->n_headers), rows[i].want, "row %zu", i);
        cr_expect_eq(nm_policy_store_freshened(&p, e), rows[i].want_freshened, "row %zu", i);
        entry_free(e);
    }
}

static bool has_line(const struct nm_http1_field *h, size_t n, const char *name, const char *value)
{
    for (size_t i = 0; i < n; i++)
        if (nm_slice_case_eq(h[i].name, nm_slice_from_cstr(name)) &&
            nm_slice_eq(h[i].value, nm_slice_from_cstr(value)))
            return true;
    return false;
}

Test(policy, a_stored_200_keeps_no_hop_by_hop_field_and_the_request_fields_it_varies_on)
{
    struct nm_client_response *r = response_of(200, "ETag: \"v1\"\n"
                                                    "Connection: close, X-Hop\n"
                                                    "X-Hop: 1\n"
                                                    "Keep-Alive: timeout=5\n"
                                                    "Vary: accept-language\n"
                                                    "X-Kept: 2");
    struct nm_http1_field req[2];
    size_t n_req = fields_of("Accept: text/css\nAccept-Language: fr", req, 2);
    struct nm_store_entry *e = entry_of(NULL, NULL);
    nm_policy_entry_of_200(e, "http://example.test/a", r, req, n_req);
    cr_assert(nm_slice_eq(e->url, NM_SLICE_LIT("http://example.test/a")));
    cr_assert_eq(e->status, 200);
    cr_assert_eq(e->request_time, NOW - 1);
    cr_assert_eq(e->response_time, NOW);
    cr_assert_eq(e->n_headers, 3);
    cr_assert(has_line(e->headers, e->n_headers, "ETag", "\"v1\""));
    cr_assert(has_line(e->headers, e->n_headers, "Vary", "accept-language"));
    cr_assert(has_line(e->headers, e->n_headers, "X-Kept", "2"));
    cr_assert_eq(e->n_request, 1);
    cr_assert(has_line(e->request, e->n_request, "Accept-Language", "fr"));
    entry_free(e);
    response_free(r);
}

Test(policy, a_304_freshens_the_stored_lines_and_keeps_its_body_and_length)
{
    struct nm_store_entry *old = entry_of(
        "ETag: \"v1\"\nCache-Control: max-age=60\nContent-Length: 10", "Accept-Language: fr");
    old->body_len = 10;
    snprintf(old->body_hash, sizeof(old->body_hash), "%032d", 7);
    snprintf(old->body_name, sizeof(old->body_name), "body-1.body");
    struct nm_client_response *r =
        response_of(304, "ETag: \"v1\"\nCache-Control: max-age=600\nContent-Length: 0");
    struct nm_store_entry *e = entry_of(NULL, NULL);
    cr_assert_eq(nm_policy_freshen(e, old, r), 0);
    cr_assert_eq(e->status, 200);
    cr_assert_eq(e->response_time, NOW);
    cr_assert_eq(e->body_len, 10);
    cr_assert_str_eq(e->body_hash, old->body_hash);
    cr_assert_str_eq(e->body_name, "body-1.body");
    cr_assert(has_line(e->headers, e->n_headers, "Cache-Control", "max-age=600"));
    cr_assert(!has_line(e->headers, e->n_headers, "Cache-Control", "max-age=60"));
    cr_assert(has_line(e->headers, e->n_headers, "Content-Length", "10"));
    cr_assert(!has_line(e->headers, e->n_headers, "Content-Length", "0"));
    cr_assert(has_line(e->request, e->n_request, "Accept-Language", "fr"));
    entry_free(e);
    response_free(r);
    entry_free(old);
}

Test(policy, a_304_with_more_lines_than_an_entry_holds_freshens_nothing)
{
    struct nm_store_entry *old = entry_of("ETag: \"v1\"", NULL);
    struct nm_client_response *r = response_of(304, NULL);
    for (size_t i = 0; i < NM_STORE_MAX_HEADERS; i++)
        r->headers[r->n_headers++] =
            (struct nm_http1_field){NM_SLICE_LIT("X-A"), NM_SLICE_LIT("1")};
    struct nm_store_entry *e = entry_of(NULL, NULL);
    cr_assert_eq(nm_policy_freshen(e, old, r), -ENOSPC);
    cr_assert_eq(e->n_headers, 0);
    entry_free(e);
    response_free(r);
    entry_free(old);
}

struct failure_row {
    int err;
    bool local_error, stale_if_error, have_stored, may_serve_stale;
    enum nm_policy_failure want;
};

Test(policy, a_failed_exchange_is_classified_and_stale_if_error_needs_permission)
{
    static const struct failure_row rows[] = {
        {-ECANCELED, false, true, true, true, NM_POLICY_FAILURE_INTERRUPTED},
        {-ENOSPC, true, true, true, true, NM_POLICY_FAILURE_LOCAL},
        {-EINVAL, false, true, true, true, NM_POLICY_FAILURE_URL},
        {-EPROTONOSUPPORT, false, false, false, false, NM_POLICY_FAILURE_URL},
        {-ECONNREFUSED, false, true, true, true, NM_POLICY_FAILURE_STALE},
        {-ETIMEDOUT, false, false, true, true, NM_POLICY_FAILURE_NETWORK},
        /* no-cache or must-revalidate forbid serving it stale */
        {-ECONNRESET, false, true, true, false, NM_POLICY_FAILURE_NETWORK},
        {-EHOSTUNREACH, false, true, false, false, NM_POLICY_FAILURE_NETWORK},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct failure_row *row = &rows[i];
        struct nm_policy p = {.stale_if_error = row->stale_if_error};
        struct nm_freshness fr = {.may_serve_stale = row->may_serve_stale};
        cr_expect_eq(
            nm_policy_on_failure(&p, row->err, row->local_error, row->have_stored ? &fr : NULL),
            row->want, "row %zu", i);
    }
}

struct partial_row {
    int status;
    const char *headers;
    uint64_t received;
    bool no_store;
    bool want;
};

Test(policy, a_200_cut_short_is_kept_only_with_a_strong_validator_and_no_coding)
{
    static const struct partial_row rows[] = {
        {200, "ETag: \"s\"", 10, false, true},
        {200, "ETag: W/\"w\"", 10, false, false},
        {200, "ETag: \"s\"", 0, false, false},
        {200, "ETag: \"s\"", 10, true, false},
        {200, "ETag: \"s\"\nCache-Control: no-store", 10, false, false},
        {200, "ETag: \"s\"\nContent-Encoding: gzip", 10, false, false},
        {206, "ETag: \"s\"", 10, false, false},
        /* §8.8.2.2: a Last-Modified 60 s or more before Date is strong */
        {200, "Last-Modified: " D_10_DAYS "\nDate: " D_RECEIVED, 10, false, true},
        {200, "Last-Modified: " D_RECEIVED "\nDate: " D_RECEIVED, 10, false, false},
        {200, "Last-Modified: " D_10_DAYS, 10, false, false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_http1_field h[4];
        size_t n = fields_of(rows[i].headers, h, 4);
        struct nm_policy p = {.no_store = rows[i].no_store};
        cr_expect_eq(nm_policy_may_keep_partial(&p, rows[i].status, h, n, rows[i].received),
                     rows[i].want, "row %zu", i);
    }
}

Test(policy, a_partial_body_is_resumed_with_range_and_its_strong_validator_in_if_range)
{
    struct nm_store_entry *e = entry_of("ETag: \"s\"\nLast-Modified: " D_10_DAYS, NULL);
    e->body_len = 1000;
    char range[NM_POLICY_RANGE_MAX];
    struct nm_http1_field out[NM_POLICY_MAX_RESUME];
    cr_assert_eq(nm_policy_resume_conditions(e, NOW, range, out), 2);
    cr_assert(nm_slice_eq(out[0].value, NM_SLICE_LIT("bytes=1000-")));
    cr_assert(nm_slice_eq(out[1].name, NM_SLICE_LIT("If-Range")));
    cr_assert(nm_slice_eq(out[1].value, NM_SLICE_LIT("\"s\"")), "the ETag is preferred");
    entry_free(e);
    e = entry_of("ETag: W/\"w\"\nLast-Modified: " D_10_DAYS "\nDate: " D_RECEIVED, NULL);
    e->body_len = 5;
    cr_assert_eq(nm_policy_resume_conditions(e, NOW, range, out), 2);
    cr_assert(nm_slice_eq(out[1].value, NM_SLICE_LIT(D_10_DAYS)));
    entry_free(e);
    e = entry_of("ETag: W/\"w\"", NULL);
    e->body_len = 5;
    cr_assert_eq(nm_policy_resume_conditions(e, NOW, range, out), 0, "no strong validator");
    entry_free(e);
}

struct accept_row {
    const char *headers;
    bool want;
};

Test(policy, a_content_range_is_bytes_first_last_complete_within_the_length)
{
    uint64_t f, l, c;
    cr_assert(nm_policy_content_range(nm_slice_from_cstr("bytes 0-4/10"), &f, &l, &c));
    cr_assert(f == 0 && l == 4 && c == 10);
    cr_assert(nm_policy_content_range(
        nm_slice_from_cstr("bytes 18446744073709551614-18446744073709551614/18446744073709551615"),
        &f, &l, &c));
    const char *bad[] = {"bytes *"
                         "/10",
                         "bytes 5-4/10",
                         "bytes 0-10/10",
                         "bytes 0-4/10 ",
                         "Bytes 0-4/10",
                         "bytes 0-4/"
                         "*",
                         "bytes -4/10",
                         "bytes 0-4/18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!nm_policy_content_range(nm_slice_from_cstr(bad[i]), &f, &l, &c), "%s", bad[i]);
}

Test(policy, a_206_is_accepted_only_when_it_continues_the_partial_body_of_the_same_version)
{
    static const struct accept_row rows[] = {
        {"Content-Range: bytes 1000-1999/2000\nETag: \"s\"", true},
        {"Content-Range: bytes 0-1999/2000\nETag: \"s\"", false},
        {"Content-Range: bytes 1000-1499/2000\nETag: \"s\"", false},
        {"Content-Range: bytes 1000-1999/*\nETag: \"s\"", false},
        {"Content-Range: bytes 1000-1999/2000\nETag: \"t\"", false},
        {"Content-Range: bytes 1000-1999/2000\nETag: W/\"s\"", false},
        {"Content-Range: bytes 1000-1999/2000", false},
        {"ETag: \"s\"", false},
        {"Content-Range: bytes 1000-1999/2000\nETag: \"s\"\nContent-Encoding: gzip", false},
    };
    struct nm_store_entry *e = entry_of("ETag: \"s\"", NULL);
    e->body_len = 1000;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_http1_field h[4];
        size_t n = fields_of(rows[i].headers, h, 4);
        cr_expect_eq(nm_policy_accepts_206(e, h, n, NOW), rows[i].want, "row %zu", i);
    }
    entry_free(e);
}

struct redirect_row {
    int status;
    const char *headers;
    enum nm_policy_store want;
};

Test(policy, a_redirect_is_stored_by_its_own_freshness_rules)
{
    static const struct redirect_row rows[] = {
        {301, "Cache-Control: max-age=600", NM_POLICY_STORE},
        {308, "Cache-Control: max-age=600", NM_POLICY_STORE},
        {301, NULL, NM_POLICY_STORE_NO_FRESHNESS},
        {301, "Last-Modified: " D_10_DAYS "\nDate: " D_RECEIVED, NM_POLICY_STORE},
        {302, "Last-Modified: " D_10_DAYS "\nDate: " D_RECEIVED, NM_POLICY_STORE_NO_FRESHNESS},
        {302, NULL, NM_POLICY_STORE_NO_FRESHNESS},
        {307, "Cache-Control: max-age=600", NM_POLICY_STORE},
        {302, "Expires: Sun, 09 Sep 2001 02:45:00 GMT\nDate: " D_RECEIVED, NM_POLICY_STORE},
        {301, "Cache-Control: max-age=600, no-store", NM_POLICY_STORE_NO_STORE},
        {301, "Cache-Control: max-age=0", NM_POLICY_STORE_NO_FRESHNESS},
        {301, "Cache-Control: no-cache, max-age=600", NM_POLICY_STORE_NO_FRESHNESS},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_http1_field h[4];
        size_t n = fields_of(rows[i].headers, h, 4);
        struct nm_policy p = {.heuristic = true};
        cr_expect_eq(nm_policy_store_redirect(&p, rows[i].status, h, n, NOW), rows[i].want,
                     "row %zu", i);
    }
    cr_expect(nm_policy_is_redirect(303));
    cr_expect_not(nm_policy_is_redirect(304));
    cr_expect_not(nm_policy_is_redirect(300));
}

/* nm_fetch_run with a store in a temporary directory and canned exchanges. */
