/* Strict HTTP/1.1 request-head parser (RFC 9112 §2-§3, §5-§7) and chunked decoder (§7.1). */
#include "notmod/http1.h"

#include <errno.h>
#include <string.h>

/* tchar (RFC 9110 §5.6.2). */
static bool is_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr(extra, c) != NULL;
}

/* field-vchar and the SP / HTAB allowed between them (RFC 9110 §5.5). */
static bool is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Finds the end of the line starting at p. Returns the index of its LF (the line is
 * buf[p..eol), with a CR before the LF dropped by the caller), -1 when no LF is there yet, or -2
 * for a CR that is not followed by LF. */
static long find_eol(const char *buf, size_t len, size_t p)
{
    for (size_t i = p; i < len; i++) {
        if (buf[i] == '\n')
            return (long)i;
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
            return -2;
    }
    return -1;
}

static size_t line_len(const char *buf, size_t start, size_t eol)
{
    size_t n = eol - start;
    return n > 0 && buf[eol - 1] == '\r' ? n - 1 : n;
}

#define FAIL(status, why)                                                                          \
    do {                                                                                           \
        *reason = (why);                                                                           \
        return -(status);                                                                          \
    } while (0)

static int parse_request_line(struct nm_slice line, const struct nm_http1_limits *limits,
                              struct nm_http1_request *req, const char **reason)
{
    const char *p = line.ptr, *end = line.ptr + line.len;
    const char *m = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == end || *p != ' ')
        FAIL(400, "malformed request line");
    req->method_token = nm_slice_make(m, (size_t)(p - m));
    req->method = nm_method_from_token(req->method_token);
    p++;
    const char *t = p;
    while (p < end && *p != ' ') {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f)
            FAIL(400, "control, space or non-ASCII byte in request target");
        p++;
    }
    if (p == t)
        FAIL(400, "empty request target");
    if ((size_t)(p - t) > limits->max_target_bytes)
        FAIL(414, "request target too long");
    req->target = nm_slice_make(t, (size_t)(p - t));
    if (p == end)
        FAIL(400, "HTTP/0.9 requests are not supported");
    p++;
    struct nm_slice version = nm_slice_make(p, (size_t)(end - p));
    if (version.len != 8 || memcmp(version.ptr, "HTTP/", 5) != 0 || !is_digit(version.ptr[5]) ||
        version.ptr[6] != '.' || !is_digit(version.ptr[7]))
        FAIL(400, "malformed HTTP version");
    if (version.ptr[5] != '1') {
        if (nm_slice_eq(req->method_token, NM_SLICE_LIT("PRI")) && version.ptr[5] == '2')
            FAIL(505, "HTTP/2 connection preface on an HTTP/1.1 port");
        FAIL(505, "HTTP version not supported");
    }
    req->minor_version = version.ptr[7] == '0' ? 0 : 1;
    return 0;
}

/* Content-Length = 1*DIGIT; a list of identical values is accepted (RFC 9110 §8.6). */
static int parse_content_length(struct nm_slice v, uint64_t *out)
{
    bool have = false;
    uint64_t first = 0;
    size_t i = 0;
    for (;;) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
            i++;
        if (i == v.len || !is_digit((unsigned char)v.ptr[i]))
            return -EINVAL;
        uint64_t n = 0;
        while (i < v.len && is_digit((unsigned char)v.ptr[i])) {
            unsigned d = (unsigned)(v.ptr[i] - '0');
            if (n > (UINT64_MAX - d) / 10)
                return -EINVAL;
            n = n * 10 + d;
            i++;
        }
        if (have && n != first)
            return -EINVAL;
        first = n;
        have = true;
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
            i++;
        if (i == v.len)
            break;
        if (v.ptr[i] != ',')
            return -EINVAL;
        i++;
    }
    *out = first;
    return 0;
}

/* True when a comma-separated list has the token (case-insensitive), elements trimmed. */
static bool list_has_token(struct nm_slice v, struct nm_slice token)
{
    size_t i = 0;
    while (i <= v.len) {
        size_t j = i;
        while (j < v.len && v.ptr[j] != ',')
            j++;
        struct nm_slice item = nm_slice_trim_ows(nm_slice_make(v.ptr + i, j - i));
        if (nm_slice_case_eq(item, token))
            return true;
        i = j + 1;
    }
    return false;
}

/* Transfer-Encoding lines seen so far, as one list (RFC 9110 §5.3). */
struct codings {
    unsigned chunked;  /* how many times chunked appears */
    bool other;        /* a coding other than chunked appears */
    bool last_chunked; /* the last element so far is chunked */
};

/* Adds one Transfer-Encoding line. Every element counts, empty ones included: an empty last
 * element means chunked is not final, which is safer than guessing (RFC 9112 §6.3). */
static void codings_add(struct codings *c, struct nm_slice v)
{
    size_t i = 0;
    while (i <= v.len) {
        size_t j = i;
        while (j < v.len && v.ptr[j] != ',')
            j++;
        struct nm_slice item = nm_slice_trim_ows(nm_slice_make(v.ptr + i, j - i));
        c->last_chunked = nm_slice_case_eq(item, NM_SLICE_LIT("chunked"));
        if (c->last_chunked)
            c->chunked++;
        else if (item.len > 0)
            c->other = true;
        i = j + 1;
    }
}

static bool is_unreserved_or_sub_delim(unsigned char c)
{
    static const char extra[] = "-._~!$&'()*+,;=";
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr(extra, c) != NULL;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): an IP-literal in
 * brackets, or a reg-name of unreserved, sub-delims and well-formed pct-encoded bytes; the port
 * all digits. An empty value is allowed (a target without authority). */
static bool is_valid_host(struct nm_slice v)
{
    size_t i = 0;
    if (v.len > 0 && v.ptr[0] == '[') {
        for (i = 1; i < v.len && v.ptr[i] != ']'; i++) {
            unsigned char c = (unsigned char)v.ptr[i];
            if (!is_unreserved_or_sub_delim(c) && c != ':')
                return false;
        }
        if (i == v.len || i == 1)
            return false;
        i++;
    } else {
        for (; i < v.len && v.ptr[i] != ':'; i++) {
            unsigned char c = (unsigned char)v.ptr[i];
            if (c == '%') {
                if (i + 2 >= v.len || nm_hex_digit_value((unsigned char)v.ptr[i + 1]) < 0 ||
                    nm_hex_digit_value((unsigned char)v.ptr[i + 2]) < 0)
                    return false;
                i += 2;
            } else if (!is_unreserved_or_sub_delim(c)) {
                return false;
            }
        }
    }
    if (i == v.len)
        return true;
    if (v.ptr[i] != ':')
        return false;
    for (i++; i < v.len; i++)
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
    return true;
}

static int derive_framing(struct nm_http1_request *req, const char **reason)
{
    unsigned hosts = 0;
    bool has_te = false;
    struct codings te = {0, false, false};
    bool close = false, keep_alive = false;

    for (size_t i = 0; i < req->n_fields; i++) {
        struct nm_slice n = req->fields[i].name, v = req->fields[i].value;
        if (nm_slice_case_eq(n, NM_SLICE_LIT("host"))) {
            if (++hosts > 1)
                FAIL(400, "more than one Host field");
            if (!is_valid_host(v))
                FAIL(400, "invalid Host field");
            req->host = v;
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("content-length"))) {
            uint64_t cl;
            if (parse_content_length(v, &cl) < 0)
                FAIL(400, "invalid Content-Length");
            if (req->has_content_length && cl != req->content_length)
                FAIL(400, "differing Content-Length fields");
            req->has_content_length = true;
            req->content_length = cl;
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("transfer-encoding"))) {
            has_te = true;
            codings_add(&te, v);
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("connection"))) {
            close |= list_has_token(v, NM_SLICE_LIT("close"));
            keep_alive |= list_has_token(v, NM_SLICE_LIT("keep-alive"));
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("expect"))) {
            if (!nm_slice_case_eq(v, NM_SLICE_LIT("100-continue")))
                FAIL(417, "unsupported expectation");
            /* RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
            req->expect_continue = req->minor_version == 1;
        }
    }
    if (req->minor_version == 1 && hosts == 0)
        FAIL(400, "missing Host field");
    if (has_te) {
        /* RFC 9112 §6.1: Transfer-Encoding with Content-Length is a smuggling attempt; in
         * HTTP/1.0 the framing is faulty. §6.3: chunked must be the final coding. */
        if (req->has_content_length)
            FAIL(400, "both Content-Length and Transfer-Encoding");
        if (req->minor_version == 0)
            FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (!te.last_chunked)
            FAIL(400, "Transfer-Encoding does not end in chunked");
        if (te.chunked > 1)
            FAIL(400, "chunked applied more than once");
        /* §6.1: a transfer coding the server does not understand is 501. */
        if (te.other)
            FAIL(501, "transfer coding other than chunked");
        req->chunked = true;
    }
    req->keep_alive = req->minor_version == 1 ? !close : keep_alive && !close;
    return 0;
}

int nm_http1_parse_request(const char *buf, size_t len, const struct nm_http1_limits *limits,
                           struct nm_http1_request *req, const char **reason)
{
    size_t p = 0;
    /* RFC 9112 §2.2: ignore at least one empty line before the request line. */
    for (int skipped = 0; skipped < 2; skipped++) {
        if (p + 1 <= len && buf[p] == '\n')
            p += 1;
        else if (p + 2 <= len && buf[p] == '\r' && buf[p + 1] == '\n')
            p += 2;
        else
            break;
    }

    long eol = find_eol(buf, len, p);
    if (eol == -2)
        FAIL(400, "bare CR in request line");
    if (eol == -1) {
        /* A method byte that is not a tchar can never become a request line (a TLS hello on
         * the plain port): answer now instead of waiting for the cap. A CR at the very end may
         * still start a line ending, so it waits. */
        for (size_t i = p; i < len && buf[i] != ' '; i++)
            if (!is_tchar((unsigned char)buf[i]) && !(buf[i] == '\r' && i + 1 == len))
                FAIL(400, "malformed request line");
        /* Tell an overlong target from a merely incomplete line before all of it arrives. */
        const char *sp = memchr(buf + p, ' ', len - p);
        if (sp) {
            const char *sp2 = memchr(sp + 1, ' ', len - (size_t)(sp + 1 - buf));
            size_t target = sp2 ? (size_t)(sp2 - sp - 1) : len - (size_t)(sp + 1 - buf);
            if (target > limits->max_target_bytes)
                FAIL(414, "request target too long");
        }
        if (len >= limits->max_head_bytes)
            FAIL(431, "request line too long");
        return 0;
    }

    struct nm_http1_request r;
    memset(&r, 0, sizeof(r));
    struct nm_slice line = nm_slice_make(buf + p, line_len(buf, p, (size_t)eol));
    int rc = parse_request_line(line, limits, &r, reason);
    if (rc < 0)
        return rc;
    p = (size_t)eol + 1;

    for (;;) {
        eol = find_eol(buf, len, p);
        if (eol == -2)
            FAIL(400, "bare CR in header section");
        if (eol == -1) {
            if (len >= limits->max_head_bytes)
                FAIL(431, "header section too large");
            return 0;
        }
        size_t start = p;
        size_t n = line_len(buf, start, (size_t)eol);
        p = (size_t)eol + 1;
        if (p > limits->max_head_bytes)
            FAIL(431, "header section too large");
        if (n == 0)
            break;
        const char *l = buf + start;
        if (l[0] == ' ' || l[0] == '\t')
            FAIL(400, "obsolete line folding");
        size_t c = 0;
        while (c < n && is_tchar((unsigned char)l[c]))
            c++;
        if (c == n || l[c] != ':') {
            if (c < n && (l[c] == ' ' || l[c] == '\t'))
                FAIL(400, "whitespace between field name and colon");
            FAIL(400, "malformed field line");
        }
        if (c == 0)
            FAIL(400, "empty field name");
        for (size_t k = c + 1; k < n; k++)
            if (!is_field_byte((unsigned char)l[k]))
                FAIL(400, "control byte in field value");
        if (r.n_fields == NM_HTTP1_MAX_FIELDS)
            FAIL(431, "too many header fields");
        r.fields[r.n_fields].name = nm_slice_make(l, c);
        r.fields[r.n_fields].value = nm_slice_trim_ows(nm_slice_make(l + c + 1, n - c - 1));
        r.n_fields++;
    }

    rc = derive_framing(&r, reason);
    if (rc < 0)
        return rc;
    if (p > (size_t)INT32_MAX)
        FAIL(431, "header section too large");
    *req = r;
    return (int)p;
}

struct nm_slice nm_http1_find(const struct nm_http1_request *req, struct nm_slice name)
{
    for (size_t i = 0; i < req->n_fields; i++)
        if (nm_slice_case_eq(req->fields[i].name, name))
            return req->fields[i].value;
    return (struct nm_slice){NULL, 0};
}

struct nm_field nm_http1_collect(const struct nm_http1_request *req, struct nm_slice name,
                                 struct nm_slice *lines, size_t cap, bool *overflow)
{
    size_t n = 0;
    *overflow = false;
    for (size_t i = 0; i < req->n_fields; i++) {
        if (!nm_slice_case_eq(req->fields[i].name, name))
            continue;
        if (n == cap) {
            *overflow = true;
            continue;
        }
        lines[n++] = req->fields[i].value;
    }
    return (struct nm_field){lines, n};
}

/* Chunked decoder states (RFC 9112 §7.1). */
enum {
    CH_SIZE = 0, /* reading chunk-size hex digits */
    CH_SIZE_BWS, /* whitespace after the size: only ";" may follow */
    CH_EXT,      /* reading a chunk extension up to the line end */
    CH_SIZE_LF,  /* after a CR at the end of the size line */
    CH_DATA,     /* chunk data */
    CH_DATA_CR,  /* the CRLF after data */
    CH_DATA_LF,
    CH_TRAILER,      /* start of a trailer line (or the final empty line) */
    CH_TRAILER_NAME, /* the field name of a trailer line */
    CH_TRAILER_LINE, /* its value */
    CH_TRAILER_LF,   /* CR seen at the end of a trailer line */
    CH_END_LF,       /* CR seen on the final empty line */
    CH_DONE,
};

#define CHUNK_MAX_LINE 4096

void nm_http1_chunked_init(struct nm_http1_chunked *d)
{
    nm_http1_chunked_init_max(d, UINT64_MAX);
}

void nm_http1_chunked_init_max(struct nm_http1_chunked *d, uint64_t max_bytes)
{
    memset(d, 0, sizeof(*d));
    d->max_bytes = max_bytes;
}

int64_t nm_http1_chunked_feed(struct nm_http1_chunked *d, const char *buf, size_t len, bool *done)
{
    size_t i = 0;
    *done = d->state == CH_DONE;
    while (i < len && d->state != CH_DONE) {
        unsigned char c = (unsigned char)buf[i];
        if (d->fed + i >= d->max_bytes)
            return -413;
        switch (d->state) {
        case CH_SIZE: {
            int h = nm_hex_digit_value(c);
            if (h >= 0) {
                /* §7.1: a size too large for any integer must not wrap into another framing
                 * (2^64 read as 0 would end the content early); leading zeros are harmless. */
                if (d->remaining > UINT64_MAX >> 4)
                    return -400;
                if (++d->digits > CHUNK_MAX_LINE)
                    return -413;
                d->remaining = d->remaining * 16 + (unsigned)h;
                i++;
                break;
            }
            if (d->digits == 0)
                return -400;
            /* A chunk that cannot fit is refused now, not after its data has been sent. */
            if (d->remaining > d->max_bytes - (d->fed + i))
                return -413;
            d->line_bytes = 0;
            if (c == ';') {
                d->state = CH_EXT;
            } else if (c == ' ' || c == '\t') {
                d->state = CH_SIZE_BWS;
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else if (c == '\n') {
                d->state = d->remaining ? CH_DATA : CH_TRAILER;
            } else {
                return -400;
            }
            i++;
            break;
        }
        case CH_SIZE_BWS:
            /* RFC 9112 §7.1.1: BWS after the size only comes before a chunk-ext; "5 6" is not
             * a size a peer might read differently. */
            if (c == ';')
                d->state = CH_EXT;
            else if (c != ' ' && c != '\t')
                return -400;
            else if (++d->line_bytes > CHUNK_MAX_LINE)
                return -413;
            i++;
            break;
        case CH_EXT:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n')
                d->state = d->remaining ? CH_DATA : CH_TRAILER;
            else if (!is_field_byte(c))
                return -400;
            else if (++d->line_bytes > CHUNK_MAX_LINE)
                return -413;
            i++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return -400;
            d->state = d->remaining ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_DATA: {
            size_t take = len - i;
            if (take > d->remaining)
                take = (size_t)d->remaining;
            /* Never past the cap (the chunk's extension may have used up the rest): the byte at
             * the cap is refused above, at the same offset however the content was split. */
            if (take > d->max_bytes - (d->fed + i))
                take = (size_t)(d->max_bytes - (d->fed + i));
            d->remaining -= take;
            i += take;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (c == '\r')
                d->state = CH_DATA_LF;
            else if (c == '\n')
                d->state = CH_SIZE;
            else
                return -400;
            if (d->state == CH_SIZE)
                d->digits = 0;
            i++;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return -400;
            d->state = CH_SIZE;
            d->digits = 0;
            i++;
            break;
        case CH_TRAILER:
            if (c == '\r') {
                d->state = CH_END_LF;
            } else if (c == '\n') {
                d->state = CH_DONE;
            } else if (is_tchar(c)) {
                /* RFC 9112 §7.1.2: trailer lines are field lines, so no obs-fold either. */
                d->state = CH_TRAILER_NAME;
                d->line_bytes = 1;
            } else {
                return -400;
            }
            i++;
            break;
        case CH_TRAILER_NAME:
            if (c == ':')
                d->state = CH_TRAILER_LINE;
            else if (!is_tchar(c))
                return -400;
            if (++d->line_bytes > CHUNK_MAX_LINE)
                return -413;
            i++;
            break;
        case CH_TRAILER_LINE:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (c == '\n')
                d->state = CH_TRAILER;
            else if (!is_field_byte(c))
                return -400;
            else if (++d->line_bytes > CHUNK_MAX_LINE)
                return -413;
            i++;
            break;
        case CH_TRAILER_LF:
        case CH_END_LF:
            if (c != '\n')
                return -400;
            d->state = d->state == CH_END_LF ? CH_DONE : CH_TRAILER;
            i++;
            break;
        default:
            return -400;
        }
    }
    d->fed += i;
    *done = d->state == CH_DONE;
    return (int64_t)i;
}
