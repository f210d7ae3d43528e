/* The caching rules of a private cache (RFC 9111): Cache-Control directives (§5.2), Age (§5.1),
 * current age (§4.2.3), freshness lifetime (§4.2.1, heuristics §4.2.2), Vary matching (§4.1), and
 * freshening a stored response with a 304 (§4.3.4). Pure: no I/O, no allocation, no clock.
 *
 * Slices: fields come in as arrays of struct nm_http1_field (http1.h), and every slice written
 * out (collected lines, Vary members, freshened lines) borrows from those fields' buffers and
 * lives as long as they do. Errors: nm_cachectl_date returns -ENOENT or -EINVAL and
 * nm_cachectl_freshen -ENOSPC; nothing else fails: bad input is ignored or flagged as RFC 9111
 * says (NM_CACHECTL_MALFORMED, NM_CACHECTL_INVALID_FRESHNESS, an invalid Age read as absent). */
#ifndef NOTMOD_CACHECTL_H
#define NOTMOD_CACHECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notmod/http1.h"
#include "notmod/slice.h"

/* Most lines of one field name that the functions below look at; more lines make a Vary
 * comparison a mismatch (a miss, always safe) and are otherwise ignored. */
#define NM_CACHECTL_MAX_LINES 16

/* Collects the values of every line named `name` (case-insensitive), in order, into lines[]
 * (at most max_lines of them; more are left out) and returns them as a field; n_lines == 0 when
 * absent. The field borrows `lines`, which borrow from hdrs. nm_http1_fields_collect with a C
 * string name, for the many fixed names of the cache rules. */
struct nm_field nm_cachectl_field(const struct nm_http1_field *hdrs, size_t n, const char *name,
                                  struct nm_slice *lines, size_t max_lines);

/* Cache-Control directives (RFC 9111 §5.2). Names are case-insensitive; arguments may be tokens
 * or quoted strings (§5.2: recipients accept both). */
enum nm_cachectl_flag {
    NM_CACHECTL_NO_STORE = 1u << 0,
    NM_CACHECTL_NO_CACHE = 1u << 1,
    NM_CACHECTL_MUST_REVALIDATE = 1u << 2,
    NM_CACHECTL_PROXY_REVALIDATE = 1u << 3,
    NM_CACHECTL_PRIVATE = 1u << 4,
    NM_CACHECTL_PUBLIC = 1u << 5,
    NM_CACHECTL_IMMUTABLE = 1u << 6,
    NM_CACHECTL_NO_TRANSFORM = 1u << 7,
    NM_CACHECTL_MAX_AGE = 1u << 8,  /* max_age_s is valid */
    NM_CACHECTL_S_MAXAGE = 1u << 9, /* s_maxage_s is valid */
    /* A freshness directive (max-age, s-maxage) had a bad argument or appeared twice with
     * different values: §4.2.1 encourages treating the response as stale. */
    NM_CACHECTL_INVALID_FRESHNESS = 1u << 10,
    /* Some member was not `token [ "=" ( token / quoted-string ) ]`; it was skipped. */
    NM_CACHECTL_MALFORMED = 1u << 11,
};

struct nm_cachectl {
    unsigned flags;     /* enum nm_cachectl_flag bits */
    int64_t max_age_s;  /* with NM_CACHECTL_MAX_AGE */
    int64_t s_maxage_s; /* with NM_CACHECTL_S_MAXAGE */
};

/* delta-seconds past this value read as this value (RFC 9111 §1.2.2). */
#define NM_CACHECTL_DELTA_MAX 2147483648LL

/* Parses every line of a Cache-Control field. Unknown directives are ignored, malformed members
 * set NM_CACHECTL_MALFORMED and are skipped up to the next comma outside a quoted string.
 * Always succeeds: writes *out and returns 0. An absent field gives flags == 0. */
int nm_cachectl_parse(struct nm_field f, struct nm_cachectl *out);

/* The Age field (§5.1): the first member of the list, as delta-seconds (capped at
 * NM_CACHECTL_DELTA_MAX). Returns it, or -1 when the field is absent or invalid (ignored). */
int64_t nm_cachectl_age_value(struct nm_field age);

/* A singleton date field (Date, Expires, Last-Modified): 0 and *out when exactly one valid
 * HTTP-date is present (repeated identical lines count as one), -ENOENT when absent, -EINVAL
 * when invalid or conflicting. `now` is only for two-digit years (see nm_date_parse). */
int nm_cachectl_date(struct nm_field f, int64_t now, int64_t *out);

/* Status codes that are heuristically cacheable (RFC 9110 §15.1). */
bool nm_cachectl_status_is_heuristic(int status);

/* A stored response's cache metadata and the client's clock readings around its exchange. */
struct nm_cachectl_response {
    int status;
    struct nm_field cache_control;
    struct nm_field expires;
    struct nm_field date;
    struct nm_field last_modified;
    struct nm_field age;
    int64_t request_time;  /* seconds since the epoch when the request was sent */
    int64_t response_time; /* seconds since the epoch when the response was received */
};

struct nm_cachectl_policy {
    bool heuristic;            /* allow §4.2.2 heuristic freshness */
    int64_t heuristic_max_s;   /* cap on a heuristic lifetime */
    int64_t heuristic_percent; /* of the time since Last-Modified; 10 is the usual */
};

enum nm_cachectl_source {
    NM_CACHECTL_SOURCE_NONE = 0,  /* no explicit or heuristic lifetime: stale at once */
    NM_CACHECTL_SOURCE_MAX_AGE,   /* Cache-Control: max-age */
    NM_CACHECTL_SOURCE_EXPIRES,   /* Expires minus Date */
    NM_CACHECTL_SOURCE_HEURISTIC, /* a share of the time since Last-Modified */
    NM_CACHECTL_SOURCE_INVALID,   /* invalid freshness information: stale (§4.2.1) */
};

struct nm_freshness {
    int64_t lifetime_s;    /* freshness lifetime, >= 0 */
    int64_t current_age_s; /* §4.2.3 current_age, >= 0 */
    enum nm_cachectl_source source;
    unsigned cc_flags;    /* the response's Cache-Control flags */
    bool fresh;           /* lifetime > age and no no-cache: reusable without asking */
    bool may_serve_stale; /* neither no-cache nor must-revalidate forbids serving it stale */
};

/* Computes freshness per §4.2. Age (§4.2.3): date_value is the Date field, or response_time
 * when it is missing or invalid; age_value is the Age field or 0;
 *   apparent_age = max(0, response_time - date_value)
 *   corrected_initial_age = max(apparent_age, age_value + (response_time - request_time))
 *   current_age = corrected_initial_age + (now - response_time)
 * with negative clock differences taken as 0. Lifetime (§4.2.1), first that applies: max-age;
 * Expires minus date_value (an invalid Expires means already expired); the heuristic, only when
 * allowed by the policy, Last-Modified is valid, there is no explicit expiry and the status is
 * heuristically cacheable: heuristic_percent of (date_value - Last-Modified), capped; else 0.
 * s-maxage is for shared caches and ignored. Writes *out and returns 0. */
int nm_cachectl_evaluate(const struct nm_cachectl_response *r, const struct nm_cachectl_policy *p,
                         int64_t now, struct nm_freshness *out);

/* True when a Vary field lists "*": the stored response can never be reused (§4.1). */
bool nm_cachectl_vary_is_any(struct nm_field vary);

/* Iterates over the field names of a Vary field (all lines, comma-separated, OWS skipped). */
struct nm_cachectl_token_iter {
    struct nm_field field;
    size_t line;
    size_t pos;
};

void nm_cachectl_token_iter_init(struct nm_cachectl_token_iter *it, struct nm_field f);

/* Writes the next non-empty member to *out and returns true, or false at the end. */
bool nm_cachectl_token_iter_next(struct nm_cachectl_token_iter *it, struct nm_slice *out);

/* §4.1: true when, for every field name in `vary`, the stored request and the new request carry
 * the same value (the same lines, each compared with OWS trimmed; absent in both is equal).
 * Vary "*" never matches; an absent Vary always matches. */
bool nm_cachectl_vary_matches(struct nm_field vary, const struct nm_http1_field *stored_req,
                              size_t n_stored, const struct nm_http1_field *req, size_t n_req);

/* Fields a cache must not store (§3.1): Connection and the fields it names, and the hop-by-hop
 * and proxy fields (Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Trailer, Upgrade,
 * Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization). `connection` is the
 * message's Connection field. */
bool nm_cachectl_is_unstorable(struct nm_slice name, struct nm_field connection);

/* Which stored response a 304 may freshen (§4.3.4), for a cache that keeps one response per
 * key and sent that response's validators. */
enum nm_cachectl_select {
    /* The 304 names a different representation (its ETag or Last-Modified differs from the
     * stored one, or is malformed): it must not be used; fetch again without conditions. */
    NM_CACHECTL_SELECT_MISMATCH = 0,
    /* Every validator in the 304 matches the stored response: a strong ETag by strong
     * comparison, a weak one by weak comparison, Last-Modified by equal dates. */
    NM_CACHECTL_SELECT_MATCH,
    /* The 304 carries no validator at all. It answers the conditional request made with the
     * stored response's validators, the only stored response for the key. */
    NM_CACHECTL_SELECT_NO_VALIDATOR,
};

enum nm_cachectl_select nm_cachectl_select_304(const struct nm_http1_field *stored, size_t n_stored,
                                               const struct nm_http1_field *resp, size_t n_resp,
                                               int64_t now);

/* Freshening (§4.3.4): writes to out[] the stored header lines except those whose name the 304
 * carries, then the 304's lines, leaving out of the 304's lines the unstorable fields (see
 * nm_cachectl_is_unstorable, with the 304's Connection field), Content-Length (§4.3.4), and the
 * fields that describe the stored bytes (Content-Encoding, Content-Range): those stay as stored.
 * Slices borrow from both inputs. Returns the number of lines written, or -ENOSPC (out is then
 * unspecified) when more than cap are needed. */
int nm_cachectl_freshen(const struct nm_http1_field *stored, size_t n_stored,
                        const struct nm_http1_field *resp, size_t n_resp,
                        struct nm_http1_field *out, size_t cap);

#endif
