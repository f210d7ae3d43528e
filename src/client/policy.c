/* The fetch policy of notmod get: freshness and reuse (RFC 9111 §4.2, §4.1), revalidation
 * (§4.3.1), 304 handling (§4.3.3, §4.3.4), storing (§3) and stale-if-error. */
#include "policy.h"

#include <errno.h>
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

static void tell(struct nm_policy_fetch *f, struct nm_policy_note n)
{
    f->hooks->note(f->hooks->ctx, &n);
}

static void load_entry(struct nm_policy_fetch *f)
{
    int rc = nm_store_load(f->store, f->url, f->entry);
    if (rc == 0) {
        f->have_entry = true;
        memcpy(f->prev_hash, f->entry->body_hash, sizeof(f->prev_hash));
    } else if (rc == -EBADMSG) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_CORRUPT});
    } else if (rc != -ENOENT) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_UNREADABLE, .err = rc});
    }
}

/* Opens stored entry e's body once it has the recorded length and hash. Returns a descriptor at
 * offset 0, or a negative errno (-EBADMSG: damaged). */
static int open_body(const struct nm_policy_fetch *f, const struct nm_store_entry *e)
{
    int fd = nm_store_body_open(f->store, e);
    char hash[NM_STORE_HASH_LEN + 1];
    uint64_t len;
    int rc = fd < 0 ? fd : nm_store_hash_fd(fd, hash, &len);
    if (rc == 0 && (len != e->body_len || strcmp(hash, e->body_hash) != 0))
        rc = -EBADMSG;
    if (rc == 0 && lseek(fd, 0, SEEK_SET) != 0)
        rc = -errno;
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    return fd;
}

/* Gives the body in fd to the caller's output and closes fd. */
static enum nm_policy_result hand_over(struct nm_policy_fetch *f, int fd, uint64_t len,
                                       const char *hash)
{
    int rc = f->hooks->deliver(f->hooks->ctx, fd, len, hash);
    close(fd);
    return rc < 0 ? NM_POLICY_FAILED_LOCAL : NM_POLICY_DELIVERED;
}

/* Delivers an entry this run has stored or freshened. */
static enum nm_policy_result deliver_kept(struct nm_policy_fetch *f, const struct nm_store_entry *e)
{
    int fd = open_body(f, e);
    if (fd < 0) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_DAMAGED, .err = fd});
        return NM_POLICY_FAILED_LOCAL;
    }
    return hand_over(f, fd, e->body_len, e->body_hash);
}

/* Answers from the stored entry when it is fresh: true and *out then. */
static bool answer_from_store(struct nm_policy_fetch *f, enum nm_policy_result *out)
{
    if (!f->have_entry)
        return false;
    enum nm_policy_stored use =
        nm_policy_use_stored(&f->policy, f->entry, f->req, f->n_req, time(NULL), &f->freshness);
    f->entry_usable = use == NM_POLICY_STORED_FRESH || use == NM_POLICY_STORED_REVALIDATE;
    if (use == NM_POLICY_STORED_VARIES)
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_VARIES});
    if (use != NM_POLICY_STORED_FRESH)
        return false;
    tell(f, (struct nm_policy_note){
                .event = NM_POLICY_EVENT_FRESH, .entry = f->entry, .freshness = &f->freshness});
    int fd = open_body(f, f->entry);
    if (fd >= 0) {
        *out = hand_over(f, fd, f->entry->body_len, f->entry->body_hash);
        return true;
    }
    tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_CORRUPT});
    f->have_entry = f->entry_usable = false;
    f->prev_hash[0] = '\0';
    return false;
}

static void end_spool(struct nm_policy_fetch *f)
{
    if (f->spool_open)
        nm_store_spool_discard(f->store, &f->spool);
    f->spool_open = false;
}

static int on_body(void *ctx, const void *data, size_t len)
{
    struct nm_policy_fetch *f = ctx;
    return nm_store_spool_write(&f->spool, data, len);
}

static int on_progress(void *ctx, uint64_t received, uint64_t total)
{
    struct nm_policy_fetch *f = ctx;
    return f->hooks->progress(f->hooks->ctx, received, total);
}

/* One GET with the -H lines and the conditions, its body spooled. Returns perform's result. */
static int fetch(struct nm_policy_fetch *f, const struct nm_http1_field *cond, size_t n_cond)
{
    struct nm_http1_field hdrs[NM_STORE_MAX_REQUEST + NM_POLICY_MAX_CONDITIONS];
    size_t n = 0;
    for (size_t i = 0; i < f->n_req && n < NM_STORE_MAX_REQUEST; i++)
        hdrs[n++] = f->req[i];
    for (size_t i = 0; i < n_cond; i++)
        hdrs[n++] = cond[i];
    struct nm_client_request req = {
        .method = "GET",
        .url = f->url,
        .headers = hdrs,
        .n_headers = n,
        .on_body = on_body,
        .on_progress = on_progress,
        .ctx = f,
    };
    return f->hooks->perform(f->hooks->ctx, &req, f->resp);
}

static enum nm_policy_result failed(struct nm_policy_fetch *f, int err)
{
    const struct nm_freshness *fr = f->entry_usable ? &f->freshness : NULL;
    switch (nm_policy_on_failure(&f->policy, err, f->resp->local_error, fr)) {
    case NM_POLICY_FAILURE_INTERRUPTED:
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_INTERRUPTED});
        return NM_POLICY_INTERRUPTED;
    case NM_POLICY_FAILURE_LOCAL:
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_CACHE_WRITE, .err = err});
        return NM_POLICY_FAILED_LOCAL;
    case NM_POLICY_FAILURE_URL:
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_BAD_URL, .resp = f->resp});
        return NM_POLICY_FAILED_URL;
    case NM_POLICY_FAILURE_STALE: {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_STALE,
                                        .entry = f->entry,
                                        .freshness = fr,
                                        .resp = f->resp});
        int fd = open_body(f, f->entry);
        if (fd >= 0)
            return hand_over(f, fd, f->entry->body_len, f->entry->body_hash);
        break;
    }
    case NM_POLICY_FAILURE_NETWORK:
        break;
    }
    tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_NETWORK, .resp = f->resp});
    return NM_POLICY_FAILED_NETWORK;
}

/* Commits the spooled 200 as the URL's entry and delivers it (n: what to report). Returns true
 * with *out when the run is settled, false when the 200 could not be stored (the spool is
 * still there to deliver). */
static bool store_200(struct nm_policy_fetch *f, struct nm_policy_note *n,
                      enum nm_policy_result *out)
{
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e) {
        *out = NM_POLICY_FAILED_LOCAL;
        return true;
    }
    nm_store_entry_init(e);
    nm_policy_entry_of_200(e, f->url, f->resp, f->req, f->n_req);
    int rc = nm_store_commit(f->store, e, &f->spool);
    if (rc == 0) {
        f->spool_open = false;
        struct nm_freshness fr;
        nm_policy_freshness(&f->policy, e, time(NULL), &fr);
        n->entry = e;
        n->freshness = &fr;
        tell(f, *n);
        *out = deliver_kept(f, e);
    } else {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_STORE_FAILED, .err = rc});
    }
    nm_store_entry_cleanup(e);
    free(e);
    return rc == 0;
}

/* Stores (or not) and delivers a complete 200. */
static enum nm_policy_result take_200(struct nm_policy_fetch *f, bool conditional)
{
    int rc = nm_store_spool_finish(&f->spool);
    if (rc < 0) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_CACHE_WRITE, .err = rc});
        return NM_POLICY_FAILED_LOCAL;
    }
    const struct nm_client_response *resp = f->resp;
    struct nm_policy_note n = {
        .event = NM_POLICY_EVENT_STORED,
        .resp = resp,
        .store = nm_policy_store(&f->policy, resp->headers, resp->n_headers),
        .body_len = f->spool.len,
        .replaced = f->have_entry,
        .same = f->prev_hash[0] && strcmp(f->prev_hash, f->spool.hash) == 0,
        .conditional = conditional,
    };
    enum nm_policy_result result;
    if (n.store == NM_POLICY_STORE && store_200(f, &n, &result))
        return result;
    if (n.store != NM_POLICY_STORE) {
        n.event = NM_POLICY_EVENT_NOT_STORED;
        tell(f, n);
        if (f->have_entry && n.store != NM_POLICY_STORE_UNWANTED)
            nm_store_remove(f->store, f->url);
    }
    int fd = nm_store_spool_open(f->store, &f->spool);
    if (fd < 0) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_BODY_LOST, .err = fd});
        return NM_POLICY_FAILED_LOCAL;
    }
    return hand_over(f, fd, f->spool.len, f->spool.hash);
}

/* Freshens the stored entry with a 304 (§4.3.4) and delivers the stored body. */
static enum nm_policy_result take_304(struct nm_policy_fetch *f)
{
    const struct nm_store_entry *old = f->entry;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return NM_POLICY_FAILED_LOCAL;
    nm_store_entry_init(e);
    int64_t now = time(NULL);
    if (nm_policy_freshen(e, old, f->resp) < 0) {
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_MERGE_TOO_BIG});
    } else {
        int rc = 0;
        enum nm_policy_store store = nm_policy_store_freshened(&f->policy, e);
        if (store == NM_POLICY_STORE)
            rc = nm_store_save(f->store, e);
        else if (store != NM_POLICY_STORE_UNWANTED)
            rc = nm_store_remove(f->store, f->url);
        if (rc < 0 && rc != -ENOENT)
            tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_UPDATE_FAILED, .err = rc});
        struct nm_freshness fr;
        nm_policy_freshness(&f->policy, e, time(NULL), &fr);
        tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_FRESHENED,
                                        .entry = old,
                                        .freshness = &fr,
                                        .resident_s = now - old->response_time});
    }
    enum nm_policy_result result = deliver_kept(f, old);
    nm_store_entry_cleanup(e);
    free(e);
    return result;
}

/* Sends requests, with the stored entry's validators while it is usable, until an answer
 * settles the run. */
static enum nm_policy_result exchange(struct nm_policy_fetch *f)
{
    struct nm_http1_field cond[NM_POLICY_MAX_CONDITIONS];
    size_t n_cond = f->entry_usable ? nm_policy_conditions(f->entry, time(NULL), cond) : 0;
    for (;;) {
        int rc = nm_store_spool_begin(f->store, &f->spool);
        if (rc < 0) {
            tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_SPOOL_FAILED, .err = rc});
            return NM_POLICY_FAILED_LOCAL;
        }
        f->spool_open = true;
        rc = fetch(f, cond, n_cond);
        if (rc < 0)
            return failed(f, rc);
        const struct nm_client_response *resp = f->resp;
        switch (nm_policy_on_response(n_cond ? f->entry : NULL, resp->status, resp->headers,
                                      resp->n_headers, time(NULL))) {
        case NM_POLICY_NEXT_TAKE:
            return take_200(f, n_cond > 0);
        case NM_POLICY_NEXT_FRESHEN:
            return take_304(f);
        case NM_POLICY_NEXT_HTTP_ERROR:
            tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_HTTP, .resp = resp});
            return NM_POLICY_FAILED_HTTP;
        case NM_POLICY_NEXT_STRAY_304:
            tell(f, (struct nm_policy_note){.event = NM_POLICY_EVENT_STRAY_304, .resp = resp});
            return NM_POLICY_FAILED_HTTP;
        case NM_POLICY_NEXT_REFETCH:
            break;
        }
        tell(f, (struct nm_policy_note){
                    .event = NM_POLICY_EVENT_MISMATCH, .entry = f->entry, .resp = resp});
        end_spool(f);
        n_cond = 0;
        f->entry_usable = false;
    }
}

enum nm_policy_result nm_policy_fetch_run(struct nm_policy_fetch *f)
{
    enum nm_policy_result result = NM_POLICY_FAILED_LOCAL;
    f->prev_hash[0] = '\0';
    f->have_entry = f->entry_usable = f->spool_open = false;
    f->entry = malloc(sizeof(*f->entry));
    f->resp = malloc(sizeof(*f->resp));
    if (!f->entry || !f->resp)
        goto out_free;
    nm_store_entry_init(f->entry);
    nm_client_response_init(f->resp);
    load_entry(f);
    if (!answer_from_store(f, &result))
        result = exchange(f);
    end_spool(f);
    nm_client_response_cleanup(f->resp);
    nm_store_entry_cleanup(f->entry);
    nm_buf_cleanup(&f->entry->text);
out_free:
    free(f->resp);
    free(f->entry);
    f->resp = NULL;
    f->entry = NULL;
    return result;
}
