/* Private-cache rules of RFC 9111: Cache-Control (§5.2), Age (§5.1), age and freshness (§4.2),
 * Vary (§4.1), storage exclusions (§3.1) and freshening with a 304 (§4.3.4). */
#include "notmod/cachectl.h"

#include <errno.h>

#include "notmod/date.h"
#include "notmod/etag.h"
#include "notmod/token.h"

static bool name_is(struct nm_slice name, const char *lit)
{
    return nm_slice_case_eq(name, nm_slice_from_cstr(lit));
}

struct nm_field nm_cachectl_field(const struct nm_http1_field *hdrs, size_t n, const char *name,
                                  struct nm_slice *lines, size_t max_lines)
{
    bool overflow;
    return nm_http1_fields_collect(hdrs, n, nm_slice_from_cstr(name), lines, max_lines, &overflow);
}

/* Counts every line named `name`, beyond any cap. */
static size_t count_lines(const struct nm_http1_field *hdrs, size_t n, struct nm_slice name)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (nm_slice_case_eq(hdrs[i].name, name))
            k++;
    return k;
}

/* delta-seconds = 1*DIGIT, saturating at NM_CACHECTL_DELTA_MAX (§1.2.2). */
static int parse_delta(struct nm_slice s, int64_t *out)
{
    if (s.len == 0)
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9')
            return -EINVAL;
        if (v < NM_CACHECTL_DELTA_MAX)
            v = v * 10 + (c - '0');
    }
    *out = v > NM_CACHECTL_DELTA_MAX ? NM_CACHECTL_DELTA_MAX : v;
    return 0;
}

/* One Cache-Control member within a line: name, optional argument (quotes removed but escapes
 * kept; a quoted argument of a delta directive holds only digits, so escapes never matter). */
struct member {
    struct nm_slice name;
    struct nm_slice arg;
    bool has_arg;
    bool malformed;
};

/* Scans from *pos to the end of the member (the next comma outside quotes, or the line end). */
static void next_member(struct nm_slice line, size_t *pos, struct member *m)
{
    size_t i = *pos;
    *m = (struct member){0};
    while (i < line.len && nm_token_is_ows((unsigned char)line.ptr[i]))
        i++;
    size_t start = i;
    while (i < line.len && nm_token_is_tchar((unsigned char)line.ptr[i]))
        i++;
    m->name = nm_slice_make(line.ptr + start, i - start);
    while (i < line.len && nm_token_is_ows((unsigned char)line.ptr[i]))
        i++;
    if (i < line.len && line.ptr[i] == '=') {
        i++;
        m->has_arg = true;
        while (i < line.len && nm_token_is_ows((unsigned char)line.ptr[i]))
            i++;
        if (i < line.len && line.ptr[i] == '"') {
            size_t a = ++i;
            bool closed = false;
            while (i < line.len) {
                if (line.ptr[i] == '\\' && i + 1 < line.len) {
                    i += 2;
                    continue;
                }
                if (line.ptr[i] == '"') {
                    closed = true;
                    break;
                }
                i++;
            }
            m->arg = nm_slice_make(line.ptr + a, i - a);
            if (!closed)
                m->malformed = true;
            else
                i++;
        } else {
            size_t a = i;
            while (i < line.len && nm_token_is_tchar((unsigned char)line.ptr[i]))
                i++;
            m->arg = nm_slice_make(line.ptr + a, i - a);
            if (m->arg.len == 0)
                m->malformed = true;
        }
        while (i < line.len && nm_token_is_ows((unsigned char)line.ptr[i]))
            i++;
    }
    if (i < line.len && line.ptr[i] != ',') {
        m->malformed = true;
        /* Skip to the next comma outside a quoted string. */
        bool quoted = false;
        while (i < line.len && (quoted || line.ptr[i] != ',')) {
            if (quoted && line.ptr[i] == '\\' && i + 1 < line.len)
                i++;
            else if (line.ptr[i] == '"')
                quoted = !quoted;
            i++;
        }
    }
    if (m->name.len == 0 && m->has_arg)
        m->malformed = true;
    if (i < line.len)
        i++; /* the comma */
    *pos = i;
}

static void set_delta(struct nm_cachectl *cc, const struct member *m, unsigned flag, int64_t *slot)
{
    int64_t v;
    if (!m->has_arg || parse_delta(m->arg, &v) != 0) {
        cc->flags |= NM_CACHECTL_INVALID_FRESHNESS;
        return;
    }
    if ((cc->flags & flag) && *slot != v)
        cc->flags |= NM_CACHECTL_INVALID_FRESHNESS;
    if (!(cc->flags & flag))
        *slot = v;
    cc->flags |= flag;
}

int nm_cachectl_parse(struct nm_field f, struct nm_cachectl *out)
{
    struct nm_cachectl cc = {0};
    static const struct {
        const char *name;
        unsigned flag;
    } simple[] = {
        {"no-store", NM_CACHECTL_NO_STORE},
        {"no-cache", NM_CACHECTL_NO_CACHE},
        {"must-revalidate", NM_CACHECTL_MUST_REVALIDATE},
        {"proxy-revalidate", NM_CACHECTL_PROXY_REVALIDATE},
        {"private", NM_CACHECTL_PRIVATE},
        {"public", NM_CACHECTL_PUBLIC},
        {"immutable", NM_CACHECTL_IMMUTABLE},
        {"no-transform", NM_CACHECTL_NO_TRANSFORM},
    };
    for (size_t l = 0; l < f.n_lines; l++) {
        struct nm_slice line = f.lines[l];
        size_t pos = 0;
        while (pos < line.len) {
            struct member m;
            next_member(line, &pos, &m);
            if (m.name.len == 0 && !m.has_arg) {
                /* An empty list element (§5.6.1) unless junk was skipped. */
                if (m.malformed)
                    cc.flags |= NM_CACHECTL_MALFORMED;
                continue;
            }
            if (m.malformed) {
                cc.flags |= NM_CACHECTL_MALFORMED;
                if (name_is(m.name, "max-age") || name_is(m.name, "s-maxage"))
                    cc.flags |= NM_CACHECTL_INVALID_FRESHNESS;
                continue;
            }
            if (name_is(m.name, "max-age")) {
                set_delta(&cc, &m, NM_CACHECTL_MAX_AGE, &cc.max_age_s);
                continue;
            }
            if (name_is(m.name, "s-maxage")) {
                set_delta(&cc, &m, NM_CACHECTL_S_MAXAGE, &cc.s_maxage_s);
                continue;
            }
            for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
                if (name_is(m.name, simple[k].name))
                    cc.flags |= simple[k].flag;
        }
    }
    *out = cc;
    return 0;
}

int64_t nm_cachectl_age_value(struct nm_field age)
{
    if (age.n_lines == 0)
        return -1;
    /* §5.1: a list-valued Age uses its first member. */
    size_t pos = 0;
    struct nm_slice first;
    nm_token_list_next(age.lines[0], &pos, &first);
    int64_t v;
    if (parse_delta(first, &v) != 0)
        return -1;
    return v;
}

int nm_cachectl_date(struct nm_field f, int64_t now, int64_t *out)
{
    if (f.n_lines == 0)
        return -ENOENT;
    int64_t t = 0;
    for (size_t i = 0; i < f.n_lines; i++) {
        int64_t v;
        if (nm_date_parse(f.lines[i], now, &v) != 0)
            return -EINVAL;
        /* §4.2.1: conflicting values of one field make the response's freshness invalid. */
        if (i > 0 && v != t)
            return -EINVAL;
        t = v;
    }
    *out = t;
    return 0;
}

bool nm_cachectl_status_is_heuristic(int status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return true;
    default:
        return false;
    }
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* a - b for clock readings, never overflowing, never below 0. */
static int64_t elapsed(int64_t a, int64_t b)
{
    if (a <= b)
        return 0;
    if (b < 0 && a > INT64_MAX + b)
        return INT64_MAX;
    return a - b;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int nm_cachectl_evaluate(const struct nm_cachectl_response *r, const struct nm_cachectl_policy *p,
                         int64_t now, struct nm_freshness *out)
{
    struct nm_freshness fr = {0};
    struct nm_cachectl cc;
    nm_cachectl_parse(r->cache_control, &cc);
    fr.cc_flags = cc.flags;

    /* §4.2.3 */
    int64_t date_value;
    if (nm_cachectl_date(r->date, now, &date_value) != 0)
        date_value = r->response_time;
    int64_t age_value = nm_cachectl_age_value(r->age);
    if (age_value < 0)
        age_value = 0;
    int64_t apparent_age = elapsed(r->response_time, date_value);
    int64_t response_delay = elapsed(r->response_time, r->request_time);
    int64_t corrected_age_value = add_sat(age_value, response_delay);
    int64_t corrected_initial_age = max64(apparent_age, corrected_age_value);
    int64_t resident_time = elapsed(now, r->response_time);
    fr.current_age_s = add_sat(corrected_initial_age, resident_time);

    /* §4.2.1 */
    int64_t expires;
    int exp_rc = nm_cachectl_date(r->expires, now, &expires);
    if (cc.flags & NM_CACHECTL_INVALID_FRESHNESS) {
        fr.source = NM_CACHECTL_SOURCE_INVALID;
    } else if (cc.flags & NM_CACHECTL_MAX_AGE) {
        fr.source = NM_CACHECTL_SOURCE_MAX_AGE;
        fr.lifetime_s = cc.max_age_s;
    } else if (exp_rc == 0) {
        fr.source = NM_CACHECTL_SOURCE_EXPIRES;
        fr.lifetime_s = elapsed(expires, date_value);
    } else if (exp_rc == -EINVAL) {
        /* §5.3: an invalid Expires, "0" included, means already expired. */
        fr.source = NM_CACHECTL_SOURCE_EXPIRES;
        fr.lifetime_s = 0;
    } else {
        int64_t lm;
        if (p->heuristic && nm_cachectl_status_is_heuristic(r->status) &&
            nm_cachectl_date(r->last_modified, now, &lm) == 0) {
            int64_t since = elapsed(date_value, lm);
            int64_t pct = p->heuristic_percent > 0 ? p->heuristic_percent : 0;
            int64_t life = since / 100 * pct + since % 100 * pct / 100;
            if (p->heuristic_max_s >= 0 && life > p->heuristic_max_s)
                life = p->heuristic_max_s;
            fr.source = NM_CACHECTL_SOURCE_HEURISTIC;
            fr.lifetime_s = life;
        }
    }
    fr.fresh = fr.lifetime_s > fr.current_age_s && !(cc.flags & NM_CACHECTL_NO_CACHE);
    /* §4.2.4: no-cache and must-revalidate forbid reuse without a successful validation. */
    fr.may_serve_stale = !(cc.flags & (NM_CACHECTL_NO_CACHE | NM_CACHECTL_MUST_REVALIDATE));
    *out = fr;
    return 0;
}

void nm_cachectl_token_iter_init(struct nm_cachectl_token_iter *it, struct nm_field f)
{
    *it = (struct nm_cachectl_token_iter){.field = f};
}

bool nm_cachectl_token_iter_next(struct nm_cachectl_token_iter *it, struct nm_slice *out)
{
    /* §5.3: each line is its own list; §5.6.1: empty elements are skipped. */
    for (; it->line < it->field.n_lines; it->line++, it->pos = 0) {
        struct nm_slice tok;
        while (nm_token_list_next(it->field.lines[it->line], &it->pos, &tok)) {
            if (tok.len > 0) {
                *out = tok;
                return true;
            }
        }
    }
    return false;
}

bool nm_cachectl_vary_is_any(struct nm_field vary)
{
    struct nm_cachectl_token_iter it;
    struct nm_slice tok;
    nm_cachectl_token_iter_init(&it, vary);
    while (nm_cachectl_token_iter_next(&it, &tok))
        if (tok.len == 1 && tok.ptr[0] == '*')
            return true;
    return false;
}

/* The lines of one field name, trimmed, compared in order. */
static bool same_values(struct nm_slice name, const struct nm_http1_field *a, size_t na,
                        const struct nm_http1_field *b, size_t nb)
{
    size_t ia = 0, ib = 0;
    for (;;) {
        while (ia < na && !nm_slice_case_eq(a[ia].name, name))
            ia++;
        while (ib < nb && !nm_slice_case_eq(b[ib].name, name))
            ib++;
        if (ia == na || ib == nb)
            return ia == na && ib == nb;
        if (!nm_slice_eq(nm_slice_trim_ows(a[ia].value), nm_slice_trim_ows(b[ib].value)))
            return false;
        ia++;
        ib++;
    }
}

bool nm_cachectl_vary_matches(struct nm_field vary, const struct nm_http1_field *stored_req,
                              size_t n_stored, const struct nm_http1_field *req, size_t n_req)
{
    if (nm_cachectl_vary_is_any(vary))
        return false;
    struct nm_cachectl_token_iter it;
    struct nm_slice name;
    nm_cachectl_token_iter_init(&it, vary);
    while (nm_cachectl_token_iter_next(&it, &name)) {
        if (count_lines(stored_req, n_stored, name) > NM_CACHECTL_MAX_LINES ||
            count_lines(req, n_req, name) > NM_CACHECTL_MAX_LINES)
            return false;
        if (!same_values(name, stored_req, n_stored, req, n_req))
            return false;
    }
    return true;
}

static bool list_has(struct nm_field f, struct nm_slice name)
{
    for (size_t i = 0; i < f.n_lines; i++)
        if (nm_token_list_has(f.lines[i], name))
            return true;
    return false;
}

bool nm_cachectl_is_unstorable(struct nm_slice name, struct nm_field connection)
{
    static const char *const names[] = {
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Transfer-Encoding",
        "Trailer",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authentication-Info",
        "Proxy-Authorization",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name_is(name, names[i]))
            return true;
    return list_has(connection, name);
}

static bool is_freshen_excepted(struct nm_slice name, struct nm_field connection)
{
    return nm_cachectl_is_unstorable(name, connection) || name_is(name, "Content-Length") ||
           name_is(name, "Content-Encoding") || name_is(name, "Content-Range");
}

enum nm_cachectl_select nm_cachectl_select_304(const struct nm_http1_field *stored, size_t n_stored,
                                               const struct nm_http1_field *resp, size_t n_resp,
                                               int64_t now)
{
    struct nm_slice l1[NM_CACHECTL_MAX_LINES], l2[NM_CACHECTL_MAX_LINES];
    struct nm_field r_etag = nm_cachectl_field(resp, n_resp, "ETag", l1, NM_CACHECTL_MAX_LINES);
    struct nm_field r_lm =
        nm_cachectl_field(resp, n_resp, "Last-Modified", l2, NM_CACHECTL_MAX_LINES);
    if (!nm_field_is_present(r_etag) && !nm_field_is_present(r_lm))
        return NM_CACHECTL_SELECT_NO_VALIDATOR;

    if (nm_field_is_present(r_etag)) {
        struct nm_slice s1[NM_CACHECTL_MAX_LINES];
        struct nm_field s_etag =
            nm_cachectl_field(stored, n_stored, "ETag", s1, NM_CACHECTL_MAX_LINES);
        struct nm_etag rt, st;
        if (r_etag.n_lines != 1 || s_etag.n_lines != 1 || nm_etag_parse(r_etag.lines[0], &rt) ||
            nm_etag_parse(s_etag.lines[0], &st))
            return NM_CACHECTL_SELECT_MISMATCH;
        /* A strong validator selects by strong comparison; a weak one by weak comparison. */
        bool ok = rt.weak ? nm_etag_matches_weak(&rt, &st) : nm_etag_matches_strong(&rt, &st);
        if (!ok)
            return NM_CACHECTL_SELECT_MISMATCH;
        /* RFC 9111 §4.3.4: a matching strong validator identifies the stored response by itself;
         * a Last-Modified that moved (same bytes uploaded again) does not undo that. */
        if (!rt.weak)
            return NM_CACHECTL_SELECT_MATCH;
    }
    if (nm_field_is_present(r_lm)) {
        struct nm_slice s2[NM_CACHECTL_MAX_LINES];
        struct nm_field s_lm =
            nm_cachectl_field(stored, n_stored, "Last-Modified", s2, NM_CACHECTL_MAX_LINES);
        int64_t a, b;
        if (nm_cachectl_date(r_lm, now, &a) != 0 || nm_cachectl_date(s_lm, now, &b) != 0 || a != b)
            return NM_CACHECTL_SELECT_MISMATCH;
    }
    return NM_CACHECTL_SELECT_MATCH;
}

int nm_cachectl_freshen(const struct nm_http1_field *stored, size_t n_stored,
                        const struct nm_http1_field *resp, size_t n_resp,
                        struct nm_http1_field *out, size_t cap)
{
    struct nm_slice cl[NM_CACHECTL_MAX_LINES];
    struct nm_field conn = nm_cachectl_field(resp, n_resp, "Connection", cl, NM_CACHECTL_MAX_LINES);
    size_t k = 0;
    for (size_t i = 0; i < n_stored; i++) {
        bool replaced = false;
        for (size_t j = 0; j < n_resp && !replaced; j++)
            replaced = nm_slice_case_eq(stored[i].name, resp[j].name) &&
                       !is_freshen_excepted(resp[j].name, conn);
        if (replaced)
            continue;
        if (k == cap)
            return -ENOSPC;
        out[k++] = stored[i];
    }
    for (size_t j = 0; j < n_resp; j++) {
        if (is_freshen_excepted(resp[j].name, conn))
            continue;
        if (k == cap)
            return -ENOSPC;
        out[k++] = resp[j];
    }
    return (int)k;
}
