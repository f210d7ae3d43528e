/* The probes of notmod check, each driven with canned answers (RFC 9110 §13, §15.4.5, §14, §9.3.2
 * and the content codings of §8.4, §8.8.3, §12.5.5 as tables), the probe table itself, and the
 * replica comparison (§8.8). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/probes.h"
#include "fixture.h"

#define NOW 1000000000LL /* Sun, 09 Sep 2001 01:46:40 GMT */
#define D_NOW "Sun, 09 Sep 2001 01:46:40 GMT"
#define D_LM "Thu, 30 Aug 2001 01:45:00 GMT"
#define D_LM_850 "Thursday, 30-Aug-01 01:45:00 GMT"
#define D_LATER "Mon, 10 Sep 2001 01:46:40 GMT"
#define LEN 10 /* bytes of the first GET's content */
/* The first GET's 200 of most rows: every validator and caching field, well-formed. */
#define BASE                                                                                       \
    "Date: " D_NOW "\nETag: \"v1\"\nLast-Modified: " D_LM                                          \
    "\nCache-Control: max-age=60\nContent-Type: text/plain"
#define NO_FINDING (-1)
#define HASH_ID "0123456789abcdef0123456789abcdef" /* the first GET's content hash */
#define HASH_OTHER "fedcba9876543210fedcba9876543210"

struct row {
    const char *id;
    const char *base; /* the first GET's header lines (BASE when NULL) */
    int base_status;  /* 0: 200; negative: the first GET failed with that errno */
    bool ranges;      /* the range probe got a 206 */
    int status;       /* the probe's answer */
    const char *answer;
    uint64_t body;       /* its content bytes (of a raw answer: bytes after the head) */
    int err;             /* its exchange's errno */
    int want;            /* the level of the one finding, or NO_FINDING */
    const char *section; /* the finding's section when not the probe's own */
    const char *text;    /* a part of the finding's text */
    const char *sent;    /* the first field line sent, "Name: value", or NULL */
    /* The answer to every send after the first, when then_status is set. */
    int then_status;
    const char *then_answer;
    const char *bytes;     /* the answer's content (body_bytes long), or NULL */
    const char *sent_all;  /* a part of the last request's field lines, "Name: value\n"... */
    const char *decodes;   /* the codings VIA_DECODED decodes, or NULL */
    int then_err;          /* the errno of every send after the first, when then_status is set */
    const char *then_hash; /* the hash of those answers' (decoded) content */
};

/* The canned side of one exchange. */
struct canned {
    const struct row *row;
    struct nm_http1_field fields[8];
    size_t n_sends;
    char sent[256];
    char sent_all[1024];
    const char *method;
    enum nm_probe_via via;
};

static void send_canned(void *io, enum nm_probe_via via, const char *method,
                        const struct nm_http1_field *fields, size_t n, struct nm_probe_answer *out)
{
    struct canned *c = io;
    c->via = via;
    c->n_sends++;
    c->method = method;
    if (n > 0)
        snprintf(c->sent, sizeof(c->sent), "%.*s: %.*s", (int)fields[0].name.len,
                 fields[0].name.ptr, (int)fields[0].value.len, fields[0].value.ptr);
    c->sent_all[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(c->sent_all + strlen(c->sent_all), sizeof(c->sent_all) - strlen(c->sent_all),
                 "%.*s: %.*s\n", (int)fields[i].name.len, fields[i].name.ptr,
                 (int)fields[i].value.len, fields[i].value.ptr);
    bool then = c->n_sends > 1 && c->row->then_status;
    int err = then && c->row->then_err ? c->row->then_err : c->row->err;
    *out = (struct nm_probe_answer){
        .err = err,
        .error = err ? strerror(-err) : "",
        .status = then ? c->row->then_status : c->row->status,
        .reason = "",
        .fields = c->fields,
        .n_fields = fields_of(then ? c->row->then_answer : c->row->answer, c->fields, 8),
        .body_bytes = then ? 0 : c->row->body,
    };
    if (!then && c->row->bytes)
        nm_probe_body_feed(&out->body, c->row->bytes, c->row->body);
    if (then && c->row->then_hash)
        snprintf(out->hash, sizeof(out->hash), "%s", c->row->then_hash);
}

static void run_row(size_t i, const struct row *row)
{
    const struct nm_probe *p = nm_probe_find(row->id);
    cr_assert_not_null(p, "row %zu: no probe %s", i, row->id);
    struct nm_http1_field base_fields[8];
    struct nm_probe_answer base = {
        .err = row->base_status < 0 ? row->base_status : 0,
        .error = row->base_status < 0 ? strerror(-row->base_status) : "",
        .status = row->base_status < 0 ? 0
                  : row->base_status   ? row->base_status
                                       : 200,
        .reason = "",
        .fields = base_fields,
        .n_fields = fields_of(row->base ? row->base : BASE, base_fields, 8),
        .body_bytes = LEN,
    };
    struct nm_probe_report *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    nm_probe_learn(r, &base, NOW);
    r->ranges = row->ranges;
    snprintf(r->hash, sizeof(r->hash), "%s", HASH_ID);
    struct canned c = {.row = row};
    struct nm_probe_ctx ctx = {
        .r = r, .base = &base, .send = send_canned, .io = &c, .decodes = row->decodes};
    nm_probe_run(p, &ctx);
    if (row->want == NO_FINDING) {
        cr_expect_eq(r->n, 0, "row %zu (%s): %s", i, row->id, r->n ? r->findings[0].text : "");
    } else {
        cr_assert_eq(r->n, 1, "row %zu (%s): %zu findings", i, row->id, r->n);
        const struct nm_probe_finding *f = &r->findings[0];
        cr_expect_str_eq(f->check, row->id, "row %zu", i);
        cr_expect_eq((int)f->level, row->want, "row %zu (%s): %s", i, row->id, f->text);
        cr_expect_str_eq(f->section, row->section ? row->section : p->section, "row %zu", i);
        cr_expect_not_null(strstr(f->text, row->text), "row %zu (%s): %s", i, row->id, f->text);
    }
    if (row->sent)
        cr_expect_str_eq(c.sent, row->sent, "row %zu (%s)", i, row->id);
    if (row->sent_all)
        cr_expect_not_null(strstr(c.sent_all, row->sent_all), "row %zu (%s): %s", i, row->id,
                           c.sent_all);
    free(r);
}

#define P NM_PROBE_PASS
#define W NM_PROBE_WARN
#define F NM_PROBE_FAIL

Test(probes, the_first_get_its_validators_and_caching_fields_are_graded)
{
    static const struct row rows[] = {
        {"fetch", .base_status = -ECONNREFUSED, .want = F, .text = "GET failed"},
        {"fetch", .want = NO_FINDING},
        {"get", .base_status = 404, .want = F, .text = "GET answered 404"},
        /* A redirect names where to look instead. */
        {"get", .base_status = 301, .base = "Location: /dir/", .want = F,
         .text = "301  with Location: /dir/"},
        {"get", .want = P, .text = "GET -> 200, 10 bytes"},
        {"date", .base = "ETag: \"v1\"", .want = F, .text = "no Date"},
        {"date", .base = "Date: yesterday", .want = F, .text = "not one valid HTTP-date"},
        {"date", .want = P, .text = "valid HTTP-date"},
        /* §8.8.3: SHOULD send an ETag, MUST send it well-formed */
        {"etag", .base = "Date: " D_NOW, .want = W, .text = "no ETag"},
        {"etag", .base = "ETag: v1", .want = F, .text = "not one valid entity-tag"},
        {"etag", .base = "ETag: \"a\"\nETag: \"b\"", .want = F, .text = "\"a\", \"b\""},
        {"etag", .want = P, .text = "ETag \"v1\" is well-formed"},
        {"etag.strength", .base = "ETag: W/\"v1\"", .want = W, .text = "weak ETag"},
        {"etag.strength", .want = P, .text = "strong ETag"},
        {"etag.strength", .base = "ETag: v1", .want = NO_FINDING},
        {"last-modified", .base = "Date: " D_NOW, .want = W, .text = "no Last-Modified"},
        {"last-modified", .base = "Last-Modified: yesterday", .want = F, .text = "not a valid"},
        {"last-modified", .base = "Last-Modified: " D_LM_850, .want = W, .section = "5.6.7",
         .text = "not in the IMF-fixdate form"},
        {"last-modified", .want = P, .text = "well-formed"},
        {"last-modified.date", .base = "Date: " D_NOW "\nLast-Modified: " D_LATER, .want = F,
         .text = "86400 s after Date"},
        {"last-modified.date", .want = P, .text = "not after Date"},
        {"last-modified.date", .base = "Last-Modified: " D_LM, .want = NO_FINDING},
        {"cache-control", .base = "Cache-Control: max-age=1, max-age=2", .want = W,
         .text = "malformed or conflicting"},
        {"cache-control", .base = "Expires: " D_LATER, .want = P, .section = "5.3",
         .text = "but Expires"},
        {"cache-control", .base = "Date: " D_NOW, .want = W, .section = "4.2.2",
         .text = "heuristic freshness"},
        {"cache-control", .want = P, .text = "Cache-Control: max-age=60"},
        /* Only the first GET's own probes run when it did not answer 200. */
        {"date", .base_status = 404, .want = NO_FINDING},
        {"inm.match", .base_status = 500, .status = 304, .want = NO_FINDING},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

Test(probes, conditional_requests_are_graded_by_their_status)
{
    static const struct row rows[] = {
        {"inm.match", .status = 304, .want = P, .text = "If-None-Match: <the ETag> -> 304",
         .sent = "If-None-Match: \"v1\""},
        {"inm.match", .status = 200, .want = F, .text = "-> 200, expected 304"},
        {"inm.match", .err = -ETIMEDOUT, .want = F, .text = "the exchange failed"},
        {"inm.match", .base = "Date: " D_NOW, .status = 304, .want = NO_FINDING},
        {"inm.weak", .status = 304, .want = P, .sent = "If-None-Match: W/\"v1\"", .text = "W/"},
        {"inm.weak", .base = "ETag: W/\"v1\"", .status = 200, .want = F,
         .sent = "If-None-Match: \"v1\"", .text = "weak comparison"},
        {"inm.list", .status = 304, .want = P,
         .sent = "If-None-Match: " NM_PROBE_NOMATCH_TAG ", \"v1\"", .text = "-> 304"},
        {"inm.star", .status = 304, .want = P, .sent = "If-None-Match: *", .text = "-> 304"},
        {"inm.other", .status = 304, .want = F, .sent = "If-None-Match: " NM_PROBE_NOMATCH_TAG,
         .text = "keep content it does not have"},
        /* §13.1.3: a SHOULD */
        {"ims.match", .status = 200, .want = W, .sent = "If-Modified-Since: " D_LM,
         .text = "expected 304"},
        {"ims.older", .status = 304, .want = F,
         .sent = "If-Modified-Since: Wed, 29 Aug 2001 01:45:00 GMT", .text = "expected 200"},
        {"ims.older", .base = "Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT", .status = 200,
         .want = NO_FINDING},
        {"precedence.stale-etag", .status = 304, .want = F,
         .sent = "If-None-Match: " NM_PROBE_NOMATCH_TAG, .text = "a changed ETag"},
        {"precedence.current-etag", .status = 200, .want = F, .sent = "If-None-Match: \"v1\"",
         .text = "let the date override a matching ETag"},
        {"precedence.current-etag", .base = "ETag: \"v1\"", .status = 304, .want = NO_FINDING},
        {"if-match.other", .status = 200, .want = F, .sent = "If-Match: " NM_PROBE_NOMATCH_TAG,
         .text = "expected 412"},
        {"if-match.current", .status = 200, .want = P, .sent = "If-Match: \"v1\"",
         .text = "-> 200"},
        {"if-match.current", .base = "ETag: W/\"v1\"", .status = 200, .want = F,
         .text = "If-Match: <the weak ETag> -> 200, expected 412"},
        {"ius.older", .status = 412, .want = P, .text = "-> 412"},
        {"ius.older", .status = 200, .want = F, .text = "expected 412"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

Test(probes, ranges_if_range_and_head_are_graded)
{
    static const struct row rows[] = {
        {"range", .status = 206, .answer = "Content-Range: bytes 0-0/10", .body = 1, .want = P,
         .sent = "Range: bytes=0-0", .text = "-> 206"},
        {"range", .status = 206, .answer = "Content-Range: bytes 0-0/11", .body = 1, .want = F,
         .section = "14.4", .text = "expected 'bytes 0-0/10' and 1 byte"},
        {"range", .status = 200, .want = W, .text = "downloads cannot resume"},
        {"range", .status = 500, .want = F, .text = "-> 500"},
        {"if-range.current", .ranges = true, .status = 206, .want = P, .sent = "Range: bytes=0-0",
         .text = "If-Range: <the ETag>"},
        /* §13.1.5: a SHOULD */
        {"if-range.current", .ranges = true, .base = "ETag: W/\"v1\"\nLast-Modified: " D_LM,
         .status = 200, .want = W, .text = "If-Range: <Last-Modified> -> 200"},
        {"if-range.current", .status = 206, .want = NO_FINDING},
        {"if-range.stale", .ranges = true, .status = 206, .want = F, .text = "splices"},
        {"head", .status = 200, .answer = BASE, .want = P, .text = "HEAD agrees with GET"},
        {"head", .status = 200, .answer = BASE, .body = 10, .want = F,
         .text = "10 bytes of content"},
        {"head", .status = 200, .answer = "ETag: \"v1\"\nLast-Modified: " D_LM, .want = W,
         .text = "Content-Type: GET 'text/plain', HEAD ''"},
        {"head", .status = 200, .answer = BASE "\nContent-Length: 9", .want = W,
         .text = "Content-Length: HEAD '9', GET sent 10 bytes"},
        {"head", .status = 405, .want = F, .text = "HEAD -> 405"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

Test(probes, the_bytes_of_a_304_are_graded)
{
    static const struct row rows[] = {
        {"304.shape", .err = -EBADMSG, .want = F, .text = "no readable response"},
        {"304.shape", .status = 304, .want = NO_FINDING, .sent = "If-None-Match: \"v1\""},
        {"304.shape", .base = "Last-Modified: " D_LM, .status = 304, .want = NO_FINDING,
         .sent = "If-Modified-Since: " D_LM},
        {"304.etag", .status = 304, .answer = "Date: " D_NOW, .want = F, .text = "has no ETag"},
        {"304.etag", .status = 304, .answer = "ETag: \"v2\"", .want = F, .text = "ETag \"v2\""},
        {"304.etag", .status = 304, .answer = "ETag: \"v1\"", .want = P, .text = "carries"},
        {"304.etag", .status = 200, .answer = "ETag: \"v2\"", .want = NO_FINDING},
        {"304.fields", .status = 304, .answer = "Date: " D_NOW, .want = F,
         .text = "lacks Cache-Control"},
        {"304.fields", .status = 304, .answer = "Date: " D_NOW "\nCache-Control: max-age=60",
         .want = P, .text = "repeats the 200's Date, Cache-Control"},
        {"304.body", .status = 304, .body = 10, .want = F, .text = "10 bytes follow"},
        {"304.body", .status = 304, .want = P, .text = "no content"},
        {"304.content-type", .status = 304, .answer = "Content-Type: text/plain", .want = W,
         .text = "Content-Type: text/plain"},
        {"304.content-type", .status = 304, .want = P, .text = "no Content-Type"},
        {"304.content-length", .status = 304, .answer = "Content-Length: 0", .want = F,
         .text = "only the 200's length (10)"},
        {"304.content-length", .status = 304, .answer = "Content-Length: 10", .want = P,
         .text = "equals"},
        {"304.content-length", .status = 304, .want = P, .text = "no Content-Length"},
        {"304.content-length", .base = "Date: " D_NOW, .status = 304, .want = NO_FINDING},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

/* The first GET's 200 that says it varies by Accept-Encoding. */
#define BASE_VARY BASE "\nVary: Accept-Encoding"
#define GZ_200 "Content-Encoding: gzip\nETag: \"v1-gz\"\nVary: Accept-Encoding"
/* "0123456789" (LEN bytes) as one gzip member, mtime 0. */
#define GZ_BYTES                                                                                   \
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x33\x30\x34\x32\x36\x31\x35\x33\xb7\xb0\x04\x00"     \
    "\xc6\xc7\x84\xa6\x0a\x00\x00\x00"
/* The same member with an ISIZE of 11: made from other content than the identity's. */
#define GZ_BYTES_11                                                                                \
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x33\x30\x34\x32\x36\x31\x35\x33\xb7\xb0\x04\x00"     \
    "\xc6\xc7\x84\xa6\x0b\x00\x00\x00"

Test(probes, content_codings_keep_their_own_validators_and_vary)
{
    static const struct row rows[] = {
        /* §8.8.3: a strong tag names one representation's bytes. */
        {"coding.etag", .status = 200, .answer = GZ_200, .want = P,
         .text = "one per representation", .sent = "Accept-Encoding: gzip"},
        {"coding.etag", .status = 200, .answer = "Content-Encoding: gzip\nETag: \"v1\"", .want = F,
         .text = "share the strong ETag \"v1\""},
        {"coding.etag", .base = "ETag: W/\"v1\"", .status = 200,
         .answer = "Content-Encoding: gzip\nETag: W/\"v1\"", .want = P, .section = "8.8.1",
         .text = "weak"},
        {"coding.etag", .status = 200, .answer = "Content-Encoding: gzip", .want = P,
         .text = "no ETag"},
        {"coding.etag", .status = 200, .answer = "ETag: \"v1\"", .want = NO_FINDING},
        {"coding.etag", .base = "Date: " D_NOW, .status = 200, .answer = GZ_200,
         .want = NO_FINDING},
        {"coding.etag", .err = -ECONNRESET, .want = F, .text = "the exchange failed"},
        /* §12.5.5: a coded 200 without Vary is served by caches to clients that cannot decode
         * it; an identity 200 without it is a SHOULD. */
        {"coding.vary", .base = BASE_VARY, .status = 200, .answer = GZ_200, .want = P,
         .text = "Vary: Accept-Encoding on the identity and gzip 200s"},
        {"coding.vary", .base = BASE_VARY, .status = 200,
         .answer = "Content-Encoding: gzip\nVary: Origin", .want = F, .text = "no Vary"},
        {"coding.vary", .status = 200, .answer = GZ_200, .want = W,
         .text = "identity 200 has no Vary"},
        {"coding.vary", .base = BASE_VARY, .status = 200,
         .answer = "Content-Encoding: gzip\nVary: *", .want = P, .text = "Vary"},
        {"coding.vary", .base = BASE "\nContent-Encoding: gzip", .status = 200,
         .answer = "ETag: \"v1\"", .want = F, .text = "Content-Encoding: gzip and no Vary"},
        {"coding.vary", .base = BASE "\nContent-Encoding: gzip", .status = 200, .answer = GZ_200,
         .want = F, .text = "first GET's 200 has Content-Encoding: gzip"},
        {"coding.vary", .status = 200, .answer = "ETag: \"v1\"", .want = NO_FINDING},
        /* §15.4.5: the 304 names the representation the 200 to the same request would be. */
        {"coding.304", .status = 200, .answer = GZ_200, .then_status = 304,
         .then_answer = "ETag: \"v1-gz\"\nVary: Accept-Encoding", .want = P,
         .text = "names the gzip 200's ETag",
         .sent_all = "Accept-Encoding: gzip\nIf-None-Match: \"v1\", \"v1-gz\"\n"},
        {"coding.304", .status = 200, .answer = GZ_200, .then_status = 304,
         .then_answer = "ETag: \"v1\"", .want = F, .text = "names \"v1\""},
        {"coding.304", .status = 200, .answer = GZ_200, .then_status = 304, .then_answer = "",
         .want = F, .text = "no ETag"},
        {"coding.304", .status = 200, .answer = GZ_200, .then_status = 200, .then_answer = GZ_200,
         .want = F, .section = "13.1.2", .text = "expected 304"},
        {"coding.304", .status = 200, .answer = "ETag: \"v1\"", .want = NO_FINDING},
        {"coding.304.vary", .status = 200, .answer = GZ_200, .then_status = 304,
         .then_answer = "ETag: \"v1-gz\"\nVary: Accept-Encoding", .want = P, .text = "sends Vary"},
        {"coding.304.vary", .status = 200, .answer = GZ_200, .then_status = 304,
         .then_answer = "ETag: \"v1-gz\"", .want = W, .text = "no Vary"},
        {"coding.304.vary", .status = 200, .answer = GZ_200, .then_status = 200,
         .then_answer = GZ_200, .want = NO_FINDING},
        /* §13.1.5, §14.2: a range answers for the representation its validator names. */
        {"coding.if-range", .ranges = true, .status = 206,
         .answer = "Content-Encoding: gzip\nContent-Range: bytes 0-0/30", .want = F,
         .text = "a range of another representation",
         .sent_all = "Accept-Encoding: gzip\nRange: bytes=0-0\nIf-Range: \"v1\"\n"},
        {"coding.if-range", .ranges = true, .status = 206, .answer = "Content-Range: bytes 0-0/10",
         .want = P, .text = "-> 206 identity"},
        {"coding.if-range", .ranges = true, .status = 200, .answer = GZ_200, .want = P,
         .text = "-> 200, Content-Encoding: gzip"},
        {"coding.if-range", .ranges = true, .status = 416, .want = F, .text = "expected 200"},
        {"coding.if-range", .status = 206, .want = NO_FINDING},
        {"coding.if-range", .ranges = true, .base = "ETag: W/\"v1\"", .status = 206,
         .want = NO_FINDING},
        /* §8.4.1: the content is in the coding it names; gzip's ISIZE is the decoded length. */
        {"coding.body", .status = 200, .answer = GZ_200, .body = 30, .bytes = GZ_BYTES, .want = P,
         .text = "identity length (10 bytes)"},
        {"coding.body", .status = 200, .answer = GZ_200, .body = 30, .bytes = GZ_BYTES_11,
         .want = F, .text = "decodes to 11 bytes"},
        {"coding.body", .status = 200, .answer = GZ_200, .body = LEN, .bytes = "0123456789",
         .want = F, .text = "not a gzip member"},
        {"coding.body", .status = 200, .answer = "Content-Encoding: deflate", .body = 4,
         .bytes = "\x78\x9c\x33\x30", .want = P, .text = "zlib stream"},
        {"coding.body", .status = 200, .answer = "Content-Encoding: deflate", .body = 4,
         .bytes = "\x1f\x8b\x08\x00", .want = F, .text = "not a zlib stream"},
        {"coding.body", .status = 200, .answer = "Content-Encoding: br", .body = 4, .bytes = "abcd",
         .want = F, .section = "12.5.3", .text = "did not accept"},
        {"coding.body", .status = 200, .answer = "ETag: \"v1\"", .want = NO_FINDING},
        /* §8.4: decoded by the client, the coded content is the identity content. */
        {"coding.body", .decodes = "deflate, gzip", .status = 200, .answer = GZ_200, .body = 30,
         .bytes = GZ_BYTES, .then_status = 200, .then_answer = GZ_200, .then_hash = HASH_ID,
         .want = P, .text = "gzip content decodes to the identity content's bytes",
         .sent_all = "Accept-Encoding: gzip\n"},
        {"coding.body", .decodes = "deflate, gzip", .status = 200, .answer = GZ_200, .body = 30,
         .bytes = GZ_BYTES, .then_status = 200, .then_answer = GZ_200, .then_hash = HASH_OTHER,
         .want = F, .section = "8.4", .text = "decodes to other bytes than the identity body"},
        {"coding.body", .decodes = "deflate, gzip", .status = 200, .answer = GZ_200, .body = 30,
         .bytes = GZ_BYTES, .then_status = 200, .then_answer = GZ_200, .then_err = -EBADMSG,
         .want = F, .text = "Content-Encoding: gzip does not decode"},
        {"coding.body", .decodes = "deflate, gzip", .status = 200, .answer = GZ_200, .body = 30,
         .bytes = GZ_BYTES, .then_status = 200, .then_answer = GZ_200, .then_err = -ECONNRESET,
         .want = F, .text = "the exchange failed"},
        /* Not a gzip member: no decoding asked for. */
        {"coding.body", .decodes = "gzip", .status = 200, .answer = GZ_200, .body = LEN,
         .bytes = "0123456789", .want = F, .text = "not a gzip member"},
        /* br and zstd are asked for on their own when the client decodes them. */
        {"coding.body", .decodes = "gzip, br", .status = 200, .answer = "ETag: \"v1\"",
         .then_status = 200, .then_answer = "Content-Encoding: br", .then_hash = HASH_ID, .want = P,
         .text = "br content decodes", .sent_all = "Accept-Encoding: br\n"},
        {"coding.body", .decodes = "zstd", .status = 200, .answer = "ETag: \"v1\"",
         .then_status = 200, .then_answer = "Content-Encoding: zstd", .then_hash = HASH_OTHER,
         .want = F, .section = "8.4", .text = "zstd body decodes to other bytes"},
        {"coding.body", .decodes = "br", .status = 200, .answer = "ETag: \"v1\"",
         .then_status = 200, .then_answer = "Content-Encoding: gzip", .want = F,
         .section = "12.5.3", .text = "Accept-Encoding: br got Content-Encoding: gzip"},
        {"coding.body", .decodes = "br", .status = 200, .answer = "ETag: \"v1\"",
         .then_status = 200, .then_answer = "ETag: \"v1\"", .want = NO_FINDING},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        run_row(i, &rows[i]);
}

Test(probes, the_first_and_last_bytes_of_content_are_kept_however_it_arrives)
{
    static const char content[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    static const size_t pieces[] = {1, 3, 7, 36};
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        struct nm_probe_body b = {0};
        for (size_t at = 0; at < sizeof(content) - 1; at += pieces[k]) {
            size_t left = sizeof(content) - 1 - at;
            nm_probe_body_feed(&b, content + at, left < pieces[k] ? left : pieces[k]);
        }
        cr_expect_eq(b.head_len, NM_PROBE_BODY_HEAD, "pieces of %zu", pieces[k]);
        cr_expect_eq(memcmp(b.head, content, NM_PROBE_BODY_HEAD), 0, "pieces of %zu", pieces[k]);
        cr_expect_eq(b.tail_len, NM_PROBE_BODY_TAIL, "pieces of %zu", pieces[k]);
        cr_expect_eq(memcmp(b.tail, "23456789", NM_PROBE_BODY_TAIL), 0, "pieces of %zu", pieces[k]);
    }
    struct nm_probe_body b = {0};
    nm_probe_body_feed(&b, "abc", 3);
    nm_probe_body_feed(&b, "de", 2);
    cr_expect_eq(b.head_len, 5);
    cr_expect_eq(b.tail_len, 5);
    cr_expect_eq(memcmp(b.tail, "abcde", 5), 0);
}

Test(probes, every_probe_has_an_id_a_section_a_level_and_a_function)
{
    cr_assert_gt(nm_probes_count, 0);
    for (size_t i = 0; i < nm_probes_count; i++) {
        const struct nm_probe *p = &nm_probes[i];
        cr_expect(p->level == NM_PROBE_WARN || p->level == NM_PROBE_FAIL, "%s", p->id);
        cr_expect(strcmp(p->rfc, "9110") == 0 || strcmp(p->rfc, "9111") == 0, "%s", p->id);
        cr_expect_not_null(p->section, "%s", p->id);
        cr_expect_not_null(p->run, "%s", p->id);
        cr_expect_eq(nm_probe_find(p->id), p, "%s: ids are unique", p->id);
        if (p->via == NM_PROBE_VIA_PERFORM && p->why)
            cr_expect(p->want >= 200 && p->want < 500, "%s", p->id);
    }
    cr_expect_null(nm_probe_find("no.such.probe"));
}

Test(probes, the_raw_304_is_asked_once_per_target)
{
    static const struct row row = {.status = 304, .answer = "ETag: \"v1\""};
    struct nm_http1_field base_fields[8];
    struct nm_probe_answer base = {.status = 200,
                                   .fields = base_fields,
                                   .n_fields = fields_of(BASE, base_fields, 8),
                                   .body_bytes = LEN};
    struct nm_probe_report *r = calloc(1, sizeof(*r));
    nm_probe_learn(r, &base, NOW);
    struct canned c = {.row = &row};
    struct nm_probe_ctx ctx = {.r = r, .base = &base, .send = send_canned, .io = &c};
    size_t raw = 0;
    for (size_t i = 0; i < nm_probes_count; i++)
        if (nm_probes[i].via == NM_PROBE_VIA_RAW) {
            raw++;
            nm_probe_run(&nm_probes[i], &ctx);
        }
    /* Every VIA_RAW probe asks; the runner answers all from one raw exchange. */
    cr_assert_eq(c.n_sends, raw);
    free(r);
}

/* A replica that answered 200 with these validators and this content hash. */
static struct nm_probe_report replica(const char *backend, const char *etag, const char *lm,
                                      const char *hash)
{
    struct nm_probe_report r = {.url = "http://example.test/a", .backend = backend};
    r.reachable = r.got_200 = true;
    r.length = LEN;
    snprintf(r.etag, sizeof(r.etag), "%s", etag);
    snprintf(r.last_modified, sizeof(r.last_modified), "%s", lm);
    snprintf(r.hash, sizeof(r.hash), "%s", hash);
    return r;
}

static enum nm_probe_level level_of(const struct nm_probe_report *r, const char *check)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->findings[i].check, check) == 0)
            return r->findings[i].level;
    cr_assert_fail("no finding %s", check);
    return NM_PROBE_PASS;
}

struct replica_row {
    const char *etag_b, *lm_b, *hash_b;
    enum nm_probe_level etag, lm, content;
};

Test(probes, replicas_are_compared_on_etag_last_modified_and_content)
{
    static const struct replica_row rows[] = {
        {"\"v1\"", D_LM, "aa", P, P, P},
        {"\"v2\"", D_LM, "aa", F, P, P},
        /* Dates that differ under agreeing ETags cost date-based clients only: a WARN. */
        {"\"v1\"", D_NOW, "aa", P, W, P},
        {"\"v2\"", D_NOW, "aa", F, F, P},
        {"\"v1\"", D_LM, "bb", P, P, F},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_probe_report reports[2] = {
            replica("a:80", "\"v1\"", D_LM, "aa"),
            replica("b:80", rows[i].etag_b, rows[i].lm_b, rows[i].hash_b)};
        struct nm_probe_report *out = calloc(1, sizeof(*out));
        cr_assert(nm_probe_compare_replicas(reports, 2, out));
        cr_expect_eq(level_of(out, "replicas.etag"), rows[i].etag, "row %zu", i);
        cr_expect_eq(level_of(out, "replicas.last-modified"), rows[i].lm, "row %zu", i);
        cr_expect_eq(level_of(out, "replicas.content"), rows[i].content, "row %zu", i);
        free(out);
    }
}

/* A replica whose Accept-Encoding: gzip got this coding, ETag, length and hash. */
static struct nm_probe_report replica_gzip(const char *backend, const char *coding,
                                           const char *etag, uint64_t length, const char *hash)
{
    struct nm_probe_report r = replica(backend, "\"v1\"", D_LM, "aa");
    r.gzip.status = 200;
    snprintf(r.gzip.coding, sizeof(r.gzip.coding), "%s", coding);
    snprintf(r.gzip.etag, sizeof(r.gzip.etag), "%s", etag);
    r.gzip.length = length;
    snprintf(r.gzip.hash, sizeof(r.gzip.hash), "%s", hash);
    return r;
}

Test(probes, replicas_must_agree_on_the_gzip_variant)
{
    static const struct {
        const char *coding, *etag;
        uint64_t length;
        const char *hash;
        enum nm_probe_level want;
        const char *text;
    } rows[] = {
        {"gzip", "\"v1-gz\"", 30, "gg", P, "the same gzip variant"},
        {"gzip", "\"v1-gz2\"", 30, "gg", F, "disagree on the gzip variant"},
        {"gzip", "\"v1-gz\"", 31, "hh", F, "disagree on the gzip variant"},
        {"gzip", "\"v1-gz\"", 30, "hh", F, "disagree on the gzip variant"},
        {"", "\"v1\"", LEN, "aa", F, "disagree on the coding"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nm_probe_report reports[2] = {
            replica_gzip("a:80", "gzip", "\"v1-gz\"", 30, "gg"),
            replica_gzip("b:80", rows[i].coding, rows[i].etag, rows[i].length, rows[i].hash)};
        struct nm_probe_report *out = calloc(1, sizeof(*out));
        cr_assert(nm_probe_compare_replicas(reports, 2, out));
        cr_expect_eq(level_of(out, "replicas.coding"), rows[i].want, "row %zu", i);
        cr_expect_not_null(strstr(out->findings[out->n - 1].text, rows[i].text), "row %zu: %s", i,
                           out->findings[out->n - 1].text);
        free(out);
    }
    /* Without two gzip answers there is nothing to compare. */
    struct nm_probe_report reports[2] = {replica_gzip("a:80", "gzip", "\"v1-gz\"", 30, "gg"),
                                         replica("b:80", "\"v1\"", D_LM, "aa")};
    struct nm_probe_report *out = calloc(1, sizeof(*out));
    cr_assert(nm_probe_compare_replicas(reports, 2, out));
    for (size_t k = 0; k < out->n; k++)
        cr_expect_str_neq(out->findings[k].check, "replicas.coding");
    free(out);
}

Test(probes, one_backend_is_compared_with_the_urls_own_host)
{
    struct nm_probe_report reports[2] = {replica(NULL, "\"v1\"", D_LM, "aa"),
                                         replica("b:80", "\"v2\"", D_LM, "aa")};
    struct nm_probe_report *out = calloc(1, sizeof(*out));
    cr_assert(nm_probe_compare_replicas(reports, 2, out));
    cr_expect_eq(level_of(out, "replicas.etag"), NM_PROBE_FAIL);
    cr_expect_not_null(strstr(out->findings[0].text, "the URL's host: \"v1\"; b:80: \"v2\""), "%s",
                       out->findings[0].text);
    out->n = 0;
    int status[2] = {0, 200};
    nm_probe_grade_revalidation(reports, 2, 0, status, out);
    cr_expect_not_null(strstr(out->findings[0].text, "from the URL's host"), "%s",
                       out->findings[0].text);
    free(out);
}

Test(probes, replicas_need_two_answers_and_one_etag_must_get_304_everywhere)
{
    struct nm_probe_report reports[3] = {replica("a:80", "", D_LM, "aa"),
                                         replica("b:80", "\"v1\"", D_LM, "aa"),
                                         replica("c:80", "\"v1\"", D_LM, "aa")};
    struct nm_probe_report *out = calloc(1, sizeof(*out));
    reports[1].got_200 = reports[2].got_200 = false;
    cr_assert(!nm_probe_compare_replicas(reports, 3, out));
    cr_assert_eq(level_of(out, "replicas"), NM_PROBE_FAIL);
    reports[1].got_200 = reports[2].got_200 = true;
    cr_assert_eq(nm_probe_replica_reference(reports, 3), 1, "the first 200 with an ETag");
    out->n = 0;
    int status[3] = {304, 0, 304};
    nm_probe_grade_revalidation(reports, 3, 1, status, out);
    cr_assert_eq(level_of(out, "replicas.revalidate"), NM_PROBE_PASS);
    cr_assert_not_null(strstr(out->findings[0].text, "a:80 -> 304; c:80 -> 304"));
    out->n = 0;
    status[2] = 200;
    nm_probe_grade_revalidation(reports, 3, 1, status, out);
    cr_assert_eq(level_of(out, "replicas.revalidate"), NM_PROBE_FAIL);
    free(out);
}
