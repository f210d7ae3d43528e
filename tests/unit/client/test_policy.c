/* The fetch policy of notmod get: its decisions as tables (RFC 9111 §4.2, §4.3, §3, §4.1), and
 * nm_policy_fetch_run against a real store with canned exchanges. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/policy.h"

#define NOW 1000000000LL     /* Sun, 09 Sep 2001 01:46:40 GMT */
#define RECEIVED (NOW - 100) /* when the stored response arrived */
#define D_RECEIVED "Sun, 09 Sep 2001 01:45:00 GMT"
#define D_10_DAYS "Thu, 30 Aug 2001 01:45:00 GMT" /* ten days before RECEIVED */

/* "Name: value" lines separated by '\n' into fields borrowing from text. */
static size_t fields_of(const char *text, struct nm_http1_field *out, size_t cap)
{
    size_t n = 0;
    while (text && *text && n < cap) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        const char *colon = memchr(text, ':', len);
        cr_assert_not_null(colon, "%s", text);
        out[n].name = nm_slice_make(text, (size_t)(colon - text));
        out[n].value =
            nm_slice_trim_ows(nm_slice_make(colon + 1, len - (size_t)(colon + 1 - text)));
        n++;
        text = nl ? nl + 1 : NULL;
    }
    return n;
}

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

/* nm_policy_fetch_run with a store in a temporary directory and canned exchanges. */

struct canned {
    int err; /* what perform returns */
    int status;
    const char *headers;
    const char *body;
};

struct world {
    char dir[64];
    struct nm_store store;
    const struct canned *answers; /* one per exchange */
    size_t n_answers, sent;
    char sent_inm[16][64];   /* If-None-Match of each request, "" when none */
    char sent_range[16][64]; /* Range of each request, "" when none */
    char sent_url[16][64];
    const char *sent_accept;
    enum nm_policy_event events[32];
    size_t n_events;
    char delivered[256];
    int deliveries;
};

static int w_perform(void *ctx, struct nm_client_request *req, struct nm_client_response *resp)
{
    struct world *w = ctx;
    cr_assert_lt(w->sent, w->n_answers, "more requests than canned answers");
    const struct canned *c = &w->answers[w->sent];
    cr_assert_lt(w->sent, 16);
    w->sent_inm[w->sent][0] = w->sent_range[w->sent][0] = '\0';
    snprintf(w->sent_url[w->sent], sizeof(w->sent_url[0]), "%s", req->url);
    w->sent_accept = req->accept_encoding;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct nm_http1_field *h = &req->headers[i];
        if (nm_slice_eq(h->name, NM_SLICE_LIT("If-None-Match")))
            snprintf(w->sent_inm[w->sent], sizeof(w->sent_inm[0]), "%.*s", (int)h->value.len,
                     h->value.ptr);
        if (nm_slice_eq(h->name, NM_SLICE_LIT("Range")))
            snprintf(w->sent_range[w->sent], sizeof(w->sent_range[0]), "%.*s", (int)h->value.len,
                     h->value.ptr);
    }
    w->sent++;
    resp->status = c->status;
    snprintf(resp->reason, sizeof(resp->reason), "%s", c->status == 304 ? "Not Modified" : "OK");
    resp->n_headers = fields_of(c->headers, resp->headers, NM_CLIENT_MAX_HEADERS);
    resp->request_time = resp->response_time = time(NULL);
    resp->local_error = false;
    snprintf(resp->error, sizeof(resp->error), "%s", c->err ? strerror(-c->err) : "");
    /* A failure after a body part: the transfer was cut short. */
    if (c->body)
        cr_assert_eq(req->on_body(req->ctx, c->body, strlen(c->body)), 0);
    return c->err;
}

static int w_progress(void *ctx, uint64_t received, uint64_t total)
{
    (void)ctx, (void)received, (void)total;
    return 0;
}

static void w_note(void *ctx, const struct nm_policy_note *n)
{
    struct world *w = ctx;
    if (w->n_events < sizeof(w->events) / sizeof(w->events[0]))
        w->events[w->n_events++] = n->event;
}

static int w_deliver(void *ctx, int fd, uint64_t len, const char *hash)
{
    struct world *w = ctx;
    (void)hash;
    cr_assert_lt(len, sizeof(w->delivered));
    ssize_t got = read(fd, w->delivered, sizeof(w->delivered) - 1);
    cr_assert_eq(got, (ssize_t)len);
    w->delivered[got] = '\0';
    w->deliveries++;
    return 0;
}

static const struct nm_policy_hooks w_hooks = {
    .perform = w_perform, .progress = w_progress, .note = w_note, .deliver = w_deliver};

static struct world world;
static const char *run_accept; /* the Accept-Encoding of the next runs */

static void world_setup(void)
{
    memset(&world, 0, sizeof(world));
    run_accept = NULL;
    snprintf(world.dir, sizeof(world.dir), "/tmp/nm-policy-XXXXXX");
    cr_assert_not_null(mkdtemp(world.dir));
    cr_assert_eq(nm_store_open(&world.store, world.dir), 0);
}

static void world_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q '\\.tmp$'", world.dir);
    cr_expect_neq(system(cmd), 0, "a run left a temporary file");
    size_t n;
    cr_assert_eq(nm_store_clear(&world.store, &n), 0);
    nm_store_cleanup(&world.store);
    cr_assert_eq(rmdir(world.dir), 0, "the run left files behind");
}

/* Runs one notmod get of the test URL with these answers. */
static enum nm_policy_result run(struct nm_policy p, const struct canned *answers, size_t n)
{
    struct nm_policy_hooks hooks = w_hooks;
    hooks.ctx = &world;
    world.answers = answers;
    world.n_answers = n;
    world.sent = world.n_events = 0;
    world.deliveries = 0;
    world.delivered[0] = '\0';
    struct nm_policy_fetch f = {
        .policy = p,
        .url = "http://example.test/a",
        .store = &world.store,
        .hooks = &hooks,
        .accept_encoding = run_accept,
    };
    return nm_policy_fetch_run(&f);
}

static bool happened(enum nm_policy_event e)
{
    for (size_t i = 0; i < world.n_events; i++)
        if (world.events[i] == e)
            return true;
    return false;
}

TestSuite(fetch, .init = world_setup, .fini = world_teardown);

Test(fetch, a_fresh_stored_response_answers_without_a_request)
{
    static const struct canned first[] = {{0, 200, "Cache-Control: max-age=600", "hello"}};
    cr_assert_eq(run((struct nm_policy){.heuristic = true}, first, 1), NM_POLICY_DELIVERED);
    cr_assert(happened(NM_POLICY_EVENT_STORED));
    cr_assert_eq(run((struct nm_policy){.heuristic = true}, NULL, 0), NM_POLICY_DELIVERED);
    cr_assert_eq(world.sent, 0);
    cr_assert(happened(NM_POLICY_EVENT_FRESH));
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_stale_stored_response_is_revalidated_and_a_304_delivers_the_stored_body)
{
    static const struct canned first[] = {
        {0, 200, "ETag: \"v1\"\nCache-Control: max-age=0", "old"}};
    static const struct canned second[] = {
        {0, 304, "ETag: \"v1\"\nCache-Control: max-age=600", NULL}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_POLICY_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"v1\"");
    cr_assert(happened(NM_POLICY_EVENT_FRESHENED));
    cr_assert_str_eq(world.delivered, "old");
    /* Freshened by the 304's max-age: the next run sends nothing. */
    cr_assert_eq(run((struct nm_policy){0}, NULL, 0), NM_POLICY_DELIVERED);
    cr_assert_eq(world.sent, 0);
}

Test(fetch, a_304_for_another_representation_leads_to_a_fetch_without_conditions)
{
    static const struct canned first[] = {{0, 200, "ETag: \"w1\"", "first"}};
    static const struct canned second[] = {{0, 304, "ETag: \"w2\"", NULL},
                                           {0, 200, "ETag: \"w2\"", "second"}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_POLICY_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 2), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"w1\"");
    cr_assert_str_eq(world.sent_inm[1], "");
    cr_assert(happened(NM_POLICY_EVENT_MISMATCH));
    cr_assert_str_eq(world.delivered, "second");
}

Test(fetch, a_network_error_is_answered_stale_only_with_stale_if_error)
{
    static const struct canned first[] = {{0, 200, "ETag: \"v1\"", "kept"}};
    static const struct canned down[] = {{-ECONNREFUSED, 0, NULL, NULL}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_POLICY_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, down, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert_eq(world.deliveries, 0);
    cr_assert_eq(run((struct nm_policy){.stale_if_error = true}, down, 1), NM_POLICY_DELIVERED);
    cr_assert(happened(NM_POLICY_EVENT_STALE));
    cr_assert_str_eq(world.delivered, "kept");
}

Test(fetch, a_no_store_answer_is_delivered_and_removes_the_stored_one)
{
    static const struct canned first[] = {{0, 200, "ETag: \"v1\"", "one"}};
    static const struct canned second[] = {{0, 200, "Cache-Control: no-store", "two"}};
    static const struct canned third[] = {{0, 200, NULL, "three"}};
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_POLICY_DELIVERED);
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_POLICY_DELIVERED);
    cr_assert(happened(NM_POLICY_EVENT_NOT_STORED));
    cr_assert_str_eq(world.delivered, "two");
    cr_assert_eq(run((struct nm_policy){0}, third, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "", "nothing stored: no conditions");
}

Test(fetch, an_error_status_or_a_stray_304_delivers_nothing)
{
    static const struct canned missing[] = {{0, 404, NULL, "not found"}};
    static const struct canned stray[] = {{0, 304, NULL, NULL}};
    cr_assert_eq(run((struct nm_policy){0}, missing, 1), NM_POLICY_FAILED_HTTP);
    cr_assert(happened(NM_POLICY_EVENT_HTTP));
    cr_assert_eq(run((struct nm_policy){0}, stray, 1), NM_POLICY_FAILED_HTTP);
    cr_assert(happened(NM_POLICY_EVENT_STRAY_304));
    cr_assert_eq(world.deliveries, 0);
}

Test(fetch, a_coded_variant_is_stored_with_the_accept_encoding_sent_and_revalidated_by_its_tag)
{
    static const struct canned first[] = {
        {0, 200, "ETag: \"gz\"\nContent-Encoding: gzip\nVary: Accept-Encoding", "decoded"}};
    static const struct canned second[] = {{0, 304, "ETag: \"gz\"", NULL}};
    run_accept = "deflate, gzip";
    cr_assert_eq(run((struct nm_policy){0}, first, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_accept, "deflate, gzip");
    cr_assert_eq(run((struct nm_policy){0}, second, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "\"gz\"", "the stored variant's tag");
    cr_assert(happened(NM_POLICY_EVENT_FRESHENED));
    cr_assert_str_eq(world.delivered, "decoded");
    /* Another Accept-Encoding: the variant does not match (Vary), no conditions. */
    static const struct canned third[] = {{0, 200, "ETag: \"id\"", "identity"}};
    run_accept = NULL;
    cr_assert_eq(run((struct nm_policy){0}, third, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_inm[0], "");
}

Test(fetch, a_200_cut_short_is_resumed_and_a_matching_206_completes_it)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "hel"}};
    static const struct canned rest[] = {{0, 206, "ETag: \"s\"\nContent-Range: bytes 3-4/5", "lo"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert(happened(NM_POLICY_EVENT_PARTIAL_KEPT));
    cr_assert_eq(world.deliveries, 0);
    cr_assert_eq(run((struct nm_policy){0}, rest, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert(happened(NM_POLICY_EVENT_RESUMED));
    cr_assert_str_eq(world.delivered, "hello");
    static const struct canned again[] = {{0, 304, "ETag: \"s\"", NULL}};
    cr_assert_eq(run((struct nm_policy){0}, again, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "", "the partial body is gone");
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_resumed_transfer_cut_short_again_grows_the_partial_body)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "he"}};
    static const struct canned more[] = {
        {-ECONNRESET, 206, "ETag: \"s\"\nContent-Range: bytes 2-4/5", "l"}};
    static const struct canned rest[] = {{0, 206, "ETag: \"s\"\nContent-Range: bytes 3-4/5", "lo"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, more, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert_str_eq(world.sent_range[0], "bytes=2-");
    cr_assert(happened(NM_POLICY_EVENT_PARTIAL_KEPT));
    cr_assert_eq(run((struct nm_policy){0}, rest, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert_str_eq(world.delivered, "hello");
}

Test(fetch, a_206_of_another_version_or_a_200_restarts_from_byte_0)
{
    static const struct canned cut[] = {{-ECONNRESET, 200, "ETag: \"s\"", "hel"}};
    static const struct canned other[] = {{0, 206, "ETag: \"t\"\nContent-Range: bytes 3-4/5", "XY"},
                                          {0, 200, "ETag: \"t\"", "world"}};
    static const struct canned whole[] = {{0, 200, "ETag: \"u\"", "fresh"}};
    cr_assert_eq(run((struct nm_policy){0}, cut, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, other, 2), NM_POLICY_DELIVERED);
    cr_assert(happened(NM_POLICY_EVENT_RESUME_REFUSED));
    cr_assert_str_eq(world.sent_range[1], "");
    cr_assert_str_eq(world.delivered, "world");
    cr_assert_eq(run((struct nm_policy){.reload = true}, cut, 1), NM_POLICY_FAILED_NETWORK);
    cr_assert_eq(run((struct nm_policy){0}, whole, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_range[0], "bytes=3-");
    cr_assert_str_eq(world.delivered, "fresh");
}

Test(fetch, redirects_are_followed_only_when_asked_and_a_fresh_301_is_reused)
{
    static const struct canned moved[] = {
        {0, 301, "Location: /b\nCache-Control: max-age=600", NULL}, {0, 200, NULL, "at b"}};
    cr_assert_eq(run((struct nm_policy){0}, moved, 1), NM_POLICY_FAILED_HTTP);
    cr_assert_eq(run((struct nm_policy){.follow = true}, moved, 2), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_url[1], "http://example.test/b");
    cr_assert_str_eq(world.delivered, "at b");
    static const struct canned b_only[] = {{0, 200, NULL, "at b again"}};
    cr_assert_eq(run((struct nm_policy){.follow = true}, b_only, 1), NM_POLICY_DELIVERED);
    cr_assert_str_eq(world.sent_url[0], "http://example.test/b", "the 301 came from the store");
    static const struct canned loop[] = {{0, 302, "Location: /c", NULL}};
    struct canned loops[NM_POLICY_MAX_REDIRECTS + 1];
    for (size_t i = 0; i < NM_POLICY_MAX_REDIRECTS + 1; i++)
        loops[i] = loop[0];
    cr_assert_eq(
        run((struct nm_policy){.follow = true, .reload = true}, loops, NM_POLICY_MAX_REDIRECTS + 1),
        NM_POLICY_FAILED_HTTP);
    cr_assert(happened(NM_POLICY_EVENT_TOO_MANY_REDIRECTS));
}
