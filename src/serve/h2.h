/* One HTTP/2 connection (RFC 9113) as a machine without a socket, over libnghttp2 (framing, HPACK,
 * flow control): the server feeds it what it reads and sends what it produces, as with the
 * HTTP/1.1 machine (conn.h). Every request is answered by the same handler as over HTTP/1.1
 * (handler.h) and logged the same way; file contents go out with the copy-then-check of the send
 * path (docs/etags.md): a stream whose file changed under it is reset, never finished. */
#ifndef NOTMOD_H2_H
#define NOTMOD_H2_H

#include <stdbool.h>
#include <stddef.h>

#include "site.h"

#define NM_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define NM_H2_PREFACE_LEN 24

struct nm_h2;

/* Whether the first n bytes a client sent on a cleartext connection can begin the HTTP/2
 * connection preface (prior knowledge, RFC 9113 §3.3): true while they match it so far. */
bool nm_h2_may_be_preface(const char *bytes, size_t n);

/* A new connection for a peer (an address for the access log, copied) over site, which must
 * outlive it. The server's SETTINGS are queued at once. Returns 0 and *out, or -ENOMEM. */
int nm_h2_new(struct nm_site *site, const char *peer, struct nm_h2 **out);

/* Frees the connection and every file reference its streams hold. NULL is a no-op. */
void nm_h2_free(struct nm_h2 *h);

/* Takes n bytes received (the preface included). Returns 0, or -EPROTO when the peer broke the
 * protocol or went over a limit: a GOAWAY is queued, send it, then close (nm_h2_is_done). */
int nm_h2_receive(struct nm_h2 *h, const char *bytes, size_t n);

/* Requests complete but not answered yet: one asking for a listing once this pass's render was
 * made (site.h, listing_renders_left 0), and those after it, wait in order rather than fail.
 * nm_h2_has_waiting says whether any do; nm_h2_answer_waiting answers them, in order, up to the
 * next such listing. Returns 0, or -ENOMEM. */
bool nm_h2_has_waiting(const struct nm_h2 *h);
int nm_h2_answer_waiting(struct nm_h2 *h);

/* The bytes to send next, at *data, *len of them (0: nothing to send now); valid until the next
 * call on h. Returns 0, or -ENOMEM. */
int nm_h2_output(struct nm_h2 *h, const char **data, size_t *len);

/* Records that the first n bytes nm_h2_output gave were sent. */
void nm_h2_advance(struct nm_h2 *h, size_t n);

/* Takes no new streams (the server is stopping): a GOAWAY goes out, open streams finish. */
void nm_h2_stop(struct nm_h2 *h);

/* True when nothing is left to send and the session is over: close the connection. */
bool nm_h2_is_done(const struct nm_h2 *h);

/* True while a stream is open (its request or its response unfinished): the send or header
 * timeout applies rather than the idle one. */
bool nm_h2_is_busy(const struct nm_h2 *h);

/* For a connection that has been idle a while: when no stream is open and nothing waits to be
 * sent, frees the closed streams kept for the next requests and the empty output buffer, so that
 * it holds little besides the nghttp2 session. Returns the bytes freed (0 when busy, or when
 * nothing was kept); the next stream allocates again. */
size_t nm_h2_trim(struct nm_h2 *h);

#endif
