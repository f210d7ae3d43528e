/* The Accept-Encoding probes of notmod check: a variant is a representation of its own
 * (RFC 9110 §8.4, §8.8.3, §12.5.3, §12.5.5, §13.1.5). */
#include "notmod/cachectl.h"
#include "notmod/etag.h"
#include "notmod/token.h"
#include "probes.h"
#include "probes_internal.h"
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void nm_probe_body_feed(struct nm_probe_body *b, const void *data, size_t len)
{
    const unsigned char *d = data;
    size_t take = len < NM_PROBE_BODY_HEAD - b->head_len ? len : NM_PROBE_BODY_HEAD - b->head_len;
    memcpy(b->head + b->head_len, d, take);
    b->head_len += take;
    if (len >= NM_PROBE_BODY_TAIL) {
        memcpy(b->tail, d + len - NM_PROBE_BODY_TAIL, NM_PROBE_BODY_TAIL);
        b->tail_len = NM_PROBE_BODY_TAIL;
        return;
    }
    size_t keep = b->tail_len + len > NM_PROBE_BODY_TAIL ? NM_PROBE_BODY_TAIL - len : b->tail_len;
    memmove(b->tail, b->tail + b->tail_len - keep, keep);
    memcpy(b->tail + keep, d, len);
    b->tail_len = keep + len;
}

#define GZIP_ONLY LINE("Accept-Encoding", "gzip")

/* Whether an element of the list-valued field `name` is `token` (case-insensitive) or "*". */
static bool lists(const struct nm_probe_answer *a, const char *name, const char *token)
{
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_field f = nm__probe_field(a, name, l);
    for (size_t i = 0; i < f.n_lines; i++) {
        size_t pos = 0;
        struct nm_slice e;
        while (nm_token_list_next(f.lines[i], &pos, &e))
            if (nm_slice_case_eq(e, nm_slice_from_cstr(token)) ||
                nm_slice_case_eq(e, NM_SLICE_LIT("*")))
                return true;
    }
    return false;
}

static bool varies_by_coding(const struct nm_probe_answer *a)
{
    return lists(a, "Vary", "Accept-Encoding");
}

/* Sends GET with Accept-Encoding: gzip and keeps what it got in r->gzip; writes the answer's
 * Content-Encoding to ce and returns true when it is a 200 with one (a failed exchange is the
 * probe's FAIL). */
static bool coded_get(const struct nm_probe *p, struct nm_probe_ctx *c, struct nm_probe_answer *a,
                      char *ce, size_t cap)
{
    struct nm_probe_variant *v = &c->r->gzip;
    struct nm_http1_field f = GZIP_ONLY;
    c->send(c->io, p->via, "GET", &f, 1, a);
    ce[0] = '\0';
    if (a->err) {
        v->status = 0;
        nm__probe_add(c->r, p, NM_PROBE_FAIL, p->section,
                      "Accept-Encoding: gzip: the exchange failed: %s", a->error);
        return false;
    }
    v->status = a->status;
    nm__probe_value_of(a, "Content-Encoding", v->coding, sizeof(v->coding));
    nm__probe_value_of(a, "ETag", v->etag, sizeof(v->etag));
    v->length = a->body_bytes;
    snprintf(v->hash, sizeof(v->hash), "%s", a->hash);
    return a->status == 200 && nm__probe_value_of(a, "Content-Encoding", ce, cap);
}

/* The first GET's coding for people. */
static const char *base_coding(const struct nm_probe_report *r)
{
    return r->coding[0] ? r->coding : "identity";
}

void nm__probe_coding_etag(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    struct nm_probe_answer a;
    char ce[64], tag[256];
    if (r->etag_rc != 0 || !coded_get(p, c, &a, ce, sizeof(ce)) || strcasecmp(ce, r->coding) == 0)
        return;
    if (!nm__probe_value_of(&a, "ETag", tag, sizeof(tag)))
        nm__probe_pass(r, p, "the Content-Encoding: %s 200 sends no ETag, so shares none", ce);
    else if (strcmp(tag, r->etag) != 0)
        nm__probe_pass(r, p, "the %s 200 has ETag %s, the %s 200 has %s: one per representation",
                       ce, tag, base_coding(r), r->etag);
    else if (!r->strong)
        nm__probe_add(r, p, NM_PROBE_PASS, "8.8.1",
                      "the %s and %s 200s share the weak ETag %s (weak tags may name equivalent "
                      "representations)",
                      ce, base_coding(r), tag);
    else
        nm__probe_miss(
            r, p,
            "the %s and %s 200s share the strong ETag %s: a strong validator names one "
            "representation's bytes, so If-Range and If-Match would splice one coding's bytes "
            "into the other",
            ce, base_coding(r), tag);
}

void nm__probe_coding_vary(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    struct nm_probe_answer a;
    char ce[64];
    bool base_varies = varies_by_coding(c->base);
    if (!coded_get(p, c, &a, ce, sizeof(ce))) {
        if (r->coding[0] && !base_varies)
            nm__probe_miss(
                r, p,
                "the 200 has Content-Encoding: %s and no Vary: Accept-Encoding: a shared "
                "cache would give it to clients that cannot decode it",
                r->coding);
        else if (r->coding[0])
            nm__probe_pass(r, p, "the Content-Encoding: %s 200 sends Vary: Accept-Encoding",
                           r->coding);
        return;
    }
    bool differ = strcasecmp(ce, r->coding) != 0;
    if (!varies_by_coding(&a))
        nm__probe_miss(
            r, p,
            "the Content-Encoding: %s 200 to Accept-Encoding: gzip has no Vary: "
            "Accept-Encoding: a shared cache would give it to clients that cannot decode it",
            ce);
    else if (r->coding[0] && !base_varies)
        nm__probe_miss(
            r, p,
            "the first GET's 200 has Content-Encoding: %s and no Vary: Accept-Encoding: a "
            "shared cache would give it to clients that cannot decode it",
            r->coding);
    else if (differ && !base_varies)
        nm__probe_add(
            r, p, NM_PROBE_WARN, p->section,
            "the %s 200 has no Vary: Accept-Encoding, though Accept-Encoding: gzip gets %s: a "
            "shared cache keeps one of them for every client",
            base_coding(r), ce);
    else
        nm__probe_pass(r, p, "Vary: Accept-Encoding on the %s and %s 200s", base_coding(r), ce);
}

/* Sends Accept-Encoding: gzip with If-None-Match naming the coded 200's ETag (after the first
 * GET's, when they differ: what a cache holding both sends, RFC 9111 §4.3.1). Writes the coded
 * 200's ETag to tag and returns true when the conditional request was sent; its answer is in a. */
static bool coded_conditional(const struct nm_probe *p, struct nm_probe_ctx *c,
                              struct nm_probe_answer *a, char *tag, size_t cap)
{
    struct nm_probe_report *r = c->r;
    char ce[64], list[600];
    if (r->etag_rc != 0 || !coded_get(p, c, a, ce, sizeof(ce)) ||
        !nm__probe_value_of(a, "ETag", tag, cap))
        return false;
    if (strcmp(tag, r->etag) != 0)
        snprintf(list, sizeof(list), "%s, %s", r->etag, tag);
    else
        snprintf(list, sizeof(list), "%s", tag);
    struct nm_http1_field f[] = {GZIP_ONLY, LINE("If-None-Match", list)};
    c->send(c->io, p->via, "GET", f, 2, a);
    if (a->err)
        nm__probe_add(r, p, NM_PROBE_FAIL, p->section,
                      "Accept-Encoding: gzip + If-None-Match: the exchange failed: %s", a->error);
    return a->err == 0;
}

void nm__probe_coding_304(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    char tag[256], has[256];
    if (!coded_conditional(p, c, &a, tag, sizeof(tag)))
        return;
    if (a.status != 304)
        nm__probe_add(
            c->r, p, NM_PROBE_FAIL, "13.1.2",
            "Accept-Encoding: gzip + If-None-Match with the gzip 200's ETag %s -> %d, expected 304",
            tag, a.status);
    else if (!nm__probe_value_of(&a, "ETag", has, sizeof(has)))
        nm__probe_miss(
            c->r, p,
            "the 304 to Accept-Encoding: gzip has no ETag: a cache holding both codings cannot "
            "tell which one it refreshes");
    else if (strcmp(has, tag) != 0)
        nm__probe_miss(
            c->r, p,
            "the 304 to Accept-Encoding: gzip names %s, but the 200 to the same request has %s: "
            "a cache refreshes and serves the other coding",
            has, tag);
    else
        nm__probe_pass(c->r, p, "the 304 to Accept-Encoding: gzip names the gzip 200's ETag %s",
                       has);
}

void nm__probe_coding_304_vary(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_answer a;
    char tag[256];
    if (!coded_conditional(p, c, &a, tag, sizeof(tag)) || a.status != 304)
        return;
    if (varies_by_coding(&a))
        nm__probe_pass(c->r, p, "the 304 to Accept-Encoding: gzip sends Vary: Accept-Encoding");
    else
        nm__probe_miss(
            c->r, p,
            "the 304 to Accept-Encoding: gzip has no Vary: Accept-Encoding: a cache may store "
            "the refreshed response as the one for every client");
}

void nm__probe_coding_if_range(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    struct nm_probe_report *r = c->r;
    struct nm_probe_answer a;
    char ce[64];
    if (!r->ranges || r->etag_rc != 0 || !r->strong || r->coding[0])
        return;
    struct nm_http1_field f[] = {GZIP_ONLY, LINE("Range", "bytes=0-0"), LINE("If-Range", r->etag)};
    const char *what = "Accept-Encoding: gzip + Range + If-Range: <the identity ETag>";
    c->send(c->io, p->via, "GET", f, 3, &a);
    if (a.err) {
        nm__probe_add(r, p, NM_PROBE_FAIL, p->section, "%s: the exchange failed: %s", what,
                      a.error);
        return;
    }
    nm__probe_value_of(&a, "Content-Encoding", ce, sizeof(ce));
    if (a.status == 206 && ce[0])
        nm__probe_miss(
            r, p,
            "%s -> 206 with Content-Encoding: %s: a range of another representation, which a "
            "client resuming the identity download splices into it",
            what, ce);
    else if (a.status == 206 || a.status == 200)
        nm__probe_pass(r, p, "%s -> %d%s%s", what, a.status,
                       ce[0] ? ", Content-Encoding: " : " identity", ce);
    else
        nm__probe_miss(r, p, "%s -> %d, expected 200 or an identity 206", what, a.status);
}

/* A gzip member (RFC 1952): 1f 8b, method 8, no reserved flag; a 10-byte head, an 8-byte
 * trailer whose ISIZE is the decoded length modulo 2^32. Returns true with what passed in ok, or
 * false after a miss. */
static bool gzip_framed(const struct nm_probe *p, struct nm_probe_report *r,
                        const struct nm_probe_answer *a, const char *ce, char *ok, size_t cap)
{
    const struct nm_probe_body *b = &a->body;
    if (a->body_bytes < 18 || b->head_len < 4 || b->head[0] != 0x1f || b->head[1] != 0x8b ||
        b->head[2] != 8 || (b->head[3] & 0xe0)) {
        nm__probe_miss(r, p,
                       "Content-Encoding: %s, but the %" PRIu64 " bytes are not a gzip member", ce,
                       a->body_bytes);
        return false;
    }
    uint32_t isize = (uint32_t)b->tail[4] | (uint32_t)b->tail[5] << 8 | (uint32_t)b->tail[6] << 16 |
                     (uint32_t)b->tail[7] << 24;
    if (r->coding[0] || b->tail_len != NM_PROBE_BODY_TAIL) {
        snprintf(ok, cap, "the Content-Encoding: %s content is a gzip member", ce);
    } else if (isize != (uint32_t)r->length) {
        nm__probe_miss(r, p,
                       "the gzip member decodes to %" PRIu32
                       " bytes (its ISIZE), the identity content has "
                       "%" PRIu64 ": another version's bytes",
                       isize, r->length);
        return false;
    } else {
        snprintf(ok, cap,
                 "the gzip content is a gzip member of the identity length (%" PRIu32 " bytes)",
                 isize);
    }
    return true;
}

/* Whether the content is framed as Content-Encoding ce says (§8.4.1), and a coding that
 * Accept-Encoding: gzip did not ask for (§12.5.3). Returns true with what passed in ok, or false
 * after a finding. */
static bool framed(const struct nm_probe *p, struct nm_probe_report *r,
                   const struct nm_probe_answer *a, const char *ce, char *ok, size_t cap)
{
    const unsigned char *h = a->body.head;
    if (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "x-gzip") == 0)
        return gzip_framed(p, r, a, ce, ok, cap);
    if (strcasecmp(ce, "deflate") == 0) {
        /* RFC 9110 §8.4.1.2: the zlib format (RFC 1950): method 8, a header check of 31. */
        if (a->body.head_len >= 2 && (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 &&
            ((unsigned)h[0] << 8 | h[1]) % 31 == 0) {
            snprintf(ok, cap, "the Content-Encoding: deflate content starts a zlib stream");
            return true;
        }
        nm__probe_miss(r, p, "Content-Encoding: deflate, but the content is not a zlib stream");
        return false;
    }
    if (strcasecmp(ce, "zstd") == 0 || strcasecmp(ce, "br") == 0)
        nm__probe_add(r, p, NM_PROBE_FAIL, "12.5.3",
                      "Accept-Encoding: gzip got Content-Encoding: %s, a coding it did not accept",
                      ce);
    return false;
}

/* The coding's name as Accept-Encoding lists it: x-gzip is gzip (§8.4.1.3). */
static const char *coding_name(const char *ce)
{
    return strcasecmp(ce, "x-gzip") == 0 ? "gzip" : ce;
}

/* Whether the list ("deflate, gzip, br") names the coding. */
static bool decodes(const char *list, const char *coding)
{
    size_t pos = 0;
    struct nm_slice e;
    if (!list)
        return false;
    while (nm_token_list_next(nm_slice_from_cstr(list), &pos, &e))
        if (nm_slice_case_eq(e, nm_slice_from_cstr(coding)))
            return true;
    return false;
}

/* Sends Accept-Encoding: <coding> with the content decoded by the client and grades what it
 * decodes to against the identity content's hash: a coding transforms the representation, so
 * decoding gives back its bytes (§8.4). An identity answer has nothing to decode. */
static void decoded(const struct nm_probe *p, struct nm_probe_ctx *c, const char *coding)
{
    struct nm_probe_report *r = c->r;
    struct nm_probe_answer a;
    char ce[64];
    struct nm_http1_field f = LINE("Accept-Encoding", coding);
    c->send(c->io, NM_PROBE_VIA_DECODED, "GET", &f, 1, &a);
    bool coded = nm__probe_value_of(&a, "Content-Encoding", ce, sizeof(ce));
    if (a.err == -EBADMSG && a.status == 200)
        nm__probe_miss(r, p, "Content-Encoding: %s does not decode: %s", coded ? ce : coding,
                       a.error);
    else if (a.err)
        nm__probe_add(r, p, NM_PROBE_FAIL, p->section,
                      "Accept-Encoding: %s: the exchange failed: %s", coding, a.error);
    else if (a.status != 200 || !coded)
        return;
    else if (strcasecmp(coding_name(ce), coding) != 0)
        nm__probe_add(r, p, NM_PROBE_FAIL, "12.5.3",
                      "Accept-Encoding: %s got Content-Encoding: %s, a coding it did not accept",
                      coding, ce);
    else if (strcmp(a.hash, r->hash) != 0)
        nm__probe_add(r, p, NM_PROBE_FAIL, "8.4",
                      "the %s body decodes to other bytes than the identity body (a stale or wrong "
                      "variant): hash %s, the identity content's %s",
                      ce, a.hash, r->hash);
    else
        nm__probe_pass(r, p, "the %s content decodes to the identity content's bytes", ce);
}

void nm__probe_coding_body(const struct nm_probe *p, struct nm_probe_ctx *c)
{
    static const char *const more[] = {"br", "zstd"};
    struct nm_probe_report *r = c->r;
    struct nm_probe_answer a;
    char ce[64], ok[160];
    /* Decoded content is compared with the first GET's, so that one must be identity. */
    bool comparable = !r->coding[0] && r->hash[0];
    if (coded_get(p, c, &a, ce, sizeof(ce)) && framed(p, r, &a, ce, ok, sizeof(ok))) {
        if (comparable && decodes(c->decodes, coding_name(ce)))
            decoded(p, c, coding_name(ce));
        else
            nm__probe_pass(r, p, "%s", ok);
    }
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        if (comparable && decodes(c->decodes, more[i]))
            decoded(p, c, more[i]);
}
