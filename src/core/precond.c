/* Conditional requests (RFC 9110 §13.1, §13.2): the five precondition fields evaluated in the
 * order of §13.2.2 against the selected representation's validators. */
#include "notmod/precond.h"

#include "notmod/date.h"

static bool is_get_or_head(enum nm_method m)
{
    return m == NM_METHOD_GET || m == NM_METHOD_HEAD;
}

static bool is_2xx(int status)
{
    return status >= 200 && status <= 299;
}

/* §13.2.1: methods that neither select nor modify a representation ignore every precondition. */
static bool ignores_preconditions(enum nm_method m)
{
    return m == NM_METHOD_CONNECT || m == NM_METHOD_OPTIONS || m == NM_METHOD_TRACE;
}

/* The date of If-Modified-Since or If-Unmodified-Since. §13.1.3, §13.1.4: a field with more than
 * one member, or not a valid HTTP-date, is ignored. Two lines are two members; "d1, d2" on one
 * line is not an HTTP-date, so strict parsing refuses it. */
static bool field_date(struct nm_field f, int64_t now, int64_t *out)
{
    if (f.n_lines != 1)
        return false;
    return nm_date_parse(f.lines[0], now, out) == 0;
}

/* §13.1.1: "*" is true when a current representation exists; a list is true when one member
 * matches the current entity-tag by the strong comparison. */
static bool if_match_is_true(struct nm_field f, const struct nm_etag *tag, bool exists)
{
    if (nm_etag_list_is_any(f))
        return exists;
    return tag != NULL && nm_etag_list_matches_strong(f, tag);
}

/* §13.1.2: "*" is false when a current representation exists; a list is false when one member
 * matches the current entity-tag by the weak comparison. */
static bool if_none_match_is_true(struct nm_field f, const struct nm_etag *tag, bool exists)
{
    if (nm_etag_list_is_any(f))
        return !exists;
    return tag == NULL || !nm_etag_list_matches_weak(f, tag);
}

/* §13.1.5: If-Range = entity-tag / HTTP-date, a single value. */
static bool if_range_is_true(struct nm_field f, const struct nm_etag *tag, bool has_lm,
                             int64_t last_modified, int64_t date)
{
    if (f.n_lines != 1)
        return false;
    struct nm_etag given;
    if (nm_etag_parse(f.lines[0], &given) == 0)
        /* Strong comparison: a weak tag on either side never matches. */
        return tag != NULL && nm_etag_matches_strong(&given, tag);
    int64_t t;
    if (nm_date_parse(f.lines[0], date, &t) != 0)
        return false;
    /* §13.1.5 and §8.8.2.2: the date must equal Last-Modified exactly, and Last-Modified must
     * be strong: at least one second before the response's Date, so that the representation
     * cannot have changed twice within that second unseen. */
    return has_lm && t == last_modified && last_modified < date;
}

enum nm_precond_result nm_precond_evaluate(const struct nm_precond_request *req,
                                           const struct nm_precond_resource *res,
                                           enum nm_ims_mode mode)
{
    /* §13.2.1: redirects and errors found before the method is performed win over conditions. */
    if (!is_2xx(res->status) || ignores_preconditions(req->method))
        return NM_PRECOND_FULL;

    /* Validators belong to a current representation; without one, nothing can match. */
    const struct nm_etag *tag = res->exists ? res->etag : NULL;
    bool has_lm = res->exists && res->has_last_modified;
    bool get_or_head = is_get_or_head(req->method);
    int64_t since;

    /* §13.2.2 step 1, and step 2 only without If-Match (§13.1.4: MUST ignore it then). */
    if (nm_field_is_present(req->if_match)) {
        if (!if_match_is_true(req->if_match, tag, res->exists))
            return NM_PRECOND_FAILED;
    } else if (nm_field_is_present(req->if_unmodified_since)) {
        /* §13.1.4: ignored when invalid or when there is no modification date. */
        if (has_lm && field_date(req->if_unmodified_since, res->date, &since) &&
            res->last_modified > since)
            return NM_PRECOND_FAILED;
    }

    /* Step 3, and step 4 only without If-None-Match (§13.1.3: MUST ignore it then) and only
     * for GET and HEAD. */
    if (nm_field_is_present(req->if_none_match)) {
        if (!if_none_match_is_true(req->if_none_match, tag, res->exists))
            return get_or_head ? NM_PRECOND_NOT_MODIFIED : NM_PRECOND_FAILED;
    } else if (get_or_head && nm_field_is_present(req->if_modified_since)) {
        /* §13.1.3 reads the date on the origin server's clock, and no Last-Modified this server
         * sends is later than its Date (§8.8.2.1): a later date did not come from it (a client
         * clock ahead, a made-up date), says nothing of the client's copy, and would give a 304
         * for content that may have changed since. Ignored, as Apache does. */
        if (has_lm && field_date(req->if_modified_since, res->date, &since) && since <= res->date) {
            bool modified =
                mode == NM_IMS_EXACT ? res->last_modified != since : res->last_modified > since;
            if (!modified)
                return NM_PRECOND_NOT_MODIFIED;
        }
    }

    /* Step 5. §14.2: range handling is defined for GET only. §13.1.5: If-Range without Range
     * is ignored, and a false If-Range makes the Range ignored. */
    if (req->method == NM_METHOD_GET && req->has_range) {
        if (!nm_field_is_present(req->if_range) ||
            if_range_is_true(req->if_range, tag, has_lm, res->last_modified, res->date))
            return NM_PRECOND_RANGE;
    }
    return NM_PRECOND_FULL;
}

int nm_precond_status(enum nm_precond_result r, int status)
{
    switch (r) {
    case NM_PRECOND_FULL:
        return status;
    case NM_PRECOND_RANGE:
        return 206;
    case NM_PRECOND_NOT_MODIFIED:
        return 304;
    case NM_PRECOND_FAILED:
        return 412;
    }
    return status;
}
