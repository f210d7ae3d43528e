/* Conditional requests (RFC 9110 §13.1, §13.2): one decision from the five precondition fields
 * and the state of the selected representation, in the evaluation order of §13.2.2. */
#ifndef NOTMOD_PRECOND_H
#define NOTMOD_PRECOND_H

#include <stdbool.h>
#include <stdint.h>

#include "notmod/etag.h"
#include "notmod/method.h"
#include "notmod/slice.h"

/* What If-Modified-Since asks. RFC: modified when Last-Modified is later than the date (§13.1.3),
 * so an older file (a rollback) still gets 304. EXACT: not modified only when Last-Modified equals
 * the date, which makes a rollback a 200 (nginx's `if_modified_since exact`). */
enum nm_ims_mode {
    NM_IMS_RFC = 0,
    NM_IMS_EXACT,
};

/* The request's side. Absent fields have n_lines == 0; values borrow from the request. */
struct nm_precond_request {
    enum nm_method method;
    struct nm_field if_match;
    struct nm_field if_none_match;
    struct nm_field if_modified_since;
    struct nm_field if_unmodified_since;
    struct nm_field if_range;
    bool has_range; /* a Range field was received */
};

/* The resource's side. */
struct nm_precond_resource {
    int status;                 /* status the response would have without preconditions */
    bool exists;                /* a current representation exists (for "*") */
    const struct nm_etag *etag; /* its entity-tag, or NULL */
    bool has_last_modified;
    int64_t last_modified; /* seconds since the epoch */
    int64_t date;          /* the response's Date, seconds since the epoch */
};

enum nm_precond_result {
    NM_PRECOND_FULL = 0,     /* go on with `status` (200 for a GET); ignore any Range */
    NM_PRECOND_RANGE,        /* go on and apply the Range (GET only): 206, or 416 */
    NM_PRECOND_NOT_MODIFIED, /* 304 */
    NM_PRECOND_FAILED,       /* 412 */
};

/* Evaluates the preconditions in the order of §13.2.2:
 *  1. If-Match (strong comparison; "*" true when the representation exists): false -> 412.
 *  2. Without If-Match, If-Unmodified-Since (ignored when invalid, of more than one member, or
 *     without Last-Modified): Last-Modified later than the date -> 412.
 *  3. If-None-Match (weak comparison; "*" true when the representation exists): a match gives
 *     304 for GET and HEAD, 412 for other methods.
 *  4. Without If-None-Match, for GET and HEAD only, If-Modified-Since (ignored as in 2) per
 *     `mode` -> 304. It is also ignored when its date is later than `date`: read on the origin
 *     server's clock (§13.1.3), such a date is in the future, so no Last-Modified the server
 *     sent (never later than Date, §8.8.2.1) gave it; it comes from a client clock or is made
 *     up, and a 304 could keep a stale copy. A date equal to `date` is compared as usual.
 *  5. For GET with a Range: If-Range, when present, must match: a strong ETag equal to the
 *     current one (strong comparison; a weak tag never matches), or an HTTP-date equal to
 *     Last-Modified when Last-Modified is strong (at least one second before `date`, §8.8.2.2).
 *     A match, or no If-Range, gives RANGE; otherwise FULL. An If-Range of more than one line,
 *     or that is neither one entity-tag nor one HTTP-date, is false (FULL). Range and If-Range
 *     are ignored for every other method, HEAD included (§14.2).
 * §13.2.1: when `status` is not 2xx, every precondition is ignored and FULL is returned; so they
 * are for CONNECT, OPTIONS and TRACE, which select no representation.
 * `etag` and Last-Modified are used only when `exists` (no representation, no validators).
 * A date field (If-Modified-Since, If-Unmodified-Since, If-Range) is invalid unless it is one
 * line that nm_date_parse accepts; "d1, d2" is not an HTTP-date.
 * `now` for date parsing is the resource's `date`. Pure: no I/O, no allocation. */
enum nm_precond_result nm_precond_evaluate(const struct nm_precond_request *req,
                                           const struct nm_precond_resource *res,
                                           enum nm_ims_mode mode);

/* The status code a result stands for, given the status the response would have had: FULL is
 * `status` (200 for a GET), RANGE 206 before the Range itself is checked (nm_range_evaluate may
 * still turn it into 200 or 416), NOT_MODIFIED 304, FAILED 412. */
int nm_precond_status(enum nm_precond_result r, int status);

#endif
