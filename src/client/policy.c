/* The fetch policy of notmod get: freshness and reuse (RFC 9111 §4.2, §4.1), revalidation
 * (§4.3.1), 304 handling (§4.3.3, §4.3.4), storing (§3), stale-if-error, redirects (RFC 9110
 * §15.4) and resuming a partial body with Range and If-Range (RFC 9110 §14, §13.1.5). */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notmod/etag.h"

static struct nm_field field(const struct nm_http1_field *h, size_t n, const char *name,
                             struct nm_slice *lines)
{
    return nm_cachectl_field(h, n, name, lines, NM_CACHECTL_MAX_LINES);
}

void nm_policy_freshness(const struct nm_policy *p, const struct nm_store_entry *e, int64_t now,
                         struct nm_freshness *fr)
{
    const struct nm_http1_field *h = e->headers;
    size_t n = e->n_headers;
    struct nm_slice l[5][NM_CACHECTL_MAX_LINES];
    struct nm_cachectl_response cr = {
        .status = e->status,
        .cache_control = field(h, n, "Cache-Control", l[0]),
        .expires = field(h, n, "Expires", l[1]),
        .date = field(h, n, "Date", l[2]),
        .last_modified = field(h, n, "Last-Modified", l[3]),
        .age = field(h, n, "Age", l[4]),
        .request_time = e->request_time,
        .response_time = e->response_time,
    };
    struct nm_cachectl_policy cp = {
        .heuristic = p->heuristic,
        .heuristic_max_s = NM_POLICY_HEURISTIC_MAX_S,
        .heuristic_percent = NM_POLICY_HEURISTIC_PERCENT,
    };
    nm_cachectl_evaluate(&cr, &cp, now, fr);
}

enum nm_policy_stored nm_policy_use_stored(const struct nm_policy *p,
                                           const struct nm_store_entry *e,
                                           const struct nm_http1_field *req, size_t n_req,
                                           int64_t now, struct nm_freshness *fr)
{
    if (p->reload)
        return NM_POLICY_STORED_IGNORED;
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_field vary = field(e->headers, e->n_headers, "Vary", l);
    nm_policy_freshness(p, e, now, fr);
    if (!nm_cachectl_vary_matches(vary, e->request, e->n_request, req, n_req))
        return NM_POLICY_STORED_VARIES;
    return fr->fresh && !p->revalidate ? NM_POLICY_STORED_FRESH : NM_POLICY_STORED_REVALIDATE;
}

size_t nm_policy_conditions(const struct nm_store_entry *e, int64_t now,
                            struct nm_http1_field out[NM_POLICY_MAX_CONDITIONS])
{
    size_t n = 0;
    /* Two lines are enough to tell one from several: several are no single validator. */
    struct nm_slice l[2];
    struct nm_field etag = nm_cachectl_field(e->headers, e->n_headers, "ETag", l, 2);
    struct nm_etag t;
    if (etag.n_lines == 1 && nm_etag_parse(etag.lines[0], &t) == 0)
        out[n++] = (struct nm_http1_field){NM_SLICE_LIT("If-None-Match"), etag.lines[0]};
    struct nm_field lm = nm_cachectl_field(e->headers, e->n_headers, "Last-Modified", l, 2);
    int64_t when;
    if (nm_cachectl_date(lm, now, &when) == 0)
        out[n++] = (struct nm_http1_field){NM_SLICE_LIT("If-Modified-Since"), lm.lines[0]};
    return n;
}

/* The strong validator of a stored 200 for If-Range: its strong ETag, else its Last-Modified
 * when strong (RFC 9110 §8.8.2.2: Date at least 60 s after it). Writes *v and *is_etag. */
static bool strong_validator(const struct nm_http1_field *h, size_t n, int64_t now,
                             struct nm_slice *v, bool *is_etag)
{
    struct nm_slice l[2], d[2];
    struct nm_field etag = nm_cachectl_field(h, n, "ETag", l, 2);
    struct nm_etag t;
    if (etag.n_lines == 1 && nm_etag_parse(etag.lines[0], &t) == 0 && !t.weak) {
        *v = etag.lines[0];
        *is_etag = true;
        return true;
    }
    struct nm_field lm = nm_cachectl_field(h, n, "Last-Modified", l, 2);
    int64_t lm_s, date_s;
    if (nm_cachectl_date(lm, now, &lm_s) == 0 &&
        nm_cachectl_date(nm_cachectl_field(h, n, "Date", d, 2), now, &date_s) == 0 &&
        date_s - lm_s >= 60) {
        *v = lm.lines[0];
        *is_etag = false;
        return true;
    }
    return false;
}

static bool has_content_coding(const struct nm_http1_field *h, size_t n)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_cachectl_token_iter it;
    struct nm_slice coding;
    nm_cachectl_token_iter_init(&it, field(h, n, "Content-Encoding", l));
    while (nm_cachectl_token_iter_next(&it, &coding))
        if (!nm_slice_case_eq(coding, NM_SLICE_LIT("identity")))
            return true;
    return false;
}

bool nm_policy_may_keep_partial(const struct nm_policy *p, int status,
                                const struct nm_http1_field *h, size_t n, uint64_t received)
{
    struct nm_slice v;
    bool is_etag;
    return status == 200 && received > 0 && nm_policy_store(p, h, n) == NM_POLICY_STORE &&
           !has_content_coding(h, n) && strong_validator(h, n, 0, &v, &is_etag);
}

size_t nm_policy_resume_conditions(const struct nm_store_entry *partial, int64_t now,
                                   char range[NM_POLICY_RANGE_MAX],
                                   struct nm_http1_field out[NM_POLICY_MAX_RESUME])
{
    struct nm_slice v;
    bool is_etag;
    if (partial->body_len == 0 ||
        !strong_validator(partial->headers, partial->n_headers, now, &v, &is_etag))
        return 0;
    int len = snprintf(range, NM_POLICY_RANGE_MAX, "bytes=%" PRIu64 "-", partial->body_len);
    out[0] = (struct nm_http1_field){NM_SLICE_LIT("Range"), nm_slice_make(range, (size_t)len)};
    out[1] = (struct nm_http1_field){NM_SLICE_LIT("If-Range"), v};
    return 2;
}

/* Reads a decimal number from s at *i. */
static bool number(struct nm_slice s, size_t *i, uint64_t *out)
{
    size_t start = *i;
    uint64_t v = 0;
    while (*i < s.len && s.ptr[*i] >= '0' && s.ptr[*i] <= '9') {
        uint64_t d = (uint64_t)(s.ptr[*i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        (*i)++;
    }
    *out = v;
    return *i > start;
}

bool nm_policy_content_range(struct nm_slice s, uint64_t *first, uint64_t *last, uint64_t *complete)
{
    size_t i = 6;
    if (s.len < 6 || memcmp(s.ptr, "bytes ", 6) != 0)
        return false;
    if (!number(s, &i, first) || i >= s.len || s.ptr[i++] != '-' || !number(s, &i, last) ||
        i >= s.len || s.ptr[i++] != '/' || !number(s, &i, complete))
        return false;
    return i == s.len && *first <= *last && *last < *complete;
}

bool nm_policy_accepts_206(const struct nm_store_entry *partial, const struct nm_http1_field *h,
                           size_t n, int64_t now)
{
    struct nm_slice l[2], l2[2], had;
    bool is_etag;
    uint64_t first, last, complete;
    struct nm_field cr = nm_cachectl_field(h, n, "Content-Range", l, 2);
    if (cr.n_lines != 1 || !nm_policy_content_range(cr.lines[0], &first, &last, &complete) ||
        first != partial->body_len || last != complete - 1 || has_content_coding(h, n) ||
        !strong_validator(partial->headers, partial->n_headers, now, &had, &is_etag))
        return false;
    if (is_etag) {
        struct nm_field got = nm_cachectl_field(h, n, "ETag", l2, 2);
        struct nm_etag a, b;
        return got.n_lines == 1 && nm_etag_parse(got.lines[0], &a) == 0 &&
               nm_etag_parse(had, &b) == 0 && nm_etag_matches_strong(&a, &b);
    }
    struct nm_field got = nm_cachectl_field(h, n, "Last-Modified", l2, 2);
    struct nm_field was = {.lines = &had, .n_lines = 1};
    int64_t a, b;
    return nm_cachectl_date(got, now, &a) == 0 && nm_cachectl_date(was, now, &b) == 0 && a == b;
}

bool nm_policy_is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

enum nm_policy_next nm_policy_on_response(const struct nm_store_entry *asked, int status,
                                          const struct nm_http1_field *h, size_t n, int64_t now)
{
    if (status == 200)
        return NM_POLICY_NEXT_TAKE;
    if (status != 304)
        return NM_POLICY_NEXT_HTTP_ERROR;
    if (!asked)
        return NM_POLICY_NEXT_STRAY_304;
    if (nm_cachectl_select_304(asked->headers, asked->n_headers, h, n, now) ==
        NM_CACHECTL_SELECT_MISMATCH)
        return NM_POLICY_NEXT_REFETCH;
    return NM_POLICY_NEXT_FRESHEN;
}

static unsigned cache_control(const struct nm_http1_field *h, size_t n)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_cachectl cc;
    nm_cachectl_parse(field(h, n, "Cache-Control", l), &cc);
    return cc.flags;
}

enum nm_policy_store nm_policy_store(const struct nm_policy *p, const struct nm_http1_field *h,
                                     size_t n)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    if (p->no_store)
        return NM_POLICY_STORE_UNWANTED;
    if (cache_control(h, n) & NM_CACHECTL_NO_STORE)
        return NM_POLICY_STORE_NO_STORE;
    if (nm_cachectl_vary_is_any(field(h, n, "Vary", l)))
        return NM_POLICY_STORE_VARY_ANY;
    return NM_POLICY_STORE;
}

enum nm_policy_store nm_policy_store_redirect(const struct nm_policy *p, int status,
                                              const struct nm_http1_field *h, size_t n, int64_t now)
{
    enum nm_policy_store st = nm_policy_store(p, h, n);
    if (st != NM_POLICY_STORE)
        return st;
    struct nm_slice l[5][NM_CACHECTL_MAX_LINES];
    struct nm_cachectl_response cr = {
        .status = status,
        .cache_control = field(h, n, "Cache-Control", l[0]),
        .expires = field(h, n, "Expires", l[1]),
        .date = field(h, n, "Date", l[2]),
        .last_modified = field(h, n, "Last-Modified", l[3]),
        .age = field(h, n, "Age", l[4]),
        .request_time = now,
        .response_time = now,
    };
    struct nm_cachectl_policy cp = {
        .heuristic = p->heuristic,
        .heuristic_max_s = NM_POLICY_HEURISTIC_MAX_S,
        .heuristic_percent = NM_POLICY_HEURISTIC_PERCENT,
    };
    struct nm_freshness fr;
    nm_cachectl_evaluate(&cr, &cp, now, &fr);
    bool explicit_ =
        fr.source == NM_CACHECTL_SOURCE_MAX_AGE || fr.source == NM_CACHECTL_SOURCE_EXPIRES;
    bool heuristic = fr.source == NM_CACHECTL_SOURCE_HEURISTIC && (status == 301 || status == 308);
    if ((explicit_ || heuristic) && fr.lifetime_s > 0 && !(fr.cc_flags & NM_CACHECTL_NO_CACHE))
        return NM_POLICY_STORE;
    return NM_POLICY_STORE_NO_FRESHNESS;
}

enum nm_policy_store nm_policy_store_freshened(const struct nm_policy *p,
                                               const struct nm_store_entry *e)
{
    if (p->no_store)
        return NM_POLICY_STORE_UNWANTED;
    if (cache_control(e->headers, e->n_headers) & NM_CACHECTL_NO_STORE)
        return NM_POLICY_STORE_NO_STORE;
    return NM_POLICY_STORE;
}

void nm_policy_entry_of_200(struct nm_store_entry *e, const char *url,
                            const struct nm_client_response *resp, const struct nm_http1_field *req,
                            size_t n_req)
{
    e->url = nm_slice_from_cstr(url);
    e->status = resp->status;
    e->request_time = resp->request_time;
    e->response_time = resp->response_time;
    struct nm_slice l[2][NM_CACHECTL_MAX_LINES];
    struct nm_field conn = field(resp->headers, resp->n_headers, "Connection", l[0]);
    for (size_t i = 0; i < resp->n_headers && e->n_headers < NM_STORE_MAX_HEADERS; i++)
        if (!nm_cachectl_is_unstorable(resp->headers[i].name, conn))
            e->headers[e->n_headers++] = resp->headers[i];
    struct nm_cachectl_token_iter it;
    struct nm_slice name;
    nm_cachectl_token_iter_init(&it, field(resp->headers, resp->n_headers, "Vary", l[1]));
    while (nm_cachectl_token_iter_next(&it, &name))
        for (size_t i = 0; i < n_req && e->n_request < NM_STORE_MAX_REQUEST; i++)
            if (nm_slice_case_eq(req[i].name, name))
                e->request[e->n_request++] = req[i];
}

int nm_policy_freshen(struct nm_store_entry *e, const struct nm_store_entry *old,
                      const struct nm_client_response *resp)
{
    e->url = old->url;
    e->status = old->status;
    e->request_time = resp->request_time;
    e->response_time = resp->response_time;
    e->body_len = old->body_len;
    memcpy(e->body_hash, old->body_hash, sizeof(e->body_hash));
    memcpy(e->body_name, old->body_name, sizeof(e->body_name));
    memcpy(e->request, old->request, old->n_request * sizeof(old->request[0]));
    e->n_request = old->n_request;
    int n = nm_cachectl_freshen(old->headers, old->n_headers, resp->headers, resp->n_headers,
                                e->headers, NM_STORE_MAX_HEADERS);
    e->n_headers = n < 0 ? 0 : (size_t)n;
    return n < 0 ? n : 0;
}

enum nm_policy_failure nm_policy_on_failure(const struct nm_policy *p, int err, bool local_error,
                                            const struct nm_freshness *stored)
{
    if (err == -ECANCELED)
        return NM_POLICY_FAILURE_INTERRUPTED;
    if (local_error)
        return NM_POLICY_FAILURE_LOCAL;
    if (err == -EINVAL || err == -EPROTONOSUPPORT)
        return NM_POLICY_FAILURE_URL;
    if (p->stale_if_error && stored && stored->may_serve_stale)
        return NM_POLICY_FAILURE_STALE;
    return NM_POLICY_FAILURE_NETWORK;
}
