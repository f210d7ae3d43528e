/* notmod check URL...: a validator linter. Fetches each URL, then probes how the server
 * evaluates conditional requests (RFC 9110 §13), shapes its 304s (§15.4.5), answers HEAD and
 * ranges, and, with --backends, whether every replica agrees on validators and content. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "client/client.h"
#include "cliutil.h"
#include "commands.h"
#include "notmod/cachectl.h"
#include "notmod/date.h"
#include "notmod/etag.h"
#include "notmod/json.h"

#define MAX_FINDINGS 48
#define MAX_BACKENDS 16
#define NOMATCH_TAG "\"notmod-check-no-such-tag\""

enum level { PASS, WARN, FAIL };

static const char *const level_names[] = {"PASS", "WARN", "FAIL"};

struct finding {
    const char *check;
    enum level level;
    const char *rfc;     /* "9110" */
    const char *section; /* "13.1.2" */
    char text[400];
};

/* What one target (the URL, or the URL through one backend) said, for the replica checks. */
struct report {
    const char *url;
    const char *backend; /* NULL: the URL's own host */
    bool reachable;
    bool got_200;
    char etag[256];
    char last_modified[64];
    uint64_t length;
    char hash[33];
    struct finding findings[MAX_FINDINGS];
    size_t n;
};

struct opts {
    bool json;
    long timeout_s;
    const char *backends[MAX_BACKENDS];
    size_t n_backends;
    char backends_buf[2048];
};

struct ctx {
    const struct opts *o;
    struct nm_client client;
    struct nm_client_response *resp;
    XXH3_state_t *hash;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: notmod check [OPTIONS] URL...\n\n"
            "Lints how a server handles validators: fetches each URL, then sends conditional\n"
            "requests (If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since,\n"
            "Range with If-Range), a HEAD, and a raw request to see the bytes of its 304.\n"
            "Each finding is PASS, WARN or FAIL with the RFC section it rests on.\n\n"
            "options:\n"
            "      --backends HOST:PORT,...  send every request to each backend too (with the\n"
            "                         URL's Host) and report where ETag, Last-Modified or\n"
            "                         content disagree, and whether one replica's ETag gets a\n"
            "                         304 from the others\n"
            "      --json             machine-readable output\n"
            "      --timeout SECS     per request (default 10)\n"
            "  -h, --help             this text\n\n"
            "exit status: 0 no FAIL, 1 at least one FAIL, 2 usage, 4 a URL or backend could not\n"
            "be fetched at all\n");
}

static void add(struct report *r, const char *check, enum level level, const char *rfc,
                const char *section, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(struct report *r, const char *check, enum level level, const char *rfc,
                const char *section, const char *fmt, ...)
{
    if (r->n == MAX_FINDINGS)
        return;
    struct finding *f = &r->findings[r->n++];
    f->check = check;
    f->level = level;
    f->rfc = rfc;
    f->section = section;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->text, sizeof(f->text), fmt, ap);
    va_end(ap);
}

static int on_body(void *ctx, const void *data, size_t len)
{
    struct ctx *cx = ctx;
    XXH3_64bits_update(cx->hash, data, len);
    return 0;
}

/* One request through the target; the response lands in cx->resp. */
static int probe(struct ctx *cx, const struct report *r, const char *method,
                 const struct nm_header *h, size_t n)
{
    XXH3_64bits_reset(cx->hash);
    struct nm_client_request req = {
        .method = method,
        .url = r->url,
        .headers = h,
        .n_headers = n,
        .connect_to = r->backend,
        .connect_timeout_ms = cx->o->timeout_s * 1000,
        .stall_timeout_s = cx->o->timeout_s,
        .timeout_ms = cx->o->timeout_s * 1000,
        /* Each probe on its own connection: a stray 304 body cannot spoil the next answer. */
        .fresh_connection = true,
        .on_body = on_body,
        .ctx = cx,
    };
    return nm_client_perform(&cx->client, &req, cx->resp);
}

static struct nm_field field(const struct nm_client_response *resp, const char *name,
                             struct nm_slice *lines)
{
    return nm_cachectl_field(resp->headers, resp->n_headers, name, lines, NM_CACHECTL_MAX_LINES);
}

/* The single value of a field as a C string in out ("" when absent); true when present. */
static bool value_of(const struct nm_header *h, size_t n, const char *name, char *out, size_t cap)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_field f = nm_cachectl_field(h, n, name, l, NM_CACHECTL_MAX_LINES);
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

#define H(name, value)                                                                             \
    (struct nm_header)                                                                             \
    {                                                                                              \
        NM_SLICE_LIT(name), nm_slice_from_cstr(value)                                              \
    }

/* Sends one conditional probe and grades its status: `want` passes, anything else gets
 * `otherwise`. Returns the status, or -1 when the exchange failed (a FAIL is recorded). */
static int expect(struct ctx *cx, struct report *r, const char *check, const char *section,
                  enum level otherwise, int want, const char *what, const char *why,
                  const struct nm_header *h, size_t n, const char *method)
{
    int rc = probe(cx, r, method, h, n);
    if (rc < 0) {
        add(r, check, FAIL, "9110", section, "%s: the exchange failed: %s", what, cx->resp->error);
        return -1;
    }
    int st = cx->resp->status;
    if (st == want)
        add(r, check, PASS, "9110", section, "%s -> %d", what, st);
    else
        add(r, check, otherwise, "9110", section, "%s -> %d, expected %d: %s", what, st, want, why);
    return st;
}

static void check_304_shape(struct ctx *cx, struct report *r, const struct nm_header *cond,
                            const char *what, const struct nm_client_response *base)
{
    struct nm_buf raw;
    char err[NM_CLIENT_ERROR_MAX];
    nm_buf_init(&raw, 256 * 1024);
    int rc = nm_client_raw(r->url, r->backend, "GET", cond, 1, cx->o->timeout_s * 1000, &raw, err);
    struct nm_header h[NM_CLIENT_MAX_HEADERS];
    size_t n = 0, head_len = 0;
    int status = 0;
    if (rc == 0)
        rc = nm_client_parse_response(nm_buf_slice(&raw), &status, h, NM_CLIENT_MAX_HEADERS, &n,
                                      &head_len);
    if (rc < 0) {
        add(r, "304.shape", FAIL, "9110", "15.4.5", "raw %s: no readable response (%s)", what,
            rc == -EBADMSG ? "not an HTTP/1.x response" : err);
        goto out;
    }
    if (status != 304)
        goto out; /* the status itself was graded by the conditional probes */

    char a[256], b[256];
    bool had = value_of(base->headers, base->n_headers, "ETag", a, sizeof(a));
    bool has = value_of(h, n, "ETag", b, sizeof(b));
    if (had && !has)
        add(r, "304.etag", FAIL, "9110", "15.4.5", "the 304 has no ETag; the 200 has %s", a);
    else if (had && strcmp(a, b) != 0)
        add(r, "304.etag", FAIL, "9110", "15.4.5", "the 304 has ETag %s; the 200 has %s", b, a);
    else if (had)
        add(r, "304.etag", PASS, "9110", "15.4.5", "the 304 carries the 200's ETag %s", b);

    static const char *const must[] = {"Date", "Cache-Control", "Expires", "Vary",
                                       "Content-Location"};
    char missing[160] = "", kept[160] = "";
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        if (!value_of(base->headers, base->n_headers, must[i], a, sizeof(a)))
            continue;
        char *list = value_of(h, n, must[i], b, sizeof(b)) ? kept : missing;
        snprintf(list + strlen(list), sizeof(missing) - strlen(list), "%s%s", list[0] ? ", " : "",
                 must[i]);
    }
    if (missing[0])
        add(r, "304.fields", FAIL, "9110", "15.4.5",
            "the 304 lacks %s, which the 200 sends: caches cannot update their copy", missing);
    else
        add(r, "304.fields", PASS, "9110", "15.4.5", "the 304 repeats the 200's %s",
            kept[0] ? kept : "(no caching fields to repeat)");

    size_t body = raw.len - head_len;
    if (body > 0)
        add(r, "304.body", FAIL, "9110", "15.4.5",
            "%zu bytes follow the 304's header section: a 304 has no content, and on a "
            "kept-alive connection they corrupt the next response",
            body);
    else
        add(r, "304.body", PASS, "9110", "15.4.5", "the 304 has no content");

    if (value_of(h, n, "Content-Type", b, sizeof(b)))
        add(r, "304.content-type", WARN, "9110", "15.4.5",
            "the 304 sends Content-Type: %s (representation metadata a 304 should not send)", b);
    else
        add(r, "304.content-type", PASS, "9110", "15.4.5", "the 304 sends no Content-Type");

    if (value_of(h, n, "Content-Length", b, sizeof(b))) {
        char want[32];
        snprintf(want, sizeof(want), "%" PRIu64, r->length);
        if (strcmp(b, want) != 0)
            add(r, "304.content-length", FAIL, "9110", "8.6",
                "the 304 sends Content-Length: %s; only the 200's length (%s) is allowed", b, want);
        else
            add(r, "304.content-length", PASS, "9110", "8.6",
                "the 304's Content-Length equals the 200's (%s)", b);
    } else {
        add(r, "304.content-length", PASS, "9110", "8.6", "the 304 sends no Content-Length");
    }
out:
    nm_buf_cleanup(&raw);
}

static void check_target(struct ctx *cx, struct report *r)
{
    struct nm_client_response *base = malloc(sizeof(*base));
    if (!base) {
        add(r, "fetch", FAIL, "9110", "9.3.1", "out of memory");
        return;
    }
    nm_client_response_init(base);
    struct nm_client_response *scratch = cx->resp;
    cx->resp = base;
    int rc = probe(cx, r, "GET", NULL, 0);
    cx->resp = scratch;
    if (rc < 0) {
        add(r, "fetch", FAIL, "9110", "9.3.1", "GET failed: %s", base->error);
        goto out;
    }
    r->reachable = true;
    r->length = base->body_bytes;
    snprintf(r->hash, sizeof(r->hash), "%016" PRIx64, (uint64_t)XXH3_64bits_digest(cx->hash));
    if (base->status != 200) {
        add(r, "get", FAIL, "9110", "15.3.1",
            "GET answered %d %s; the probes need a URL that answers 200", base->status,
            base->reason);
        goto out;
    }
    r->got_200 = true;
    char sz[32];
    nm__cli_size(r->length, sz, sizeof(sz));
    add(r, "get", PASS, "9110", "15.3.1", "GET -> 200, %s", sz);

    int64_t now = time(NULL);
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    char buf[512];

    /* Date */
    int64_t date = 0;
    rc = nm_cachectl_date(field(base, "Date", l), now, &date);
    bool have_date = rc == 0;
    if (rc == -ENOENT)
        add(r, "date", FAIL, "9110", "6.6.1",
            "no Date: an origin server with a clock must send it");
    else if (rc < 0)
        add(r, "date", FAIL, "9110", "6.6.1", "Date is not one valid HTTP-date");
    else
        add(r, "date", PASS, "9110", "6.6.1", "Date is a valid HTTP-date");

    /* ETag */
    struct nm_field ef = field(base, "ETag", l);
    struct nm_etag tag;
    bool have_etag = false, strong = false;
    value_of(base->headers, base->n_headers, "ETag", r->etag, sizeof(r->etag));
    if (ef.n_lines == 0) {
        add(r, "etag", WARN, "9110", "8.8.3",
            "no ETag: clients can revalidate only by date, to the second");
    } else if (ef.n_lines > 1 || nm_etag_parse(ef.lines[0], &tag) != 0) {
        add(r, "etag", FAIL, "9110", "8.8.3", "ETag %s is not one valid entity-tag", r->etag);
    } else {
        have_etag = true;
        strong = !tag.weak;
        add(r, "etag", PASS, "9110", "8.8.3", "ETag %s is well-formed", r->etag);
        if (strong)
            add(r, "etag.strength", PASS, "9110", "8.8.1",
                "strong ETag: usable with If-Match and If-Range");
        else
            add(r, "etag.strength", WARN, "9110", "8.8.1",
                "weak ETag: If-Range and If-Match never match it, so resumed downloads restart");
    }

    /* Last-Modified */
    int64_t lm = 0;
    bool have_lm = false;
    value_of(base->headers, base->n_headers, "Last-Modified", r->last_modified,
             sizeof(r->last_modified));
    rc = nm_cachectl_date(field(base, "Last-Modified", l), now, &lm);
    if (rc == -ENOENT) {
        add(r, "last-modified", WARN, "9110", "8.8.2",
            "no Last-Modified: date-based clients (wget -N, If-Modified-Since) always download");
    } else if (rc < 0) {
        add(r, "last-modified", FAIL, "9110", "8.8.2", "Last-Modified %s is not a valid HTTP-date",
            r->last_modified);
    } else {
        have_lm = true;
        char fixed[NM_DATE_LEN + 1];
        nm_date_format(lm, fixed);
        if (strcmp(fixed, r->last_modified) != 0)
            add(r, "last-modified", WARN, "9110", "5.6.7",
                "Last-Modified %s is valid but not in the IMF-fixdate form senders must use",
                r->last_modified);
        else
            add(r, "last-modified", PASS, "9110", "8.8.2", "Last-Modified %s is well-formed",
                r->last_modified);
        if (have_date && lm > date)
            add(r, "last-modified.date", FAIL, "9110", "8.8.2.1",
                "Last-Modified is %" PRId64 " s after Date", lm - date);
        else if (have_date)
            add(r, "last-modified.date", PASS, "9110", "8.8.2.1",
                "Last-Modified is not after Date");
    }

    /* Cache-Control */
    if (value_of(base->headers, base->n_headers, "Cache-Control", buf, sizeof(buf))) {
        struct nm_cachectl cc;
        nm_cachectl_parse(field(base, "Cache-Control", l), &cc);
        if (cc.flags & (NM_CACHECTL_MALFORMED | NM_CACHECTL_INVALID_FRESHNESS))
            add(r, "cache-control", WARN, "9111", "5.2",
                "Cache-Control: %s has malformed or conflicting directives", buf);
        else
            add(r, "cache-control", PASS, "9111", "5.2", "Cache-Control: %s", buf);
    } else if (value_of(base->headers, base->n_headers, "Expires", buf, sizeof(buf))) {
        add(r, "cache-control", PASS, "9111", "5.3", "no Cache-Control, but Expires: %s", buf);
    } else {
        add(r, "cache-control", WARN, "9111", "4.2.2",
            "no Cache-Control or Expires: caches may reuse the response without asking for a "
            "tenth of its age since Last-Modified (heuristic freshness)");
    }

    /* If-None-Match (§13.1.2) */
    char weak_form[300], list[300], older[NM_DATE_LEN + 1] = "";
    if (have_lm && lm >= 86400)
        nm_date_format(lm - 86400, older);
    if (have_etag) {
        struct nm_header h1[] = {H("If-None-Match", r->etag)};
        expect(cx, r, "inm.match", "13.1.2", FAIL, 304, "If-None-Match: <the ETag>",
               "the full body is sent again to a client that has it", h1, 1, "GET");
        if (tag.weak)
            snprintf(weak_form, sizeof(weak_form), "%.*s", (int)tag.opaque.len, tag.opaque.ptr);
        else
            snprintf(weak_form, sizeof(weak_form), "W/%.*s", (int)tag.opaque.len, tag.opaque.ptr);
        struct nm_header h2[] = {H("If-None-Match", weak_form)};
        expect(cx, r, "inm.weak", "13.1.2", FAIL, 304,
               tag.weak ? "If-None-Match: <the ETag's strong form>" : "If-None-Match: W/<the ETag>",
               "If-None-Match uses the weak comparison", h2, 1, "GET");
        snprintf(list, sizeof(list), NOMATCH_TAG ", %s", r->etag);
        struct nm_header h3[] = {H("If-None-Match", list)};
        expect(cx, r, "inm.list", "13.1.2", FAIL, 304, "If-None-Match: \"other\", <the ETag>",
               "every member of the list counts", h3, 1, "GET");
        struct nm_header h4[] = {H("If-None-Match", "*")};
        expect(cx, r, "inm.star", "13.1.2", FAIL, 304, "If-None-Match: *",
               "* matches any current representation", h4, 1, "GET");
    }
    struct nm_header h5[] = {H("If-None-Match", NOMATCH_TAG)};
    expect(cx, r, "inm.other", "13.1.2", FAIL, 200, "If-None-Match: <another tag>",
           "a 304 tells the client to keep content it does not have", h5, 1, "GET");

    /* If-Modified-Since (§13.1.3) */
    if (have_lm) {
        struct nm_header h1[] = {H("If-Modified-Since", r->last_modified)};
        expect(cx, r, "ims.match", "13.1.3", WARN, 304, "If-Modified-Since: <Last-Modified>",
               "the full body is sent again to a client that has it", h1, 1, "GET");
        if (older[0]) {
            struct nm_header h2[] = {H("If-Modified-Since", older)};
            expect(cx, r, "ims.older", "13.1.3", FAIL, 200,
                   "If-Modified-Since: <a day before Last-Modified>",
                   "the content changed after that date", h2, 1, "GET");
        }
    }

    /* Precedence (§13.2.2): If-None-Match decides, If-Modified-Since is then ignored. */
    if (have_etag && have_lm) {
        struct nm_header h1[] = {H("If-None-Match", NOMATCH_TAG),
                                 H("If-Modified-Since", r->last_modified)};
        expect(cx, r, "precedence.stale-etag", "13.1.3", FAIL, 200,
               "If-None-Match: <another tag> + If-Modified-Since: <Last-Modified>",
               "If-Modified-Since must be ignored when If-None-Match is present, so a changed "
               "ETag means a full response",
               h1, 2, "GET");
        if (older[0]) {
            struct nm_header h2[] = {H("If-None-Match", r->etag), H("If-Modified-Since", older)};
            expect(cx, r, "precedence.current-etag", "13.2.2", FAIL, 304,
                   "If-None-Match: <the ETag> + If-Modified-Since: <an older date>",
                   "If-Modified-Since must be ignored when If-None-Match is present; the "
                   "server let the date override a matching ETag",
                   h2, 2, "GET");
        }
    }

    /* If-Match (§13.1.1) and If-Unmodified-Since (§13.1.4) */
    struct nm_header h6[] = {H("If-Match", NOMATCH_TAG)};
    expect(cx, r, "if-match.other", "13.1.1", FAIL, 412, "If-Match: <another tag>",
           "a failed If-Match must stop the request", h6, 1, "GET");
    if (have_etag) {
        struct nm_header h1[] = {H("If-Match", r->etag)};
        if (strong)
            expect(cx, r, "if-match.current", "13.1.1", FAIL, 200, "If-Match: <the ETag>",
                   "If-Match uses the strong comparison and the tag is strong", h1, 1, "GET");
        else
            expect(cx, r, "if-match.current", "13.1.1", FAIL, 412, "If-Match: <the weak ETag>",
                   "a weak tag never matches by strong comparison", h1, 1, "GET");
    }
    if (older[0]) {
        struct nm_header h1[] = {H("If-Unmodified-Since", older)};
        expect(cx, r, "ius.older", "13.1.4", FAIL, 412,
               "If-Unmodified-Since: <a day before Last-Modified>",
               "the content changed after that date", h1, 1, "GET");
    }

    /* Ranges and If-Range (§14.2, §13.1.5) */
    struct nm_header hr[] = {H("Range", "bytes=0-0")};
    rc = probe(cx, r, "GET", hr, 1);
    bool ranges = false;
    if (rc < 0) {
        add(r, "range", FAIL, "9110", "14.2", "Range: bytes=0-0: the exchange failed: %s",
            cx->resp->error);
    } else if (cx->resp->status == 206) {
        char want[64];
        snprintf(want, sizeof(want), "bytes 0-0/%" PRIu64, r->length);
        value_of(cx->resp->headers, cx->resp->n_headers, "Content-Range", buf, sizeof(buf));
        if (strcmp(buf, want) == 0 && cx->resp->body_bytes == 1)
            add(r, "range", PASS, "9110", "14.2", "Range: bytes=0-0 -> 206, %s", buf);
        else
            add(r, "range", FAIL, "9110", "14.4",
                "Range: bytes=0-0 -> 206 with Content-Range '%s' and %" PRIu64
                " bytes; expected '%s' and 1 byte",
                buf, cx->resp->body_bytes, want);
        ranges = true;
    } else if (cx->resp->status == 200) {
        add(r, "range", WARN, "9110", "14.2",
            "Range: bytes=0-0 -> 200: ranges are not supported, downloads cannot resume");
    } else if (cx->resp->status == 416 && r->length == 0) {
        /* An empty representation has no byte 0 (§14.1.2): 416 is the right answer. */
        value_of(cx->resp->headers, cx->resp->n_headers, "Content-Range", buf, sizeof(buf));
        if (strcmp(buf, "bytes */0") == 0)
            add(r, "range", PASS, "9110", "15.5.17",
                "Range: bytes=0-0 of an empty representation -> 416, %s", buf);
        else
            add(r, "range", FAIL, "9110", "15.5.17",
                "Range: bytes=0-0 of an empty representation -> 416 with Content-Range '%s'; "
                "expected 'bytes */0'",
                buf);
    } else {
        add(r, "range", FAIL, "9110", "14.2", "Range: bytes=0-0 -> %d", cx->resp->status);
    }
    if (ranges) {
        const char *validator = strong ? r->etag : have_lm ? r->last_modified : NULL;
        if (validator) {
            struct nm_header h1[] = {H("Range", "bytes=0-0"), H("If-Range", validator)};
            /* §13.1.5: a matching If-Range SHOULD get the range; only ignoring a stale one is a
             * MUST. */
            expect(cx, r, "if-range.current", "13.1.5", WARN, 206,
                   strong ? "Range + If-Range: <the ETag>" : "Range + If-Range: <Last-Modified>",
                   "the validator is current, so the range must be sent", h1, 2, "GET");
        }
        struct nm_header h2[] = {H("Range", "bytes=0-0"), H("If-Range", NOMATCH_TAG)};
        expect(cx, r, "if-range.stale", "13.1.5", FAIL, 200, "Range + If-Range: <another tag>",
               "a stale If-Range must get the whole representation, or a resumed download "
               "splices two versions",
               h2, 2, "GET");
    }

    /* HEAD (§9.3.2) */
    rc = probe(cx, r, "HEAD", NULL, 0);
    if (rc < 0) {
        add(r, "head", FAIL, "9110", "9.3.2", "HEAD: the exchange failed: %s", cx->resp->error);
    } else {
        static const char *const same[] = {"ETag", "Last-Modified", "Content-Type"};
        char a[256], b[256];
        /* Room for every field of same[] and Content-Length to differ with full values, each
         * with its name and quotes, so no difference is cut from the report. */
        char diff[(sizeof(same) / sizeof(same[0]) + 1) * (sizeof(a) + sizeof(b) + 48)] = "";
        size_t k = 0;
        for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
            bool pa = value_of(base->headers, base->n_headers, same[i], a, sizeof(a));
            bool pb = value_of(cx->resp->headers, cx->resp->n_headers, same[i], b, sizeof(b));
            if (pa != pb || strcmp(a, b) != 0) {
                int n = snprintf(diff + k, sizeof(diff) - k, "%s%s: GET '%s', HEAD '%s'",
                                 k ? "; " : "", same[i], a, b);
                if (n > 0)
                    k += (size_t)n < sizeof(diff) - k ? (size_t)n : sizeof(diff) - k - 1;
            }
        }
        if (value_of(cx->resp->headers, cx->resp->n_headers, "Content-Length", b, sizeof(b))) {
            snprintf(a, sizeof(a), "%" PRIu64, r->length);
            if (strcmp(a, b) != 0)
                snprintf(diff + k, sizeof(diff) - k,
                         "%sContent-Length: HEAD '%s', GET sent %s bytes", k ? "; " : "", b, a);
        }
        if (cx->resp->status != 200)
            add(r, "head", FAIL, "9110", "9.3.2", "HEAD -> %d, GET -> 200", cx->resp->status);
        else if (cx->resp->body_bytes > 0)
            add(r, "head", FAIL, "9110", "9.3.2", "HEAD answered with %" PRIu64 " bytes of content",
                cx->resp->body_bytes);
        else if (diff[0])
            /* §9.3.2: the same fields SHOULD be sent; a server may leave some out. */
            add(r, "head", WARN, "9110", "9.3.2", "HEAD disagrees with GET: %s", diff);
        else
            add(r, "head", PASS, "9110", "9.3.2",
                "HEAD agrees with GET (ETag, Last-Modified, Content-Type, Content-Length)");
    }

    /* The bytes of a 304 (§15.4.5) */
    if (have_etag) {
        struct nm_header h1[] = {H("If-None-Match", r->etag)};
        check_304_shape(cx, r, h1, "If-None-Match: <the ETag>", base);
    } else if (have_lm) {
        struct nm_header h1[] = {H("If-Modified-Since", r->last_modified)};
        check_304_shape(cx, r, h1, "If-Modified-Since: <Last-Modified>", base);
    }
out:
    nm_client_response_cleanup(base);
    free(base);
}

/* Replica agreement: the load-balancer problem (validators that differ per backend). */
static void check_replicas(struct ctx *cx, struct report *reports, size_t n, struct report *out)
{
    char list[1500];
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += reports[i].got_200;
    if (ok < 2) {
        add(out, "replicas", FAIL, "9110", "8.8", "fewer than two backends answered 200");
        return;
    }
    static const struct {
        const char *check;
        const char *section;
        size_t offset;
        const char *label;
    } fields[] = {
        {"replicas.etag", "8.8.3", offsetof(struct report, etag), "ETag"},
        {"replicas.last-modified", "8.8.2", offsetof(struct report, last_modified),
         "Last-Modified"},
        {"replicas.content", "8.8.3", offsetof(struct report, hash), "content"},
    };
    bool etags_agree = true;
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        const char *first = NULL;
        bool agree = true;
        list[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            if (!reports[i].got_200)
                continue;
            const char *v = (const char *)&reports[i] + fields[f].offset;
            if (!first)
                first = v;
            else if (strcmp(first, v) != 0)
                agree = false;
            char shown[300];
            if (fields[f].offset == offsetof(struct report, hash))
                snprintf(shown, sizeof(shown), "%" PRIu64 " bytes, hash %s", reports[i].length, v);
            else
                snprintf(shown, sizeof(shown), "%s", v[0] ? v : "(none)");
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s: %s",
                     list[0] ? "; " : "", reports[i].backend, shown);
        }
        if (f == 0)
            etags_agree = agree;
        if (agree)
            add(out, fields[f].check, PASS, "9110", fields[f].section,
                "every backend sends the same %s", fields[f].label);
        else
            add(out, fields[f].check, f == 1 && etags_agree && first && first[0] ? WARN : FAIL,
                "9110", fields[f].section, "backends disagree on %s: %s", fields[f].label, list);
    }
    /* One backend's ETag presented to every other: the revalidation a client makes when the
     * balancer sends it elsewhere. */
    const struct report *ref = NULL;
    for (size_t i = 0; i < n && !ref; i++)
        if (reports[i].got_200 && reports[i].etag[0])
            ref = &reports[i];
    if (!ref)
        return;
    list[0] = '\0';
    bool all = true;
    for (size_t i = 0; i < n; i++) {
        if (&reports[i] == ref || !reports[i].reachable)
            continue;
        struct nm_header h[] = {H("If-None-Match", ref->etag)};
        int rc = probe(cx, &reports[i], "GET", h, 1);
        int st = rc < 0 ? 0 : cx->resp->status;
        if (st != 304)
            all = false;
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s -> %d",
                 list[0] ? "; " : "", reports[i].backend, st);
    }
    add(out, "replicas.revalidate", all ? PASS : FAIL, "9110", "13.1.2",
        "If-None-Match: %s from %s sent to the others: %s%s", ref->etag, ref->backend, list,
        all ? "" : " (clients moved between backends download again)");
}

static void json_str(const char *s)
{
    struct nm_slice in = nm_slice_from_cstr(s);
    char piece[256];
    putchar('"');
    while (in.len > 0) {
        size_t used;
        fwrite(piece, 1, nm_json_escape(in, piece, sizeof(piece), &used), stdout);
        in.ptr += used;
        in.len -= used;
    }
    putchar('"');
}

static void print_json_findings(const struct report *r)
{
    printf("[");
    for (size_t i = 0; i < r->n; i++) {
        const struct finding *f = &r->findings[i];
        printf("%s\n      {\"check\": ", i ? "," : "");
        json_str(f->check);
        printf(", \"result\": \"%s\", \"rfc\": \"RFC %s\", \"section\": ", level_names[f->level],
               f->rfc);
        json_str(f->section);
        printf(", \"message\": ");
        json_str(f->text);
        printf("}");
    }
    printf("%s]", r->n ? "\n    " : "");
}

static void print_json(struct report *reports, size_t n, struct report *replicas, size_t n_rep,
                       const size_t counts[3])
{
    printf("{\n  \"tool\": \"notmod check\",\n  \"version\": \"%s\",\n  \"targets\": [",
           NM_VERSION);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n    {\"url\": ", i ? "," : "");
        json_str(reports[i].url);
        printf(", \"backend\": ");
        if (reports[i].backend)
            json_str(reports[i].backend);
        else
            printf("null");
        printf(", \"reachable\": %s,\n    \"findings\": ", reports[i].reachable ? "true" : "false");
        print_json_findings(&reports[i]);
        printf("}");
    }
    printf("\n  ],\n  \"replicas\": [");
    for (size_t i = 0; i < n_rep; i++) {
        printf("%s\n    {\"url\": ", i ? "," : "");
        json_str(replicas[i].url);
        printf(",\n    \"findings\": ");
        print_json_findings(&replicas[i]);
        printf("}");
    }
    printf("%s],\n  \"summary\": {\"pass\": %zu, \"warn\": %zu, \"fail\": %zu}\n}\n",
           n_rep ? "\n  " : "", counts[PASS], counts[WARN], counts[FAIL]);
}

static void print_table(const struct report *r, const char *title)
{
    printf("%s\n", title);
    printf("  %-6s %-24s %-18s %s\n", "RESULT", "CHECK", "SECTION", "FINDING");
    for (size_t i = 0; i < r->n; i++) {
        const struct finding *f = &r->findings[i];
        char sec[32];
        snprintf(sec, sizeof(sec), "RFC %s §%s", f->rfc, f->section);
        /* "§" is two bytes: pad one more so the columns line up on a terminal. */
        printf("  %-6s %-24s %-19s %s\n", level_names[f->level], f->check, sec, f->text);
    }
    printf("\n");
}

static int parse_backends(struct opts *o, const char *arg)
{
    if (strlen(arg) >= sizeof(o->backends_buf))
        return -EINVAL;
    strcpy(o->backends_buf, arg);
    char *save = NULL;
    for (char *t = strtok_r(o->backends_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        char *end;
        if (!colon || colon == t)
            return -EINVAL;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535 || o->n_backends == MAX_BACKENDS)
            return -EINVAL;
        o->backends[o->n_backends++] = t;
    }
    return o->n_backends ? 0 : -EINVAL;
}

int nm_cmd_check(int argc, char **argv)
{
    static const struct option longs[] = {
        {"backends", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts *o = calloc(1, sizeof(*o));
    if (!o)
        return NM_EXIT_FAILURE;
    o->timeout_s = 10;
    optind = 1;
    int c, status = NM_EXIT_USAGE;
    while ((c = nm__cli_getopt("check", argc, argv, "h", longs)) != -1) {
        char *end;
        switch (c) {
        case 'h':
            usage(stdout);
            status = NM_EXIT_OK;
            goto out_opts;
        case 'j':
            o->json = true;
            break;
        case 'b':
            if (parse_backends(o, optarg) < 0) {
                fprintf(stderr,
                        "notmod check: --backends wants HOST:PORT[,HOST:PORT...] (at "
                        "most %d)\n",
                        MAX_BACKENDS);
                goto out_opts;
            }
            break;
        case 't':
            o->timeout_s = strtol(optarg, &end, 10);
            if (*end || o->timeout_s <= 0 || o->timeout_s > 3600) {
                fprintf(stderr, "notmod check: --timeout wants seconds (1-3600)\n");
                goto out_opts;
            }
            break;
        default: /* named by nm__cli_getopt */
            goto out_opts;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "notmod check: expected at least one URL (see notmod check --help)\n");
        goto out_opts;
    }
    size_t n_urls = (size_t)(argc - optind);
    char(*urls)[NM_CLIENT_URL_MAX] = calloc(n_urls, sizeof(*urls));
    if (!urls) {
        status = NM_EXIT_FAILURE;
        goto out_opts;
    }
    if (nm_client_global_init() < 0) {
        status = NM_EXIT_FAILURE;
        goto out_urls;
    }
    for (size_t i = 0; i < n_urls; i++) {
        int rc = nm_client_url_normalize(argv[optind + (int)i], urls[i], sizeof(urls[i]));
        if (rc < 0) {
            fprintf(stderr, "notmod check: '%s' is not a valid http or https URL\n",
                    argv[optind + (int)i]);
            goto out_global;
        }
    }
    size_t per_url = o->n_backends ? o->n_backends : 1;
    size_t n_reports = n_urls * per_url;
    struct report *reports = calloc(n_reports, sizeof(*reports));
    struct report *replicas = calloc(n_urls, sizeof(*replicas));
    struct ctx cx = {.o = o};
    cx.resp = malloc(sizeof(*cx.resp));
    if (cx.resp)
        nm_client_response_init(cx.resp);
    cx.hash = XXH3_createState();
    if (!reports || !replicas || !cx.resp || !cx.hash || nm_client_init(&cx.client) < 0) {
        status = NM_EXIT_FAILURE;
        goto out_all;
    }
    for (size_t u = 0; u < n_urls; u++) {
        for (size_t b = 0; b < per_url; b++) {
            struct report *r = &reports[u * per_url + b];
            r->url = urls[u];
            r->backend = o->n_backends ? o->backends[b] : NULL;
            check_target(&cx, r);
        }
        if (o->n_backends) {
            replicas[u].url = urls[u];
            check_replicas(&cx, &reports[u * per_url], per_url, &replicas[u]);
        }
    }
    size_t counts[3] = {0};
    bool unreachable = false;
    for (size_t i = 0; i < n_reports; i++) {
        unreachable |= !reports[i].reachable;
        for (size_t k = 0; k < reports[i].n; k++)
            counts[reports[i].findings[k].level]++;
    }
    size_t n_rep = o->n_backends ? n_urls : 0;
    for (size_t i = 0; i < n_rep; i++)
        for (size_t k = 0; k < replicas[i].n; k++)
            counts[replicas[i].findings[k].level]++;
    if (o->json) {
        print_json(reports, n_reports, replicas, n_rep, counts);
    } else {
        for (size_t i = 0; i < n_reports; i++) {
            char title[NM_CLIENT_URL_MAX + 64];
            if (reports[i].backend)
                snprintf(title, sizeof(title), "%s (backend %s)", reports[i].url,
                         reports[i].backend);
            else
                snprintf(title, sizeof(title), "%s", reports[i].url);
            print_table(&reports[i], title);
        }
        for (size_t i = 0; i < n_rep; i++) {
            char title[NM_CLIENT_URL_MAX + 64];
            snprintf(title, sizeof(title), "%s (replicas compared)", replicas[i].url);
            print_table(&replicas[i], title);
        }
        printf("summary: %zu PASS, %zu WARN, %zu FAIL\n", counts[PASS], counts[WARN], counts[FAIL]);
    }
    status = unreachable ? NM_EXIT_NETWORK : counts[FAIL] ? NM_EXIT_FAILURE : NM_EXIT_OK;

out_all:
    if (cx.resp) {
        nm_client_response_cleanup(cx.resp);
        free(cx.resp);
    }
    if (cx.hash)
        XXH3_freeState(cx.hash);
    nm_client_cleanup(&cx.client);
    free(reports);
    free(replicas);
out_global:
    nm_client_global_cleanup();
out_urls:
    free(urls);
out_opts:
    free(o);
    return status;
}
