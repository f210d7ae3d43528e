/* The run of one fetch: stored entry, conditional request, 200, 304, 206 resume, redirects,
 * spooling and storing, each decision taken by the policy module. */
#include "fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notmod/etag.h"

static void tell(struct nm_fetch *f, struct nm_fetch_note n)
{
    f->hooks->note(f->hooks->ctx, &n);
}

static void load_entry(struct nm_fetch *f)
{
    snprintf(f->partial_key, sizeof(f->partial_key), "%s" NM_POLICY_PARTIAL_SUFFIX, f->url_now);
    if (!f->policy.no_store && !f->policy.reload &&
        nm_store_load(f->store, f->partial_key, f->partial) == 0)
        f->have_partial = true;
    int rc = nm_store_load(f->store, f->url_now, f->entry);
    if (rc == 0) {
        f->have_entry = true;
        memcpy(f->prev_hash, f->entry->body_hash, sizeof(f->prev_hash));
    } else if (rc == -EBADMSG) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_CORRUPT});
    } else if (rc != -ENOENT) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_UNREADABLE, .err = rc});
    }
}

/* Opens stored entry e's body once it has the recorded length and hash. Returns a descriptor at
 * offset 0, or a negative errno (-EBADMSG: damaged). */
static int open_body(const struct nm_fetch *f, const struct nm_store_entry *e)
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
static enum nm_fetch_result hand_over(struct nm_fetch *f, int fd, uint64_t len, const char *hash)
{
    int rc = f->hooks->deliver(f->hooks->ctx, fd, len, hash);
    close(fd);
    return rc < 0 ? NM_FETCH_FAILED_LOCAL : NM_FETCH_DELIVERED;
}

/* Delivers an entry this run has stored or freshened. */
static enum nm_fetch_result deliver_kept(struct nm_fetch *f, const struct nm_store_entry *e)
{
    int fd = open_body(f, e);
    if (fd < 0) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_DAMAGED, .err = fd});
        return NM_FETCH_FAILED_LOCAL;
    }
    return hand_over(f, fd, e->body_len, e->body_hash);
}

/* Ends the hop with a redirect to the Location in h, resolved against the hop's URL (resp: the
 * response it came in, NULL when stored). */
static enum nm_fetch_result follow(struct nm_fetch *f, const struct nm_http1_field *h, size_t n,
                                   const struct nm_client_response *resp,
                                   enum nm_policy_store store)
{
    struct nm_slice l[1];
    struct nm_field loc = nm_cachectl_field(h, n, "Location", l, 1);
    if (!nm_field_is_present(loc) ||
        nm_client_url_resolve(f->url_now, loc.lines[0], f->next_url, sizeof(f->next_url)) < 0) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_BAD_LOCATION, .resp = resp});
        return NM_FETCH_FAILED_HTTP;
    }
    f->redirected = true;
    tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_REDIRECT,
                                   .resp = resp,
                                   .entry = resp ? NULL : f->entry,
                                   .location = f->next_url,
                                   .store = store});
    return NM_FETCH_DELIVERED;
}

/* Answers from the stored entry when it is fresh: true and *out then. */
static bool answer_from_store(struct nm_fetch *f, enum nm_fetch_result *out)
{
    if (!f->have_entry)
        return false;
    enum nm_policy_stored use =
        nm_policy_use_stored(&f->policy, f->entry, f->vreq, f->n_vreq, time(NULL), &f->freshness);
    f->entry_usable = use == NM_POLICY_STORED_FRESH || use == NM_POLICY_STORED_REVALIDATE;
    if (use == NM_POLICY_STORED_VARIES)
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_VARIES});
    if (f->entry->status != 200) {
        /* A stored redirect is followed while fresh and never revalidated: a stale one is
         * fetched again. */
        f->entry_usable = false;
        if (use != NM_POLICY_STORED_FRESH || !f->policy.follow)
            return false;
        *out = follow(f, f->entry->headers, f->entry->n_headers, NULL, NM_POLICY_STORE);
        return true;
    }
    if (use != NM_POLICY_STORED_FRESH)
        return false;
    tell(f, (struct nm_fetch_note){
                .event = NM_FETCH_EVENT_FRESH, .entry = f->entry, .freshness = &f->freshness});
    int fd = open_body(f, f->entry);
    if (fd >= 0) {
        *out = hand_over(f, fd, f->entry->body_len, f->entry->body_hash);
        return true;
    }
    tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_CORRUPT});
    f->have_entry = f->entry_usable = false;
    f->prev_hash[0] = '\0';
    return false;
}

static void end_spool(struct nm_fetch *f)
{
    if (f->spool_open)
        nm_store_spool_discard(f->store, &f->spool);
    f->spool_open = false;
}

static int on_body(void *ctx, const void *data, size_t len)
{
    struct nm_fetch *f = ctx;
    return nm_store_spool_write(&f->spool, data, len);
}

static int on_progress(void *ctx, uint64_t received, uint64_t total)
{
    struct nm_fetch *f = ctx;
    return f->hooks->progress(f->hooks->ctx, received, total);
}

/* One GET with the -H lines and the conditions, its body spooled. Returns perform's result. */
static int fetch(struct nm_fetch *f, const struct nm_http1_field *cond, size_t n_cond,
                 const struct nm_http1_field *resume, size_t n_resume)
{
    struct nm_http1_field
        hdrs[NM_STORE_MAX_REQUEST + NM_POLICY_MAX_CONDITIONS + NM_POLICY_MAX_RESUME];
    size_t n = 0;
    for (size_t i = 0; i < f->n_req && n < NM_STORE_MAX_REQUEST; i++)
        hdrs[n++] = f->req[i];
    for (size_t i = 0; i < n_cond; i++)
        hdrs[n++] = cond[i];
    for (size_t i = 0; i < n_resume; i++)
        hdrs[n++] = resume[i];
    struct nm_client_request req = {
        .method = "GET",
        .url = f->url_now,
        .headers = hdrs,
        .n_headers = n,
        .accept_encoding = f->accept_sent,
        .on_body = on_body,
        .on_progress = on_progress,
        .ctx = f,
    };
    return f->hooks->perform(f->hooks->ctx, &req, f->resp);
}

static enum nm_fetch_result failed(struct nm_fetch *f, int err)
{
    const struct nm_freshness *fr = f->entry_usable ? &f->freshness : NULL;
    switch (nm_policy_on_failure(&f->policy, err, f->resp->local_error, fr)) {
    case NM_POLICY_FAILURE_INTERRUPTED:
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_INTERRUPTED});
        return NM_FETCH_INTERRUPTED;
    case NM_POLICY_FAILURE_LOCAL:
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_CACHE_WRITE, .err = err});
        return NM_FETCH_FAILED_LOCAL;
    case NM_POLICY_FAILURE_URL:
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_BAD_URL, .resp = f->resp});
        return NM_FETCH_FAILED_URL;
    case NM_POLICY_FAILURE_STALE: {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_STALE,
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
    tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_NETWORK, .resp = f->resp});
    return NM_FETCH_FAILED_NETWORK;
}

/* Commits the spooled 200 as the URL's entry and delivers it (n: what to report). Returns true
 * with *out when the run is settled, false when the 200 could not be stored (the spool is
 * still there to deliver). */
static bool store_200(struct nm_fetch *f, struct nm_fetch_note *n, enum nm_fetch_result *out)
{
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e) {
        *out = NM_FETCH_FAILED_LOCAL;
        return true;
    }
    nm_store_entry_init(e);
    nm_policy_entry_of_200(e, f->url_now, f->resp, f->vreq, f->n_vreq);
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
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_STORE_FAILED, .err = rc});
    }
    nm_store_entry_cleanup(e);
    free(e);
    return rc == 0;
}

/* Stores (or not) and delivers a complete 200. */
static enum nm_fetch_result take_200(struct nm_fetch *f, bool conditional)
{
    int rc = nm_store_spool_finish(&f->spool);
    if (rc < 0) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_CACHE_WRITE, .err = rc});
        return NM_FETCH_FAILED_LOCAL;
    }
    const struct nm_client_response *resp = f->resp;
    struct nm_fetch_note n = {
        .event = NM_FETCH_EVENT_STORED,
        .resp = resp,
        .store = nm_policy_store(&f->policy, resp->headers, resp->n_headers),
        .body_len = f->spool.len,
        .replaced = f->have_entry,
        .same = f->prev_hash[0] && strcmp(f->prev_hash, f->spool.hash) == 0,
        .conditional = conditional,
    };
    enum nm_fetch_result result;
    if (n.store == NM_POLICY_STORE && store_200(f, &n, &result))
        return result;
    if (n.store != NM_POLICY_STORE) {
        n.event = NM_FETCH_EVENT_NOT_STORED;
        tell(f, n);
        if (f->have_entry && n.store != NM_POLICY_STORE_UNWANTED)
            nm_store_remove(f->store, f->url_now);
    }
    int fd = nm_store_spool_open(f->store, &f->spool);
    if (fd < 0) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_BODY_LOST, .err = fd});
        return NM_FETCH_FAILED_LOCAL;
    }
    return hand_over(f, fd, f->spool.len, f->spool.hash);
}

/* Freshens the stored entry with a 304 (§4.3.4) and delivers the stored body. */
static enum nm_fetch_result take_304(struct nm_fetch *f)
{
    const struct nm_store_entry *old = f->entry;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return NM_FETCH_FAILED_LOCAL;
    nm_store_entry_init(e);
    int64_t now = time(NULL);
    if (nm_policy_freshen(e, old, f->resp) < 0) {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_MERGE_TOO_BIG});
    } else {
        int rc = 0;
        enum nm_policy_store store = nm_policy_store_freshened(&f->policy, e);
        if (store == NM_POLICY_STORE)
            rc = nm_store_save(f->store, e);
        else if (store != NM_POLICY_STORE_UNWANTED)
            rc = nm_store_remove(f->store, f->url_now);
        if (rc < 0 && rc != -ENOENT)
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_UPDATE_FAILED, .err = rc});
        struct nm_freshness fr;
        nm_policy_freshness(&f->policy, e, time(NULL), &fr);
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_FRESHENED,
                                       .entry = old,
                                       .freshness = &fr,
                                       .resident_s = now - old->response_time});
    }
    enum nm_fetch_result result = deliver_kept(f, old);
    nm_store_entry_cleanup(e);
    free(e);
    return result;
}

/* Stores (or not) a redirect, then ends the hop with it. */
static enum nm_fetch_result take_redirect(struct nm_fetch *f)
{
    const struct nm_client_response *resp = f->resp;
    enum nm_policy_store st = nm_policy_store_redirect(&f->policy, resp->status, resp->headers,
                                                       resp->n_headers, time(NULL));
    if (st == NM_POLICY_STORE) {
        struct nm_store_entry *e = malloc(sizeof(*e));
        if (!e)
            return NM_FETCH_FAILED_LOCAL;
        nm_store_entry_init(e);
        nm_policy_entry_of_200(e, f->url_now, resp, f->vreq, f->n_vreq);
        int rc = nm_store_spool_finish(&f->spool);
        if (rc == 0)
            rc = nm_store_commit(f->store, e, &f->spool);
        if (rc == 0)
            f->spool_open = false;
        else
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_STORE_FAILED, .err = rc});
        nm_store_entry_cleanup(e);
        free(e);
    } else if (f->have_entry && st != NM_POLICY_STORE_UNWANTED) {
        nm_store_remove(f->store, f->url_now);
    }
    return follow(f, resp->headers, resp->n_headers, resp, st);
}

static void drop_partial(struct nm_fetch *f)
{
    if (f->have_partial)
        nm_store_remove(f->store, f->partial_key);
    f->have_partial = false;
}

/* Keeps the bytes of a 200 the network cut short (err) as the URL's partial body. */
static void keep_partial(struct nm_fetch *f, int err)
{
    const struct nm_client_response *resp = f->resp;
    if ((err != -ECONNRESET && err != -ETIMEDOUT) || !f->spool_open ||
        !nm_policy_may_keep_partial(&f->policy, resp->status, resp->headers, resp->n_headers,
                                    f->spool.len))
        return;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return;
    nm_store_entry_init(e);
    nm_policy_entry_of_200(e, f->partial_key, resp, f->vreq, f->n_vreq);
    int rc = nm_store_spool_finish(&f->spool);
    if (rc == 0)
        rc = nm_store_commit(f->store, e, &f->spool);
    if (rc == 0) {
        f->spool_open = false;
        tell(f, (struct nm_fetch_note){
                    .event = NM_FETCH_EVENT_PARTIAL_KEPT, .resp = resp, .body_len = e->body_len});
    }
    nm_store_entry_cleanup(e);
    free(e);
}

/* Appends everything readable from fd to sp. */
static int append_fd(struct nm_store_spool *sp, int fd)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        int rc = n < 0 ? -errno : nm_store_spool_write(sp, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Writes the partial body followed by the spooled 206 body to a new spool *whole, finished.
 * Returns 0, or a negative errno with no spool left open. */
static int splice(struct nm_fetch *f, struct nm_store_spool *whole)
{
    int from = -1, rest = -1;
    int rc = nm_store_spool_finish(&f->spool);
    if (rc < 0)
        return rc;
    rc = nm_store_spool_begin(f->store, whole);
    if (rc < 0)
        return rc;
    from = open_body(f, f->partial);
    rc = from < 0 ? from : append_fd(whole, from);
    if (rc == 0) {
        rest = nm_store_spool_open(f->store, &f->spool);
        rc = rest < 0 ? rest : append_fd(whole, rest);
    }
    if (rc == 0)
        rc = nm_store_spool_finish(whole);
    if (from >= 0)
        close(from);
    if (rest >= 0)
        close(rest);
    if (rc < 0)
        nm_store_spool_discard(f->store, whole);
    return rc;
}

/* A 206 that continued the partial body and was cut short in turn (err): the partial body
 * grows by the bytes received, under the 200's header lines. */
static void keep_resumed(struct nm_fetch *f, int err)
{
    const struct nm_client_response *resp = f->resp;
    if ((err != -ECONNRESET && err != -ETIMEDOUT) || !f->spool_open || f->spool.len == 0 ||
        resp->status != 206 ||
        !nm_policy_accepts_206(f->partial, resp->headers, resp->n_headers, time(NULL)))
        return;
    struct nm_store_spool whole;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return;
    nm_store_entry_init(e);
    e->url = nm_slice_from_cstr(f->partial_key);
    e->status = f->partial->status;
    e->request_time = f->partial->request_time;
    e->response_time = f->partial->response_time;
    memcpy(e->headers, f->partial->headers, f->partial->n_headers * sizeof(e->headers[0]));
    e->n_headers = f->partial->n_headers;
    memcpy(e->request, f->partial->request, f->partial->n_request * sizeof(e->request[0]));
    e->n_request = f->partial->n_request;
    int rc = splice(f, &whole);
    if (rc == 0) {
        rc = nm_store_commit(f->store, e, &whole);
        if (rc < 0)
            nm_store_spool_discard(f->store, &whole);
    }
    if (rc == 0)
        tell(f, (struct nm_fetch_note){
                    .event = NM_FETCH_EVENT_PARTIAL_KEPT, .resp = resp, .body_len = e->body_len});
    nm_store_entry_cleanup(e);
    free(e);
}

/* Completes the partial body with the spooled 206 (accepted by nm_policy_accepts_206): the held
 * bytes and the new ones in a new spool, stored as the URL's entry with the 200's header lines
 * freshened by the 206's, then delivered. */
static enum nm_fetch_result take_206(struct nm_fetch *f)
{
    struct nm_store_spool whole;
    enum nm_fetch_result result = NM_FETCH_FAILED_LOCAL;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return result;
    nm_store_entry_init(e);
    int rc = splice(f, &whole);
    bool whole_open = rc == 0;
    if (rc == 0)
        rc = nm_policy_freshen(e, f->partial, f->resp);
    if (rc == 0) {
        e->url = nm_slice_from_cstr(f->url_now);
        rc = nm_store_commit(f->store, e, &whole);
    }
    if (rc == 0) {
        whole_open = false;
        drop_partial(f);
        struct nm_freshness fr;
        nm_policy_freshness(&f->policy, e, time(NULL), &fr);
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_RESUMED,
                                       .resp = f->resp,
                                       .entry = e,
                                       .freshness = &fr,
                                       .body_len = e->body_len,
                                       .resumed_from = f->partial->body_len});
        result = deliver_kept(f, e);
    } else {
        tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_CACHE_WRITE, .err = rc});
    }
    if (whole_open)
        nm_store_spool_discard(f->store, &whole);
    nm_store_entry_cleanup(e);
    free(e);
    return result;
}

/* Sends requests, with the stored entry's validators while it is usable and the partial body's
 * range while there is one, until an answer settles the hop. */
static enum nm_fetch_result exchange(struct nm_fetch *f)
{
    struct nm_http1_field cond[NM_POLICY_MAX_CONDITIONS], resume[NM_POLICY_MAX_RESUME];
    size_t n_cond = f->entry_usable ? nm_policy_conditions(f->entry, time(NULL), cond) : 0;
    size_t n_resume = 0;
    if (f->have_partial) {
        n_resume = nm_policy_resume_conditions(f->partial, time(NULL), f->range, resume);
        if (n_resume)
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_RESUMING,
                                           .resumed_from = f->partial->body_len});
        else
            drop_partial(f);
    }
    for (;;) {
        int rc = nm_store_spool_begin(f->store, &f->spool);
        if (rc < 0) {
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_SPOOL_FAILED, .err = rc});
            return NM_FETCH_FAILED_LOCAL;
        }
        f->spool_open = true;
        rc = fetch(f, cond, n_cond, resume, n_resume);
        if (rc < 0) {
            if (n_resume)
                keep_resumed(f, rc);
            else
                keep_partial(f, rc);
            return failed(f, rc);
        }
        const struct nm_client_response *resp = f->resp;
        if (n_resume) {
            if (resp->status == 206 &&
                nm_policy_accepts_206(f->partial, resp->headers, resp->n_headers, time(NULL)))
                return take_206(f);
            /* RFC 9110 §13.1.5: a 200 is the whole current representation; a 206 or 416
             * that does not continue the partial body leads to a fetch from byte 0. */
            if (resp->status == 200 || resp->status == 206 || resp->status == 416)
                tell(f,
                     (struct nm_fetch_note){.event = NM_FETCH_EVENT_RESUME_REFUSED, .resp = resp});
            drop_partial(f);
            n_resume = 0;
            if (resp->status == 206 || resp->status == 416) {
                end_spool(f);
                continue;
            }
        }
        if (f->policy.follow && nm_policy_is_redirect(resp->status))
            return take_redirect(f);
        switch (nm_policy_on_response(n_cond ? f->entry : NULL, resp->status, resp->headers,
                                      resp->n_headers, time(NULL))) {
        case NM_POLICY_NEXT_TAKE:
            return take_200(f, n_cond > 0);
        case NM_POLICY_NEXT_FRESHEN:
            return take_304(f);
        case NM_POLICY_NEXT_HTTP_ERROR:
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_HTTP, .resp = resp});
            return NM_FETCH_FAILED_HTTP;
        case NM_POLICY_NEXT_STRAY_304:
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_STRAY_304, .resp = resp});
            return NM_FETCH_FAILED_HTTP;
        case NM_POLICY_NEXT_REFETCH:
            break;
        }
        tell(f, (struct nm_fetch_note){
                    .event = NM_FETCH_EVENT_MISMATCH, .entry = f->entry, .resp = resp});
        end_spool(f);
        n_cond = 0;
        f->entry_usable = false;
    }
}

/* The request lines a Vary may name: -H's, and the Accept-Encoding libcurl sends unless -H
 * gives one. */
static void vary_request(struct nm_fetch *f)
{
    bool own = false;
    f->n_vreq = 0;
    for (size_t i = 0; i < f->n_req && f->n_vreq < NM_STORE_MAX_REQUEST; i++) {
        own |= nm_slice_case_eq(f->req[i].name, NM_SLICE_LIT("Accept-Encoding"));
        f->vreq[f->n_vreq++] = f->req[i];
    }
    f->accept_sent = own ? NULL : f->accept_encoding;
    if (f->accept_sent && f->n_vreq < NM_STORE_MAX_REQUEST)
        f->vreq[f->n_vreq++] = (struct nm_http1_field){NM_SLICE_LIT("Accept-Encoding"),
                                                       nm_slice_from_cstr(f->accept_sent)};
}

enum nm_fetch_result nm_fetch_run(struct nm_fetch *f)
{
    enum nm_fetch_result result = NM_FETCH_FAILED_LOCAL;
    f->prev_hash[0] = '\0';
    snprintf(f->final_url, sizeof(f->final_url), "%s", f->url);
    f->url_now = f->url;
    vary_request(f);
    f->entry = malloc(sizeof(*f->entry));
    f->partial = malloc(sizeof(*f->partial));
    f->resp = malloc(sizeof(*f->resp));
    if (!f->entry || !f->partial || !f->resp)
        goto out_free;
    nm_store_entry_init(f->entry);
    nm_store_entry_init(f->partial);
    nm_client_response_init(f->resp);
    for (int hop = 0;; hop++) {
        f->prev_hash[0] = '\0';
        f->have_entry = f->entry_usable = f->spool_open = false;
        f->have_partial = f->redirected = false;
        load_entry(f);
        if (!answer_from_store(f, &result))
            result = exchange(f);
        end_spool(f);
        nm_store_entry_cleanup(f->entry);
        nm_store_entry_cleanup(f->partial);
        if (!f->redirected)
            break;
        if (hop == NM_POLICY_MAX_REDIRECTS) {
            tell(f, (struct nm_fetch_note){.event = NM_FETCH_EVENT_TOO_MANY_REDIRECTS});
            result = NM_FETCH_FAILED_HTTP;
            break;
        }
        memcpy(f->final_url, f->next_url, sizeof(f->final_url));
        f->url_now = f->final_url;
    }
    nm_client_response_cleanup(f->resp);
    nm_buf_cleanup(&f->entry->text);
    nm_buf_cleanup(&f->partial->text);
out_free:
    free(f->resp);
    free(f->partial);
    free(f->entry);
    f->resp = NULL;
    f->entry = NULL;
    f->partial = NULL;
    return result;
}
