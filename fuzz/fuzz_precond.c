/* Fuzzes nm_precond_evaluate. Input: three flag bytes (method; Range, existence, validators,
 * mode and status; Last-Modified and Date), then up to six '\n'-separated segments: If-Match,
 * If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range and the current entity-tag.
 * An empty segment is an absent field; '\r' splits a segment into field lines. Asserts the
 * method rules of RFC 9110 §13.1.2, §13.1.3, §13.2.1, §14.2, the ignore rules of §13.2.2, and
 * that an If-Modified-Since later than Date never gives 304. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "notmod/date.h"
#include "notmod/precond.h"

#define N_SEGMENTS 6
#define MAX_LINES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum nm_method methods[] = {
    NM_METHOD_GET,     NM_METHOD_HEAD,    NM_METHOD_POST,  NM_METHOD_PUT,   NM_METHOD_DELETE,
    NM_METHOD_CONNECT, NM_METHOD_OPTIONS, NM_METHOD_TRACE, NM_METHOD_PATCH, NM_METHOD_OTHER,
};
static const int statuses[] = {200, 201, 204, 206, 304, 404, 412, 500};
static const int64_t last_modifieds[] = {784111777, 0, NM_DATE_MAX - 1, 1735689600};
static const int64_t date_offsets[] = {0, 1, 86400, -1};

struct segments {
    struct nm_slice lines[N_SEGMENTS][MAX_LINES];
    struct nm_field fields[N_SEGMENTS];
};

static void split(const char *p, size_t len, struct segments *s)
{
    size_t seg = 0, line = 0, start = 0;
    for (size_t i = 0; i < N_SEGMENTS; i++)
        s->fields[i] = (struct nm_field){s->lines[i], 0};
    for (size_t i = 0; i <= len && seg < N_SEGMENTS; i++) {
        bool end_seg = i == len || p[i] == '\n';
        bool end_line = end_seg || p[i] == '\r';
        if (!end_line)
            continue;
        if (line < MAX_LINES && !(end_seg && line == 0 && i == start))
            s->lines[seg][line++] = nm_slice_make(p + start, i - start);
        start = i + 1;
        if (end_seg) {
            s->fields[seg].n_lines = line;
            seg++;
            line = 0;
        }
    }
}

static bool is_2xx(int status)
{
    return status >= 200 && status <= 299;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t f0 = data[0], f1 = data[1], f2 = data[2];
    struct segments seg;
    split((const char *)data + 3, size - 3, &seg);

    struct nm_etag current;
    bool has_tag =
        seg.fields[5].n_lines == 1 && nm_etag_parse(seg.fields[5].lines[0], &current) == 0;
    if (!has_tag && (f1 & 4)) {
        current = (struct nm_etag){NM_SLICE_LIT("\"v1\""), (f1 & 8) != 0};
        has_tag = true;
    }

    struct nm_precond_request req = {
        .method = methods[f0 % (sizeof(methods) / sizeof(methods[0]))],
        .if_match = seg.fields[0],
        .if_unmodified_since = seg.fields[1],
        .if_none_match = seg.fields[2],
        .if_modified_since = seg.fields[3],
        .if_range = seg.fields[4],
        .has_range = f1 & 1,
    };
    int64_t lm = last_modifieds[f2 & 3];
    struct nm_precond_resource res = {
        .status = statuses[(f1 >> 5) & 7],
        .exists = (f1 & 2) != 0,
        .etag = has_tag ? &current : NULL,
        .has_last_modified = (f2 & 16) == 0,
        .last_modified = lm,
        .date = lm + date_offsets[(f2 >> 2) & 3],
    };
    enum nm_ims_mode mode = (f1 & 16) ? NM_IMS_EXACT : NM_IMS_RFC;

    enum nm_precond_result r = nm_precond_evaluate(&req, &res, mode);
    enum nm_method m = req.method;
    bool get_or_head = m == NM_METHOD_GET || m == NM_METHOD_HEAD;

    if (r != NM_PRECOND_FULL && r != NM_PRECOND_RANGE && r != NM_PRECOND_NOT_MODIFIED &&
        r != NM_PRECOND_FAILED)
        abort();
    /* §13.1.2, §13.1.3: 304 only for GET and HEAD. */
    if (r == NM_PRECOND_NOT_MODIFIED && !get_or_head)
        abort();
    /* §14.2: range handling only for GET, and only with a Range. */
    if (r == NM_PRECOND_RANGE && !(m == NM_METHOD_GET && req.has_range))
        abort();
    /* §13.2.1: non-2xx responses and CONNECT/OPTIONS/TRACE ignore every precondition. */
    if ((!is_2xx(res.status) || m == NM_METHOD_CONNECT || m == NM_METHOD_OPTIONS ||
         m == NM_METHOD_TRACE) &&
        r != NM_PRECOND_FULL)
        abort();
    /* 412 needs If-Match, If-Unmodified-Since or If-None-Match; 304 needs If-None-Match or
     * If-Modified-Since. */
    if (r == NM_PRECOND_FAILED && !nm_field_is_present(req.if_match) &&
        !nm_field_is_present(req.if_unmodified_since) && !nm_field_is_present(req.if_none_match))
        abort();
    if (r == NM_PRECOND_NOT_MODIFIED && !nm_field_is_present(req.if_none_match) &&
        !nm_field_is_present(req.if_modified_since))
        abort();
    /* §13.1.3 with §8.8.2.1: without If-None-Match, a 304 comes from one valid If-Modified-Since
     * date that is not later than Date (precond.h, step 4). */
    if (r == NM_PRECOND_NOT_MODIFIED && !nm_field_is_present(req.if_none_match)) {
        int64_t since;
        if (req.if_modified_since.n_lines != 1 ||
            nm_date_parse(req.if_modified_since.lines[0], res.date, &since) != 0 ||
            since > res.date)
            abort();
    }
    int st = nm_precond_status(r, res.status);
    if ((r == NM_PRECOND_FULL && st != res.status) || (r == NM_PRECOND_RANGE && st != 206) ||
        (r == NM_PRECOND_NOT_MODIFIED && st != 304) || (r == NM_PRECOND_FAILED && st != 412))
        abort();

    /* Fields that §13.2.2 says to ignore change nothing when removed. */
    struct nm_precond_request alt = req;
    if (nm_field_is_present(req.if_match)) {
        alt.if_unmodified_since = (struct nm_field){NULL, 0};
        if (nm_precond_evaluate(&alt, &res, mode) != r)
            abort();
        alt = req;
    }
    if (nm_field_is_present(req.if_none_match) || !get_or_head) {
        alt.if_modified_since = (struct nm_field){NULL, 0};
        if (nm_precond_evaluate(&alt, &res, mode) != r)
            abort();
        alt = req;
    }
    if (!req.has_range || m != NM_METHOD_GET) {
        alt.if_range = (struct nm_field){NULL, 0};
        if (nm_precond_evaluate(&alt, &res, mode) != r)
            abort();
    }
    /* No hidden state: the same inputs give the same answer. */
    if (nm_precond_evaluate(&req, &res, mode) != r)
        abort();
    return 0;
}
