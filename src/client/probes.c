/* The probes of notmod check, one function each, and the table that names their RFC 9110 (and
 * RFC 9111) sections and levels; the content codings a server keeps apart (§8.4, §8.8.3,
 * §12.5.5); the replica comparison (§8.8). */
#include "probes.h"
#include "probes_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "notmod/cachectl.h"
#include "notmod/etag.h"
#include "notmod/token.h"

__attribute__((format(printf, 5, 0))) static void
vadd(struct nm_probe_report *r, const struct nm_probe *p, enum nm_probe_level level,
     const char *section, const char *fmt, va_list ap)
{
    if (r->n == NM_PROBE_MAX_FINDINGS)
        return;
    struct nm_probe_finding *f = &r->findings[r->n++];
    f->check = p->id;
    f->level = level;
    f->rfc = p->rfc;
    f->section = section;
    vsnprintf(f->text, sizeof(f->text), fmt, ap);
}

/* A finding at `level` resting on `section`, where the probe's own row does not say it. */
__attribute__((format(printf, 5, 6))) void nm__probe_add(struct nm_probe_report *r,
                                                         const struct nm_probe *p,
                                                         enum nm_probe_level level,
                                                         const char *section, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(r, p, level, section, fmt, ap);
    va_end(ap);
}

/* The probe's requirement is met. */
__attribute__((format(printf, 3, 4))) void
nm__probe_pass(struct nm_probe_report *r, const struct nm_probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(r, p, NM_PROBE_PASS, p->section, fmt, ap);
    va_end(ap);
}

/* The probe's requirement is missed: a finding at its row's level. */
__attribute__((format(printf, 3, 4))) void
nm__probe_miss(struct nm_probe_report *r, const struct nm_probe *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vadd(r, p, p->level, p->section, fmt, ap);
    va_end(ap);
}

struct nm_field nm__probe_field(const struct nm_probe_answer *a, const char *name,
                                struct nm_slice *lines)
{
    return nm_cachectl_field(a->fields, a->n_fields, name, lines, NM_CACHECTL_MAX_LINES);
}

/* The lines of a field joined with ", " as a C string in out ("" when absent); true when
 * present. */
bool nm__probe_value_of(const struct nm_probe_answer *a, const char *name, char *out, size_t cap)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_field f = nm__probe_field(a, name, l);
    out[0] = '\0';
    if (!f.n_lines)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < f.n_lines; i++) {
        if (i > 0 && k + 2 < cap) {
            out[k++] = ',';
            out[k++] = ' ';
        }
        for (size_t j = 0; j < f.lines[i].len && k + 1 < cap; j++)
            out[k++] = f.lines[i].ptr[j];
    }
    out[k] = '\0';
    return true;
}

void nm_probe_learn(struct nm_probe_report *r, const struct nm_probe_answer *base, int64_t now)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    r->now = now;
    r->reachable = base->err == 0;
    r->got_200 = r->reachable && base->status == 200;
    r->length = base->body_bytes;
    r->date_rc = nm_cachectl_date(nm__probe_field(base, "Date", l), now, &r->date);
    nm__probe_value_of(base, "ETag", r->etag, sizeof(r->etag));
    struct nm_field ef = nm__probe_field(base, "ETag", l);
    struct nm_etag tag;
    r->etag_rc = -ENOENT;
    if (ef.n_lines > 0)
        r->etag_rc = ef.n_lines == 1 && nm_etag_parse(ef.lines[0], &tag) == 0 ? 0 : -EINVAL;
    if (r->etag_rc == 0) {
        r->strong = !tag.weak;
        int len = (int)tag.opaque.len;
        if (tag.weak)
            snprintf(r->etag_flipped, sizeof(r->etag_flipped), "%.*s", len, tag.opaque.ptr);
        else
            snprintf(r->etag_flipped, sizeof(r->etag_flipped), "W/%.*s", len, tag.opaque.ptr);
    }
    nm__probe_value_of(base, "Last-Modified", r->last_modified, sizeof(r->last_modified));
    nm__probe_value_of(base, "Content-Encoding", r->coding, sizeof(r->coding));
    r->lm_rc = nm_cachectl_date(nm__probe_field(base, "Last-Modified", l), now, &r->lm);
    r->older[0] = '\0';
    if (r->lm_rc == 0 && r->lm >= 86400)
        nm_date_format(r->lm - 86400, r->older);
}

/* The first GET (§9.3.1, §15.3.1). */

static void fetch(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->base->err)
        nm__probe_miss(c->r, p, "GET failed: %s", c->base->error);
}

static void get(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    const struct nm_probe_answer *a = c->base;
    if (a->err)
        return;
    char location[512];
    if (a->status >= 300 && a->status < 400 &&
        nm__probe_value_of(a, "Location", location, sizeof(location)))
        nm__probe_miss(
            c->r, p,
            "GET answered %d %s with Location: %s; the probes need a URL that answers 200 "
            "(check that one)",
            a->status, a->reason, location);
    else if (a->status != 200)
        nm__probe_miss(c->r, p, "GET answered %d %s; the probes need a URL that answers 200",
                       a->status, a->reason);
    else
        nm__probe_pass(c->r, p, "GET -> 200, %" PRIu64 " bytes", a->body_bytes);
}

/* The validators and caching fields of the 200 (§6.6.1, §8.8, RFC 9111 §5.2). */

static void date(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->date_rc == -ENOENT)
        nm__probe_miss(c->r, p, "no Date: an origin server with a clock must send it");
    else if (c->r->date_rc < 0)
        nm__probe_miss(c->r, p, "Date is not one valid HTTP-date");
    else
        nm__probe_pass(c->r, p, "Date is a valid HTTP-date");
}

static void etag(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    /* §8.8.3: an origin server SHOULD send an ETag; one it sends MUST be well-formed. */
    if (r->etag_rc == -ENOENT)
        nm__probe_add(r, p, NM_PROBE_WARN, p->section,
                      "no ETag: clients can revalidate only by date, to the second");
    else if (r->etag_rc < 0)
        nm__probe_miss(r, p, "ETag %s is not one valid entity-tag", r->etag);
    else
        nm__probe_pass(r, p, "ETag %s is well-formed", r->etag);
}

static void etag_strength(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->etag_rc != 0)
        return;
    if (c->r->strong)
        nm__probe_pass(c->r, p, "strong ETag: usable with If-Match and If-Range");
    else
        nm__probe_miss(
            c->r, p,
            "weak ETag: If-Range and If-Match never match it, so resumed downloads restart");
}

static void last_modified(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    const char *lm = r->last_modified;
    char fixed[NM_DATE_LEN + 1];
    if (r->lm_rc == -ENOENT) {
        nm__probe_add(
            r, p, NM_PROBE_WARN, p->section,
            "no Last-Modified: date-based clients (wget -N, If-Modified-Since) always download");
    } else if (r->lm_rc < 0) {
        nm__probe_miss(r, p, "Last-Modified %s is not a valid HTTP-date", lm);
    } else {
        nm_date_format(r->lm, fixed);
        if (strcmp(fixed, lm) != 0)
            nm__probe_add(
                r, p, NM_PROBE_WARN, "5.6.7",
                "Last-Modified %s is valid but not in the IMF-fixdate form senders must use", lm);
        else
            nm__probe_pass(r, p, "Last-Modified %s is well-formed", lm);
    }
}

static void last_modified_date(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    if (r->lm_rc != 0 || r->date_rc != 0)
        return;
    if (r->lm > r->date)
        nm__probe_miss(r, p, "Last-Modified is %" PRId64 " s after Date", r->lm - r->date);
    else
        nm__probe_pass(r, p, "Last-Modified is not after Date");
}

static void cache_control(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    char buf[512];
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_cachectl cc;
    if (nm__probe_value_of(c->base, "Cache-Control", buf, sizeof(buf))) {
        nm_cachectl_parse(nm__probe_field(c->base, "Cache-Control", l), &cc);
        if (cc.flags & (NM_CACHECTL_MALFORMED | NM_CACHECTL_INVALID_FRESHNESS))
            nm__probe_miss(c->r, p, "Cache-Control: %s has malformed or conflicting directives",
                           buf);
        else
            nm__probe_pass(c->r, p, "Cache-Control: %s", buf);
    } else if (nm__probe_value_of(c->base, "Expires", buf, sizeof(buf))) {
        nm__probe_add(c->r, p, NM_PROBE_PASS, "5.3", "no Cache-Control, but Expires: %s", buf);
    } else {
        nm__probe_add(
            c->r, p, NM_PROBE_WARN, "4.2.2",
            "no Cache-Control or Expires: caches may reuse the response without asking for a "
            "tenth of its age since Last-Modified (heuristic freshness)");
    }
}

/* Conditional requests (§13.1, §13.2.2), each graded by its status. */

/* Sends `what` (field lines f[0..n)): `want` passes, any other status misses with `why`. */
static void expect(const struct nm_probe *p, struct nm_probe_ctx *c, const char *what, int want,
                   const char *why, const struct nm_http1_field *f, size_t n)
{
    struct nm_probe_answer a;
    c->send(c->io, p->via, "GET", f, n, &a);
    if (a.err)
        nm__probe_add(c->r, p, NM_PROBE_FAIL, p->section, "%s: the exchange failed: %s", what,
                      a.error);
    else if (a.status == want)
        nm__probe_pass(c->r, p, "%s -> %d", what, a.status);
    else
        nm__probe_miss(c->r, p, "%s -> %d, expected %d: %s", what, a.status, want, why);
}

/* expect() with one field line and the row's want and why. */
static void expect1(const struct nm_probe *p, struct nm_probe_ctx *c, const char *what,
                    struct nm_http1_field f)
{
    expect(p, c, what, p->want, p->why, &f, 1);
}

static void inm_match(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->etag_rc == 0)
        expect1(p, c, "If-None-Match: <the ETag>", LINE("If-None-Match", c->r->etag));
}

static void inm_weak(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->etag_rc == 0)
        expect1(p, c,
                c->r->strong ? "If-None-Match: W/<the ETag>"
                             : "If-None-Match: <the ETag's strong form>",
                LINE("If-None-Match", c->r->etag_flipped));
}

static void inm_list(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    char list[300];
    if (c->r->etag_rc != 0)
        return;
    snprintf(list, sizeof(list), NM_PROBE_NOMATCH_TAG ", %s", c->r->etag);
    expect1(p, c, "If-None-Match: \"other\", <the ETag>", LINE("If-None-Match", list));
}

static void inm_star(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->etag_rc == 0)
        expect1(p, c, "If-None-Match: *", LINE("If-None-Match", "*"));
}

static void inm_other(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    expect1(p, c, "If-None-Match: <another tag>", LINE("If-None-Match", NM_PROBE_NOMATCH_TAG));
}

static void ims_match(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->lm_rc == 0)
        expect1(p, c, "If-Modified-Since: <Last-Modified>",
                LINE("If-Modified-Since", c->r->last_modified));
}

static void ims_older(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->older[0])
        expect1(p, c, "If-Modified-Since: <a day before Last-Modified>",
                LINE("If-Modified-Since", c->r->older));
}

static void precedence_stale_etag(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_http1_field f[] = {LINE("If-None-Match", NM_PROBE_NOMATCH_TAG),
                                 LINE("If-Modified-Since", c->r->last_modified)};
    if (c->r->etag_rc == 0 && c->r->lm_rc == 0)
        expect(p, c, "If-None-Match: <another tag> + If-Modified-Since: <Last-Modified>", p->want,
               p->why, f, 2);
}

static void precedence_current_etag(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_http1_field f[] = {LINE("If-None-Match", c->r->etag),
                                 LINE("If-Modified-Since", c->r->older)};
    if (c->r->etag_rc == 0 && c->r->older[0])
        expect(p, c, "If-None-Match: <the ETag> + If-Modified-Since: <an older date>", p->want,
               p->why, f, 2);
}

static void if_match_other(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    expect1(p, c, "If-Match: <another tag>", LINE("If-Match", NM_PROBE_NOMATCH_TAG));
}

static void if_match_current(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_http1_field f = LINE("If-Match", c->r->etag);
    if (c->r->etag_rc != 0)
        return;
    if (c->r->strong)
        expect1(p, c, "If-Match: <the ETag>", f);
    else
        expect(p, c, "If-Match: <the weak ETag>", 412,
               "a weak tag never matches by strong comparison", &f, 1);
}

static void ius_older(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (c->r->older[0])
        expect1(p, c, "If-Unmodified-Since: <a day before Last-Modified>",
                LINE("If-Unmodified-Since", c->r->older));
}

/* Ranges (§14.2) and If-Range (§13.1.5). */

static void range_answer(const struct nm_probe *p, struct nm_probe_report *r,
                         const struct nm_probe_answer *a)
{
    char cr[512], want[64];
    nm__probe_value_of(a, "Content-Range", cr, sizeof(cr));
    if (a->status == 206) {
        snprintf(want, sizeof(want), "bytes 0-0/%" PRIu64, r->length);
        if (strcmp(cr, want) == 0 && a->body_bytes == 1)
            nm__probe_pass(r, p, "Range: bytes=0-0 -> 206, %s", cr);
        else
            nm__probe_add(r, p, NM_PROBE_FAIL, "14.4",
                          "Range: bytes=0-0 -> 206 with Content-Range '%s' and %" PRIu64
                          " bytes; expected '%s' and 1 byte",
                          cr, a->body_bytes, want);
    } else if (a->status == 200) {
        nm__probe_add(r, p, NM_PROBE_WARN, p->section,
                      "Range: bytes=0-0 -> 200: ranges are not supported, downloads cannot resume");
    } else if (a->status == 416 && r->length == 0) {
        /* An empty representation has no byte 0 (§14.1.2): 416 is the right answer. */
        if (strcmp(cr, "bytes */0") == 0)
            nm__probe_add(r, p, NM_PROBE_PASS, "15.5.17",
                          "Range: bytes=0-0 of an empty representation -> 416, %s", cr);
        else
            nm__probe_add(
                r, p, NM_PROBE_FAIL, "15.5.17",
                "Range: bytes=0-0 of an empty representation -> 416 with Content-Range '%s'; "
                "expected 'bytes */0'",
                cr);
    } else {
        nm__probe_miss(r, p, "Range: bytes=0-0 -> %d", a->status);
    }
}

static void range(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_http1_field f = LINE("Range", "bytes=0-0");
    struct nm_probe_answer a;
    c->send(c->io, p->via, "GET", &f, 1, &a);
    if (a.err) {
        nm__probe_miss(c->r, p, "Range: bytes=0-0: the exchange failed: %s", a.error);
        return;
    }
    c->r->ranges = a.status == 206;
    range_answer(p, c->r, &a);
}

static void if_range_current(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    bool by_tag = c->r->etag_rc == 0 && c->r->strong;
    struct nm_http1_field f[] = {LINE("Range", "bytes=0-0"),
                                 LINE("If-Range", by_tag ? c->r->etag : c->r->last_modified)};
    if (c->r->ranges && (by_tag || c->r->lm_rc == 0))
        expect(p, c, by_tag ? "Range + If-Range: <the ETag>" : "Range + If-Range: <Last-Modified>",
               p->want, p->why, f, 2);
}

static void if_range_stale(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_http1_field f[] = {LINE("Range", "bytes=0-0"),
                                 LINE("If-Range", NM_PROBE_NOMATCH_TAG)};
    if (c->r->ranges)
        expect(p, c, "Range + If-Range: <another tag>", p->want, p->why, f, 2);
}

/* HEAD (§9.3.2). */

/* Where a HEAD's fields differ from the GET's, for people; "" when they agree. */
static void head_diff(const struct nm_probe_ctx *c, const struct nm_probe_answer *a, char *diff,
                      size_t cap)
{
    static const char *const same[] = {"ETag", "Last-Modified", "Content-Type"};
    char x[256], y[256];
    size_t k = 0;
    diff[0] = '\0';
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        bool px = nm__probe_value_of(c->base, same[i], x, sizeof(x));
        bool py = nm__probe_value_of(a, same[i], y, sizeof(y));
        if (px != py || strcmp(x, y) != 0) {
            int n = snprintf(diff + k, cap - k, "%s%s: GET '%s', HEAD '%s'", k ? "; " : "", same[i],
                             x, y);
            if (n > 0)
                k += (size_t)n < cap - k ? (size_t)n : cap - k - 1;
        }
    }
    if (nm__probe_value_of(a, "Content-Length", y, sizeof(y))) {
        snprintf(x, sizeof(x), "%" PRIu64, c->r->length);
        if (strcmp(x, y) != 0)
            snprintf(diff + k, cap - k, "%sContent-Length: HEAD '%s', GET sent %s bytes",
                     k ? "; " : "", y, x);
    }
}

static void head(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    /* Room for the three compared fields and Content-Length to differ with full values, each
     * with its name and quotes, so no difference is cut from the report. */
    char diff[4 * (256 + 256 + 48)];
    c->send(c->io, p->via, "HEAD", NULL, 0, &a);
    if (a.err) {
        nm__probe_miss(c->r, p, "HEAD: the exchange failed: %s", a.error);
        return;
    }
    head_diff(c, &a, diff, sizeof(diff));
    if (a.status != 200)
        nm__probe_miss(c->r, p, "HEAD -> %d, GET -> 200", a.status);
    else if (a.body_bytes > 0)
        nm__probe_miss(c->r, p, "HEAD answered with %" PRIu64 " bytes of content", a.body_bytes);
    else if (diff[0])
        /* §9.3.2: the same fields SHOULD be sent; a server may leave some out. */
        nm__probe_add(c->r, p, NM_PROBE_WARN, p->section, "HEAD disagrees with GET: %s", diff);
    else
        nm__probe_pass(c->r, p,
                       "HEAD agrees with GET (ETag, Last-Modified, Content-Type, Content-Length)");
}

/* The bytes of a 304 (§15.4.5), from one raw request with the 200's validator. */

/* Sends the raw request: If-None-Match with the ETag, else If-Modified-Since with the date.
 * Returns what it asked for people, or NULL when the 200 has neither validator. */
static const char *raw_304(const struct nm_probe *p, struct nm_probe_ctx *c,
                           struct nm_probe_answer *a)
{
    struct nm_http1_field f;
    const char *what;
    if (c->r->etag_rc == 0) {
        f = LINE("If-None-Match", c->r->etag);
        what = "If-None-Match: <the ETag>";
    } else if (c->r->lm_rc == 0) {
        f = LINE("If-Modified-Since", c->r->last_modified);
        what = "If-Modified-Since: <Last-Modified>";
    } else {
        return NULL;
    }
    c->send(c->io, p->via, "GET", &f, 1, a);
    return what;
}

/* The raw answer when it is a 304 to grade; other statuses were graded by the conditional
 * probes, a failed exchange by 304.shape. */
static bool got_304(const struct nm_probe *p, struct nm_probe_ctx *c, struct nm_probe_answer *a)
{
    return raw_304(p, c, a) && a->err == 0 && a->status == 304;
}

static void shape_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    const char *what = raw_304(p, c, &a);
    if (what && a.err)
        nm__probe_miss(c->r, p, "raw %s: no readable response (%s)", what, a.error);
}

static void etag_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    char had[256], has[256];
    if (!got_304(p, c, &a) || !nm__probe_value_of(c->base, "ETag", had, sizeof(had)))
        return;
    if (!nm__probe_value_of(&a, "ETag", has, sizeof(has)))
        nm__probe_miss(c->r, p, "the 304 has no ETag; the 200 has %s", had);
    else if (strcmp(had, has) != 0)
        nm__probe_miss(c->r, p, "the 304 has ETag %s; the 200 has %s", has, had);
    else
        nm__probe_pass(c->r, p, "the 304 carries the 200's ETag %s", has);
}

static void fields_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    static const char *const must[] = {"Date", "Cache-Control", "Expires", "Vary",
                                       "Content-Location"};
    struct nm_probe_answer a;
    char x[256], missing[160] = "", kept[160] = "";
    if (!got_304(p, c, &a))
        return;
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        if (!nm__probe_value_of(c->base, must[i], x, sizeof(x)))
            continue;
        char *list = nm__probe_value_of(&a, must[i], x, sizeof(x)) ? kept : missing;
        snprintf(list + strlen(list), sizeof(missing) - strlen(list), "%s%s", list[0] ? ", " : "",
                 must[i]);
    }
    if (missing[0])
        nm__probe_miss(c->r, p,
                       "the 304 lacks %s, which the 200 sends: caches cannot update their copy",
                       missing);
    else
        nm__probe_pass(c->r, p, "the 304 repeats the 200's %s",
                       kept[0] ? kept : "(no caching fields to repeat)");
}

static void body_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    if (!got_304(p, c, &a))
        return;
    if (a.body_bytes > 0)
        nm__probe_miss(c->r, p,
                       "%" PRIu64
                       " bytes follow the 304's header section: a 304 has no content, and on a "
                       "kept-alive connection they corrupt the next response",
                       a.body_bytes);
    else
        nm__probe_pass(c->r, p, "the 304 has no content");
}

static void content_type_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    char ct[256];
    if (!got_304(p, c, &a))
        return;
    if (nm__probe_value_of(&a, "Content-Type", ct, sizeof(ct)))
        nm__probe_miss(
            c->r, p,
            "the 304 sends Content-Type: %s (representation metadata a 304 should not send)", ct);
    else
        nm__probe_pass(c->r, p, "the 304 sends no Content-Type");
}

static void content_length_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    char cl[256], want[32];
    if (!got_304(p, c, &a))
        return;
    snprintf(want, sizeof(want), "%" PRIu64, c->r->length);
    if (!nm__probe_value_of(&a, "Content-Length", cl, sizeof(cl)))
        nm__probe_pass(c->r, p, "the 304 sends no Content-Length");
    else if (strcmp(cl, want) != 0)
        nm__probe_miss(c->r, p,
                       "the 304 sends Content-Length: %s; only the 200's length (%s) is allowed",
                       cl, want);
    else
        nm__probe_pass(c->r, p, "the 304's Content-Length equals the 200's (%s)", cl);
}

/* Content codings (§8.4): variants chosen by Accept-Encoding (§12.5.3) are representations of
 * their own, with their own strong validators (§8.8.1, §8.8.3), and responses that depend on
 * Accept-Encoding say so in Vary (§12.5.5). */

#define ROW(id, rfc, section, level, via, run)                                                     \
    {                                                                                              \
        id, rfc, section, level, via, 0, NULL, run                                                 \
    }
#define STATUS(id, section, level, want, why, run)                                                 \
    {                                                                                              \
        id, "9110", section, level, NM_PROBE_VIA_PERFORM, want, why, run                           \
    }

const struct nm_probe nm_probes[] = {
    ROW("fetch", "9110", "9.3.1", NM_PROBE_FAIL, NM_PROBE_VIA_GET, fetch),
    ROW("get", "9110", "15.3.1", NM_PROBE_FAIL, NM_PROBE_VIA_GET, get),
    ROW("date", "9110", "6.6.1", NM_PROBE_FAIL, NM_PROBE_VIA_200, date),
    ROW("etag", "9110", "8.8.3", NM_PROBE_FAIL, NM_PROBE_VIA_200, etag),
    ROW("etag.strength", "9110", "8.8.1", NM_PROBE_WARN, NM_PROBE_VIA_200, etag_strength),
    ROW("last-modified", "9110", "8.8.2", NM_PROBE_FAIL, NM_PROBE_VIA_200, last_modified),
    ROW("last-modified.date", "9110", "8.8.2.1", NM_PROBE_FAIL, NM_PROBE_VIA_200,
        last_modified_date),
    ROW("cache-control", "9111", "5.2", NM_PROBE_WARN, NM_PROBE_VIA_200, cache_control),
    STATUS("inm.match", "13.1.2", NM_PROBE_FAIL, 304,
           "the full body is sent again to a client that has it", inm_match),
    STATUS("inm.weak", "13.1.2", NM_PROBE_FAIL, 304, "If-None-Match uses the weak comparison",
           inm_weak),
    STATUS("inm.list", "13.1.2", NM_PROBE_FAIL, 304, "every member of the list counts", inm_list),
    STATUS("inm.star", "13.1.2", NM_PROBE_FAIL, 304, "* matches any current representation",
           inm_star),
    STATUS("inm.other", "13.1.2", NM_PROBE_FAIL, 200,
           "a 304 tells the client to keep content it does not have", inm_other),
    /* §13.1.3: a server SHOULD send 304 to a matching date. */
    STATUS("ims.match", "13.1.3", NM_PROBE_WARN, 304,
           "the full body is sent again to a client that has it", ims_match),
    STATUS("ims.older", "13.1.3", NM_PROBE_FAIL, 200, "the content changed after that date",
           ims_older),
    STATUS("precedence.stale-etag", "13.1.3", NM_PROBE_FAIL, 200,
           "If-Modified-Since must be ignored when If-None-Match is present, so a changed ETag "
           "means a full response",
           precedence_stale_etag),
    STATUS("precedence.current-etag", "13.2.2", NM_PROBE_FAIL, 304,
           "If-Modified-Since must be ignored when If-None-Match is present; the server let the "
           "date override a matching ETag",
           precedence_current_etag),
    STATUS("if-match.other", "13.1.1", NM_PROBE_FAIL, 412,
           "a failed If-Match must stop the request", if_match_other),
    STATUS("if-match.current", "13.1.1", NM_PROBE_FAIL, 200,
           "If-Match uses the strong comparison and the tag is strong", if_match_current),
    STATUS("ius.older", "13.1.4", NM_PROBE_FAIL, 412, "the content changed after that date",
           ius_older),
    ROW("range", "9110", "14.2", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM, range),
    /* §13.1.5: a matching If-Range SHOULD get the range; only ignoring a stale one is a MUST. */
    STATUS("if-range.current", "13.1.5", NM_PROBE_WARN, 206,
           "the validator is current, so the range must be sent", if_range_current),
    STATUS("if-range.stale", "13.1.5", NM_PROBE_FAIL, 200,
           "a stale If-Range must get the whole representation, or a resumed download splices "
           "two versions",
           if_range_stale),
    ROW("head", "9110", "9.3.2", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM, head),
    ROW("304.shape", "9110", "15.4.5", NM_PROBE_FAIL, NM_PROBE_VIA_RAW, shape_304),
    ROW("304.etag", "9110", "15.4.5", NM_PROBE_FAIL, NM_PROBE_VIA_RAW, etag_304),
    ROW("304.fields", "9110", "15.4.5", NM_PROBE_FAIL, NM_PROBE_VIA_RAW, fields_304),
    ROW("304.body", "9110", "15.4.5", NM_PROBE_FAIL, NM_PROBE_VIA_RAW, body_304),
    /* §15.4.5: a server SHOULD NOT send representation metadata beyond the listed fields. */
    ROW("304.content-type", "9110", "15.4.5", NM_PROBE_WARN, NM_PROBE_VIA_RAW, content_type_304),
    ROW("304.content-length", "9110", "8.6", NM_PROBE_FAIL, NM_PROBE_VIA_RAW, content_length_304),
    ROW("coding.etag", "9110", "8.8.3", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM, nm__probe_coding_etag),
    ROW("coding.vary", "9110", "12.5.5", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM,
        nm__probe_coding_vary),
    ROW("coding.304", "9110", "15.4.5", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM, nm__probe_coding_304),
    /* §12.5.5: a server SHOULD send Vary; a 304 without it leaves the stored one in place. */
    ROW("coding.304.vary", "9110", "12.5.5", NM_PROBE_WARN, NM_PROBE_VIA_PERFORM,
        nm__probe_coding_304_vary),
    ROW("coding.if-range", "9110", "13.1.5", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM,
        nm__probe_coding_if_range),
    ROW("coding.body", "9110", "8.4.1", NM_PROBE_FAIL, NM_PROBE_VIA_PERFORM, nm__probe_coding_body),
};

const size_t nm_probes_count = sizeof(nm_probes) / sizeof(nm_probes[0]);

const struct nm_probe *nm_probe_find(const char *id)
{
    for (size_t i = 0; i < nm_probes_count; i++)
        if (strcmp(nm_probes[i].id, id) == 0)
            return &nm_probes[i];
    return NULL;
}

void nm_probe_run(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    if (p->via == NM_PROBE_VIA_GET || c->r->got_200)
        p->run(p, c);
}

/* Replicas (§8.8): the load-balancer problem, validators that differ per backend. */

/* The findings of the comparison are not probes of one target; these rows name them. */
#define REPLICA(name, sec, lvl)                                                                    \
    {                                                                                              \
        .id = name, .rfc = "9110", .section = sec, .level = lvl                                    \
    }

/* Where a report's answers came from, for people. */
static const char *source_of(const struct nm_probe_report *rep)
{
    return rep->backend ? rep->backend : "the URL's host";
}

/* What one backend sent of a compared value, for the finding. */
static void show_replica(const struct nm_probe_report *rep, size_t what, char *out, size_t cap)
{
    if (what == 2)
        snprintf(out, cap, "%" PRIu64 " bytes, hash %s", rep->length, rep->hash);
    else if (what == 1)
        snprintf(out, cap, "%s", rep->last_modified[0] ? rep->last_modified : "(none)");
    else
        snprintf(out, cap, "%s", rep->etag[0] ? rep->etag : "(none)");
}

/* replicas.coding: what Accept-Encoding: gzip gets, as sent. Variants made on the fly by other
 * library versions or levels, or a stale precompressed file on one node, give clients moved
 * between backends other bytes under other validators. */
static void compare_variants(const struct nm_probe_report *reports, size_t n,
                             struct nm_probe_report *out)
{
    static const struct nm_probe row = REPLICA("replicas.coding", "8.8.3", NM_PROBE_FAIL);
    const struct nm_probe_variant *first = NULL;
    bool same_coding = true, same = true;
    size_t asked = 0;
    char list[1500] = "";
    for (size_t i = 0; i < n; i++) {
        const struct nm_probe_variant *v = &reports[i].gzip;
        if (!reports[i].got_200 || v->status != 200)
            continue;
        asked++;
        if (!first) {
            first = v;
        } else {
            same_coding &= strcasecmp(first->coding, v->coding) == 0;
            same &= strcmp(first->etag, v->etag) == 0 && first->length == v->length &&
                    strcmp(first->hash, v->hash) == 0;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list),
                 "%s%s: %s, ETag %s, %" PRIu64 " bytes, hash %s", list[0] ? "; " : "",
                 source_of(&reports[i]), v->coding[0] ? v->coding : "identity",
                 v->etag[0] ? v->etag : "(none)", v->length, v->hash);
    }
    if (asked < 2)
        return;
    if (!same_coding)
        nm__probe_miss(out, &row,
                       "backends disagree on the coding of the answer to Accept-Encoding: gzip: %s",
                       list);
    else if (!same)
        nm__probe_miss(out, &row, "backends disagree on the %s variant (Accept-Encoding: gzip): %s",
                       first->coding[0] ? first->coding : "identity", list);
    else
        nm__probe_pass(out, &row,
                       "every backend sends the same %s variant to Accept-Encoding: gzip",
                       first->coding[0] ? first->coding : "identity");
}

bool nm_probe_compare_replicas(const struct nm_probe_report *reports, size_t n,
                               struct nm_probe_report *out)
{
    static const struct nm_probe answered = REPLICA("replicas", "8.8", NM_PROBE_FAIL);
    static const struct {
        struct nm_probe row;
        const char *label;
    } compared[] = {
        {REPLICA("replicas.etag", "8.8.3", NM_PROBE_FAIL), "ETag"},
        /* Dates that differ under agreeing ETags only cost date-based clients a download. */
        {REPLICA("replicas.last-modified", "8.8.2", NM_PROBE_WARN), "Last-Modified"},
        {REPLICA("replicas.content", "8.8.3", NM_PROBE_FAIL), "content"},
    };
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += reports[i].got_200;
    if (ok < 2) {
        nm__probe_miss(out, &answered, "fewer than two backends answered 200");
        return false;
    }
    bool etags_agree = true;
    for (size_t f = 0; f < sizeof(compared) / sizeof(compared[0]); f++) {
        const struct nm_probe *p = &compared[f].row;
        const char *first = NULL;
        bool agree = true;
        char list[1500] = "";
        for (size_t i = 0; i < n; i++) {
            const struct nm_probe_report *rep = &reports[i];
            if (!rep->got_200)
                continue;
            const char *v = f == 0 ? rep->etag : f == 1 ? rep->last_modified : rep->hash;
            if (!first)
                first = v;
            else if (strcmp(first, v) != 0)
                agree = false;
            char shown[300];
            show_replica(rep, f, shown, sizeof(shown));
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s: %s",
                     list[0] ? "; " : "", source_of(rep), shown);
        }
        if (f == 0)
            etags_agree = agree;
        if (agree)
            nm__probe_pass(out, p, "every backend sends the same %s", compared[f].label);
        else if (etags_agree && first[0])
            nm__probe_miss(out, p, "backends disagree on %s: %s", compared[f].label, list);
        else
            nm__probe_add(out, p, NM_PROBE_FAIL, p->section, "backends disagree on %s: %s",
                          compared[f].label, list);
    }
    compare_variants(reports, n, out);
    return true;
}

int nm_probe_replica_reference(const struct nm_probe_report *reports, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (reports[i].got_200 && reports[i].etag[0])
            return (int)i;
    return -1;
}

void nm_probe_grade_revalidation(const struct nm_probe_report *reports, size_t n, size_t ref,
                                 const int *status, struct nm_probe_report *out)
{
    static const struct nm_probe row = REPLICA("replicas.revalidate", "13.1.2", NM_PROBE_FAIL);
    char list[1500] = "";
    bool all = true;
    for (size_t i = 0; i < n; i++) {
        if (i == ref || !reports[i].reachable)
            continue;
        all &= status[i] == 304;
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s -> %d",
                 list[0] ? "; " : "", source_of(&reports[i]), status[i]);
    }
    nm__probe_add(out, &row, all ? NM_PROBE_PASS : NM_PROBE_FAIL, row.section,
                  "If-None-Match: %s from %s sent to the others: %s%s", reports[ref].etag,
                  source_of(&reports[ref]), list,
                  all ? "" : " (clients moved between backends download again)");
}
