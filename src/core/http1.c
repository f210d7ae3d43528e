/* Strict HTTP/1.1 head parsers for requests and responses, one field-line grammar for both
 * (RFC 9112 §2-§7), and the chunked decoder (§7.1). */
#include "notmod/http1.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "notmod/token.h"

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
    const char *lf = memchr(buf + p, '\n', len - p);
    size_t end = lf ? (size_t)(lf - buf) : len;
    /* A CR may only end the line (or the input, where its LF may follow). */
    const char *cr = memchr(buf + p, '\r', end - p);
    if (cr && (size_t)(cr - buf) + 1 < end)
        return -2;
    return lf ? (long)end : -1;
}

static size_t line_len(const char *buf, size_t start, size_t eol)
{
    size_t n = eol - start;
    return n > 0 && buf[eol - 1] == '\r' ? n - 1 : n;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3), the whole of v when `whole`, else its
 * first 8 bytes. Any major version is well-formed; the callers decide which they speak. */
static bool is_http1_version(struct nm_slice v, bool whole)
{
    return (whole ? v.len == 8 : v.len >= 8) && memcmp(v.ptr, "HTTP/", 5) == 0 &&
           is_digit((unsigned char)v.ptr[5]) && v.ptr[6] == '.' &&
           is_digit((unsigned char)v.ptr[7]);
}

#define FAIL(err, why)                                                                             \
    do {                                                                                           \
        *reason = (why);                                                                           \
        return -(err);                                                                             \
    } while (0)

int nm_http1_status_of(int err)
{
    switch (err) {
    case -EBADMSG:
        return 400;
    case -EFBIG:
        return 413;
    case -ENAMETOOLONG:
        return 414;
    case -EOPNOTSUPP:
        return 417;
    case -EMSGSIZE:
        return 431;
    case -ENOSYS:
        return 501;
    case -EPROTONOSUPPORT:
        return 505;
    default:
        return 500;
    }
}

/* Reads the field lines from buf[p] through the empty line that ends them (RFC 9112 §5, §2.2),
 * for requests and responses alike: field-name ":" OWS field-value OWS, the name a token with no
 * whitespace before the colon, no obs-fold, no control byte in the value. The first cap lines go
 * to fields[] (*n counts them); further lines are refused with -EMSGSIZE when dropped is NULL,
 * else counted in *dropped. Returns the offset past the empty line, 0 when the section is
 * incomplete, or a negative errno with *reason set. */
static long parse_fields(const char *buf, size_t len, size_t p, size_t max_head_bytes,
                         struct nm_http1_field *fields, size_t cap, size_t *n, size_t *dropped,
                         const char **reason)
{
    for (;;) {
        long eol = find_eol(buf, len, p);
        if (eol == -2)
            FAIL(EBADMSG, "bare CR in header section");
        if (eol == -1) {
            if (len >= max_head_bytes)
                FAIL(EMSGSIZE, "header section too large");
            return 0;
        }
        size_t start = p;
        size_t ll = line_len(buf, start, (size_t)eol);
        p = (size_t)eol + 1;
        if (p > max_head_bytes)
            FAIL(EMSGSIZE, "header section too large");
        if (ll == 0)
            return (long)p;
        const char *l = buf + start;
        /* §5.2: obs-fold is refused by servers; a user agent unfolds before it parses. */
        if (nm_token_is_ows((unsigned char)l[0]))
            FAIL(EBADMSG, "obsolete line folding");
        size_t c = 0;
        while (c < ll && nm_token_is_tchar((unsigned char)l[c]))
            c++;
        if (c == ll || l[c] != ':') {
            /* §5.1: whitespace between the name and the colon has led to smuggling. */
            if (c < ll && nm_token_is_ows((unsigned char)l[c]))
                FAIL(EBADMSG, "whitespace between field name and colon");
            FAIL(EBADMSG, "malformed field line");
        }
        if (c == 0)
            FAIL(EBADMSG, "empty field name");
        for (size_t k = c + 1; k < ll; k++)
            if (!is_field_byte((unsigned char)l[k]))
                FAIL(EBADMSG, "control byte in field value");
        if (*n == cap) {
            if (!dropped)
                FAIL(EMSGSIZE, "too many header fields");
            ++*dropped;
            continue;
        }
        fields[*n].name = nm_slice_make(l, c);
        fields[*n].value = nm_slice_trim_ows(nm_slice_make(l + c + 1, ll - c - 1));
        ++*n;
    }
}

static int parse_request_line(struct nm_slice line, const struct nm_http1_limits *limits,
                              struct nm_http1_request *req, const char **reason)
{
    const char *p = line.ptr, *end = line.ptr + line.len;
    const char *m = p;
    while (p < end && nm_token_is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == end || *p != ' ')
        FAIL(EBADMSG, "malformed request line");
    req->method_token = nm_slice_make(m, (size_t)(p - m));
    req->method = nm_method_from_token(req->method_token);
    p++;
    const char *t = p;
    while (p < end && *p != ' ') {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f)
            FAIL(EBADMSG, "control, space or non-ASCII byte in request target");
        p++;
    }
    if (p == t)
        FAIL(EBADMSG, "empty request target");
    if ((size_t)(p - t) > limits->max_target_bytes)
        FAIL(ENAMETOOLONG, "request target too long");
    req->target = nm_slice_make(t, (size_t)(p - t));
    if (p == end)
        FAIL(EBADMSG, "HTTP/0.9 requests are not supported");
    p++;
    struct nm_slice version = nm_slice_make(p, (size_t)(end - p));
    if (!is_http1_version(version, true))
        FAIL(EBADMSG, "malformed HTTP version");
    if (version.ptr[5] != '1') {
        if (nm_slice_eq(req->method_token, NM_SLICE_LIT("PRI")) && version.ptr[5] == '2')
            FAIL(EPROTONOSUPPORT, "HTTP/2 connection preface on an HTTP/1.1 port");
        FAIL(EPROTONOSUPPORT, "HTTP version not supported");
    }
    req->minor_version = version.ptr[7] == '0' ? 0 : 1;
    return 0;
}

/* Content-Length = 1*DIGIT; a list of identical values is accepted (RFC 9110 §8.6), but no
 * empty element: "5," is not a length a peer might read the same way. */
static int parse_content_length(struct nm_slice v, uint64_t *out)
{
    bool have = false;
    uint64_t first = 0;
    size_t pos = 0;
    struct nm_slice e;
    while (nm_token_list_next(v, &pos, &e)) {
        if (e.len == 0)
            return -EINVAL;
        uint64_t n = 0;
        for (size_t i = 0; i < e.len; i++) {
            if (!is_digit((unsigned char)e.ptr[i]))
                return -EINVAL;
            unsigned d = (unsigned)(e.ptr[i] - '0');
            if (n > (UINT64_MAX - d) / 10)
                return -EINVAL;
            n = n * 10 + d;
        }
        if (have && n != first)
            return -EINVAL;
        first = n;
        have = true;
    }
    *out = first;
    return 0;
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
    size_t pos = 0;
    struct nm_slice item;
    while (nm_token_list_next(v, &pos, &item)) {
        c->last_chunked = nm_slice_case_eq(item, NM_SLICE_LIT("chunked"));
        if (c->last_chunked)
            c->chunked++;
        else if (item.len > 0)
            c->other = true;
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
                FAIL(EBADMSG, "more than one Host field");
            if (!is_valid_host(v))
                FAIL(EBADMSG, "invalid Host field");
            req->host = v;
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("content-length"))) {
            uint64_t cl;
            if (parse_content_length(v, &cl) < 0)
                FAIL(EBADMSG, "invalid Content-Length");
            if (req->has_content_length && cl != req->content_length)
                FAIL(EBADMSG, "differing Content-Length fields");
            req->has_content_length = true;
            req->content_length = cl;
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("transfer-encoding"))) {
            has_te = true;
            codings_add(&te, v);
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("connection"))) {
            close |= nm_token_list_has(v, NM_SLICE_LIT("close"));
            keep_alive |= nm_token_list_has(v, NM_SLICE_LIT("keep-alive"));
        } else if (nm_slice_case_eq(n, NM_SLICE_LIT("expect"))) {
            if (!nm_slice_case_eq(v, NM_SLICE_LIT("100-continue")))
                FAIL(EOPNOTSUPP, "unsupported expectation");
            /* RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
            req->expect_continue = req->minor_version == 1;
        }
    }
    if (req->minor_version == 1 && hosts == 0)
        FAIL(EBADMSG, "missing Host field");
    if (has_te) {
        /* RFC 9112 §6.1: Transfer-Encoding with Content-Length is a smuggling attempt; in
         * HTTP/1.0 the framing is faulty. §6.3: chunked must be the final coding. */
        if (req->has_content_length)
            FAIL(EBADMSG, "both Content-Length and Transfer-Encoding");
        if (req->minor_version == 0)
            FAIL(EBADMSG, "Transfer-Encoding in an HTTP/1.0 request");
        if (!te.last_chunked)
            FAIL(EBADMSG, "Transfer-Encoding does not end in chunked");
        if (te.chunked > 1)
            FAIL(EBADMSG, "chunked applied more than once");
        /* §6.1: a transfer coding the server does not understand is 501. */
        if (te.other)
            FAIL(ENOSYS, "transfer coding other than chunked");
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
        FAIL(EBADMSG, "bare CR in request line");
    if (eol == -1) {
        /* A method byte that is not a tchar can never become a request line (a TLS hello on
         * the plain port): answer now instead of waiting for the cap. A CR at the very end may
         * still start a line ending, so it waits. */
        for (size_t i = p; i < len && buf[i] != ' '; i++)
            if (!nm_token_is_tchar((unsigned char)buf[i]) && !(buf[i] == '\r' && i + 1 == len))
                FAIL(EBADMSG, "malformed request line");
        /* Tell an overlong target from a merely incomplete line before all of it arrives. */
        const char *sp = memchr(buf + p, ' ', len - p);
        if (sp) {
            const char *sp2 = memchr(sp + 1, ' ', len - (size_t)(sp + 1 - buf));
            size_t target = sp2 ? (size_t)(sp2 - sp - 1) : len - (size_t)(sp + 1 - buf);
            if (target > limits->max_target_bytes)
                FAIL(ENAMETOOLONG, "request target too long");
        }
        if (len >= limits->max_head_bytes)
            FAIL(EMSGSIZE, "request line too long");
        return 0;
    }

    /* Only the fields in use are cleared and copied: the field array is most of the struct. */
    struct nm_http1_request r;
    memset(&r, 0, offsetof(struct nm_http1_request, fields));
    r.n_fields = 0;
    memset(&r.host, 0, sizeof(r) - offsetof(struct nm_http1_request, host));
    struct nm_slice line = nm_slice_make(buf + p, line_len(buf, p, (size_t)eol));
    int rc = parse_request_line(line, limits, &r, reason);
    if (rc < 0)
        return rc;
    long end = parse_fields(buf, len, (size_t)eol + 1, limits->max_head_bytes, r.fields,
                            NM_HTTP1_MAX_FIELDS, &r.n_fields, NULL, reason);
    if (end <= 0)
        return (int)end;
    rc = derive_framing(&r, reason);
    if (rc < 0)
        return rc;
    if (end > INT32_MAX)
        FAIL(EMSGSIZE, "header section too large");
    memcpy(req, &r, offsetof(struct nm_http1_request, fields));
    memcpy(req->fields, r.fields, r.n_fields * sizeof(r.fields[0]));
    memcpy(&req->n_fields, &r.n_fields, sizeof(r) - offsetof(struct nm_http1_request, n_fields));
    return (int)end;
}

struct nm_slice nm_http1_find(const struct nm_http1_request *req, struct nm_slice name)
{
    for (size_t i = 0; i < req->n_fields; i++)
        if (nm_slice_case_eq(req->fields[i].name, name))
            return req->fields[i].value;
    return (struct nm_slice){NULL, 0};
}

struct nm_field nm_http1_fields_collect(const struct nm_http1_field *fields, size_t n,
                                        struct nm_slice name, struct nm_slice *lines, size_t cap,
                                        bool *overflow)
{
    size_t k = 0;
    *overflow = false;
    for (size_t i = 0; i < n; i++) {
        if (!nm_slice_case_eq(fields[i].name, name))
            continue;
        if (k == cap) {
            *overflow = true;
            continue;
        }
        lines[k++] = fields[i].value;
    }
    return (struct nm_field){lines, k};
}

struct nm_field nm_http1_collect(const struct nm_http1_request *req, struct nm_slice name,
                                 struct nm_slice *lines, size_t cap, bool *overflow)
{
    return nm_http1_fields_collect(req->fields, req->n_fields, name, lines, cap, overflow);
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4). */
static int parse_status_line(struct nm_slice line, struct nm_http1_response *resp,
                             const char **reason)
{
    if (!is_http1_version(line, false) || (line.len > 8 && line.ptr[8] != ' '))
        FAIL(EBADMSG, "malformed status line");
    if (line.ptr[5] != '1')
        FAIL(EPROTONOSUPPORT, "HTTP version not supported");
    resp->minor_version = line.ptr[7] == '0' ? 0 : 1;
    /* RFC 9110 §15: a status code is three digits, the first from 1 to 5 for a known class; a
     * client reads an unknown class as its x00, so 6xx-9xx pass and are the caller's to judge. */
    if (line.len < 12 || line.ptr[9] < '1' || line.ptr[9] > '9' ||
        !is_digit((unsigned char)line.ptr[10]) || !is_digit((unsigned char)line.ptr[11]))
        FAIL(EBADMSG, "malformed status code");
    resp->status = (line.ptr[9] - '0') * 100 + (line.ptr[10] - '0') * 10 + (line.ptr[11] - '0');
    /* §4: a client SHOULD ignore the reason-phrase, and servers do omit the SP before it. */
    if (line.len > 12 && line.ptr[12] != ' ')
        FAIL(EBADMSG, "malformed status code");
    size_t r = line.len > 12 ? 13 : 12;
    for (size_t i = r; i < line.len; i++)
        if (!is_field_byte((unsigned char)line.ptr[i]))
            FAIL(EBADMSG, "control byte in reason phrase");
    resp->reason = nm_slice_make(line.ptr + r, line.len - r);
    return 0;
}

int nm_http1_parse_response(const char *buf, size_t len, struct nm_http1_field *fields,
                            size_t max_fields, struct nm_http1_response *resp)
{
    const char *why;
    const char **reason = &why;
    /* Bytes that cannot start "HTTP/" (a TLS alert, an SSH banner) are refused at once. */
    static const char prefix[] = "HTTP/";
    if (len > 0 && memcmp(buf, prefix, len < 5 ? len : 5) != 0)
        FAIL(EBADMSG, "not an HTTP response");
    long eol = find_eol(buf, len, 0);
    if (eol == -2)
        FAIL(EBADMSG, "bare CR in status line");
    if (eol == -1)
        return 0;
    struct nm_http1_response r = {.fields = fields};
    int rc = parse_status_line(nm_slice_make(buf, line_len(buf, 0, (size_t)eol)), &r, reason);
    if (rc < 0)
        return rc;
    long end = parse_fields(buf, len, (size_t)eol + 1, SIZE_MAX, fields, max_fields, &r.n_fields,
                            &r.n_dropped, reason);
    if (end <= 0)
        return (int)end;
    if (end > INT32_MAX)
        FAIL(EMSGSIZE, "header section too large");
    *resp = r;
    return (int)end;
}

bool nm_http1_response_is_interim(const struct nm_http1_response *resp)
{
    /* RFC 9110 §15.2.2: after 101 the connection speaks another protocol, no head follows. */
    return resp->status >= 100 && resp->status < 200 && resp->status != 101;
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

/* The state after a chunk-size line: its data, or the trailer section after the last chunk. */
static int after_size_line(const struct nm_http1_chunked *d)
{
    return d->remaining ? CH_DATA : CH_TRAILER;
}

/* One byte of the rest of a chunk-ext or trailer line: field bytes (§7.1.1, §7.1.2) up to a CRLF,
 * at most CHUNK_MAX_LINE of them. `cr` is the state that follows the CR. A bare LF is refused:
 * a framing line a proxy may end elsewhere is a smuggling vector, so only CRLF ends one.
 * Returns 0, -EBADMSG or -EFBIG. */
static int line_byte(struct nm_http1_chunked *d, unsigned char c, int cr)
{
    if (c == '\r')
        d->state = cr;
    else if (!is_field_byte(c))
        return -EBADMSG;
    else if (++d->line_bytes > CHUNK_MAX_LINE)
        return -EFBIG;
    return 0;
}

/* One byte of the framing around chunk data (sizes, extensions, CRLFs, trailer lines), at
 * `offset` bytes into the content. Returns 0 or -errno. */
static int feed_byte(struct nm_http1_chunked *d, unsigned char c, uint64_t offset)
{
    int rc;
    switch (d->state) {
    case CH_SIZE: {
        int h = nm_hex_digit_value(c);
        if (h >= 0) {
            /* §7.1: a size too large for any integer must not wrap into another framing
             * (2^64 read as 0 would end the content early); leading zeros are harmless. */
            if (d->remaining > UINT64_MAX >> 4)
                return -EBADMSG;
            if (++d->digits > CHUNK_MAX_LINE)
                return -EFBIG;
            d->remaining = d->remaining * 16 + (unsigned)h;
            return 0;
        }
        if (d->digits == 0)
            return -EBADMSG;
        /* A chunk that cannot fit is refused now, not after its data has been sent. */
        if (d->remaining > d->max_bytes - offset)
            return -EFBIG;
        d->line_bytes = 0;
        if (c == ';')
            d->state = CH_EXT;
        else if (nm_token_is_ows(c))
            d->state = CH_SIZE_BWS;
        else if (c == '\r')
            d->state = CH_SIZE_LF;
        else
            return -EBADMSG;
        return 0;
    }
    case CH_SIZE_BWS:
        /* RFC 9112 §7.1.1: BWS after the size only comes before a chunk-ext; "5 6" is not
         * a size a peer might read differently. */
        if (c == ';')
            d->state = CH_EXT;
        else if (!nm_token_is_ows(c))
            return -EBADMSG;
        else if (++d->line_bytes > CHUNK_MAX_LINE)
            return -EFBIG;
        return 0;
    case CH_EXT:
        rc = line_byte(d, c, CH_SIZE_LF);
        if (rc < 0)
            return rc;
        return 0;
    case CH_DATA_CR:
        /* RFC 9112 §7.1: chunk data ends with CRLF, never a bare LF. */
        if (c != '\r')
            return -EBADMSG;
        d->state = CH_DATA_LF;
        return 0;
    case CH_TRAILER:
        if (c == '\r') {
            d->state = CH_END_LF;
        } else if (nm_token_is_tchar(c)) {
            /* RFC 9112 §7.1.2: trailer lines are field lines, so no obs-fold either. */
            d->state = CH_TRAILER_NAME;
            d->line_bytes = 1;
        } else {
            return -EBADMSG;
        }
        return 0;
    case CH_TRAILER_NAME:
        if (c == ':')
            d->state = CH_TRAILER_LINE;
        else if (!nm_token_is_tchar(c))
            return -EBADMSG;
        if (++d->line_bytes > CHUNK_MAX_LINE)
            return -EFBIG;
        return 0;
    case CH_TRAILER_LINE:
        rc = line_byte(d, c, CH_TRAILER_LF);
        if (rc < 0)
            return rc;
        return 0;
    case CH_SIZE_LF:
    case CH_DATA_LF:
    case CH_TRAILER_LF:
    case CH_END_LF:
        /* The LF of a CRLF: nothing else may follow a CR (§2.2). */
        if (c != '\n')
            return -EBADMSG;
        if (d->state == CH_SIZE_LF)
            d->state = after_size_line(d);
        else if (d->state == CH_DATA_LF)
            d->state = CH_SIZE;
        else
            d->state = d->state == CH_END_LF ? CH_DONE : CH_TRAILER;
        d->digits = 0;
        return 0;
    default:
        return -EBADMSG;
    }
}

int64_t nm_http1_chunked_feed(struct nm_http1_chunked *d, const char *buf, size_t len, bool *done)
{
    size_t i = 0;
    *done = d->state == CH_DONE;
    while (i < len && d->state != CH_DONE) {
        if (d->fed + i >= d->max_bytes)
            return -EFBIG;
        if (d->state != CH_DATA) {
            int rc = feed_byte(d, (unsigned char)buf[i], d->fed + i);
            if (rc < 0)
                return rc;
            i++;
            continue;
        }
        size_t take = len - i;
        if (take > d->remaining)
            take = (size_t)d->remaining;
        /* Never past the cap (the chunk's extension may have used up the rest): the byte at the
         * cap is refused above, at the same offset however the content was split. */
        if (take > d->max_bytes - (d->fed + i))
            take = (size_t)(d->max_bytes - (d->fed + i));
        d->remaining -= take;
        i += take;
        if (d->remaining == 0)
            d->state = CH_DATA_CR;
    }
    d->fed += i;
    *done = d->state == CH_DONE;
    return (int64_t)i;
}
