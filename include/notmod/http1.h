/* HTTP/1.1 message heads (RFC 9112 §2-§7): strict, zero-copy parsers for request heads (with hard
 * caps) and response heads that share one field-line grammar, and a chunked transfer-coding
 * decoder for discarding request content.
 *
 * Slices: every slice these functions write borrows from the buffer given to the parser and lives
 * as long as that buffer; nothing is copied or allocated. Errors: functions return a negative
 * errno, never a status; nm_http1_status_of gives the status a server answers it with. */
#ifndef NOTMOD_HTTP1_H
#define NOTMOD_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notmod/method.h"
#include "notmod/slice.h"

/* The status a server answers an error of these functions with: -EBADMSG 400 (malformed),
 * -EFBIG 413 (content too large), -ENAMETOOLONG 414 (target too long), -EOPNOTSUPP 417 (an
 * expectation not met), -EMSGSIZE 431 (head too large, too many fields), -ENOSYS 501 (a transfer
 * coding not implemented), -EPROTONOSUPPORT 505 (HTTP version); any other value 500. */
int nm_http1_status_of(int err);

/* Most field lines accepted in one request; more is 431. */
#define NM_HTTP1_MAX_FIELDS 100

/* One field line (RFC 9110 §5, RFC 9112 §5.1): what the parsers write and what the cache rules
 * (cachectl.h) and the client read. Both slices borrow from the message's buffer. */
struct nm_http1_field {
    struct nm_slice name;  /* as received (a token, from a parser); compare with nm_slice_case_eq */
    struct nm_slice value; /* without surrounding OWS */
};

struct nm_http1_limits {
    size_t max_target_bytes; /* a longer request-target is 414 */
    size_t max_head_bytes;   /* a longer head (request line + fields) is 431 */
};

/* A parsed request head. Every slice borrows from the buffer given to the parser. */
struct nm_http1_request {
    struct nm_slice method_token;
    enum nm_method method;
    struct nm_slice target;
    int minor_version; /* 0 or 1: HTTP/1.x with x > 1 reads as 1 (RFC 9110 §6.2) */
    struct nm_http1_field fields[NM_HTTP1_MAX_FIELDS];
    size_t n_fields;

    /* Derived from the fields. */
    struct nm_slice host; /* the Host value; empty when absent (HTTP/1.0 only) */
    bool has_content_length;
    uint64_t content_length;
    bool chunked;         /* Transfer-Encoding ends in chunked */
    bool keep_alive;      /* HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive" */
    bool expect_continue; /* Expect: 100-continue in HTTP/1.1 (ignored in 1.0, RFC 9110 §10.1.1) */
};

/* Parses one request head from buf[0..len). Returns:
 *   > 0   the head's length (through the empty line); *req is written;
 *   0     incomplete: call again with more bytes (never when len reaches the caps: then an error);
 *   < 0   a negative errno, to be answered with nm_http1_status_of's status and the connection
 *         closed afterwards, with *reason set to a static sentence naming the problem:
 *         -EBADMSG (400: bad request line, obs-fold, whitespace before a colon, control bytes,
 *         bare CR, missing or repeated Host in 1.1, Content-Length with Transfer-Encoding,
 *         differing or invalid Content-Length, a transfer coding that does not end in chunked or
 *         has chunked twice, HTTP/0.9, a method byte that is not a token character even before
 *         the line ends), -ENAMETOOLONG (414: target too long), -EOPNOTSUPP (417: an expectation
 *         other than 100-continue), -EMSGSIZE (431: head too large or too many fields), -ENOSYS
 *         (501: a transfer coding other than chunked), -EPROTONOSUPPORT (505: a version other
 *         than HTTP/1.x, the HTTP/2 preface included).
 * Up to two empty lines before the request line are skipped (RFC 9112 §2.2). A line ends with CRLF
 * or a bare LF (§2.2 allows it); a CR not followed by LF is an error. */
int nm_http1_parse_request(const char *buf, size_t len, const struct nm_http1_limits *limits,
                           struct nm_http1_request *req, const char **reason);

/* The value of the single field named `name` (case-insensitive), or an absent (NULL) slice. */
struct nm_slice nm_http1_find(const struct nm_http1_request *req, struct nm_slice name);

/* Collects the values of every line of field `name`, in order, into lines[0..cap) and returns
 * the field over lines (n_lines is the number stored, at most cap). *overflow is set to whether
 * lines beyond cap were dropped. */
struct nm_field nm_http1_collect(const struct nm_http1_request *req, struct nm_slice name,
                                 struct nm_slice *lines, size_t cap, bool *overflow);

/* The same over any array of field lines: fields[0..n). */
struct nm_field nm_http1_fields_collect(const struct nm_http1_field *fields, size_t n,
                                        struct nm_slice name, struct nm_slice *lines, size_t cap,
                                        bool *overflow);

/* A parsed response head (RFC 9112 §4, §5). Its slices borrow from the parsed buffer; `fields`
 * is the array given to the parser. */
struct nm_http1_response {
    int minor_version;      /* 0 or 1: HTTP/1.x with x > 1 reads as 1 (RFC 9110 §6.2) */
    int status;             /* 100..999 */
    struct nm_slice reason; /* the reason-phrase, possibly empty; clients ignore it (§4) */
    struct nm_http1_field *fields;
    size_t n_fields;  /* field lines stored in fields[], at most max_fields */
    size_t n_dropped; /* well-formed field lines after the first max_fields, left out */
};

/* Parses one response head from buf[0..len) with the request parser's field-line grammar:
 * status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ] (a missing reason is tolerated, as
 * §4 asks of clients), lines ending in CRLF or a bare LF. Field lines go to fields[0..max_fields)
 * in order; more lines are counted in n_dropped, not refused. Returns:
 *   > 0   the head's length (through the empty line); *resp is written;
 *   0     incomplete: call again with more bytes;
 *   < 0   -EBADMSG (not a response head: a first byte that cannot start "HTTP/", a malformed
 *         status line, a status below 100, control bytes, bare CR, obs-fold, whitespace before a
 *         colon, a field line that is not "name:value"), -EPROTONOSUPPORT (a version other
 *         than HTTP/1.x), -EMSGSIZE (a head over INT32_MAX bytes).
 * fields[] is scratch until the parser succeeds. A caller that must accept obs-fold (a user
 * agent, RFC 9112 §5.2) replaces it with SP before parsing. A 1xx head is followed by another
 * head (see nm_http1_response_is_interim): parse again after it. */
int nm_http1_parse_response(const char *buf, size_t len, struct nm_http1_field *fields,
                            size_t max_fields, struct nm_http1_response *resp);

/* True for an interim response (RFC 9110 §15.2): a 1xx other than 101, after which the final
 * response's head follows on the same connection. */
bool nm_http1_response_is_interim(const struct nm_http1_response *resp);

/* Decodes chunked content (RFC 9112 §7.1) to find where it ends; the data is discarded. */
struct nm_http1_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned digits;
    size_t line_bytes;  /* bytes of the current extension or trailer line */
    uint64_t max_bytes; /* cap on the whole content, framing included */
    uint64_t fed;       /* bytes consumed so far */
};

/* Starts a decoder with no cap on the content (UINT64_MAX). */
void nm_http1_chunked_init(struct nm_http1_chunked *d);

/* Starts a decoder whose content, framing included, may not exceed max_bytes. */
void nm_http1_chunked_init_max(struct nm_http1_chunked *d, uint64_t max_bytes);

/* Consumes up to len bytes. Returns the count consumed; *done is set when the last-chunk and
 * trailer section have been read (bytes after them belong to the next request, and a done
 * decoder consumes nothing more). Framing lines end in CRLF only: a bare LF, which a proxy may
 * read otherwise, is an error (RFC 9112 §7.1). Returns -EBADMSG (400) on
 * malformed framing (a non-hex size, a size of 2^64 or more, whitespace after the size not
 * followed by ";", control bytes, a bare CR, data not followed by a line end, more data than the
 * size line said, a trailer line that is not "name:value") and -EFBIG (413) when a size (leading
 * zeros counted), extension or trailer line exceeds 4096 bytes, or the content would exceed
 * max_bytes: at the end of a size whose chunk cannot fit (before its data is sent), or at the
 * byte past the cap. Errors are found in byte order, so however the content is split into calls,
 * the first bad byte decides the result. */
int64_t nm_http1_chunked_feed(struct nm_http1_chunked *d, const char *buf, size_t len, bool *done);

#endif
