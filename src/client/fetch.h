/* One `notmod get` of one URL through the cache: carries out the policy's decisions with the
 * store and the transport, and reports what happened as events for the caller to print. */
#ifndef NOTMOD_FETCH_H
#define NOTMOD_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "store.h"
#include "transport.h"

/* What a fetch reports, in the order it happens; the caller says it to people. */
enum nm_fetch_event {
    NM_FETCH_EVENT_CORRUPT,       /* the stored entry is damaged: fetched again */
    NM_FETCH_EVENT_UNREADABLE,    /* err: the stored entry cannot be read: fetched again */
    NM_FETCH_EVENT_VARIES,        /* the stored entry varies on request fields that differ now */
    NM_FETCH_EVENT_FRESH,         /* entry, freshness: answered from the store, no request */
    NM_FETCH_EVENT_MISMATCH,      /* entry, resp: a 304 for another representation */
    NM_FETCH_EVENT_STORED,        /* a 200 (see the note) stored as entry, with its freshness */
    NM_FETCH_EVENT_NOT_STORED,    /* a 200 not stored, and why (store) */
    NM_FETCH_EVENT_STORE_FAILED,  /* err: the 200 could not be stored; it is delivered anyway */
    NM_FETCH_EVENT_FRESHENED,     /* entry (as stored before), freshness (after), resident_s */
    NM_FETCH_EVENT_MERGE_TOO_BIG, /* the 304 has too many lines to merge: entry not updated */
    NM_FETCH_EVENT_UPDATE_FAILED, /* err: the freshened entry could not be saved or removed */
    NM_FETCH_EVENT_STALE,         /* entry, freshness, resp: the exchange failed, the stale entry
                                      answers instead (--stale-if-error) */
    /* Each of these ends the run. */
    NM_FETCH_EVENT_SPOOL_FAILED, /* err: no temporary file in the cache directory */
    NM_FETCH_EVENT_CACHE_WRITE,  /* err: the body could not be written to the cache directory */
    NM_FETCH_EVENT_BODY_LOST,    /* err: the downloaded body cannot be read back */
    NM_FETCH_EVENT_DAMAGED,      /* err: an entry this run stored was damaged while in use */
    NM_FETCH_EVENT_INTERRUPTED,  /* the user stopped the exchange */
    NM_FETCH_EVENT_BAD_URL,      /* resp: the URL cannot be fetched (resp->error says why) */
    NM_FETCH_EVENT_NETWORK,      /* resp: the exchange failed */
    NM_FETCH_EVENT_HTTP,         /* resp: an error status */
    NM_FETCH_EVENT_STRAY_304,    /* a 304 to a request without conditions */
    NM_FETCH_EVENT_TOO_MANY_REDIRECTS, /* more than NM_POLICY_MAX_REDIRECTS hops */
    NM_FETCH_EVENT_BAD_LOCATION,       /* resp: a redirect without a usable Location */
    /* These do not end the run. */
    NM_FETCH_EVENT_REDIRECT,       /* resp (NULL when from the store), location: the next hop;
                                       store says whether the redirect was stored */
    NM_FETCH_EVENT_PARTIAL_KEPT,   /* body_len: bytes of a cut-short 200 kept to resume */
    NM_FETCH_EVENT_RESUMING,       /* resumed_from: a partial body is resumed with Range */
    NM_FETCH_EVENT_RESUME_REFUSED, /* resp: the answer does not continue the partial body:
                                       discarded, the download starts from byte 0 */
    NM_FETCH_EVENT_RESUMED,        /* resp, entry, freshness, body_len, resumed_from: a 206
                                       completed the partial body, stored as entry */
};

/* One event and what it is about; the pointers live for the call only. */
struct nm_fetch_note {
    enum nm_fetch_event event;
    int err;                               /* negative errno, where the event names one */
    const struct nm_client_response *resp; /* the response it is about */
    const struct nm_store_entry *entry;    /* the entry it is about */
    const struct nm_freshness *freshness;  /* entry's freshness */
    enum nm_policy_store store;            /* NOT_STORED: why */
    /* STORED and NOT_STORED: the 200's body, and how it compares with the stored entry */
    uint64_t body_len;
    bool replaced;         /* a stored entry was there before */
    bool same;             /* the body is the stored entry's */
    bool conditional;      /* the 200 answered a conditional request */
    int64_t resident_s;    /* FRESHENED: seconds since the stored entry was received */
    const char *location;  /* REDIRECT: the URL of the next hop */
    uint64_t resumed_from; /* RESUMING, RESUMED: bytes held before the exchange */
};

/* What nm_fetch_run needs from its caller. */
struct nm_fetch_hooks {
    /* Performs one exchange: adds the caller's settings (timeouts) to req and calls
     * nm_client_perform. Returns its result. */
    int (*perform)(void *ctx, struct nm_client_request *req, struct nm_client_response *resp);
    /* As nm_client_request's on_progress: a negative errno stops the exchange, and -ECANCELED
     * means the user asked to stop. */
    int (*progress)(void *ctx, uint64_t received, uint64_t total);
    void (*note)(void *ctx, const struct nm_fetch_note *n);
    /* Writes a complete body (len bytes read from fd, whose hex hash is `hash`) to the output.
     * Returns 0, or a negative errno once it has reported the failure. */
    int (*deliver)(void *ctx, int fd, uint64_t len, const char *hash);
    void *ctx;
};

/* One notmod get of one URL through the cache. */
struct nm_fetch {
    /* Set by the caller. */
    struct nm_policy policy;
    const char *url;                  /* normalized by nm_client_url_normalize */
    const struct nm_http1_field *req; /* extra request header lines (-H), sent with every
                                         request: at most NM_STORE_MAX_REQUEST */
    size_t n_req;
    struct nm_store *store;
    const struct nm_fetch_hooks *hooks;
    /* Sent through nm_client_request's accept_encoding (NULL: none) and kept with the request
     * lines a Vary names, unless req has its own Accept-Encoding (then sent as is). */
    const char *accept_encoding;
    /* Set by nm_fetch_run: the URL of the last hop. */
    char final_url[NM_CLIENT_URL_MAX];
    /* Set by nm_fetch_run: the stored body's hash before the run, "" when none. */
    char prev_hash[NM_STORE_HASH_LEN + 1];
    /* The run's own. */
    struct nm_http1_field vreq[NM_STORE_MAX_REQUEST]; /* req and the Accept-Encoding sent */
    size_t n_vreq;
    const char *accept_sent;
    const char *url_now; /* the hop's URL */
    char next_url[NM_CLIENT_URL_MAX];
    bool redirected; /* the hop ended in a redirect to next_url */
    char partial_key[NM_CLIENT_URL_MAX + sizeof(NM_POLICY_PARTIAL_SUFFIX)];
    struct nm_store_entry *partial; /* the partial body, when have_partial */
    bool have_partial;
    char range[NM_POLICY_RANGE_MAX];
    struct nm_store_entry *entry; /* the stored response, when have_entry */
    bool have_entry;
    bool entry_usable; /* it may answer this request */
    struct nm_freshness freshness;
    struct nm_client_response *resp;
    struct nm_store_spool spool;
    bool spool_open;
};

enum nm_fetch_result {
    NM_FETCH_DELIVERED,      /* a body went to deliver, which returned 0 */
    NM_FETCH_FAILED_LOCAL,   /* memory, the cache directory or the output failed */
    NM_FETCH_FAILED_URL,     /* the URL cannot be fetched */
    NM_FETCH_FAILED_NETWORK, /* no usable exchange */
    NM_FETCH_FAILED_HTTP,    /* an error status or an unusable response */
    NM_FETCH_INTERRUPTED,    /* the user stopped it */
};

/* Runs f: loads the stored entry for f->url, answers from it when fresh, else sends the request
 * (with its validators when it is usable, and Range/If-Range when a partial body of the URL is
 * kept) through hooks->perform and carries out what the answer leads to: store, freshen,
 * refetch without conditions, resume, follow a redirect (policy.follow; each hop by the same
 * rules), or fail. A 200 cut short by the network may leave a partial body in the store
 * (nm_policy_may_keep_partial) under the URL followed by NM_POLICY_PARTIAL_SUFFIX. The body, when
 * there is one, goes to hooks->deliver once complete and verified; a failed transfer leaves the
 * store as it was. Every event goes to hooks->note. Returns how the run ended; the cache directory
 * is left with no temporary file of the run. */
enum nm_fetch_result nm_fetch_run(struct nm_fetch *f);

#endif
