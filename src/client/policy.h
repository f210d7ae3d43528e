/* The fetch policy of notmod get, a private cache (RFC 9111): when a stored response answers
 * without a request (§4.2), which validators revalidate it (§4.3.1), what a 200 (§3), a 304
 * (§4.3.3, §4.3.4), a redirect (RFC 9110 §15.4), a 206 resuming a partial body (RFC 9110 §14,
 * §13.1.5) or a failed exchange (stale-if-error) leads to, and what is stored. The
 * decisions take `now` and do no I/O; nm_fetch_run carries them out with the store and
 * the caller's exchange, output and reporting. */
#ifndef NOTMOD_POLICY_H
#define NOTMOD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notmod/cachectl.h"
#include "notmod/http1.h"
#include "store.h"
#include "transport.h"

#define NM_POLICY_HEURISTIC_MAX_S 86400     /* cap on a heuristic freshness lifetime (§4.2.2) */
#define NM_POLICY_HEURISTIC_PERCENT 10      /* of the time between Date and Last-Modified */
#define NM_POLICY_MAX_CONDITIONS 2          /* If-None-Match and If-Modified-Since */
#define NM_POLICY_MAX_RESUME 2              /* Range and If-Range */
#define NM_POLICY_RANGE_MAX 32              /* "bytes=N-" with a NUL */
#define NM_POLICY_MAX_REDIRECTS 10          /* hops -L follows */
#define NM_POLICY_PARTIAL_SUFFIX "#partial" /* the store key of a URL's partial body */

/* What the user asked of the cache. */
struct nm_policy {
    bool heuristic;      /* §4.2.2 heuristic freshness is allowed */
    bool revalidate;     /* ask the server even when the stored response is fresh */
    bool reload;         /* ignore the stored response: fetch without conditions */
    bool no_store;       /* leave the cache as it is, whatever the response */
    bool stale_if_error; /* a network error may be answered with a stale stored response */
    bool follow;         /* -L: follow redirects, at most NM_POLICY_MAX_REDIRECTS hops */
};

/* The freshness of stored entry e at `now` (§4.2), with p's heuristic setting and the
 * NM_POLICY_HEURISTIC_* limits. Writes *fr. */
void nm_policy_freshness(const struct nm_policy *p, const struct nm_store_entry *e, int64_t now,
                         struct nm_freshness *fr);

/* What a stored response is good for. */
enum nm_policy_stored {
    NM_POLICY_STORED_IGNORED,    /* --reload: fetch without conditions */
    NM_POLICY_STORED_VARIES,     /* Vary names request fields that differ now (§4.1): fetch
                                    without conditions */
    NM_POLICY_STORED_FRESH,      /* fresh and usable: answer with it, send no request */
    NM_POLICY_STORED_REVALIDATE, /* usable but stale, no-cache or --revalidate: send its
                                    validators (nm_policy_conditions) */
};

/* Decides what stored entry e is good for, for a request with the extra header lines req.
 * Writes e's freshness at `now` to *fr, except for NM_POLICY_STORED_IGNORED. */
enum nm_policy_stored nm_policy_use_stored(const struct nm_policy *p,
                                           const struct nm_store_entry *e,
                                           const struct nm_http1_field *req, size_t n_req,
                                           int64_t now, struct nm_freshness *fr);

/* The conditions that revalidate e (§4.3.1): If-None-Match with its ETag when it has exactly one
 * valid entity-tag, and If-Modified-Since with its Last-Modified when that is one valid date,
 * each sent exactly as received. Writes them to out (borrowing from e) and returns how many. */
size_t nm_policy_conditions(const struct nm_store_entry *e, int64_t now,
                            struct nm_http1_field out[NM_POLICY_MAX_CONDITIONS]);

/* Whether a 200 cut short after `received` body bytes may be kept as a partial body to resume
 * later: a storable 200 (nm_policy_store) with no Content-Encoding (a range counts coded bytes)
 * and a strong validator (nm_policy_resume_conditions finds one), and received > 0. */
bool nm_policy_may_keep_partial(const struct nm_policy *p, int status,
                                const struct nm_http1_field *h, size_t n, uint64_t received);

/* The conditions that resume partial body `partial` (its header lines are the 200's, body_len
 * the bytes held): Range "bytes=<body_len>-" (written to range) and If-Range with its strong
 * ETag, else with its Last-Modified when that is strong (RFC 9110 §8.8.2.2: at least 60 s
 * before its Date), else none. Writes them to out (borrowing from partial and range) and
 * returns 2, or 0 when there is no strong validator: the download starts from byte 0. */
size_t nm_policy_resume_conditions(const struct nm_store_entry *partial, int64_t now,
                                   char range[NM_POLICY_RANGE_MAX],
                                   struct nm_http1_field out[NM_POLICY_MAX_RESUME]);

/* Reads a Content-Range value of a 206 (RFC 9110 §14.4): "bytes" SP first "-" last "/"
 * complete-length, decimal numbers that fit in 64 bits, nothing around them. True, with the three
 * numbers, only when first <= last < complete; an unsatisfied-range ("bytes * / N") is false. */
bool nm_policy_content_range(struct nm_slice s, uint64_t *first, uint64_t *last,
                             uint64_t *complete);

/* Whether a 206 with header lines h continues partial body `partial`: Content-Range
 * "bytes N-L/C" with N = partial->body_len and L = C - 1, no Content-Encoding, and the validator
 * If-Range carried equal to the 206's (ETag by strong comparison, else Last-Modified by equal
 * dates). Anything else means the partial body is discarded and the download starts from 0:
 * bytes of two versions are never spliced. */
bool nm_policy_accepts_206(const struct nm_store_entry *partial, const struct nm_http1_field *h,
                           size_t n, int64_t now);

/* Whether a status is a redirect -L follows (301, 302, 303, 307, 308; RFC 9110 §15.4). */
bool nm_policy_is_redirect(int status);

/* What a complete response leads to. */
enum nm_policy_next {
    NM_POLICY_NEXT_TAKE,       /* a 200: stored or not (nm_policy_store), it is the answer */
    NM_POLICY_NEXT_FRESHEN,    /* a 304 for the stored response: freshen it
                                  (nm_policy_freshen), the stored body is the answer */
    NM_POLICY_NEXT_REFETCH,    /* a 304 naming another representation must not freshen the
                                  stored one (§4.3.4): fetch again without conditions */
    NM_POLICY_NEXT_STRAY_304,  /* a 304 to a request without conditions: unusable */
    NM_POLICY_NEXT_HTTP_ERROR, /* any other status */
};

/* Decides what a response with `status` and header lines h leads to. `asked` is the stored entry
 * whose validators the request carried, NULL when it carried none. */
enum nm_policy_next nm_policy_on_response(const struct nm_store_entry *asked, int status,
                                          const struct nm_http1_field *h, size_t n, int64_t now);

/* Whether a response is stored. Every value but STORE and UNWANTED means any stored response
 * for the URL is removed: it no longer describes what the server sends. */
enum nm_policy_store {
    NM_POLICY_STORE,              /* store it, replacing the stored response */
    NM_POLICY_STORE_UNWANTED,     /* --no-store: the cache is left as it is */
    NM_POLICY_STORE_NO_STORE,     /* Cache-Control: no-store (§5.2.2.5) */
    NM_POLICY_STORE_VARY_ANY,     /* Vary: * can never match a later request (§4.1) */
    NM_POLICY_STORE_NO_FRESHNESS, /* a redirect without the freshness that makes it reusable */
};

/* Whether a 200 with header lines h is stored. */
enum nm_policy_store nm_policy_store(const struct nm_policy *p, const struct nm_http1_field *h,
                                     size_t n);

/* Whether a redirect with `status` and header lines h is stored (each hop by its own rules):
 * as nm_policy_store, and then a 301 or 308 (heuristically cacheable, RFC 9110 §15.1) when it
 * has a freshness lifetime at `now` (explicit or heuristic), any other only with an explicit
 * one (max-age or Expires, RFC 9111 §3); else NO_FRESHNESS. */
enum nm_policy_store nm_policy_store_redirect(const struct nm_policy *p, int status,
                                              const struct nm_http1_field *h, size_t n,
                                              int64_t now);

/* Whether entry e, freshened by a 304, is saved: STORE, UNWANTED or NO_STORE (a 304 cannot make
 * a stored response unusable through Vary). */
enum nm_policy_store nm_policy_store_freshened(const struct nm_policy *p,
                                               const struct nm_store_entry *e);

/* Fills e (empty, from nm_store_entry_init) with the entry for a 200 to url: its status and clock
 * readings, its header lines less those a cache must not store (§3.1), and the values req gives
 * the fields its Vary names (§4.1). Lines past the entry's caps are left out. The body fields
 * are nm_store_commit's to set. e borrows from url, resp and req. */
void nm_policy_entry_of_200(struct nm_store_entry *e, const char *url,
                            const struct nm_client_response *resp, const struct nm_http1_field *req,
                            size_t n_req);

/* Fills e (empty) with stored entry old freshened by a 304 (§4.3.4): old's URL, status, body and
 * request fields, the 304's clock readings, and old's header lines updated with the 304's (see
 * nm_cachectl_freshen). Returns 0, or -ENOSPC when the merged lines exceed the entry's cap (e
 * then has no header lines and must not be saved). e borrows from old and resp. */
int nm_policy_freshen(struct nm_store_entry *e, const struct nm_store_entry *old,
                      const struct nm_client_response *resp);

/* What a failed exchange leads to. */
enum nm_policy_failure {
    NM_POLICY_FAILURE_INTERRUPTED, /* the user stopped it: cache and output stay as they were */
    NM_POLICY_FAILURE_LOCAL,       /* the body could not be written to the cache directory */
    NM_POLICY_FAILURE_URL,         /* the URL cannot be fetched at all (-EINVAL,
                                      -EPROTONOSUPPORT) */
    NM_POLICY_FAILURE_STALE,       /* a network error, answered with the stale stored response
                                      (--stale-if-error, and nothing forbids it) */
    NM_POLICY_FAILURE_NETWORK,     /* a network error */
};

/* Decides what nm_client_perform's error err leads to: -ECANCELED means the user stopped the
 * exchange (through its progress callback). `local_error`: the response says the body callback
 * failed; `stored`: the freshness of the stored response the request may fall back on, NULL
 * when there is none usable. */
enum nm_policy_failure nm_policy_on_failure(const struct nm_policy *p, int err, bool local_error,
                                            const struct nm_freshness *stored);

#endif
