/* One HTTP/1.1 connection: request bytes in, response segments out (RFC 9112). The framing is
 * here; what each response says is the handler's. */
#include "conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handler.h"
#include "log.h"

#define OUT_MAX_BYTES (16u << 20)
#define OUT_PAUSE_BYTES (256u << 10) /* stop taking pipelined requests above this much output */
#define OUT_KEEP_BYTES (16u << 10)   /* output buffer an idle connection may keep */
/* A response's head, then one segment per file part: a multipart body's ranges at most. */
#define SEGS_PER_RESPONSE (2 * NM_RESPONSE_MAX_RANGES + 2)

/* ---- the connection ---- */

void nm_conn_peer_set(struct nm_conn_peer *p, const struct sockaddr_storage *ss)
{
    *p = (struct nm_conn_peer){.family = AF_UNSPEC};
    if (ss->ss_family == AF_INET) {
        p->family = AF_INET;
        memcpy(p->addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        p->family = AF_INET6;
        memcpy(p->addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    }
}

void nm_conn_peer_format(const struct nm_conn_peer *p, char *out, size_t cap)
{
    if (p->family == AF_UNSPEC || !inet_ntop(p->family, p->addr, out, (socklen_t)cap))
        snprintf(out, cap, "-");
}

size_t nm_conn_max_input(const struct nm_site *site)
{
    return site->cfg->max_head_bytes + 4096;
}

void nm_conn_init(struct nm_conn *c, struct nm_site *site, const char *peer)
{
    memset(c, 0, sizeof(*c));
    c->site = site;
    nm_buf_init(&c->in, nm_conn_max_input(site));
    nm_buf_init(&c->out, OUT_MAX_BYTES);
    c->peer.family = AF_UNSPEC;
    if (peer && inet_pton(AF_INET, peer, c->peer.addr) == 1)
        c->peer.family = AF_INET;
    else if (peer && inet_pton(AF_INET6, peer, c->peer.addr) == 1)
        c->peer.family = AF_INET6;
}

bool nm_conn_is_drained(const struct nm_conn *c)
{
    return c->state == NM_CONN_HEAD && c->in.len == 0 && c->n_segs == 0 && !c->input_ended;
}

void nm_conn_reuse(struct nm_conn *c, const struct nm_conn_peer *peer)
{
    assert(nm_conn_is_drained(c));
    c->peer = *peer;
    c->requests = 0;
    c->scanned = 0;
    c->sending_total = 0;
    c->sending_what[0] = '\0';
    c->in.max_cap = nm_conn_max_input(c->site);
}

/* ---- output queue ---- */

/* The i-th queued segment (i == n_segs: the next free one). */
static struct nm_conn_seg *seg_at(struct nm_conn *c, unsigned i)
{
    return &c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS];
}

void nm_conn_cleanup(struct nm_conn *c)
{
    for (unsigned i = 0; i < c->n_segs; i++)
        nm_file_release(seg_at(c, i)->file);
    c->n_segs = 0;
    nm_buf_cleanup(&c->in);
    nm_buf_cleanup(&c->out);
}

struct nm_conn_seg *nm_conn_front(struct nm_conn *c)
{
    return c->n_segs ? &c->segs[c->seg_head] : NULL;
}

static struct nm_conn_seg *seg_push(struct nm_conn *c)
{
    struct nm_conn_seg *s = seg_at(c, c->n_segs);
    *s = (struct nm_conn_seg){0};
    c->n_segs++;
    return s;
}

/* The segment that output added now belongs to: the last one, unless it has a file part, whose
 * bytes must leave before anything queued after them. */
static struct nm_conn_seg *seg_open(struct nm_conn *c)
{
    struct nm_conn_seg *s = c->n_segs ? seg_at(c, c->n_segs - 1) : NULL;
    return !s || s->file ? seg_push(c) : s;
}

size_t nm_conn_gather(const struct nm_conn *c, struct iovec *iov, size_t max, bool *file_follows)
{
    size_t n = 0, pos = c->out_sent;
    *file_follows = false;
    for (unsigned i = 0; i < c->n_segs && n + 2 <= max; i++) {
        const struct nm_conn_seg *g = &c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS];
        if (g->mem_len) {
            iov[n++] = (struct iovec){c->out.ptr + pos, g->mem_len};
            pos += g->mem_len;
        }
        if (g->len && !g->data) {
            *file_follows = true;
            break;
        }
        if (g->len)
            iov[n++] = (struct iovec){(void *)(g->data + g->off), (size_t)g->len};
    }
    return n;
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

/* Appends bytes to the output. */
static int put(struct nm_conn *c, const void *data, size_t len)
{
    int rc = nm_buf_append(&c->out, data, len);
    if (rc == 0)
        seg_open(c)->mem_len += len;
    return rc;
}

static void put_file(struct nm_conn *c, struct nm_file *f, uint64_t off, uint64_t len)
{
    struct nm_conn_seg *s = seg_open(c);
    s->file = nm_file_acquire(f);
    s->off = off;
    s->len = len;
    s->data = f->data;
}

/* ---- input and state ---- */

int nm_conn_reserve_input(struct nm_conn *c, size_t want, char **at)
{
    size_t room = c->in.max_cap - c->in.len;
    if (c->state == NM_CONN_CLOSING || c->input_ended || room == 0)
        return 0;
    int rc = nm_buf_reserve(&c->in, room < want ? room : want);
    if (rc < 0)
        return rc;
    *at = c->in.ptr + c->in.len;
    room = c->in.cap - c->in.len;
    return room > INT_MAX ? INT_MAX : (int)room;
}

void nm_conn_commit_input(struct nm_conn *c, size_t n)
{
    assert(n <= c->in.cap - c->in.len);
    c->in.len += n;
}

void nm_conn_stop_reading(struct nm_conn *c)
{
    c->state = NM_CONN_CLOSING;
}

void nm_conn_end_input(struct nm_conn *c)
{
    c->input_ended = true;
}

unsigned nm_conn_count_requests(const struct nm_conn *c)
{
    return c->requests;
}

bool nm_conn_is_done(const struct nm_conn *c)
{
    return c->state == NM_CONN_CLOSING && c->n_segs == 0;
}

bool nm_conn_is_mid_request(const struct nm_conn *c)
{
    return c->in.len > 0 || c->state == NM_CONN_CONTENT || c->state == NM_CONN_CHUNKED;
}

bool nm_conn_is_reading_head(const struct nm_conn *c)
{
    return c->state == NM_CONN_HEAD && c->in.len > 0;
}

uint64_t nm_conn_count_queued_content(const struct nm_conn *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < c->n_segs; i++)
        n += c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS].len;
    return n;
}

/* ---- rendering ---- */

static char *copy(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The status line (RFC 9112 §4), Date, the response's block and fields, the connection's own field
 * (§9.3: close, or keep-alive to an HTTP/1.0 client that asked for it), the empty line. */
static int put_head(struct nm_conn *c, const struct nm_response *resp, bool close,
                    int minor_version)
{
    char status[64] = "HTTP/1.1 ";
    const char *phrase = nm_response_status_phrase(resp->status);
    size_t phrase_len = strlen(phrase);
    status[9] = (char)('0' + resp->status / 100 % 10);
    status[10] = (char)('0' + resp->status / 10 % 10);
    status[11] = (char)('0' + resp->status % 10);
    status[12] = ' ';
    memcpy(status + 13, phrase, phrase_len);
    memcpy(status + 13 + phrase_len, "\r\n", 2);
    size_t n = 15 + phrase_len;
    const char *connection = close                ? "Connection: close\r\n"
                             : minor_version == 0 ? "Connection: keep-alive\r\n"
                                                  : "";
    size_t connection_len = strlen(connection);
    size_t len = n + c->site->date_line_len + resp->block.len + nm_response_fields_len(resp, 0) +
                 connection_len + 2;
    int rc = nm_buf_reserve(&c->out, len);
    if (rc < 0)
        return rc;
    char *p = copy(c->out.ptr + c->out.len, status, n);
    p = copy(p, c->site->date_line, c->site->date_line_len);
    /* The version's fields rendered once (nm_file.head), then the ones of this response. */
    p = copy(p, resp->block.ptr, resp->block.len);
    p = nm_response_put_fields(resp, 0, p);
    p = copy(p, connection, connection_len);
    copy(p, "\r\n", 2);
    c->out.len += len;
    seg_open(c)->mem_len += len;
    return 0;
}

/* Queues a response: its head, then its content, bytes copied and file parts by reference. */
static int queue_response(struct nm_conn *c, const struct nm_response *resp, bool close,
                          int minor_version)
{
    int rc = put_head(c, resp, close, minor_version);
    for (size_t i = 0; i < resp->n_pieces && rc == 0; i++) {
        const struct nm_response_piece *p = &resp->pieces[i];
        if (p->file)
            put_file(c, p->file, p->off, p->len);
        else
            rc = put(c, p->bytes, (size_t)p->len);
    }
    return rc;
}

/* ---- requests ---- */

/* The handler's view of a parsed head: the fields it reads, each as all of its lines (RFC 9110
 * §5.3), in storage that lives as long as the view. */
struct handler_input {
    struct nm_handler_request req;
    struct nm_slice lines[NM_HANDLER_FIELDS][NM_HTTP1_MAX_FIELDS];
};

static void collect_request(const struct nm_http1_request *h, struct handler_input *in)
{
    struct nm_handler_request *req = &in->req;
    struct nm_field *dst[NM_HANDLER_FIELDS];
    for (size_t k = 0; k < NM_HANDLER_FIELDS; k++) {
        dst[k] = nm_handler_request_field(req, k);
        *dst[k] = (struct nm_field){in->lines[k], 0};
    }
    req->method = h->method;
    req->target = h->target;
    for (size_t i = 0; i < h->n_fields; i++) {
        struct nm_slice n = h->fields[i].name;
        char first = (char)(n.ptr[0] | 0x20);
        if (first != 'i' && first != 'r' && first != 'a' && first != 'o')
            continue; /* none of the handler's fields: a cheap first test */
        for (size_t k = 0; k < NM_HANDLER_FIELDS; k++) {
            if (nm_slice_case_eq(n, nm_handler_field_names[k])) {
                in->lines[k][dst[k]->n_lines++] = h->fields[i].value;
                break;
            }
        }
    }
}

/* The --metrics counters of one response; h is NULL when the head could not be parsed. */
static void count_response(struct nm_conn *c, const struct nm_http1_request *h,
                           const struct nm_response *resp)
{
    if (!c->site->metrics)
        return; /* no field scan per request when nothing counts it */
    nm_metrics_count(c->site->metrics, h ? h->method : NM_METHOD_OTHER, resp->status,
                     nm_response_coding(resp), resp->content_bytes, resp->unsent_bytes);
}

/* h is NULL when the head could not be parsed. */
static void log_request(struct nm_conn *c, const struct nm_http1_request *h,
                        const struct nm_response *resp)
{
    struct nm_site *site = c->site;
    if (!site->log_enabled)
        return;
    char peer[INET6_ADDRSTRLEN];
    nm_conn_peer_format(&c->peer, peer, sizeof(peer));
    struct nm_log_entry e = {
        .peer = peer,
        .time = site->now,
        .minor_version = -1,
        .status = resp->status,
        .bytes = resp->content_bytes,
        .etag = resp->etag,
    };
    if (h) {
        e.method = h->method_token;
        e.target = h->target;
        e.minor_version = h->minor_version;
        e.referer = nm_http1_find(h, NM_SLICE_LIT("referer"));
        e.user_agent = nm_http1_find(h, NM_SLICE_LIT("user-agent"));
    }
    if (nm_log_format_access(&site->log, site->cfg->log_format, &e) < 0)
        site->log_dropped++; /* the buffer is full: counted and reported, never silent */
}

static bool queue_has_room(const struct nm_conn *c)
{
    return c->n_segs + SEGS_PER_RESPONSE <= NM_CONN_MAX_SEGS &&
           c->out.len - c->out_sent < OUT_PAUSE_BYTES;
}

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
    struct nm_response resp;
    nm_response_init(&resp);
    int rc = nm_handler_respond_error(&resp, status, why, looks_like_head(&c->in));
    c->state = NM_CONN_CLOSING;
    if (rc == 0)
        rc = queue_response(c, &resp, true, -1);
    log_request(c, NULL, &resp);
    count_response(c, NULL, &resp);
    nm_response_cleanup(&resp);
    return rc;
}

/* "<method> <target>" of the response being sent, cut to fit, for the log of a stop that cuts it;
 * copied rather than formatted, since every response with content pays it. */
static void note_sending(struct nm_conn *c, const struct nm_http1_request *h)
{
    char *p = c->sending_what;
    size_t room = sizeof(c->sending_what) - 1;
    size_t m = h->method_token.len < room ? h->method_token.len : room;
    memcpy(p, h->method_token.ptr, m);
    p += m;
    room -= m;
    if (room) {
        *p++ = ' ';
        room--;
    }
    size_t t = h->target.len < room ? h->target.len : room;
    memcpy(p, h->target.ptr, t);
    p[t] = '\0';
}

/* Answers the request whose head is the first head_len bytes of the input, any content it had
 * read and checked: with `status` 0 by the handler, or else with that error and a close. */
static int answer(struct nm_conn *c, struct nm_http1_request *h, size_t head_len, int status,
                  const char *why)
{
    bool close = status || !h->keep_alive;
    struct nm_response resp;
    nm_response_init(&resp);
    int rc;
    if (status) {
        rc = nm_handler_respond_error(&resp, status, why, h->method == NM_METHOD_HEAD);
    } else {
        struct handler_input in;
        collect_request(h, &in);
        resp.use_block = true;
        rc = nm_handler_respond(c->site, &in.req, &resp);
    }
    if (rc == 0)
        rc = queue_response(c, &resp, close, h->minor_version);
    if (rc == 0 && resp.content_bytes > 0) {
        note_sending(c, h);
        c->sending_total = resp.content_bytes;
    }
    log_request(c, h, &resp);
    count_response(c, h, &resp);
    nm_response_cleanup(&resp);
    c->requests++;
    nm_buf_consume(&c->in, head_len);
    c->state = close ? NM_CONN_CLOSING : NM_CONN_HEAD;
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
        return n == 0 ? 0 : nm_conn_fail(c, nm_http1_status_of(n), why);

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
        static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
        int rc = put(c, interim, sizeof(interim) - 1);
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
            status = nm_http1_status_of((int)got);
            why = got == -EFBIG ? "request content too large" : "malformed chunked content";
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
        if (c->site->listing_renders_left == 0)
            return 0; /* this pass's expensive answer is made: the others' turn (site.h) */
        int rc;
        if (c->state == NM_CONN_CONTENT || c->state == NM_CONN_CHUNKED) {
            rc = process_content(c);
        } else {
            if (c->in.len == 0)
                break;
            rc = process_head(c);
        }
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    /* Input ran out: after a half-close no more will come, so what is left is a request that
     * cannot complete, and the connection closes once its answers are sent. */
    if (c->input_ended)
        c->state = NM_CONN_CLOSING;
    return 0;
}
