/* One HTTP/2 connection (RFC 9113) over libnghttp2, without a socket: nghttp2 frames, compresses
 * headers and keeps the flow-control windows; this file turns each request stream into a
 * handler request, renders the handler's response as HEADERS and DATA, and bounds what a peer may
 * make the server do for the bytes it sends. */
#include "h2.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "log.h"
#include "send.h"

#define MAX_STREAMS 100            /* SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2) */
#define OUT_CHUNK (64u << 10)      /* output gathered before it is handed out */
#define OUT_KEEP_BYTES (16u << 10) /* output buffer an idle connection may keep */
#define SPARE_STREAMS 8            /* closed streams kept for reuse */
#define KEEP_BYTES (4u << 10)      /* buffer a kept stream may hold on to */
#define BODY_MAX_BYTES (16u << 20) /* generated content (a listing) of one response */
#define MAX_LINES 100              /* kept field lines of one request, as NM_HTTP1_MAX_FIELDS */
/* A peer's frames that make no request progress (PING, SETTINGS, PRIORITY, empty DATA, unknown
 * types, WINDOW_UPDATE while nothing is being sent or of a few bytes): a bucket of JUNK_BURST
 * that drains at JUNK_RATE a second; each answered request takes one off too. */
#define JUNK_BURST 1000
#define JUNK_RATE 100
#define JUNK_HEADER_RESET 100 /* what a header section twice over the cap weighs */
#define SMALL_WINDOW_UPDATE 1024
/* RST_STREAM from the peer (CVE-2023-44487, rapid reset): a bucket of RST_BURST, RST_RATE a
 * second. nghttp2's own limit (1000, 33 a second) stays behind it. */
#define RST_BURST 200
#define RST_RATE 20
#define CONTINUATIONS_MAX 64 /* CONTINUATION frames of one header block */
#define ERROR_REPORT_MS 1000 /* at most one error line of this file a second, process-wide */

/* What a stored field line is: the handler's fields first (nm_handler_field_names), then the
 * ones this file reads itself. */
enum line_kind {
    L_METHOD = NM_HANDLER_FIELDS,
    L_PATH,
    L_AUTHORITY,
    L_HOST,
    L_REFERER,
    L_USER_AGENT,
    L_COUNT,
};

static const struct nm_slice own_line_names[L_COUNT - NM_HANDLER_FIELDS] = {
    NM_SLICE_INIT(":method"), NM_SLICE_INIT(":path"),   NM_SLICE_INIT(":authority"),
    NM_SLICE_INIT("host"),    NM_SLICE_INIT("referer"), NM_SLICE_INIT("user-agent"),
};

/* The kind of a field line by its name (lower case, RFC 9113 §8.2.1), L_COUNT for one not kept. */
static unsigned kind_of(struct nm_slice n)
{
    for (unsigned k = 0; k < NM_HANDLER_FIELDS; k++)
        if (nm_slice_eq(n, nm_handler_field_names[k]))
            return k;
    for (unsigned k = NM_HANDLER_FIELDS; k < L_COUNT; k++)
        if (nm_slice_eq(n, own_line_names[k - NM_HANDLER_FIELDS]))
            return k;
    return L_COUNT;
}

struct line {
    unsigned kind;
    size_t off, len; /* in the stream's `req` buffer */
};

/* A part of the content being sent: bytes of the stream's `body` buffer, or of a file. */
struct part {
    struct nm_file *file; /* a reference; NULL for bytes */
    uint64_t off, len;    /* in the file, or in `body` */
};

struct stream {
    struct stream *next;                  /* in the ready queue or the spare list */
    struct stream *live_prev, *live_next; /* in the list of open streams */
    int32_t id;
    bool queued;    /* in the ready queue */
    bool closed;    /* closed while queued: the queue releases it */
    bool responded; /* a response (or a reset) was submitted: never answer again */
    bool sending;   /* the data provider has content left */
    /* The request. */
    struct nm_buf req;
    struct line lines[MAX_LINES];
    size_t n_lines;
    size_t list_bytes;     /* RFC 9113 §6.5.2 header list size so far */
    unsigned n_fields;     /* fields other than pseudo-header fields */
    uint64_t content_seen; /* request content read and dropped */
    int error;             /* a status to answer instead of asking the handler */
    const char *why;
    /* The response's content. */
    struct nm_buf body;
    struct part parts[NM_RESPONSE_MAX_PIECES];
    size_t n_parts, cur;
    uint64_t cur_done;             /* bytes of parts[cur] given */
    char tail[NM_SEND_TAIL_BYTES]; /* the end of a file part, read, then checked */
    size_t tail_len;               /* 0: not read yet */
};

struct bucket {
    uint64_t level;
    int64_t at_ms;
};

struct nm_h2 {
    struct nm_site *site;
    nghttp2_session *session;
    struct nm_buf out;
    size_t out_sent;
    struct stream *ready, **ready_end; /* requests complete, not answered yet, in order */
    struct stream *spare;              /* closed streams kept for the next ones */
    struct stream *live;               /* open streams (their file references) */
    unsigned n_streams, n_spare, n_sending;
    unsigned hblock_frames;
    size_t hblock_bytes; /* the header block being received, encoded */
    struct bucket junk, resets;
    int64_t now_ms;
    bool failed;
    char peer[64];
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds `cost` to a bucket that drains `rate` a second; false when it is over `burst`. */
static bool bucket_add(struct bucket *b, int64_t now, uint64_t cost, unsigned rate, unsigned burst)
{
    if (now > b->at_ms) {
        uint64_t drained = (uint64_t)(now - b->at_ms) * rate / 1000;
        if (drained) {
            b->level = b->level > drained ? b->level - drained : 0;
            b->at_ms = now;
        }
    } else if (b->at_ms == 0) {
        b->at_ms = now;
    }
    b->level += cost;
    return b->level <= burst;
}

/* Error lines of HTTP/2 connections, at most one a second for the whole process: a peer that
 * misbehaves on many connections at once must not fill the log. The lines left out are counted
 * into the next one. */
static void log_bounded(const char *line)
{
    static _Atomic int64_t last_ms;
    static atomic_uint dropped;
    int64_t t = now_ms(), last = atomic_load(&last_ms);
    if (last && t - last < ERROR_REPORT_MS) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&last_ms, &last, t)) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    unsigned n = atomic_exchange(&dropped, 0);
    if (n)
        nm_log_error("%s (and %u more such lines left out)", line, n);
    else
        nm_log_error("%s", line);
}

bool nm_h2_may_be_preface(const char *bytes, size_t n)
{
    size_t m = n < NM_H2_PREFACE_LEN ? n : NM_H2_PREFACE_LEN;
    return memcmp(bytes, NM_H2_PREFACE, m) == 0;
}

/* Ends the connection for going over a bound: GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §7), nothing
 * more is read. Returns what a callback returns to stop nghttp2 at once. */
static int calm(struct nm_h2 *h, const char *why)
{
    if (!h->failed) {
        h->failed = true;
        nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
        char line[256];
        snprintf(line, sizeof(line), "%s: HTTP/2 connection closed: %s", h->peer, why);
        log_bounded(line);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- streams ---- */

static void stream_free(struct stream *s)
{
    nm_buf_cleanup(&s->req);
    nm_buf_cleanup(&s->body);
    free(s);
}

static struct stream *stream_new(struct nm_h2 *h, int32_t id)
{
    struct stream *s = h->spare;
    if (s) {
        h->spare = s->next;
        h->n_spare--;
    } else {
        s = calloc(1, sizeof(*s));
        if (!s)
            return NULL;
        nm_buf_init(&s->req, h->site->cfg->max_head_bytes);
        nm_buf_init(&s->body, BODY_MAX_BYTES);
    }
    s->next = NULL;
    s->live_prev = NULL;
    s->live_next = h->live;
    if (h->live)
        h->live->live_prev = s;
    h->live = s;
    s->id = id;
    s->queued = s->closed = s->responded = s->sending = false;
    s->n_lines = s->list_bytes = 0;
    s->n_fields = 0;
    s->content_seen = 0;
    s->error = 0;
    s->why = NULL;
    s->n_parts = s->cur = 0;
    s->cur_done = 0;
    s->tail_len = 0;
    h->n_streams++;
    return s;
}

static void stream_release(struct nm_h2 *h, struct stream *s)
{
    for (size_t i = 0; i < s->n_parts; i++)
        nm_file_release(s->parts[i].file);
    if (s->sending)
        h->n_sending--;
    s->sending = false;
    s->n_parts = 0;
    if (s->live_prev)
        s->live_prev->live_next = s->live_next;
    else
        h->live = s->live_next;
    if (s->live_next)
        s->live_next->live_prev = s->live_prev;
    h->n_streams--;
    /* A few closed streams are kept, with small buffers, for the next requests; a burst of
     * streams leaves no more memory behind than that. */
    if (h->n_spare >= SPARE_STREAMS) {
        stream_free(s);
        return;
    }
    nm_buf_consume(&s->req, s->req.len);
    nm_buf_consume(&s->body, s->body.len);
    if (s->req.cap > KEEP_BYTES)
        nm_buf_cleanup(&s->req);
    if (s->body.cap > KEEP_BYTES)
        nm_buf_cleanup(&s->body);
    s->next = h->spare;
    h->spare = s;
    h->n_spare++;
}

static void enqueue(struct nm_h2 *h, struct stream *s)
{
    if (s->queued || s->responded)
        return;
    s->queued = true;
    *h->ready_end = s;
    h->ready_end = &s->next;
}

static struct nm_slice line_value(const struct stream *s, const struct line *l)
{
    return nm_slice_make(s->req.ptr + l->off, l->len);
}

static struct nm_slice first_line(const struct stream *s, unsigned kind)
{
    for (size_t i = 0; i < s->n_lines; i++)
        if (s->lines[i].kind == kind)
            return line_value(s, &s->lines[i]);
    return (struct nm_slice){NULL, 0};
}

static void stream_fail(struct stream *s, int status, const char *why)
{
    if (!s->error) {
        s->error = status;
        s->why = why;
    }
}

/* ---- rendering a response ---- */

static bool is_connection_specific(struct nm_slice name)
{
    static const struct nm_slice names[] = {
        NM_SLICE_INIT("connection"),       NM_SLICE_INIT("keep-alive"),
        NM_SLICE_INIT("proxy-connection"), NM_SLICE_INIT("transfer-encoding"),
        NM_SLICE_INIT("upgrade"),
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (nm_slice_case_eq(name, names[i]))
            return true;
    return false;
}

/* Gives up to `room` content bytes of the stream at `buf`. A file part's last
 * NM_SEND_TAIL_BYTES are read whole first, then the file is checked to be the version the
 * fields described, and only then given (docs/etags.md); returns -1 when it is not. */
static ssize_t fill(struct stream *s, uint8_t *buf, size_t room)
{
    size_t got = 0;
    while (got < room && s->cur < s->n_parts) {
        struct part *p = &s->parts[s->cur];
        uint64_t left = p->len - s->cur_done;
        size_t n = room - got;
        if (!p->file) {
            n = left < n ? (size_t)left : n;
            memcpy(buf + got, s->body.ptr + p->off + s->cur_done, n);
        } else if (p->file->data) {
            n = left < n ? (size_t)left : n;
            memcpy(buf + got, p->file->data + p->off + s->cur_done, n);
        } else if (left > NM_SEND_TAIL_BYTES) {
            uint64_t before_tail = left - NM_SEND_TAIL_BYTES;
            n = before_tail < n ? (size_t)before_tail : n;
            ssize_t r = pread(p->file->fd, buf + got, n, (off_t)(p->off + s->cur_done));
            if (r <= 0)
                return -1;
            n = (size_t)r;
        } else {
            if (!s->tail_len) {
                size_t t = 0;
                while (t < left) {
                    ssize_t r = pread(p->file->fd, s->tail + t, (size_t)left - t,
                                      (off_t)(p->off + s->cur_done + t));
                    if (r < 0 && errno == EINTR)
                        continue;
                    if (r <= 0)
                        return -1;
                    t += (size_t)r;
                }
                if (!nm_file_is_unchanged(p->file))
                    return -1;
                s->tail_len = (size_t)left;
            }
            n = left < n ? (size_t)left : n;
            memcpy(buf + got, s->tail + (s->tail_len - left), n);
        }
        got += n;
        s->cur_done += n;
        if (s->cur_done == p->len) {
            s->cur++;
            s->cur_done = 0;
            s->tail_len = 0;
        }
    }
    return (ssize_t)got;
}

static ssize_t read_content(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)id;
    struct nm_h2 *h = user;
    struct stream *s = source->ptr;
    ssize_t n = fill(s, buf, length);
    if (n < 0) {
        const struct part *p = &s->parts[s->cur];
        char line[512];
        snprintf(line, sizeof(line), "%s changed while being sent; response aborted (%s)",
                 p->file->path, h->peer);
        log_bounded(line);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
    }
    if (s->cur == s->n_parts) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        h->n_sending--;
        s->sending = false;
    }
    return n;
}

/* Takes the response's content: bytes copied into the stream, file parts by reference. */
static int take_content(struct stream *s, const struct nm_response *resp)
{
    for (size_t i = 0; i < resp->n_pieces; i++) {
        const struct nm_response_piece *p = &resp->pieces[i];
        struct part *d = &s->parts[s->n_parts];
        if (p->len == 0)
            continue;
        if (p->file) {
            *d = (struct part){nm_file_acquire(p->file), p->off, p->len};
        } else {
            *d = (struct part){NULL, s->body.len, p->len};
            int rc = nm_buf_append(&s->body, p->bytes, (size_t)p->len);
            if (rc < 0)
                return rc;
        }
        s->n_parts++;
    }
    return 0;
}

/* Submits HEADERS (":status", Date, the response's block and fields in lower case without those of
 * RFC 9113 §8.2.2), then the content, if any, through the data provider. */
static int submit(struct nm_h2 *h, struct stream *s, const struct nm_response *resp)
{
    enum { NAME_BYTES = 64, MAX_FIELDS = NM_RESPONSE_MAX_FIELDS + 16 };
    /* The version's pre-rendered lines (response.h, block), split, then the other fields. */
    struct nm_response_field fields[MAX_FIELDS];
    size_t n_fields = nm_response_block_fields(resp, fields, 16);
    for (size_t i = 0; i < resp->n_fields && n_fields < MAX_FIELDS; i++)
        fields[n_fields++] = resp->fields[i];
    nghttp2_nv nv[MAX_FIELDS + 2];
    char names[MAX_FIELDS][NAME_BYTES];
    char status[8];
    snprintf(status, sizeof(status), "%03d", resp->status % 1000);
    size_t n = 0;
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    const struct nm_site *site = h->site;
    const char *date = site->date_line + 6; /* "Date: " ... "\r\n" */
    if (site->date_line_len > 8)
        nv[n++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)date, 4, site->date_line_len - 8,
                               NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < n_fields; i++) {
        const struct nm_response_field *f = &fields[i];
        if (f->name.len >= NAME_BYTES || is_connection_specific(f->name))
            continue;
        for (size_t k = 0; k < f->name.len; k++) {
            char c = f->name.ptr[k];
            names[i][k] = c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
        }
        nv[n++] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)f->value.ptr, f->name.len,
                               f->value.len, NGHTTP2_NV_FLAG_NONE};
    }
    int rc = take_content(s, resp);
    if (rc < 0)
        return rc;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_content};
    bool has_content = s->n_parts > 0;
    rc = nghttp2_submit_response(h->session, s->id, nv, n, has_content ? &prd : NULL);
    if (rc < 0)
        return rc == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
    s->responded = true;
    if (has_content) {
        h->n_sending++;
        s->sending = true;
    }
    return 0;
}

/* ---- answering a request ---- */

static void log_request(struct nm_h2 *h, const struct stream *s, const struct nm_response *resp)
{
    struct nm_site *site = h->site;
    if (!site->log_enabled)
        return;
    struct nm_log_entry e = {
        .peer = h->peer,
        .time = site->now,
        .method = first_line(s, L_METHOD),
        .target = first_line(s, L_PATH),
        .major_version = 2,
        .minor_version = 0,
        .status = resp->status,
        .bytes = resp->content_bytes,
        .referer = first_line(s, L_REFERER),
        .user_agent = first_line(s, L_USER_AGENT),
        .etag = resp->etag,
    };
    nm_log_format_access(&site->log, site->cfg->log_format, &e);
}

/* The handler's request: :method, :path and the fields it reads, each with all its lines. */
static void collect(const struct stream *s, struct nm_handler_request *req,
                    struct nm_slice lines[NM_HANDLER_FIELDS][MAX_LINES])
{
    struct nm_field *dst[NM_HANDLER_FIELDS];
    for (size_t k = 0; k < NM_HANDLER_FIELDS; k++) {
        dst[k] = nm_handler_request_field(req, k);
        *dst[k] = (struct nm_field){lines[k], 0};
    }
    for (size_t i = 0; i < s->n_lines; i++) {
        const struct line *l = &s->lines[i];
        if (l->kind < NM_HANDLER_FIELDS)
            lines[l->kind][dst[l->kind]->n_lines++] = line_value(s, l);
    }
    req->method = nm_method_from_token(first_line(s, L_METHOD));
    req->target = first_line(s, L_PATH);
    if (!req->target.ptr)
        req->target = nm_slice_make("", 0);
}

static int answer(struct nm_h2 *h, struct stream *s)
{
    struct nm_response resp;
    nm_response_init(&resp);
    bool head = nm_slice_eq(first_line(s, L_METHOD), NM_SLICE_LIT("HEAD"));
    struct nm_slice authority = first_line(s, L_AUTHORITY), host = first_line(s, L_HOST);
    /* RFC 9113 §8.3.1: a Host that names another authority than :authority is malformed. */
    if (authority.ptr && host.ptr && !nm_slice_case_eq(authority, host))
        stream_fail(s, 400, "Host differs from :authority");
    int rc;
    if (s->error) {
        rc = nm_handler_respond_error(&resp, s->error, s->why, head);
    } else {
        struct nm_handler_request req;
        struct nm_slice lines[NM_HANDLER_FIELDS][MAX_LINES];
        collect(s, &req, lines);
        resp.use_block = true;
        rc = nm_handler_respond(h->site, &req, &resp);
    }
    if (rc == 0)
        rc = submit(h, s, &resp);
    if (rc < 0) {
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        s->responded = true;
    }
    log_request(h, s, &resp);
    if (h->site->metrics)
        nm_metrics_count(h->site->metrics, nm_method_from_token(first_line(s, L_METHOD)),
                         resp.status, nm_response_coding(&resp), resp.content_bytes,
                         resp.unsent_bytes);
    nm_response_cleanup(&resp);
    /* An answered request pays for a frame of the peer's that made no progress. */
    if (h->junk.level)
        h->junk.level--;
    return rc == -ENOMEM ? rc : 0;
}

/* Answers the requests that came complete in the last input, in order: only now, so that a
 * stream the peer reset in the same input (rapid reset) costs no handler run. Once this pass's
 * listing is rendered (site.h) the rest wait in the queue for nm_h2_answer_waiting. */
static int answer_ready(struct nm_h2 *h)
{
    int rc = 0;
    while (h->ready) {
        struct stream *s = h->ready;
        if (!s->closed && rc == 0 && !h->failed && h->site->listing_renders_left == 0)
            break;
        h->ready = s->next;
        if (!h->ready)
            h->ready_end = &h->ready;
        s->queued = false;
        s->next = NULL;
        if (s->closed)
            stream_release(h, s);
        else if (rc == 0 && !h->failed)
            rc = answer(h, s);
    }
    return rc;
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    (void)session;
    struct nm_h2 *h = user;
    bool junk = false;
    switch (hd->type) {
    case NGHTTP2_HEADERS:
        h->hblock_bytes = hd->length;
        h->hblock_frames = 0;
        break;
    case NGHTTP2_CONTINUATION:
        /* CONTINUATION floods (2024): the encoded block never decodes smaller than it is (a
         * field costs its name and value and 32), so one twice the header list cap is no
         * request this server would take. */
        h->hblock_bytes += hd->length;
        if (++h->hblock_frames > CONTINUATIONS_MAX ||
            h->hblock_bytes > 2 * h->site->cfg->max_head_bytes)
            return calm(h, "header block too large");
        break;
    case NGHTTP2_DATA:
        junk = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
        break;
    case NGHTTP2_RST_STREAM:
        if (!bucket_add(&h->resets, h->now_ms, 1, RST_RATE, RST_BURST))
            return calm(h, "too many streams reset");
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        junk = !(hd->flags & NGHTTP2_FLAG_ACK);
        break;
    case NGHTTP2_WINDOW_UPDATE:
        /* Judged in on_frame_recv, which has the increment. */
        break;
    case NGHTTP2_GOAWAY:
        break;
    default: /* PRIORITY, PUSH_PROMISE (a protocol error nghttp2 reports), unknown types */
        junk = true;
        break;
    }
    if (junk && !bucket_add(&h->junk, h->now_ms, 1, JUNK_RATE, JUNK_BURST))
        return calm(h, "too many frames without requests");
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct nm_h2 *h = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* nghttp2 refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS; this bounds the memory
     * even before the peer has our SETTINGS. */
    if (h->n_streams >= 2 * MAX_STREAMS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    struct stream *s = stream_new(h, frame->hd.stream_id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    struct nm_h2 *h = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s)
        return 0;
    const struct nm_config *cfg = h->site->cfg;
    /* RFC 9113 §6.5.2: a field counts its name, its value and 32. Over the cap the request is
     * answered 431 as over HTTP/1.1; twice over it (an HPACK bomb: small encoded, huge
     * decoded) the stream is reset at once, nghttp2 decodes the rest without handing it out,
     * and the peer pays for it in the junk bucket. */
    s->list_bytes += namelen + valuelen + 32;
    if (s->list_bytes > cfg->max_head_bytes) {
        stream_fail(s, 431, "header section too large");
        if (s->list_bytes > 2 * cfg->max_head_bytes) {
            if (!bucket_add(&h->junk, h->now_ms, JUNK_HEADER_RESET, JUNK_RATE, JUNK_BURST))
                return calm(h, "header sections too large");
            s->responded = true; /* nothing to answer: the stream is reset */
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST || s->error)
        return 0; /* trailers are read and dropped */
    struct nm_slice n = nm_slice_make((const char *)name, namelen);
    /* As many fields as an HTTP/1.1 head may have. */
    if (namelen && name[0] != ':' && ++s->n_fields > MAX_LINES) {
        stream_fail(s, 431, "too many header fields");
        return 0;
    }
    if (nm_slice_eq(n, NM_SLICE_LIT("content-length"))) {
        /* nghttp2 checked the digits and will check the content against them (§8.1.1). */
        uint64_t v = 0;
        for (size_t i = 0; i < valuelen && v <= cfg->max_discard_bytes; i++)
            v = v * 10 + (uint64_t)(value[i] - '0');
        if (v > cfg->max_discard_bytes)
            stream_fail(s, 413, "request content too large");
        return 0;
    }
    unsigned kind = kind_of(n);
    if (kind == L_COUNT)
        return 0;
    if (kind == L_PATH && valuelen > cfg->max_target_bytes) {
        stream_fail(s, 414, NULL);
        return 0;
    }
    if (s->n_lines == MAX_LINES) {
        stream_fail(s, 431, "too many header fields");
        return 0;
    }
    struct line *l = &s->lines[s->n_lines];
    *l = (struct line){kind, s->req.len, valuelen};
    if (nm_buf_append(&s->req, value, valuelen) < 0) {
        stream_fail(s, 431, "header section too large");
        return 0;
    }
    s->n_lines++;
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)data;
    struct nm_h2 *h = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    /* Request content is read and dropped (RFC 9110 §9.3.1: GET content has no meaning here),
     * up to the limit HTTP/1.1 has; past it the answer is 413 at once. */
    s->content_seen += len;
    if (s->content_seen > h->site->cfg->max_discard_bytes) {
        stream_fail(s, 413, "request content too large");
        enqueue(h, s);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct nm_h2 *h = user;
    if (frame->hd.type == NGHTTP2_WINDOW_UPDATE) {
        /* Window updates while nothing is being sent, or of a few bytes each (a tiny window
         * opened byte by byte makes a DATA frame per update), make no progress. */
        bool junk =
            h->n_sending == 0 || frame->window_update.window_size_increment < SMALL_WINDOW_UPDATE;
        if (junk && !bucket_add(&h->junk, h->now_ms, 1, JUNK_RATE, JUNK_BURST))
            return calm(h, "too many window updates");
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s)
        return 0;
    /* The request is complete with END_STREAM; an error is answered as soon as the head is in. */
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type == NGHTTP2_HEADERS && s->error))
        enqueue(h, s);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)user;
    /* RFC 9113 §8.1: a response complete before its request (an error, or content over the
     * limit) ends the request with RST_STREAM NO_ERROR, so the peer stops sending it. */
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *user)
{
    (void)error_code;
    struct nm_h2 *h = user;
    struct stream *s = nghttp2_session_get_stream_user_data(session, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    if (s->queued)
        s->closed = true; /* the ready queue releases it */
    else
        stream_release(h, s);
    return 0;
}

/* ---- the connection ---- */

int nm_h2_new(struct nm_site *site, const char *peer, struct nm_h2 **out)
{
    struct nm_h2 *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->site = site;
    h->ready_end = &h->ready;
    /* A frame goes in whole once the buffer is under OUT_CHUNK: a HEADERS block with its
     * CONTINUATIONs is at most NM_RESPONSE_TEXT_BYTES and some. */
    nm_buf_init(&h->out, 2 * OUT_CHUNK);
    snprintf(h->peer, sizeof(h->peer), "%s", peer ? peer : "-");
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rc = nghttp2_session_callbacks_new(&cb);
    if (rc == 0)
        rc = nghttp2_option_new(&opt);
    if (rc == 0) {
        nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
        nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
        /* SETTINGS and PING ACKs a peer that does not read makes us queue (the flood bound
         * of nghttp2), entries of one SETTINGS frame. */
        nghttp2_option_set_max_outbound_ack(opt, 100);
        nghttp2_option_set_max_settings(opt, 16);
        nghttp2_option_set_no_closed_streams(opt, 1);
        rc = nghttp2_session_server_new2(&h->session, cb, h, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc == 0) {
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)site->cfg->max_head_bytes},
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
        };
        rc = nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    }
    if (rc != 0) {
        nm_h2_free(h);
        return -ENOMEM;
    }
    *out = h;
    return 0;
}

void nm_h2_free(struct nm_h2 *h)
{
    if (!h)
        return;
    nghttp2_session_del(h->session);
    while (h->live)
        stream_release(h, h->live);
    while (h->spare) {
        struct stream *s = h->spare;
        h->spare = s->next;
        stream_free(s);
    }
    nm_buf_cleanup(&h->out);
    free(h);
}

int nm_h2_receive(struct nm_h2 *h, const char *bytes, size_t n)
{
    if (h->failed)
        return -EPROTO;
    h->now_ms = now_ms();
    ssize_t rc = nghttp2_session_mem_recv(h->session, (const uint8_t *)bytes, n);
    if (rc == NGHTTP2_ERR_NOMEM)
        return -ENOMEM;
    if (rc < 0 && !h->failed) {
        /* nghttp2's own bounds (CONTINUATION count, ACKs queued) and a bad preface end here
         * without a GOAWAY of theirs. */
        h->failed = true;
        nghttp2_session_terminate_session(
            h->session, rc == NGHTTP2_ERR_FLOODED || rc == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                            ? NGHTTP2_ENHANCE_YOUR_CALM
                            : NGHTTP2_PROTOCOL_ERROR);
    }
    int arc = answer_ready(h);
    if (arc < 0)
        return arc;
    return h->failed ? -EPROTO : 0;
}

int nm_h2_answer_waiting(struct nm_h2 *h)
{
    return answer_ready(h);
}

bool nm_h2_has_waiting(const struct nm_h2 *h)
{
    return h->ready != NULL;
}

int nm_h2_output(struct nm_h2 *h, const char **data, size_t *len)
{
    nm_buf_consume(&h->out, h->out_sent);
    h->out_sent = 0;
    while (h->out.len < OUT_CHUNK) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(h->session, &p);
        if (n == NGHTTP2_ERR_NOMEM)
            return -ENOMEM;
        if (n < 0) {
            h->failed = true;
            break;
        }
        if (n == 0)
            break;
        int rc = nm_buf_append(&h->out, p, (size_t)n);
        if (rc < 0)
            return rc;
    }
    *data = h->out.ptr;
    *len = h->out.len;
    return 0;
}

void nm_h2_advance(struct nm_h2 *h, size_t n)
{
    h->out_sent += n;
    if (h->out_sent == h->out.len) {
        nm_buf_consume(&h->out, h->out_sent);
        h->out_sent = 0;
        if (h->out.cap > OUT_KEEP_BYTES && !nghttp2_session_want_write(h->session))
            nm_buf_cleanup(&h->out);
    }
}

void nm_h2_stop(struct nm_h2 *h)
{
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
}

bool nm_h2_is_done(const struct nm_h2 *h)
{
    if (h->out_sent < h->out.len || nghttp2_session_want_write(h->session))
        return false;
    return h->failed || !nghttp2_session_want_read(h->session);
}

bool nm_h2_is_busy(const struct nm_h2 *h)
{
    return h->n_streams > 0;
}

size_t nm_h2_trim(struct nm_h2 *h)
{
    if (h->n_streams > 0 || h->out_sent < h->out.len)
        return 0;
    size_t freed = h->out.cap;
    nm_buf_cleanup(&h->out);
    h->out_sent = 0;
    while (h->spare) {
        struct stream *s = h->spare;
        h->spare = s->next;
        h->n_spare--;
        freed += sizeof(*s) + s->req.cap + s->body.cap;
        stream_free(s);
    }
    return freed;
}
