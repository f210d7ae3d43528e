/* The protocol-independent handler: from a request to a response description, with every
 * decision about validators taken by the pure core (RFC 9110 §13, §14, §15.4.5). */
#include "handler.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "listing.h"
#include "log.h"
#include "notmod/coding.h"
#include "notmod/date.h"
#include "notmod/path.h"
#include "notmod/precond.h"
#include "notmod/range.h"

#define MAX_RANGES NM_RESPONSE_MAX_RANGES
#define LISTING_MAX_BYTES (4u << 20)

static const char allow_methods[] = "GET, HEAD, OPTIONS";

/* What the config file's path rules say about one URL path (config.h, struct nm_path_rule). */
struct rule_view {
    const struct nm_header_field *headers[2 * NM_RULE_MAX_HEADERS];
    size_t n_headers;
    int variants; /* -1 not said, 0 off, 1 on */
    int listing;
    const struct nm_path_rule *try_rule; /* the first matching rule with try_files */
    bool cors;                           /* a matching rule sets Access-Control-Allow-Origin */
};

/* One request being answered. */
struct answer {
    struct nm_site *site;
    const struct nm_handler_request *req;
    struct nm_response *resp;
    bool head_only; /* RFC 9110 §9.3.2: HEAD gets the fields of a GET and no content */
    /* A variant being answered: the source whose Content-Type and Cache-Control it takes, and
     * its Content-Encoding. NULL otherwise. */
    const struct nm_file *source;
    const char *coding;
    enum nm_coding coding_id; /* the same coding, NM_CODING_IDENTITY with none */
    const char *path;         /* the normalized URL path; NULL before it is known */
    struct rule_view rules;
};

/* Where Content-Type and Cache-Control come from: the source of a variant, else f itself. */
static const struct nm_file *meta_of(const struct answer *a, const struct nm_file *f)
{
    return a->source ? a->source : f;
}

/* RFC 9110 §8.4: a variant's coding, after its Content-Type. */
static int put_encoding(struct answer *a)
{
    return a->coding
               ? nm_response_add_value(a->resp, "Content-Encoding", nm_slice_from_cstr(a->coding))
               : 0;
}

/* A short text response for errors and redirects; the caller may add a field after it. */
static int respond_text(struct nm_response *resp, bool head_only, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s%s%s\n", status, nm_response_status_phrase(status),
                     why ? ": " : "", why ? why : "");
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    resp->status = status;
    int rc = nm_response_add_value(resp, "Content-Type", NM_SLICE_LIT("text/plain; charset=utf-8"));
    if (rc == 0)
        rc = nm_response_add_u64(resp, "Content-Length", (uint64_t)n);
    if (rc == 0 && !head_only)
        rc = nm_response_add_bytes(resp, body, (size_t)n);
    return rc;
}

int nm_handler_respond_error(struct nm_response *resp, int status, const char *why, bool head_only)
{
    return respond_text(resp, head_only, status, why);
}

static int respond_error_page(struct answer *a, int status);

static int fail(struct answer *a, int status, const char *why)
{
    int rc = respond_error_page(a, status);
    return rc <= 0 ? rc : respond_text(a->resp, a->head_only, status, why);
}

/* Representation metadata shared by 200, 206 and 304 (RFC 9110 §15.4.5 lists what a 304 keeps:
 * ETag, Cache-Control, Expires, Vary, Content-Location, Date; Last-Modified only helps when
 * there is no ETag). */
static int put_validators(struct answer *a, const struct nm_file *f, int64_t last_modified,
                          bool is_304)
{
    struct nm_response *resp = a->resp;
    int rc = 0;
    if (f->has_etag) {
        size_t n = f->etag.opaque.len < NM_ETAG_MAX ? f->etag.opaque.len : NM_ETAG_MAX;
        rc = nm_response_add_value(resp, "ETag", nm_slice_make(f->etag.opaque.ptr, n));
        if (rc == 0)
            resp->etag = nm_slice_make(resp->fields[resp->n_fields - 1].value.ptr, n);
    }
    if (rc == 0 && last_modified >= 0 && !(is_304 && f->has_etag)) {
        char d[NM_DATE_LEN + 1];
        nm_date_format(last_modified, d);
        rc = nm_response_add_value(resp, "Last-Modified", nm_slice_from_cstr(d));
    }
    if (rc == 0 && f->hash_pending)
        return nm_response_add_value(resp, "Cache-Control", NM_SLICE_LIT("no-store"));
    const struct nm_file *m = meta_of(a, f);
    if (rc == 0 && m->cache_control[0])
        rc = nm_response_add_value(resp, "Cache-Control", nm_slice_from_cstr(m->cache_control));
    if (rc == 0 && a->site->cfg->expires && m->max_age >= 0) {
        char d[NM_DATE_LEN + 1];
        int64_t when = a->site->now + m->max_age;
        nm_date_format(when > NM_DATE_MAX ? NM_DATE_MAX : when, d);
        rc = nm_response_add_value(resp, "Expires", nm_slice_from_cstr(d));
    }
    return rc;
}

/* Body bytes of f: from memory when held (the very bytes that were hashed), else a file part;
 * a generated body (mem, not f's) is borrowed from the response that owns it. */
static int put_body(struct answer *a, struct nm_file *f, const char *mem, uint64_t off,
                    uint64_t len)
{
    if (mem && mem != f->data)
        return nm_response_add_borrowed(a->resp, mem + off, (size_t)len);
    return nm_response_add_file(a->resp, f, off, len);
}

/* RFC 2046 §5.1.1: the boundary must not occur in any part. A fixed string could (a file may hold
 * a saved response); this one is a hash of the version (tag, size, mtime) and the ranges, keyed
 * by a per-process random value, so whoever writes the file cannot know it, and the same request
 * gets the same bytes. */
static void make_boundary(const struct nm_site *site, const struct nm_file *f,
                          const struct nm_range *rg, size_t n, char *out, size_t cap)
{
    uint64_t in[2 + 2 * MAX_RANGES + 16] = {f->size, (uint64_t)f->mtime_ns};
    size_t k = 2;
    for (size_t i = 0; i < n && i < MAX_RANGES; i++) {
        in[k++] = rg[i].first;
        in[k++] = rg[i].last;
    }
    if (f->has_etag) {
        size_t len = f->etag.opaque.len < 16 * sizeof(in[0]) ? f->etag.opaque.len : 16 * 8;
        memcpy(&in[k], f->etag.opaque.ptr, len);
        k += (len + 7) / 8;
    }
    char hex[NM_HASH_HEX_LEN + 1];
    nm_hash_format_hex(nm_hash_bytes_seeded(in, k * sizeof(in[0]), site->boundary_key), hex);
    snprintf(out, cap, "notmod-%s", hex);
}

/* X-Content-Type-Options: nosniff (Fetch §3.5.1): a browser then takes Content-Type as it is and
 * never guesses the bytes to be something else (an uploaded .txt run as HTML, an image loaded as
 * a script). Sent only with types we vouch for: those of our own table and our own listing HTML.
 * A type from /etc/mime.types is the operator's; a wrong one there with nosniff would make a
 * browser refuse a script or a style sheet that sniffing would have saved. */
static int put_nosniff(struct answer *a, const struct nm_file *f)
{
    /* A directory is served as a representation only as its listing. */
    f = meta_of(a, f);
    if (!f->is_dir && nm_mime_source_of(a->site->mime, f->content_type) != NM_MIME_SOURCE_BUILTIN)
        return 0;
    return nm_response_add_value(a->resp, "X-Content-Type-Options", NM_SLICE_LIT("nosniff"));
}

/* The fields that end the head of a 200 or 206: Content-Length, Accept-Ranges (RFC 9110 §14.3;
 * a 200 of a listing does not offer ranges), X-Content-Type-Options. */
static int put_length(struct answer *a, const struct nm_file *f, uint64_t length,
                      bool accept_ranges)
{
    int rc = nm_response_add_u64(a->resp, "Content-Length", length);
    if (rc == 0 && accept_ranges)
        rc = nm_response_add_value(a->resp, "Accept-Ranges", NM_SLICE_LIT("bytes"));
    if (rc == 0)
        rc = put_nosniff(a, f);
    return rc;
}

/* multipart/byteranges (RFC 9110 §14.6): the length is known before the first part. A part head
 * holds the longest type mime.types may give (127 bytes and a charset) and three 20-digit
 * numbers. */
static int respond_multipart(struct answer *a, struct nm_file *f, const char *mem,
                             const struct nm_range *rg, size_t n)
{
    char boundary[48];
    make_boundary(a->site, f, rg, n, boundary, sizeof(boundary));
    char part[MAX_RANGES][320];
    size_t part_len[MAX_RANGES];
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        /* A part of a variant is a range of the coded bytes: its coding goes with it. */
        int m = snprintf(part[i], sizeof(part[i]),
                         "\r\n--%s\r\nContent-Type: %s\r\n%s%s%s"
                         "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                         boundary, meta_of(a, f)->content_type,
                         a->coding ? "Content-Encoding: " : "", a->coding ? a->coding : "",
                         a->coding ? "\r\n" : "", (unsigned long long)rg[i].first,
                         (unsigned long long)rg[i].last, (unsigned long long)f->size);
        if (m < 0 || (size_t)m >= sizeof(part[i]))
            return -EMSGSIZE;
        part_len[i] = (size_t)m;
        total += part_len[i] + rg[i].last - rg[i].first + 1;
    }
    char closing[64];
    int closing_len = snprintf(closing, sizeof(closing), "\r\n--%s--\r\n", boundary);
    total += (uint64_t)closing_len;
    int rc = nm_response_add_field(a->resp, "Content-Type", "multipart/byteranges; boundary=%s",
                                   boundary);
    if (rc == 0)
        rc = put_length(a, f, total, true);
    if (rc < 0 || a->head_only)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = nm_response_add_bytes(a->resp, part[i], part_len[i]);
        if (rc == 0)
            rc = put_body(a, f, mem, rg[i].first, rg[i].last - rg[i].first + 1);
    }
    if (rc == 0)
        rc = nm_response_add_bytes(a->resp, closing, (size_t)closing_len);
    return rc;
}

static int respond_ranges(struct answer *a, struct nm_file *f, const char *mem, int64_t lm,
                          const struct nm_range *rg, size_t n)
{
    a->resp->status = 206;
    int rc = put_validators(a, f, lm, false);
    if (rc < 0 || n > 1)
        return rc ? rc : respond_multipart(a, f, mem, rg, n);
    uint64_t len = rg[0].last - rg[0].first + 1;
    rc = nm_response_add_value(a->resp, "Content-Type",
                               nm_slice_from_cstr(meta_of(a, f)->content_type));
    if (rc == 0)
        rc = put_encoding(a);
    if (rc == 0)
        rc = nm_response_add_field(a->resp, "Content-Range", "bytes %llu-%llu/%llu",
                                   (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
                                   (unsigned long long)f->size);
    if (rc == 0)
        rc = put_length(a, f, len, true);
    if (rc == 0 && !a->head_only)
        rc = put_body(a, f, mem, rg[0].first, len);
    return rc;
}

/* ---- pre-rendered heads (nm_file.head) ---- */

enum { HEAD_304 = 0, HEAD_200 = 1 };

/* Whether the fields put_validators and put_length give f depend on nothing but the version, how
 * it is answered (itself or as a variant) and the configuration: not while its tag is pending (no
 * validator, no-store), not when Last-Modified was clamped to Date or dropped for the second of
 * Date (§8.8.2.1, lm differs from the file's), not with Expires (now + max-age). */
static bool head_is_fixed(const struct answer *a, const struct nm_file *f, int64_t lm)
{
    return !f->hash_pending && lm == (f->has_last_modified ? f->last_modified : -1) &&
           !(a->site->cfg->expires && meta_of(a, f)->max_age >= 0);
}

/* The 304's or 200's fields of f from its head, when rendered under this configuration for the
 * same way of answering: set as the response's block instead of being built field by field. */
static bool use_head(struct answer *a, struct nm_file *f, int64_t lm, int kind)
{
    const struct nm_file_head *h = f->head;
    struct nm_response *resp = a->resp;
    if (!resp->use_block || !h || !h->len[kind] || h->config_serial != a->site->config_serial ||
        h->as_variant != (a->source != NULL) || !head_is_fixed(a, f, lm))
        return false;
    struct nm_slice block = nm_slice_make(h->bytes + h->off[kind], h->len[kind]);
    if (nm_response_set_block(resp, f, block,
                              kind == HEAD_200 ? a->coding_id : NM_CODING_IDENTITY) < 0)
        return false;
    if (f->has_etag) /* the first field, "ETag: " and the tag (put_validators) */
        resp->etag = nm_slice_make(
            block.ptr + 6, f->etag.opaque.len < NM_ETAG_MAX ? f->etag.opaque.len : NM_ETAG_MAX);
    return true;
}

/* Keeps the fields just built for f (from index `first`, the response's first) as its head's
 * 304 or 200 part, rendered once: later responses copy them whole (use_head). Made under another
 * configuration serial or the other way of answering, the head starts again; a part that does not
 * fit in NM_FILE_HEAD_BYTES is never kept, and its responses go on field by field. Not for a racy
 * version. */
static void keep_head(struct answer *a, struct nm_file *f, int64_t lm, int kind, size_t first)
{
    /* A racy version is loaded again at its next lookup (filecache.h): a head for it would be
     * an allocation per response. */
    if (first != 0 || f->racy || !head_is_fixed(a, f, lm))
        return;
    struct nm_file_head *h = f->head;
    uint64_t serial = a->site->config_serial;
    bool as_variant = a->source != NULL;
    if (!h) {
        h = malloc(sizeof(*h));
        if (!h)
            return;
        f->head = h;
        h->config_serial = serial + 1;
    }
    if (h->config_serial != serial || h->as_variant != as_variant)
        *h = (struct nm_file_head){.config_serial = serial, .as_variant = as_variant};
    if (h->len[kind] || h->unfit[kind])
        return;
    size_t n = nm_response_fields_len(a->resp, first);
    if (n == 0 || n > sizeof(h->bytes) - h->used) {
        h->unfit[kind] = true;
        return;
    }
    nm_response_put_fields(a->resp, first, h->bytes + h->used);
    h->off[kind] = h->used;
    h->len[kind] = (uint16_t)n;
    h->used = (uint16_t)(h->used + n);
}

static void collect_preconditions(const struct nm_handler_request *req,
                                  struct nm_precond_request *pre)
{
    *pre = (struct nm_precond_request){
        .method = req->method,
        .if_match = req->if_match,
        .if_none_match = req->if_none_match,
        .if_modified_since = req->if_modified_since,
        .if_unmodified_since = req->if_unmodified_since,
        .if_range = req->if_range,
        .has_range = req->range.n_lines > 0,
    };
}

/* GET or HEAD of a representation held as `f` (and `mem` for generated bodies). */
static int respond_representation(struct answer *a, struct nm_file *f, const char *mem)
{
    struct nm_site *site = a->site;
    struct nm_precond_request pre;
    collect_preconditions(a->req, &pre);

    /* RFC 9110 §8.8.2.1: a Last-Modified later than Date is replaced by Date. A file modified
     * in the very second of Date gets none: a second change within that second would keep the
     * date, and a client revalidating with it would be told 304 for bytes it does not have.
     * -1 means no Last-Modified. */
    int64_t lm = f->last_modified < site->now ? f->last_modified : site->now;
    if (!f->has_last_modified || f->last_modified == site->now)
        lm = -1;
    /* A version whose content tag is not known yet leaves with no validator at all and may not be
     * stored: cached under its date alone, it would be revalidated by a replica still serving the
     * previous version, whose 304 would pin these bytes under the other version's tag. */
    if (f->hash_pending)
        lm = -1;
    struct nm_precond_resource res = {
        .status = 200,
        .exists = true,
        .etag = f->has_etag ? &f->etag : NULL,
        .has_last_modified = lm >= 0,
        .last_modified = lm,
        .date = site->now,
    };
    enum nm_precond_result pr = nm_precond_evaluate(&pre, &res, site->cfg->ims_mode);
    if (!mem)
        mem = f->data;

    if (pr == NM_PRECOND_NOT_MODIFIED) {
        /* RFC 9110 §15.4.5: no content, no Content-Type, no Content-Length. */
        a->resp->status = 304;
        a->resp->unsent_bytes = f->size;
        if (use_head(a, f, lm, HEAD_304))
            return 0;
        size_t first = a->resp->n_fields;
        int rc = put_validators(a, f, lm, true);
        if (rc == 0)
            keep_head(a, f, lm, HEAD_304, first);
        return rc;
    }
    if (pr == NM_PRECOND_FAILED)
        return fail(a, 412, NULL);

    if (pr == NM_PRECOND_RANGE) {
        struct nm_range rg[MAX_RANGES];
        size_t n = 0;
        switch (nm_range_evaluate(a->req->range, f->size, rg, MAX_RANGES, &n)) {
        case NM_RANGE_SATISFIABLE:
            return respond_ranges(a, f, mem, lm, rg, n);
        case NM_RANGE_UNSATISFIABLE: {
            int rc = fail(a, 416, NULL);
            return rc ? rc
                      : nm_response_add_field(a->resp, "Content-Range", "bytes */%llu",
                                              (unsigned long long)f->size);
        }
        case NM_RANGE_IGNORE:
            break;
        }
    }

    a->resp->status = 200;
    int rc = 0;
    if (!use_head(a, f, lm, HEAD_200)) {
        size_t first = a->resp->n_fields;
        rc = put_validators(a, f, lm, false);
        if (rc == 0)
            rc = nm_response_add_value(a->resp, "Content-Type",
                                       nm_slice_from_cstr(meta_of(a, f)->content_type));
        if (rc == 0)
            rc = put_encoding(a);
        if (rc == 0)
            rc = put_length(a, f, f->size, !f->is_dir);
        if (rc == 0)
            keep_head(a, f, lm, HEAD_200, first);
    }
    if (rc == 0 && !a->head_only && f->size > 0)
        rc = put_body(a, f, mem, 0, f->size);
    return rc;
}

/* ---- precompressed variants (RFC 9110 §8.4, §12.5.3) ---- */

/* Whether a sidecar still describes the source's current version: a record names the bytes it
 * was made from (compared with the source's content hash when there is one) and, from version 2
 * on, its own bytes (compared with the hash of the bytes this entry holds, when it has one: bytes
 * read while a writer rewrote the sidecar in place, not yet truncated, are not what the record
 * names); without a record, it must not be older than the source. A bad record is never current. */
static bool sidecar_is_current(const struct nm_file *src, const struct nm_file *side)
{
    const struct nm_variants_record *r = &side->record;
    if (side->record_rc == 0 && r->has_own && side->has_content_hash &&
        (r->own.hi != side->content_hash.hi || r->own.lo != side->content_hash.lo))
        return false;
    if (side->record_rc == 0 && src->has_content_hash)
        return r->source.hi == src->content_hash.hi && r->source.lo == src->content_hash.lo;
    if (side->record_rc == 0 || side->record_rc == -ENODATA)
        return side->mtime_ns >= src->mtime_ns;
    return false;
}

/* Looks up the current sidecars of src into side[] (by coding) and returns their mask. */
static unsigned find_sidecars(struct answer *a, const struct nm_file *src,
                              struct nm_file *side[NM_CODING_COUNT])
{
    const struct nm_config *cfg = a->site->cfg;
    unsigned available = 0;
    /* A source whose tag is pending leaves without validators; no record can be checked yet. */
    if (cfg->n_precompressed == 0 || src->hash_pending || src->is_dir)
        return 0;
    for (size_t i = 0; i < cfg->n_precompressed; i++) {
        enum nm_coding c = cfg->precompressed[i];
        char path[NM_PATH_MAX + 16];
        const char *suffix = nm_coding_suffix(c);
        size_t plen = strlen(src->path), slen = strlen(suffix);
        struct nm_file *f;
        /* Copied, not formatted: every request for a file with sidecars configured pays this. */
        if (plen + slen >= sizeof(path))
            continue;
        memcpy(path, src->path, plen);
        memcpy(path + plen, suffix, slen + 1);
        if (nm_filecache_lookup(a->site->files, path, &f))
            continue;
        if (!f->is_dir && f->sidecar_coding == c && sidecar_is_current(src, f)) {
            side[c] = f;
            available |= NM_CODING_BIT(c);
            continue;
        }
        if (!f->is_dir && !f->stale_warned) {
            f->stale_warned = true;
            nm_log_error("sidecar %s is not current for %s: not served", f->path, src->path);
        }
        nm_file_release(f);
    }
    return available;
}

/* ---- variants made on the fly ---- */

/* Whether src may have variants made on the fly: the setting, content tags (the cache is keyed
 * by them), a type worth compressing, a size from NM_VARIANTS_MIN_SIZE_DEFAULT to the maximum.
 * Such a URL varies on Accept-Encoding from its first response, before any variant is ready. */
static bool fly_is_eligible(const struct answer *a, const struct nm_file *src)
{
    const struct nm_config *cfg = a->site->cfg;
    if (!a->site->fly || !cfg->compress || cfg->etag_mode != NM_ETAG_CONTENT || src->is_dir ||
        src->size < NM_VARIANTS_MIN_SIZE_DEFAULT || src->size > cfg->compress_max_bytes)
        return false;
    const char *base = strrchr(src->path, '/');
    return nm_variants_compress_is_compressible_name(base ? base + 1 : src->path);
}

/* The codings of on-the-fly variants in the server's order of preference: the sidecars' order,
 * then the codings it leaves out. */
static size_t fly_order(const struct nm_config *cfg, enum nm_coding out[NM_CODING_COUNT])
{
    static const enum nm_coding all[] = {NM_CODING_BR, NM_CODING_ZSTD, NM_CODING_GZIP};
    unsigned seen = 0;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_precompressed && n < NM_CODING_COUNT; i++) {
        out[n++] = cfg->precompressed[i];
        seen |= NM_CODING_BIT(cfg->precompressed[i]);
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && n < NM_CODING_COUNT; i++)
        if (!(seen & NM_CODING_BIT(all[i])))
            out[n++] = all[i];
    return n;
}

/* An entry for the cached bytes e of src's variant: its own length and strong tag (the hash of
 * these bytes, in the text form of every content tag), src's dates and metadata. Takes e. */
static struct nm_file *fly_view(const struct nm_file *src, struct nm_variants_cache_entry *e)
{
    struct nm_file *v = calloc(1, sizeof(*v));
    if (!v) {
        nm_variants_cache_entry_release(e);
        return NULL;
    }
    v->refs = 1;
    v->fd = -1;
    v->fly_entry = e;
    v->data = (char *)nm_variants_cache_entry_bytes(e);
    v->size = nm_variants_cache_entry_len(e);
    v->dev = src->dev;
    v->ino = src->ino;
    v->mtime_ns = src->mtime_ns;
    v->ctime_ns = src->ctime_ns;
    v->content_hash = nm_variants_cache_entry_hash(e);
    v->has_content_hash = true;
    int n = nm_hashing_format_etag(v->content_hash, v->etag_text, sizeof(v->etag_text));
    if (n > 0) {
        v->etag.opaque = nm_slice_make(v->etag_text, (size_t)n);
        v->has_etag = true;
    }
    v->has_last_modified = src->has_last_modified;
    v->last_modified = src->last_modified;
    v->content_type = src->content_type;
    memcpy(v->cache_control, src->cache_control, sizeof(v->cache_control));
    v->max_age = src->max_age;
    v->sidecar_coding = NM_CODING_IDENTITY;
    return v;
}

/* Adds to side[] the on-the-fly variants of src that are ready, for codings without a current
 * sidecar, and returns their mask. When the coding this request would like best is not ready,
 * the cache is asked for it (one job per version and coding, off the event loop); the request
 * never waits for it. */
static unsigned find_fly(struct answer *a, struct nm_file *src, unsigned sidecars,
                         struct nm_file *side[NM_CODING_COUNT], const enum nm_coding *pref,
                         size_t n_pref)
{
    if (!src->has_content_hash || src->hash_pending)
        return 0;
    unsigned ready = 0, possible = 0;
    for (size_t i = 0; i < n_pref; i++) {
        enum nm_coding c = pref[i];
        unsigned bit = NM_CODING_BIT(c);
        if (sidecars & bit)
            continue;
        if (src->fly[c]) {
            side[c] = nm_file_acquire(src->fly[c]);
            ready |= bit;
        } else if (!(src->fly_refused & bit)) {
            possible |= bit;
        }
    }
    if (!possible)
        return ready;
    int want =
        nm_coding_negotiate(a->req->accept_encoding, sidecars | ready | possible, pref, n_pref);
    if (want <= NM_CODING_IDENTITY || !(possible & NM_CODING_BIT(want)))
        return ready;
    struct nm_variants_cache_key key = {
        .dev = (uint64_t)src->dev,
        .ino = (uint64_t)src->ino,
        .size = src->size,
        .mtime_ns = src->mtime_ns,
        .ctime_ns = src->ctime_ns,
        .hash = src->content_hash,
        .coding = (enum nm_coding)want,
    };
    struct nm_variants_cache_entry *e;
    int rc = nm_variants_cache_get(a->site->fly, &key, src->fd, src->data, &e);
    if (rc == -ENODATA)
        src->fly_refused |= NM_CODING_BIT(want);
    if (rc < 0)
        return ready;
    src->fly[want] = fly_view(src, e);
    if (src->fly[want]) {
        side[want] = nm_file_acquire(src->fly[want]);
        ready |= NM_CODING_BIT(want);
    }
    return ready;
}

/* GET or HEAD of a regular file: its variant chosen by Accept-Encoding when it has current
 * sidecars or variants made on the fly. */
static int respond_file(struct answer *a, struct nm_file *src)
{
    const struct nm_config *cfg = a->site->cfg;
    struct nm_file *side[NM_CODING_COUNT] = {NULL};
    if (a->rules.variants == 0)
        return respond_representation(a, src, NULL);
    unsigned available = find_sidecars(a, src, side);
    const enum nm_coding *pref = cfg->precompressed;
    size_t n_pref = cfg->n_precompressed;
    enum nm_coding order[NM_CODING_COUNT];
    bool eligible = fly_is_eligible(a, src);
    if (eligible) {
        n_pref = fly_order(cfg, order);
        pref = order;
        available |= find_fly(a, src, available, side, pref, n_pref);
    }
    int rc;
    if (!available) {
        rc = respond_representation(a, src, NULL);
        return rc == 0 && eligible
                   ? nm_response_add_value(a->resp, "Vary", NM_SLICE_LIT("Accept-Encoding"))
                   : rc;
    }
    int c = nm_coding_negotiate(a->req->accept_encoding, available, pref, n_pref);
    if (c < 0) {
        rc = fail(a, 406, "no acceptable content coding");
    } else if (c == NM_CODING_IDENTITY) {
        rc = respond_representation(a, src, NULL);
    } else {
        a->source = src;
        a->coding = nm_coding_name((enum nm_coding)c);
        a->coding_id = (enum nm_coding)c;
        rc = respond_representation(a, side[c], NULL);
        a->source = NULL;
        a->coding = NULL;
        a->coding_id = NM_CODING_IDENTITY;
    }
    /* RFC 9110 §12.5.5: the choice depended on Accept-Encoding, whatever the status. */
    if (rc == 0)
        rc = nm_response_add_value(a->resp, "Vary", NM_SLICE_LIT("Accept-Encoding"));
    for (int k = 0; k < NM_CODING_COUNT; k++)
        nm_file_release(side[k]);
    return rc;
}

/* ---- directories ---- */

/* A listing's page as a file held in memory (its own fd -1, data the HTML), made from the
 * directory's entry: nothing of the entry's that its release would close or free is kept. */
static int render_page(struct answer *a, struct nm_file *dir, const char *path,
                       struct nm_file **out)
{
    struct nm_buf html;
    nm_buf_init(&html, LISTING_MAX_BYTES);
    int rc = nm_listing_render(dir->fd, path, a->site->cfg->allow_dotfiles, &html);
    struct nm_file *view = rc < 0 ? NULL : malloc(sizeof(*view));
    if (!view) {
        nm_buf_cleanup(&html);
        return rc < 0 ? rc : -ENOMEM;
    }
    *view = *dir;
    view->refs = 1;
    view->path = NULL;
    view->chain = view->lru_prev = view->lru_next = NULL;
    view->in_table = false;
    view->fd = -1;
    view->hashing = NULL;
    view->head = NULL; /* the page's own, made at its first response */
    for (int c = 0; c < NM_CODING_COUNT; c++)
        view->fly[c] = NULL;
    view->fly_entry = NULL;
    view->size = html.len;
    view->data = html.ptr; /* the page's now: nm_file_release frees it */
    view->content_type = "text/html; charset=utf-8";
    view->has_last_modified = false;
    view->has_etag = a->site->cfg->etag_mode != NM_ETAG_OFF;
    snprintf(view->cache_control, sizeof(view->cache_control), "no-cache");
    view->max_age = -1;
    /* The validator describes the entries as listed, not the directory's mtime, which does not
     * change when a listed file's size or mtime does. */
    if (view->has_etag) {
        struct nm_hash128 h = nm_hash_bytes(html.ptr, html.len);
        int n = nm_etag_make_hash128(h.hi, h.lo, view->etag_text, sizeof(view->etag_text));
        view->etag.opaque = nm_slice_make(view->etag_text, n > 0 ? (size_t)n : 0);
        view->etag.weak = false;
    }
    *out = view;
    return 0;
}

/* A listing: the page the worker keeps for this directory version when there is one (a HEAD or
 * a 304 then costs no directory read), else rendered, kept, and counted against the renders the
 * connection may do in this pass of the loop. */
static int respond_listing(struct answer *a, struct nm_file *dir, const char *path)
{
    struct nm_site *site = a->site;
    struct nm_file *page =
        site->listings ? nm_listing_cache_find(site->listings, dir, path, site->now) : NULL;
    if (!page) {
        int rc = render_page(a, dir, path, &page);
        if (site->listing_renders_left > 0)
            site->listing_renders_left--;
        if (rc < 0)
            return fail(a, rc == -EACCES ? 403 : 500, "cannot list directory");
        if (site->listings)
            nm_listing_cache_put(site->listings, dir, path, page, site->now);
    }
    int rc = respond_representation(a, page, NULL);
    nm_file_release(page);
    return rc;
}

/* ---- the config file's path rules ---- */

static bool has_header(const struct rule_view *v, const char *name)
{
    for (size_t i = 0; i < v->n_headers; i++)
        if (strcasecmp(v->headers[i]->name, name) == 0)
            return true;
    return false;
}

/* Every matching rule adds the fields it sets (the first one to set a name wins); for the other
 * settings, the first matching rule that sets one wins. */
static void match_rules(const struct nm_config *cfg, const char *path, struct rule_view *v)
{
    *v = (struct rule_view){.variants = -1, .listing = -1};
    size_t bytes = 0;
    for (size_t i = 0; i < cfg->n_path_rules; i++) {
        const struct nm_path_rule *r = &cfg->path_rules[i];
        if (!nm_config_rule_matches(r, path))
            continue;
        for (size_t k = 0; k < r->n_headers; k++) {
            const struct nm_header_field *h = &r->headers[k];
            size_t len = strlen(h->name) + strlen(h->value);
            if (v->n_headers < sizeof(v->headers) / sizeof(v->headers[0]) &&
                bytes + len <= NM_RULE_HEADER_BYTES && !has_header(v, h->name)) {
                v->headers[v->n_headers++] = h;
                bytes += len;
            }
        }
        if (v->variants < 0)
            v->variants = r->variants;
        if (v->listing < 0)
            v->listing = r->listing;
        if (!v->try_rule && r->n_try_files)
            v->try_rule = r;
    }
    v->cors = has_header(v, "Access-Control-Allow-Origin");
}

/* The rules' fields go on every response for the path: 200, 206, errors and 304s alike (RFC 9111
 * §4.3.4: a cache updates the fields it stored from a 304, so a changed CORS or CSP field reaches
 * it that way). None of them is a field a 304 must leave out (§15.4.5): the config refuses
 * those (nm_config_header_name_problem). */
static int put_rule_headers(struct answer *a)
{
    int rc = 0;
    for (size_t i = 0; i < a->rules.n_headers && rc == 0; i++)
        rc = nm_response_add_value(a->resp, a->rules.headers[i]->name,
                                   nm_slice_from_cstr(a->rules.headers[i]->value));
    return rc;
}

static const char *error_page_path(const struct answer *a, int status)
{
    const struct nm_config *cfg = a->site->cfg;
    for (size_t i = 0; a->path && i < cfg->n_path_rules; i++) {
        const struct nm_path_rule *r = &cfg->path_rules[i];
        for (size_t k = 0; k < r->n_error_pages; k++)
            if (r->error_pages[k].status == status && nm_config_rule_matches(r, a->path))
                return r->error_pages[k].path;
    }
    for (size_t k = 0; k < cfg->n_error_pages; k++)
        if (cfg->error_pages[k].status == status)
            return cfg->error_pages[k].path;
    return NULL;
}

/* An error page: the file's bytes with the error's status. It is not a representation of the
 * target (RFC 9110 §15.5: the content describes the error), so it carries no ETag and no
 * Last-Modified and answers no precondition: a 404 stays a 404 whatever If-None-Match says, and a
 * cache never gets a validator that would turn it into a 304 or a 200. Returns 0 when sent, 1
 * when there is no page (none configured, not a GET or HEAD, or the page cannot be read: the
 * plain text then), or a negative errno. */
static int respond_error_page(struct answer *a, int status)
{
    const char *page = a->path && (a->req->method == NM_METHOD_GET || a->head_only)
                           ? error_page_path(a, status)
                           : NULL;
    struct nm_file *f;
    if (!page || (!a->site->cfg->allow_dotfiles && nm_path_is_hidden(page)) ||
        nm_filecache_lookup(a->site->files, page, &f) < 0)
        return 1;
    if (f->is_dir) {
        nm_file_release(f);
        return 1;
    }
    a->resp->status = status;
    int rc = nm_response_add_value(a->resp, "Content-Type", nm_slice_from_cstr(f->content_type));
    if (rc == 0)
        rc = nm_response_add_value(a->resp, "Cache-Control", NM_SLICE_LIT("no-cache"));
    if (rc == 0)
        rc = nm_response_add_u64(a->resp, "Content-Length", f->size);
    if (rc == 0 && !a->head_only && f->size > 0)
        rc = nm_response_add_file(a->resp, f, 0, f->size);
    nm_file_release(f);
    return rc;
}

/* try_files: when the path names nothing, the first candidate that names a regular file is
 * answered as itself (its own validators, so a conditional request is evaluated against it: an
 * If-None-Match with the fallback's ETag gets a 304). "$uri" stands for the path. Returns 1 when
 * no candidate exists. */
static int respond_fallback(struct answer *a, const char *path)
{
    const struct nm_path_rule *r = a->rules.try_rule;
    for (size_t i = 0; r && i < r->n_try_files; i++) {
        const char *t = r->try_files[i];
        char cand[NM_PATH_MAX + 1];
        bool uri = strncmp(t, "$uri", 4) == 0;
        int n = snprintf(cand, sizeof(cand), "%s%s", uri ? path : "", uri ? t + 4 : t);
        if (n < 0 || (size_t)n >= sizeof(cand) ||
            (!a->site->cfg->allow_dotfiles && nm_path_is_hidden(cand)))
            continue;
        struct nm_file *f;
        if (nm_filecache_lookup(a->site->files, cand, &f) < 0)
            continue;
        int rc = f->is_dir ? 1 : respond_file(a, f);
        nm_file_release(f);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

/* RFC 9110 §9.3.7 and Fetch §3.2.2: a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered 204 with the Access-Control-* fields of the path's
 * rules; the other fields of those rules go with them like on any response. */
static bool is_preflight(const struct nm_handler_request *req)
{
    return req->method == NM_METHOD_OPTIONS && req->origin.n_lines > 0 &&
           req->access_control_request_method.n_lines > 0;
}

/* ---- routing ---- */

static int redirect_to_dir(struct answer *a, const char *path)
{
    char enc[NM_PATH_MAX * 3 + 2];
    int n = nm_path_encode(path, enc, sizeof(enc) - 1);
    if (n < 0)
        return fail(a, 414, NULL);
    enc[n] = '/';
    enc[n + 1] = '\0';
    struct nm_slice t = a->req->target;
    const char *q = memchr(t.ptr, '?', t.len);
    int rc = fail(a, 301, NULL);
    return rc ? rc
              : nm_response_add_field(a->resp, "Location", "%s%.*s", enc,
                                      q ? (int)(t.len - (size_t)(q - t.ptr)) : 0, q ? q : "");
}

static int respond_lookup_error(struct answer *a, int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        return fail(a, 404, NULL);
    case -EACCES:
    case -EPERM:
        return fail(a, 403, NULL);
    case -EMFILE:
    case -ENFILE:
    case -ENOMEM: /* out of descriptors or memory for now: the client may try again */
    case -EAGAIN: {
        int rc = fail(a, 503, "try again");
        return rc ? rc : nm_response_add_value(a->resp, "Retry-After", NM_SLICE_LIT("1"));
    }
    default:
        nm_log_error("lookup failed: %s", strerror(-err));
        return fail(a, 500, NULL);
    }
}

/* A directory's path with its slash: its index file, else its listing (when allowed), else 404. */
static int respond_directory(struct answer *a, struct nm_file *dir, const char *path)
{
    const struct nm_config *cfg = a->site->cfg;
    if (cfg->index_name && cfg->index_name[0]) {
        char ipath[NM_PATH_MAX + 256];
        snprintf(ipath, sizeof(ipath), "%s%s", path, cfg->index_name);
        struct nm_file *idx;
        int rc = nm_filecache_lookup(a->site->files, ipath, &idx);
        if (rc == 0 && !idx->is_dir) {
            rc = respond_file(a, idx);
            nm_file_release(idx);
            return rc;
        }
        if (rc == 0)
            nm_file_release(idx);
    }
    bool list = a->rules.listing >= 0 ? a->rules.listing == 1 : cfg->list_dirs;
    return list ? respond_listing(a, dir, path) : fail(a, 404, NULL);
}

static int serve_path(struct answer *a, const char *path)
{
    struct nm_site *site = a->site;
    if (!site->cfg->allow_dotfiles && nm_path_is_hidden(path))
        return fail(a, 404, NULL);

    size_t plen = strlen(path);
    bool dir_url = path[plen - 1] == '/';
    struct nm_file *f;
    int rc = nm_filecache_lookup(site->files, path, &f);
    if ((rc == -ENOENT || rc == -ENOTDIR) && a->rules.try_rule) {
        rc = respond_fallback(a, path);
        return rc <= 0 ? rc : fail(a, 404, NULL);
    }
    if (rc < 0)
        return respond_lookup_error(a, rc);
    if (!f->is_dir)
        rc = dir_url ? fail(a, 404, NULL) : respond_file(a, f);
    else if (!dir_url)
        rc = redirect_to_dir(a, path);
    else
        rc = respond_directory(a, f, path);
    nm_file_release(f);
    return rc;
}

/* The path of an origin-form or absolute-form target (RFC 9112 §3.2.1, §3.2.2): a NULL slice for
 * an absolute-form without path ("/"), an empty one for an authority with userinfo (an error). */
static struct nm_slice origin_of(struct nm_slice t)
{
    static const struct nm_slice schemes[] = {NM_SLICE_INIT("http://"), NM_SLICE_INIT("https://")};
    for (size_t i = 0; i < 2; i++) {
        if (t.len >= schemes[i].len &&
            nm_slice_case_eq(nm_slice_make(t.ptr, schemes[i].len), schemes[i])) {
            const char *p = t.ptr + schemes[i].len, *end = t.ptr + t.len;
            while (p < end && *p != '/' && *p != '?') {
                /* RFC 9110 §4.2.4: userinfo in an http(s) URI is an error. */
                if (*p == '@')
                    return (struct nm_slice){t.ptr, 0};
                p++;
            }
            if (p == end || *p == '?')
                return (struct nm_slice){NULL, 0}; /* no path: "http://host" is "/" */
            return nm_slice_make(p, (size_t)(end - p));
        }
    }
    return t;
}

/* The normalized path of the target into path[NM_PATH_MAX + 1], or the status refusing it. */
static int path_of(struct nm_slice target, char *path, const char **why)
{
    target = origin_of(target);
    if (target.ptr && target.len == 0) {
        *why = "userinfo in the request target";
        return 400;
    }
    int n = target.ptr ? nm_path_normalize(target, path, NM_PATH_MAX + 1) : 1;
    if (!target.ptr)
        strcpy(path, "/");
    if (n == -ENAMETOOLONG)
        return 414;
    *why = "malformed path";
    return n < 0 ? 400 : 0;
}

const struct nm_slice nm_handler_field_names[NM_HANDLER_FIELDS] = {
    NM_SLICE_INIT("if-match"),
    NM_SLICE_INIT("if-none-match"),
    NM_SLICE_INIT("if-modified-since"),
    NM_SLICE_INIT("if-unmodified-since"),
    NM_SLICE_INIT("if-range"),
    NM_SLICE_INIT("range"),
    NM_SLICE_INIT("accept-encoding"),
    NM_SLICE_INIT("origin"),
    NM_SLICE_INIT("access-control-request-method"),
};

struct nm_field *nm_handler_request_field(struct nm_handler_request *req, size_t i)
{
    static const size_t at[NM_HANDLER_FIELDS] = {
        offsetof(struct nm_handler_request, if_match),
        offsetof(struct nm_handler_request, if_none_match),
        offsetof(struct nm_handler_request, if_modified_since),
        offsetof(struct nm_handler_request, if_unmodified_since),
        offsetof(struct nm_handler_request, if_range),
        offsetof(struct nm_handler_request, range),
        offsetof(struct nm_handler_request, accept_encoding),
        offsetof(struct nm_handler_request, origin),
        offsetof(struct nm_handler_request, access_control_request_method),
    };
    return (struct nm_field *)((char *)req + at[i]);
}

int nm_handler_respond(struct nm_site *site, const struct nm_handler_request *req,
                       struct nm_response *resp)
{
    struct answer a = {.site = site,
                       .req = req,
                       .resp = resp,
                       .head_only = req->method == NM_METHOD_HEAD,
                       .rules = {.variants = -1, .listing = -1}};
    char path[NM_PATH_MAX + 1];
    const char *why = NULL;
    bool star = req->target.len == 1 && req->target.ptr[0] == '*';
    switch (req->method) {
    case NM_METHOD_GET:
    case NM_METHOD_HEAD:
        break;
    case NM_METHOD_OPTIONS:
        if (is_preflight(req) && !star && site->cfg->n_path_rules &&
            path_of(req->target, path, &why) == 0) {
            match_rules(site->cfg, path, &a.rules);
            if (a.rules.cors) {
                resp->status = 204;
                return put_rule_headers(&a);
            }
        }
        resp->status = 204;
        return nm_response_add_value(resp, "Allow", nm_slice_from_cstr(allow_methods));
    case NM_METHOD_OTHER:
        return fail(&a, 501, "unknown method");
    default: {
        int rc = fail(&a, 405, NULL);
        return rc ? rc : nm_response_add_value(resp, "Allow", nm_slice_from_cstr(allow_methods));
    }
    }

    if (star)
        return fail(&a, 400, "asterisk-form is for OPTIONS only");
    int status = path_of(req->target, path, &why);
    if (status)
        return fail(&a, status, status == 414 ? NULL : why);
    nm_site_follow_root(site);
    if (site->cfg->n_path_rules)
        match_rules(site->cfg, path, &a.rules);
    a.path = path;
    int rc = serve_path(&a, path);
    return rc == 0 ? put_rule_headers(&a) : rc;
}
