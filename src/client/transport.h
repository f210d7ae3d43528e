/* HTTP/1.1 exchanges for notmod get and notmod check, over libcurl: one request, the final
 * response's status and header lines, the body streamed to a callback, and the clock readings
 * RFC 9111 §4.2.3 needs. Also a raw exchange that shows the bytes a server really sends. */
#ifndef NOTMOD_CLIENT_H
#define NOTMOD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/cachectl.h"
#include "notmod/http1.h"

#define NM_CLIENT_MAX_HEAD_BYTES (64u * 1024) /* cap on a response's header section */
#define NM_CLIENT_MAX_HEADERS 256             /* cap on its header lines */
#define NM_CLIENT_ERROR_MAX 256
#define NM_CLIENT_URL_MAX 4096

/* Process-wide libcurl setup and teardown; programs call them once, around all other use.
 * Returns 0 or -ENOMEM. */
int nm_client_global_init(void);
void nm_client_global_cleanup(void);

/* A connection-reusing client. */
struct nm_client {
    void *easy;
};

int nm_client_init(struct nm_client *c);
void nm_client_cleanup(struct nm_client *c);

struct nm_client_request {
    const char *method; /* "GET" or "HEAD" */
    const char *url;
    const struct nm_http1_field *headers; /* extra request header lines */
    size_t n_headers;
    const char *connect_to;  /* "HOST:PORT" to connect to instead of the URL's authority,
                                keeping the URL's Host (and TLS name); NULL for none */
    long connect_timeout_ms; /* 0: 10 s */
    long stall_timeout_s;    /* abort after this long without a byte; 0: 30 s */
    long timeout_ms;         /* whole exchange; 0: none */
    bool fresh_connection;   /* a new connection, closed afterwards: nothing carries over */
    /* Sent as Accept-Encoding through libcurl, which then decodes the body: on_body receives
     * the decoded bytes (nm_client_accept_encoding gives the codings it decodes). NULL: no
     * Accept-Encoding from libcurl and the body as sent. */
    const char *accept_encoding;
    /* Receives the body as it arrives; returns 0, or a negative errno to abort the transfer
     * (the exchange then fails with that errno and local_error set). NULL discards. */
    int (*on_body)(void *ctx, const void *data, size_t len);
    /* Called often during the exchange with the body bytes received so far and the expected
     * total (0 when unknown); returns 0, or a negative errno to abort (-ECANCELED, say). */
    int (*on_progress)(void *ctx, uint64_t received, uint64_t total);
    void *ctx;
};

struct nm_client_response {
    int status;
    char reason[64];    /* the reason phrase, possibly empty */
    struct nm_buf head; /* the final head: status and field lines, LF-ended, obs-fold unfolded */
    struct nm_http1_field headers[NM_CLIENT_MAX_HEADERS]; /* borrow from head */
    size_t n_headers;
    uint64_t body_bytes;
    int64_t request_time;            /* seconds since the epoch just before sending */
    int64_t response_time;           /* seconds since the epoch when the header section ended */
    bool local_error;                /* the failure came from on_body, not from the network */
    char error[NM_CLIENT_ERROR_MAX]; /* what went wrong, for people */
};

void nm_client_response_init(struct nm_client_response *r);
void nm_client_response_cleanup(struct nm_client_response *r);

/* Performs one exchange; redirects are not followed, only http and https are allowed, and
 * the body is received as sent unless req->accept_encoding is set. body_bytes and
 * on_progress count the bytes on the wire (coded), not the decoded ones. Returns 0 when a
 * complete response arrived (any status), else a negative errno with resp->error set (when the
 * header section was complete before the failure, resp->status and the header lines are the
 * response's; else status is 0):
 *   -EINVAL bad URL, -EPROTONOSUPPORT scheme, -EHOSTUNREACH name resolution,
 *   -ECONNREFUSED connect, -ETIMEDOUT timeout or stall, -ECONNRESET transfer cut short,
 *   -EPROTO TLS, -EBADMSG not a valid HTTP response, -EMSGSIZE header section too large,
 *   -ENOMEM, on_progress's errno, or on_body's errno with local_error set. */
int nm_client_perform(struct nm_client *c, const struct nm_client_request *req,
                      struct nm_client_response *resp);

/* Sends `method` for url over a fresh connection with the given header lines plus Host and
 * "Connection: close", and appends to out every byte the server sends until it closes, stops
 * sending for 500 ms after the header section, timeout_ms passes, or out's cap is reached.
 * Returns 0 or a negative errno as nm_client_perform. */
int nm_client_raw(const char *url, const char *connect_to, const char *method,
                  const struct nm_http1_field *headers, size_t n_headers, long timeout_ms,
                  struct nm_buf *out, char error[NM_CLIENT_ERROR_MAX]);

/* A response head received line by line, as libcurl's header callback receives it. */
struct nm_client_head {
    size_t lines; /* lines of the current head in resp->head, its status line included */
    int status;   /* the final head's status code once done */
    bool done;    /* the final head ended: the lines after it are trailer fields */
};

/* Takes one line of a response head (with or without its CRLF or LF) into r->head, for a zeroed
 * hd and an initialized r. A line beginning "HTTP/" starts a new head: interim 1xx heads, a
 * proxy's answer to CONNECT and the final head each do. An obs-fold continuation line is joined
 * to the line before with one SP (RFC 9112 §5.2). The empty line ends the head: it is parsed
 * into r->headers (borrowing from r->head, whose lines then end in LF and hold no CR), r->reason
 * and hd->status, and hd->done is set, unless it was interim (RFC 9110 §15.2), which is
 * forgotten. Lines after the final head (trailer fields, RFC 9110 §6.5.1) change nothing.
 * Returns 0, -EBADMSG for a head that is not a valid HTTP/1.x response head or a line with a CR
 * other than the one before its LF (RFC 9112 §2.2), or -EMSGSIZE when
 * the head exceeds NM_CLIENT_MAX_HEAD_BYTES, or -ENOMEM. */
int nm_client_head_line(struct nm_client_head *hd, struct nm_client_response *r,
                        struct nm_slice line);

/* Splits a raw response with nm_http1_parse_response: status code, header lines (borrowing from
 * raw, at most cap; more are dropped) and the length of the header section including its empty
 * line. Returns 0, or -EBADMSG when raw does not start with a complete, well-formed HTTP/1.x
 * status line and header section (an interim 1xx head counts as one). */
int nm_client_parse_response(struct nm_slice raw, int *status, struct nm_http1_field *hdrs,
                             size_t cap, size_t *n_hdrs, size_t *head_len);

/* A -H "Name: value" option of get and check: a token name, a value without control
 * characters other than HTAB (trimmed of surrounding whitespace; h borrows from arg). Returns 0,
 * -EINVAL for another form, or -EPERM for a field the tools send themselves (If-None-Match,
 * If-Modified-Since, If-Match, If-Unmodified-Since, If-Range, Range). */
int nm_client_parse_header_option(const char *arg, struct nm_http1_field *h);

/* A --backends value: HOST:PORT items separated by commas (empty items skipped), each a
 * non-empty host and a port of digits only, 1 to 65535. Cuts `list` at its commas in place and
 * appends the items to out[*n..cap). Returns 0, or -EINVAL (with *n as it was) for a malformed
 * item, no item, or more than cap in all. */
int nm_client_parse_backends(char *list, const char **out, size_t cap, size_t *n);

/* The content codings this libcurl decodes, as a list for Accept-Encoding
 * ("deflate, gzip, br, zstd" or a part of it), the value libcurl sends for CURLOPT_ACCEPT_ENCODING
 * "". NULL when it decodes none. The string is static. */
const char *nm_client_accept_encoding(void);

/* Resolves `ref` (a Location value, absolute or relative) against `base` and normalizes the
 * result as nm_client_url_normalize. Returns 0, -EINVAL, -EPROTONOSUPPORT or -ENAMETOOLONG. */
int nm_client_url_resolve(const char *base, struct nm_slice ref, char *out, size_t cap);

/* Checks and normalizes an http or https URL (scheme and host lowercased, fragment dropped).
 * Writes it with a NUL to out. Returns 0, -EINVAL, -EPROTONOSUPPORT or -ENAMETOOLONG. */
int nm_client_url_normalize(const char *url, char *out, size_t cap);

/* The URL's host and port (the scheme's default when absent). Returns 0 or -EINVAL. */
int nm_client_url_authority(const char *url, char *host, size_t cap, unsigned *port);

#endif
