/* One HTTP/1.1 connection: request bytes in, response segments out (RFC 9112), with every
 * decision about validators taken by the pure core (RFC 9110 §13, §14, §15.4.5). */
#include "conn.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "notmod/date.h"
#include "notmod/path.h"
#include "notmod/precond.h"
#include "notmod/range.h"

#define OUT_MAX_BYTES (16u << 20)
#define OUT_PAUSE_BYTES (256u << 10) /* stop taking pipelined requests above this much output */
#define OUT_KEEP_BYTES (16u << 10)   /* output buffer an idle connection may keep */
#define MAX_RANGES 16
#define SEGS_PER_RESPONSE (2 * MAX_RANGES + 2)
#define LOG_MAX_BYTES (1u << 20)
#define LISTING_MAX_BYTES (4u << 20)

static const char allow_methods[] = "GET, HEAD, OPTIONS";

/* ---- the site ---- */

int nm_site_init(struct nm_site *site, const struct nm_config *cfg,
                 const struct nm_mime_table *mime, int root_fd)
{
    memset(site, 0, sizeof(*site));
    site->cfg = cfg;
    site->mime = mime;
    site->root_fd = root_fd;
    site->own_root_fd = -1;
    struct stat st;
    if (fstat(root_fd, &st) != 0)
        return -errno;
    site->root_dev = st.st_dev;
    site->root_ino = st.st_ino;
    site->log_enabled = cfg->access_log != NULL;
    nm_buf_init(&site->log, LOG_MAX_BYTES);
    if (getrandom(&site->boundary_key, sizeof(site->boundary_key), 0) !=
        (ssize_t)sizeof(site->boundary_key))
        site->boundary_key = (uint64_t)(uintptr_t)site ^ (uint64_t)time(NULL);
    nm_site_set_time(site, 0);
    return nm_filecache_new(cfg, mime, root_fd, &site->files);
}

void nm_site_cleanup(struct nm_site *site)
{
    nm_filecache_free(site->files);
    nm_buf_cleanup(&site->log);
    site->files = NULL;
    if (site->own_root_fd >= 0)
        close(site->own_root_fd);
    site->own_root_fd = -1;
}

void nm_site_set_hashing(struct nm_site *site, struct nm_hashing *h)
{
    site->hashing = h;
    nm_filecache_set_hashing(site->files, h);
}

void nm_site_follow_root(struct nm_site *site)
{
    struct stat st;
    if (!site->cfg->root || stat(site->cfg->root, &st) != 0 || !S_ISDIR(st.st_mode) ||
        (st.st_dev == site->root_dev && st.st_ino == site->root_ino))
        return;
    int fd = open(site->cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The directory opened is the one to remember: the path may have moved again since stat. */
    struct nm_filecache *files;
    if (fstat(fd, &st) != 0 || nm_filecache_new(site->cfg, site->mime, fd, &files) != 0) {
        close(fd);
        return;
    }
    if (site->hashing)
        nm_filecache_set_hashing(files, site->hashing);
    nm_filecache_free(site->files);
    if (site->own_root_fd >= 0)
        close(site->own_root_fd);
    site->files = files;
    site->root_fd = site->own_root_fd = fd;
    site->root_dev = st.st_dev;
    site->root_ino = st.st_ino;
    site->root_swaps++;
}

void nm_site_set_time(struct nm_site *site, int64_t now)
{
    if (now == site->now && site->date_line_len)
        return;
    site->now = now;
    char d[NM_DATE_LEN + 1];
    nm_date_format(now, d);
    site->date_line_len =
        (size_t)snprintf(site->date_line, sizeof(site->date_line), "Date: %s\r\n", d);
}

/* ---- output queue ---- */

void nm_conn_init(struct nm_conn *c, struct nm_site *site, const char *peer)
{
    memset(c, 0, sizeof(*c));
    c->site = site;
    nm_buf_init(&c->in, site->cfg->max_head_bytes + 4096);
    nm_buf_init(&c->out, OUT_MAX_BYTES);
    snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "-");
}

void nm_conn_cleanup(struct nm_conn *c)
{
    for (unsigned i = 0; i < c->n_segs; i++)
        nm_file_release(c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS].file);
    c->n_segs = 0;
    nm_buf_cleanup(&c->in);
    nm_buf_cleanup(&c->out);
}

struct nm_conn_seg *nm_conn_front(struct nm_conn *c)
{
    return c->n_segs ? &c->segs[c->seg_head] : NULL;
}

static struct nm_conn_seg *seg_tail(struct nm_conn *c)
{
    return c->n_segs ? &c->segs[(c->seg_head + c->n_segs - 1) % NM_CONN_MAX_SEGS] : NULL;
}

static struct nm_conn_seg *seg_push(struct nm_conn *c)
{
    struct nm_conn_seg *s = &c->segs[(c->seg_head + c->n_segs) % NM_CONN_MAX_SEGS];
    *s = (struct nm_conn_seg){0};
    c->n_segs++;
    return s;
}

void nm_conn_advance(struct nm_conn *c, uint64_t n)
{
    while (n > 0 && c->n_segs > 0) {
        struct nm_conn_seg *s = &c->segs[c->seg_head];
        size_t m = n < s->mem_len ? (size_t)n : s->mem_len;
        s->mem_len -= m;
        c->out_sent += m;
        n -= m;
        uint64_t f = n < s->len ? n : s->len;
        s->off += f;
        s->len -= f;
        n -= f;
        if (s->mem_len == 0 && s->len == 0) {
            nm_file_release(s->file);
            s->file = NULL;
            c->seg_head = (c->seg_head + 1) % NM_CONN_MAX_SEGS;
            c->n_segs--;
        }
    }
    /* Hold one response's bytes at most: compact as soon as the queue drains. */
    if (c->n_segs == 0 || c->out_sent == c->out.len) {
        nm_buf_consume(&c->out, c->out_sent);
        c->out_sent = 0;
    }
    /* An idle connection keeps no large output buffer. */
    if (c->n_segs == 0 && c->out.cap > OUT_KEEP_BYTES)
        nm_buf_cleanup(&c->out);
}

int nm_conn_drain(struct nm_conn *c, struct nm_buf *dst)
{
    struct nm_conn_seg *s;
    while ((s = nm_conn_front(c)) != NULL) {
        int rc = nm_buf_append(dst, c->out.ptr + c->out_sent, s->mem_len);
        if (rc < 0)
            return rc;
        uint64_t n = s->mem_len;
        if (s->file && s->len && s->data) {
            rc = nm_buf_append(dst, s->data + s->off, (size_t)s->len);
            if (rc < 0)
                return rc;
            n += s->len;
        } else if (s->file && s->len) {
            rc = nm_buf_reserve(dst, s->len);
            if (rc < 0)
                return rc;
            ssize_t got = pread(s->file->fd, dst->ptr + dst->len, s->len, (off_t)s->off);
            if (got < 0 || (uint64_t)got != s->len)
                return -EIO;
            dst->len += s->len;
            n += s->len;
        }
        nm_conn_advance(c, n);
    }
    return 0;
}

bool nm_conn_is_done(const struct nm_conn *c)
{
    return c->state == NM_CONN_CLOSING && c->n_segs == 0;
}

bool nm_conn_is_mid_request(const struct nm_conn *c)
{
    return c->in.len > 0 || c->state == NM_CONN_CONTENT || c->state == NM_CONN_CHUNKED;
}

/* Appends bytes to the output, as the memory part of the last segment when it has no file. */
static int put(struct nm_conn *c, const void *data, size_t len)
{
    struct nm_conn_seg *s = seg_tail(c);
    if (!s || s->file)
        s = seg_push(c);
    int rc = nm_buf_append(&c->out, data, len);
    if (rc == 0)
        s->mem_len += len;
    return rc;
}

static int put_str(struct nm_conn *c, const char *s)
{
    return put(c, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static int putf(struct nm_conn *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -EMSGSIZE;
    return put(c, tmp, (size_t)n);
}

static void put_file(struct nm_conn *c, struct nm_file *f, uint64_t off, uint64_t len)
{
    struct nm_conn_seg *s = seg_tail(c);
    if (!s || s->file)
        s = seg_push(c);
    s->file = nm_file_acquire(f);
    s->off = off;
    s->len = len;
    s->data = f->data;
}

/* ---- one response ---- */

struct request {
    struct nm_http1_request *h; /* NULL when the head could not be parsed */
    bool head_only;
    bool close;
    int status;
    uint64_t body_bytes;
    char etag[NM_ETAG_MAX + 1]; /* for the log: a copy, since a listing's tag dies with it */
};

static const char *status_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static int put_status(struct nm_conn *c, struct request *r, int status)
{
    r->status = status;
    int rc = putf(c, "HTTP/1.1 %d %s\r\n", status, status_phrase(status));
    if (rc == 0)
        rc = put(c, c->site->date_line, c->site->date_line_len);
    return rc;
}

/* Connection management fields and the empty line that ends the head. */
static int put_end(struct nm_conn *c, struct request *r)
{
    int rc = 0;
    if (r->close)
        rc = put_str(c, "Connection: close\r\n");
    else if (r->h && r->h->minor_version == 0)
        rc = put_str(c, "Connection: keep-alive\r\n");
    if (rc == 0)
        rc = put(c, "\r\n", 2);
    return rc;
}

/* A short text response for errors and redirects. */
static int respond_text(struct nm_conn *c, struct request *r, int status, const char *text,
                        const char *extra)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s%s%s\n", status, status_phrase(status),
                     text ? ": " : "", text ? text : "");
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)sizeof(body) - 1;
    int rc = put_status(c, r, status);
    if (rc == 0)
        rc = putf(c, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", n);
    /* Not through putf: a Location keeps the whole query, longer than its scratch buffer. */
    if (rc == 0 && extra)
        rc = put_str(c, extra);
    if (rc == 0)
        rc = put_end(c, r);
    if (rc == 0 && !r->head_only) {
        rc = put(c, body, (size_t)n);
        r->body_bytes = (uint64_t)n;
    }
    return rc;
}

/* Representation metadata shared by 200, 206 and 304 (RFC 9110 §15.4.5 lists what a 304 keeps:
 * ETag, Cache-Control, Expires, Vary, Content-Location, Date; Last-Modified only helps when
 * there is no ETag). */
static int put_validators(struct nm_conn *c, struct request *r, const struct nm_file *f,
                          int64_t last_modified, bool is_304)
{
    int rc = 0;
    if (f->has_etag) {
        rc = putf(c, "ETag: %.*s\r\n", (int)f->etag.opaque.len, f->etag.opaque.ptr);
        size_t n = f->etag.opaque.len < NM_ETAG_MAX ? f->etag.opaque.len : NM_ETAG_MAX;
        memcpy(r->etag, f->etag.opaque.ptr, n);
        r->etag[n] = '\0';
    }
    if (rc == 0 && last_modified >= 0 && !(is_304 && f->has_etag)) {
        char d[NM_DATE_LEN + 1];
        nm_date_format(last_modified, d);
        rc = putf(c, "Last-Modified: %s\r\n", d);
    }
    if (rc == 0 && f->hash_pending)
        return put_str(c, "Cache-Control: no-store\r\n");
    if (rc == 0 && f->cache_control[0])
        rc = putf(c, "Cache-Control: %s\r\n", f->cache_control);
    if (rc == 0 && c->site->cfg->expires && f->max_age >= 0) {
        char d[NM_DATE_LEN + 1];
        int64_t when = c->site->now + f->max_age;
        nm_date_format(when > NM_DATE_MAX ? NM_DATE_MAX : when, d);
        rc = putf(c, "Expires: %s\r\n", d);
    }
    return rc;
}

/* Body bytes of f: from memory when held (the very bytes that were hashed), else a file part. */
static int put_body(struct nm_conn *c, struct nm_file *f, const char *mem, uint64_t off,
                    uint64_t len)
{
    if (mem && mem != f->data)
        return put(c, mem + off, (size_t)len); /* a generated body: copied */
    put_file(c, f, off, len);
    return 0;
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
    XXH128_hash_t h = XXH3_128bits_withSeed(in, k * sizeof(in[0]), site->boundary_key);
    snprintf(out, cap, "notmod-%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}

/* X-Content-Type-Options: nosniff (Fetch §3.5.1): a browser then takes Content-Type as it is and
 * never guesses the bytes to be something else (an uploaded .txt run as HTML, an image loaded as
 * a script). Sent only with types we vouch for: those of our own table and our own listing HTML.
 * A type from /etc/mime.types is the operator's; a wrong one there with nosniff would make a
 * browser refuse a script or a style sheet that sniffing would have saved. */
static int put_nosniff(struct nm_conn *c, const struct nm_file *f)
{
    /* A directory is served as a representation only as its listing. */
    if (!f->is_dir && nm_mime_source_of(c->site->mime, f->content_type) != NM_MIME_SOURCE_BUILTIN)
        return 0;
    return put_str(c, "X-Content-Type-Options: nosniff\r\n");
}

static int respond_ranges(struct nm_conn *c, struct request *r, struct nm_file *f, const char *mem,
                          int64_t lm, const struct nm_range *rg, size_t n)
{
    int rc = put_status(c, r, 206);
    if (rc == 0)
        rc = put_validators(c, r, f, lm, false);
    if (rc == 0 && n == 1) {
        uint64_t len = rg[0].last - rg[0].first + 1;
        rc = putf(c,
                  "Content-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n"
                  "Content-Length: %llu\r\nAccept-Ranges: bytes\r\n",
                  f->content_type, (unsigned long long)rg[0].first, (unsigned long long)rg[0].last,
                  (unsigned long long)f->size, (unsigned long long)len);
        if (rc == 0)
            rc = put_nosniff(c, f);
        if (rc == 0)
            rc = put_end(c, r);
        if (rc == 0 && !r->head_only) {
            rc = put_body(c, f, mem, rg[0].first, len);
            r->body_bytes = len;
        }
        return rc;
    }
    /* multipart/byteranges (RFC 9110 §14.6): the length is known before the first part. A part
     * head holds the longest type mime.types may give (127 bytes and a charset) and three
     * 20-digit numbers. */
    char boundary[48];
    make_boundary(c->site, f, rg, n, boundary, sizeof(boundary));
    char part[MAX_RANGES][320];
    size_t part_len[MAX_RANGES];
    uint64_t total = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int m = snprintf(part[i], sizeof(part[i]),
                         "\r\n--%s\r\nContent-Type: %s\r\n"
                         "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                         boundary, f->content_type, (unsigned long long)rg[i].first,
                         (unsigned long long)rg[i].last, (unsigned long long)f->size);
        if (m < 0 || (size_t)m >= sizeof(part[i]))
            return -EMSGSIZE;
        part_len[i] = (size_t)m;
        total += part_len[i] + rg[i].last - rg[i].first + 1;
    }
    char closing[64];
    int closing_len = snprintf(closing, sizeof(closing), "\r\n--%s--\r\n", boundary);
    total += (uint64_t)closing_len;
    if (rc == 0)
        rc = putf(c,
                  "Content-Type: multipart/byteranges; boundary=%s\r\n"
                  "Content-Length: %llu\r\nAccept-Ranges: bytes\r\n",
                  boundary, (unsigned long long)total);
    if (rc == 0)
        rc = put_nosniff(c, f);
    if (rc == 0)
        rc = put_end(c, r);
    if (rc == 0 && !r->head_only) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = put(c, part[i], part_len[i]);
            if (rc == 0)
                rc = put_body(c, f, mem, rg[i].first, rg[i].last - rg[i].first + 1);
        }
        if (rc == 0)
            rc = put(c, closing, (size_t)closing_len);
        r->body_bytes = total;
    }
    return rc;
}

/* The conditional fields of a request, each as all of its lines (RFC 9110 §5.3). */
struct cond_fields {
    struct nm_slice lines[6][NM_HTTP1_MAX_FIELDS];
    struct nm_precond_request pre;
    struct nm_field range;
};

static void collect_conditions(const struct nm_http1_request *h, struct cond_fields *cf)
{
    static const struct nm_slice names[6] = {
        NM_SLICE_INIT("if-match"),          NM_SLICE_INIT("if-none-match"),
        NM_SLICE_INIT("if-modified-since"), NM_SLICE_INIT("if-unmodified-since"),
        NM_SLICE_INIT("if-range"),          NM_SLICE_INIT("range"),
    };
    struct nm_field *dst[6] = {
        &cf->pre.if_match,          &cf->pre.if_none_match,
        &cf->pre.if_modified_since, &cf->pre.if_unmodified_since,
        &cf->pre.if_range,          &cf->range,
    };
    for (int k = 0; k < 6; k++)
        *dst[k] = (struct nm_field){cf->lines[k], 0};
    for (size_t i = 0; i < h->n_fields; i++) {
        struct nm_slice n = h->fields[i].name;
        char first = (char)(n.ptr[0] | 0x20);
        if (first != 'i' && first != 'r')
            continue;
        for (int k = 0; k < 6; k++) {
            if (nm_slice_case_eq(n, names[k])) {
                cf->lines[k][dst[k]->n_lines++] = h->fields[i].value;
                break;
            }
        }
    }
    cf->pre.method = h->method;
    cf->pre.has_range = cf->range.n_lines > 0;
}

/* GET or HEAD of a representation held as `f` (and `mem` for generated bodies). */
static int respond_representation(struct nm_conn *c, struct request *r, struct nm_file *f,
                                  const char *mem)
{
    struct nm_site *site = c->site;
    struct cond_fields cf;
    collect_conditions(r->h, &cf);

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
    enum nm_precond_result pr = nm_precond_evaluate(&cf.pre, &res, site->cfg->ims_mode);
    if (!mem)
        mem = f->data;

    if (pr == NM_PRECOND_NOT_MODIFIED) {
        /* RFC 9110 §15.4.5: no content, no Content-Type, no Content-Length. */
        int rc = put_status(c, r, 304);
        if (rc == 0)
            rc = put_validators(c, r, f, lm, true);
        if (rc == 0)
            rc = put_end(c, r);
        return rc;
    }
    if (pr == NM_PRECOND_FAILED)
        return respond_text(c, r, 412, NULL, NULL);

    if (pr == NM_PRECOND_RANGE) {
        struct nm_range rg[MAX_RANGES];
        size_t n = 0;
        switch (nm_range_evaluate(cf.range, f->size, rg, MAX_RANGES, &n)) {
        case NM_RANGE_SATISFIABLE:
            return respond_ranges(c, r, f, mem, lm, rg, n);
        case NM_RANGE_UNSATISFIABLE: {
            char extra[64];
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%llu\r\n",
                     (unsigned long long)f->size);
            return respond_text(c, r, 416, NULL, extra);
        }
        case NM_RANGE_IGNORE:
            break;
        }
    }

    int rc = put_status(c, r, 200);
    if (rc == 0)
        rc = put_validators(c, r, f, lm, false);
    if (rc == 0)
        rc = putf(c, "Content-Type: %s\r\nContent-Length: %llu\r\n%s", f->content_type,
                  (unsigned long long)f->size, f->is_dir ? "" : "Accept-Ranges: bytes\r\n");
    if (rc == 0)
        rc = put_nosniff(c, f);
    if (rc == 0)
        rc = put_end(c, r);
    if (rc == 0 && !r->head_only && f->size > 0) {
        rc = put_body(c, f, mem, 0, f->size);
        r->body_bytes = f->size;
    }
    return rc;
}

/* ---- directories ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629 §4: no overlong form, no
 * surrogate, nothing above U+10FFFF), or 0 when s[0] does not start one. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* A file name or path as HTML text. The page says it is UTF-8, and a name is only bytes: each
 * byte that is not part of well-formed UTF-8 is shown as U+FFFD (what a browser would decode it
 * to, without relying on one), and a C0 control or DEL as its control picture (U+2400 + code,
 * U+2421), so a name holding a newline stays visible and on its line. Markup characters are
 * escaped (both quotes too, so the text is safe inside an attribute). */
static int put_html_text(struct nm_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    int rc = 0;
    while (left > 0 && rc == 0) {
        unsigned char c = *p;
        size_t len = utf8_sequence_len(p, left);
        if (len == 0) {
            rc = nm_buf_append_str(b, "\xef\xbf\xbd");
            len = 1;
        } else if (c < 0x20 || c == 0x7f) {
            char pic[3] = {'\xe2', '\x90', (char)(c == 0x7f ? 0xa1 : 0x80 + c)};
            rc = nm_buf_append(b, pic, sizeof(pic));
        } else if (c == '<') {
            rc = nm_buf_append_str(b, "&lt;");
        } else if (c == '>') {
            rc = nm_buf_append_str(b, "&gt;");
        } else if (c == '&') {
            rc = nm_buf_append_str(b, "&amp;");
        } else if (c == '"') {
            rc = nm_buf_append_str(b, "&quot;");
        } else if (c == '\'') {
            rc = nm_buf_append_str(b, "&#39;");
        } else {
            rc = nm_buf_append(b, p, len);
        }
        p += len;
        left -= len;
    }
    return rc;
}

/* RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@". Two sub-delims are
 * encoded all the same: the single quote, so that no quote of any kind reaches an attribute, and
 * ';', which RFC 2396 §3.3 made a parameter delimiter that older URL code still drops. */
static bool is_href_byte(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&()*+,=:@", c) != NULL;
}

/* A directory entry as a link (RFC 3986 §4.2): "./" and the name as one percent-encoded path
 * segment. A name such as "javascript:alert(1)" or "a:b" would otherwise be read as a URI with a
 * scheme; after "./" the colon is inside a path segment, and the reference stays a relative path
 * in this directory. Every byte outside pchar ('%', '#', '?', SP, quotes, '<', '>', controls,
 * non-ASCII) becomes %XX; a directory keeps its trailing slash. Writes a NUL-terminated string to
 * out, which holds 3 * strlen(name) + 4 bytes. */
static void make_href(const char *name, bool is_dir, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    out[n++] = '.';
    out[n++] = '/';
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        if (is_href_byte(*s)) {
            out[n++] = (char)*s;
        } else {
            out[n++] = '%';
            out[n++] = hex[*s >> 4];
            out[n++] = hex[*s & 0x0f];
        }
    }
    if (is_dir)
        out[n++] = '/';
    out[n] = '\0';
}

/* Whether a request for href (from make_href) reaches the entry `name`: nm_path_normalize refuses
 * some bytes a file name may hold (a control byte such as a newline), and a link that can only
 * answer 400 is not written. */
static bool href_reaches(const char *href, bool is_dir, const char *name)
{
    char norm[NAME_MAX + 3];
    size_t len = strlen(name);
    int n = nm_path_normalize(nm_slice_from_cstr(href + 1), norm, sizeof(norm));
    return n > 0 && (size_t)n == len + 1 + is_dir && norm[0] == '/' &&
           memcmp(norm + 1, name, len) == 0;
}

/* Renders an HTML index of a directory: names sorted, dotfiles hidden unless allowed. */
static int render_listing(struct nm_site *site, const struct nm_file *dir, const char *path,
                          struct nm_buf *out)
{
    int fd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -ENOMEM;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (e->d_name[0] == '.' && !site->cfg->allow_dotfiles)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof(*names));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    if (rc == 0 && n)
        qsort(names, n, sizeof(*names), cmp_names);
    rc = rc ? rc
            : nm_buf_append_str(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                                     "<title>Index of ");
    rc = rc ? rc : put_html_text(out, path);
    rc = rc ? rc : nm_buf_append_str(out, "</title></head>\n<body><h1>Index of ");
    rc = rc ? rc : put_html_text(out, path);
    rc = rc ? rc
            : nm_buf_append_str(out, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th>"
                                     "<th>Modified</th></tr>\n");
    if (rc == 0 && strcmp(path, "/") != 0)
        rc = nm_buf_append_str(out, "<tr><td><a href=\"../\">../</a></td></tr>\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (strlen(names[i]) > NAME_MAX || fstatat(dirfd(d), names[i], &st, 0) != 0)
            continue;
        bool is_dir = S_ISDIR(st.st_mode);
        char href[3 * NAME_MAX + 4];
        make_href(names[i], is_dir, href);
        bool linked = href_reaches(href, is_dir, names[i]);
        char when[NM_DATE_LEN + 1];
        nm_date_format(st.st_mtim.tv_sec > 0 ? st.st_mtim.tv_sec : 0, when);
        rc = nm_buf_append_str(out, "<tr><td>");
        if (rc == 0 && linked) {
            /* '&' is the one markup character pchar keeps. */
            rc = nm_buf_append_str(out, "<a href=\"");
            rc = rc ? rc : put_html_text(out, href);
            rc = rc ? rc : nm_buf_append_str(out, "\">");
        }
        rc = rc ? rc : put_html_text(out, names[i]);
        rc = rc ? rc : nm_buf_append_str(out, is_dir ? "/" : "");
        rc = rc ? rc : nm_buf_append_str(out, linked ? "</a></td>" : "</td>");
        if (rc == 0 && is_dir)
            rc = nm_buf_appendf(out, "<td>-</td><td>%s</td></tr>\n", when);
        else if (rc == 0)
            rc =
                nm_buf_appendf(out, "<td>%lld</td><td>%s</td></tr>\n", (long long)st.st_size, when);
    }
    rc = rc ? rc : nm_buf_append_str(out, "</table>\n</body></html>\n");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int respond_listing(struct nm_conn *c, struct request *r, struct nm_file *dir,
                           const char *path)
{
    struct nm_buf html;
    nm_buf_init(&html, LISTING_MAX_BYTES);
    int rc = render_listing(c->site, dir, path, &html);
    if (rc < 0) {
        nm_buf_cleanup(&html);
        return respond_text(c, r, rc == -EACCES ? 403 : 500, "cannot list directory", NULL);
    }
    /* The validator describes the entries as listed, not the directory's mtime, which does not
     * change when a listed file's size or mtime does. */
    struct nm_file view = *dir;
    view.size = html.len;
    view.data = NULL;
    view.content_type = "text/html; charset=utf-8";
    view.has_last_modified = false;
    view.has_etag = c->site->cfg->etag_mode != NM_ETAG_OFF;
    snprintf(view.cache_control, sizeof(view.cache_control), "no-cache");
    view.max_age = -1;
    if (view.has_etag) {
        XXH128_hash_t h = XXH3_128bits(html.ptr, html.len);
        int n = nm_etag_make_hash128(h.high64, h.low64, view.etag_text, sizeof(view.etag_text));
        view.etag.opaque = nm_slice_make(view.etag_text, n > 0 ? (size_t)n : 0);
        view.etag.weak = false;
    }
    rc = respond_representation(c, r, &view, html.ptr ? html.ptr : "");
    nm_buf_cleanup(&html);
    return rc;
}

/* ---- routing ---- */

static int redirect_to_dir(struct nm_conn *c, struct request *r, const char *path)
{
    char enc[NM_PATH_MAX * 3 + 2];
    int n = nm_path_encode(path, enc, sizeof(enc) - 1);
    if (n < 0)
        return respond_text(c, r, 414, NULL, NULL);
    enc[n] = '/';
    enc[n + 1] = '\0';
    struct nm_slice t = r->h->target;
    const char *q = memchr(t.ptr, '?', t.len);
    char extra[sizeof(enc) + 8192 + 16];
    snprintf(extra, sizeof(extra), "Location: %s%.*s\r\n", enc,
             q ? (int)(t.len - (size_t)(q - t.ptr)) : 0, q ? q : "");
    return respond_text(c, r, 301, NULL, extra);
}

static int respond_lookup_error(struct nm_conn *c, struct request *r, int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        return respond_text(c, r, 404, NULL, NULL);
    case -EACCES:
    case -EPERM:
        return respond_text(c, r, 403, NULL, NULL);
    case -EMFILE:
    case -ENFILE:
    case -EAGAIN:
        return respond_text(c, r, 503, "try again", "Retry-After: 1\r\n");
    default:
        nm_log_error("lookup failed: %s", strerror(-err));
        return respond_text(c, r, 500, NULL, NULL);
    }
}

static int serve_path(struct nm_conn *c, struct request *r, const char *path)
{
    struct nm_site *site = c->site;
    if (!site->cfg->allow_dotfiles && nm_path_is_hidden(path))
        return respond_text(c, r, 404, NULL, NULL);

    size_t plen = strlen(path);
    bool dir_url = path[plen - 1] == '/';
    struct nm_file *f;
    int rc = nm_filecache_lookup(site->files, path, &f);
    if (rc < 0)
        return respond_lookup_error(c, r, rc);
    if (!f->is_dir) {
        rc = dir_url ? respond_text(c, r, 404, NULL, NULL) : respond_representation(c, r, f, NULL);
        nm_file_release(f);
        return rc;
    }
    if (!dir_url) {
        nm_file_release(f);
        return redirect_to_dir(c, r, path);
    }
    if (site->cfg->index_name && site->cfg->index_name[0]) {
        char ipath[NM_PATH_MAX + 256];
        snprintf(ipath, sizeof(ipath), "%s%s", path, site->cfg->index_name);
        struct nm_file *idx;
        rc = nm_filecache_lookup(site->files, ipath, &idx);
        if (rc == 0 && !idx->is_dir) {
            nm_file_release(f);
            rc = respond_representation(c, r, idx, NULL);
            nm_file_release(idx);
            return rc;
        }
        if (rc == 0)
            nm_file_release(idx);
    }
    rc =
        site->cfg->list_dirs ? respond_listing(c, r, f, path) : respond_text(c, r, 404, NULL, NULL);
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

static int handle(struct nm_conn *c, struct request *r)
{
    struct nm_http1_request *h = r->h;
    switch (h->method) {
    case NM_METHOD_GET:
        break;
    case NM_METHOD_HEAD:
        r->head_only = true;
        break;
    case NM_METHOD_OPTIONS: {
        int rc = put_status(c, r, 204);
        if (rc == 0)
            rc = putf(c, "Allow: %s\r\n", allow_methods);
        return rc ? rc : put_end(c, r);
    }
    case NM_METHOD_OTHER:
        return respond_text(c, r, 501, "unknown method", NULL);
    default: {
        char extra[64];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow_methods);
        return respond_text(c, r, 405, NULL, extra);
    }
    }

    struct nm_slice target = h->target;
    if (target.len == 1 && target.ptr[0] == '*')
        return respond_text(c, r, 400, "asterisk-form is for OPTIONS only", NULL);
    target = origin_of(target);
    if (target.ptr && target.len == 0)
        return respond_text(c, r, 400, "userinfo in the request target", NULL);
    char path[NM_PATH_MAX + 1];
    int n = target.ptr ? nm_path_normalize(target, path, sizeof(path)) : 1;
    if (!target.ptr)
        strcpy(path, "/");
    if (n == -ENAMETOOLONG)
        return respond_text(c, r, 414, NULL, NULL);
    if (n < 0)
        return respond_text(c, r, 400, "malformed path", NULL);
    nm_site_follow_root(c->site);
    return serve_path(c, r, path);
}

static void log_request(struct nm_conn *c, const struct request *r)
{
    struct nm_site *site = c->site;
    if (!site->log_enabled)
        return;
    struct nm_log_entry e = {
        .peer = c->peer,
        .time = site->now,
        .minor_version = -1,
        .status = r->status,
        .bytes = r->body_bytes,
        .etag = nm_slice_from_cstr(r->etag),
    };
    if (r->h) {
        e.method = r->h->method_token;
        e.target = r->h->target;
        e.minor_version = r->h->minor_version;
        e.referer = nm_http1_find(r->h, NM_SLICE_LIT("referer"));
        e.user_agent = nm_http1_find(r->h, NM_SLICE_LIT("user-agent"));
    }
    nm_log_format_access(&site->log, site->cfg->log_format, &e);
}

/* ---- the request loop ---- */

static bool queue_has_room(const struct nm_conn *c)
{
    return c->n_segs + SEGS_PER_RESPONSE <= NM_CONN_MAX_SEGS &&
           c->out.len - c->out_sent < OUT_PAUSE_BYTES;
}

/* Answers a request whose head could not be parsed, and stops reading. */
/* RFC 9110 §9.3.2: no content for HEAD, even in an error about a head that did not parse. */
static bool looks_like_head(const struct nm_buf *in)
{
    size_t i = 0;
    while (i < in->len && (in->ptr[i] == '\r' || in->ptr[i] == '\n'))
        i++;
    return in->len - i >= 5 && memcmp(in->ptr + i, "HEAD ", 5) == 0;
}

int nm_conn_fail(struct nm_conn *c, int status, const char *why)
{
    struct request r = {.close = true, .head_only = looks_like_head(&c->in)};
    c->state = NM_CONN_CLOSING;
    int rc = respond_text(c, &r, status, why, NULL);
    log_request(c, &r);
    return rc;
}

/* Answers the request whose head is the first head_len bytes of the input, any content it had
 * read and checked: with `status` 0 by handling it, or else with that error and a close. */
static int answer(struct nm_conn *c, struct nm_http1_request *h, size_t head_len, int status,
                  const char *why)
{
    struct request r = {.h = h, .close = !h->keep_alive, .head_only = h->method == NM_METHOD_HEAD};
    int rc;
    if (status) {
        r.close = true;
        rc = respond_text(c, &r, status, why, NULL);
    } else {
        rc = handle(c, &r);
    }
    log_request(c, &r);
    c->requests++;
    nm_buf_consume(&c->in, head_len);
    c->state = r.close ? NM_CONN_CLOSING : NM_CONN_HEAD;
    return rc < 0 ? rc : 1;
}

static int process_head(struct nm_conn *c)
{
    /* A head trickling in is parsed again only when a line has ended since the last try (or the
     * cap is reached), so a byte-at-a-time client costs a parse per line, not per byte. */
    if (c->scanned && c->in.len < c->site->cfg->max_head_bytes &&
        !memchr(c->in.ptr + c->scanned, '\n', c->in.len - c->scanned)) {
        c->scanned = c->in.len;
        return 0;
    }
    struct nm_http1_request *h = &c->site->scratch;
    struct nm_http1_limits lim = {c->site->cfg->max_target_bytes, c->site->cfg->max_head_bytes};
    const char *why = NULL;
    int n = nm_http1_parse_request(c->in.ptr, c->in.len, &lim, h, &why);
    c->scanned = n == 0 ? c->in.len : 0;
    if (n <= 0)
        return n == 0 ? 0 : nm_conn_fail(c, -n, why);

    if (h->has_content_length && h->content_length > c->site->cfg->max_discard_bytes)
        return answer(c, h, (size_t)n, 413, "request content too large");
    if (!h->chunked && !(h->has_content_length && h->content_length > 0))
        return answer(c, h, (size_t)n, 0, NULL);

    /* RFC 9112 §6.3: content frames the next request even on a method that ignores it, and it is
     * read before the answer is decided: a chunked body found malformed after a 200 went out
     * could only close the connection, where §7.1 and §2.2 call for a 400. The head stays at the
     * front of the input meanwhile (its parsed form is the site's scratch, which other
     * connections reuse) and the content is taken from behind it. */
    if (h->expect_continue && h->minor_version == 1) {
        /* RFC 9110 §10.1.1: ask for the content we are going to read anyway, or a client that
         * waits for 100 would never send it. */
        int rc = put_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
        if (rc < 0)
            return rc;
    }
    if (h->chunked) {
        c->state = NM_CONN_CHUNKED;
        /* The cap counts the chunked bytes, framing included. */
        nm_http1_chunked_init_max(&c->chunked, c->site->cfg->max_discard_bytes);
    } else {
        c->state = NM_CONN_CONTENT;
        c->discard_left = h->content_length;
    }
    return 1;
}

/* Takes the content that has arrived behind the head, and answers once all of it is in. */
static int process_content(struct nm_conn *c)
{
    struct nm_http1_request *h = &c->site->scratch;
    struct nm_http1_limits lim = {c->site->cfg->max_target_bytes, c->site->cfg->max_head_bytes};
    const char *why = NULL;
    int n = nm_http1_parse_request(c->in.ptr, c->in.len, &lim, h, &why);
    assert(n > 0); /* the bytes that parsed when the content began */
    size_t head_len = (size_t)n, avail = c->in.len - head_len, used = 0;
    char *content = c->in.ptr + head_len;
    bool done;
    int status = 0;
    if (c->state == NM_CONN_CONTENT) {
        used = avail < c->discard_left ? avail : (size_t)c->discard_left;
        c->discard_left -= used;
        done = c->discard_left == 0;
    } else {
        int64_t got = nm_http1_chunked_feed(&c->chunked, content, avail, &done);
        if (got < 0) {
            status = (int)-got;
            why = status == 413 ? "request content too large" : "malformed chunked content";
        } else {
            used = (size_t)got;
        }
    }
    memmove(content, content + used, avail - used);
    c->in.len -= used;
    if (status)
        return answer(c, h, head_len, status, why);
    return done ? answer(c, h, head_len, 0, NULL) : 0;
}

int nm_conn_process(struct nm_conn *c)
{
    while (c->state != NM_CONN_CLOSING) {
        if (!queue_has_room(c))
            return 0;
        int rc;
        if (c->state == NM_CONN_CONTENT || c->state == NM_CONN_CHUNKED) {
            rc = process_content(c);
        } else {
            if (c->in.len == 0)
                return 0;
            rc = process_head(c);
        }
        if (rc <= 0)
            return rc;
    }
    return 0;
}
