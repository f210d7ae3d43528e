/* One HTTP/1.1 connection as a machine that turns request bytes into response bytes, without a
 * socket (RFC 9112): it frames requests (pipelining, keep-alive, 100-continue, request content),
 * asks the handler for each response and renders it into an output queue. The server feeds it
 * what it reads and sends what it queues; golden exchanges and the connection fuzzer drive it
 * directly. */
#ifndef NOTMOD_CONN_H
#define NOTMOD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/base.h"
#include "filecache.h"
#include "notmod/http1.h"
#include "site.h"

/* A part of the output: first mem_len bytes from the front of the output buffer, then `len`
 * bytes of `file` from `off` (none when file is NULL). The segment holds a file reference, so a
 * file held in memory is sent from its own bytes (`data`), never copied per response. */
struct nm_conn_seg {
    size_t mem_len;
    struct nm_file *file;
    uint64_t off;
    uint64_t len;
    const char *data; /* non-NULL: the file part is file->data[off..off+len), not read from fd */
};

#define NM_CONN_MAX_SEGS 64

enum nm_conn_state {
    NM_CONN_HEAD = 0, /* reading a request head */
    NM_CONN_CONTENT,  /* reading request content by Content-Length before answering */
    NM_CONN_CHUNKED,  /* reading chunked request content before answering */
    NM_CONN_CLOSING,  /* no more requests: send what is queued, then close */
};

/* A peer's address, kept in binary (18 bytes rather than a 46-byte text) and formatted only
 * when a line is logged. */
struct nm_conn_peer {
    uint16_t family; /* AF_INET, AF_INET6, or AF_UNSPEC for none ("-") */
    uint8_t addr[16];
};

/* The peer of an accepted socket's address (AF_UNSPEC for a family without one). */
void nm_conn_peer_set(struct nm_conn_peer *p, const struct sockaddr_storage *ss);

/* Writes the peer as text ("192.0.2.1", "2001:db8::1", "-") into out (cap >= 46). */
void nm_conn_peer_format(const struct nm_conn_peer *p, char *out, size_t cap);

/* The fields are the machine's own; code outside conn.c reads them only in tests. A server keeps
 * one only while its connection has work (see nm_conn_is_drained and nm_conn_reuse). */
struct nm_conn {
    struct nm_site *site;
    enum nm_conn_state state;
    struct nm_buf in;
    struct nm_buf out;
    size_t out_sent; /* bytes at the front of out already sent */
    struct nm_conn_seg segs[NM_CONN_MAX_SEGS];
    unsigned seg_head, n_segs;
    uint64_t discard_left;
    struct nm_http1_chunked chunked;
    struct nm_conn_peer peer;
    unsigned requests; /* served on this connection */
    size_t scanned;    /* input length at the last parse that found the head incomplete */
    bool input_ended;  /* the peer finished sending: answer what is in, then close */
    /* The last response queued with content: "METHOD TARGET" (cut to fit) and its content
     * length, for the log of a response a stop cuts short. */
    char sending_what[160];
    uint64_t sending_total;
};

/* The site must outlive the connection; peer (a numeric address for the access log, or NULL) is
 * kept in binary: text that is not an IPv4 or IPv6 address is logged as "-". */
void nm_conn_init(struct nm_conn *c, struct nm_site *site, const char *peer);

/* The most input a connection holds at once: a head at the site's cap and some of what follows. */
size_t nm_conn_max_input(const struct nm_site *site);

/* True when the connection holds nothing of a request or a response: no input, nothing queued,
 * reading the next head, the peer still sending. Its machine can then leave it (a server keeps
 * idle connections without one) and serve another connection after nm_conn_reuse. */
bool nm_conn_is_drained(const struct nm_conn *c);

/* Starts a new connection from peer in c, which is drained (nm_conn_is_drained): what it
 * allocated (its buffers) is kept for the new connection, its request count starts again at 0,
 * and its input cap follows the site's settings now. */
void nm_conn_reuse(struct nm_conn *c, const struct nm_conn_peer *peer);

/* Drops queued output and the file references it holds. */
void nm_conn_cleanup(struct nm_conn *c);

/* ---- input ---- */

/* Where the next received bytes go: makes room for up to `want` bytes at the end of the input
 * buffer and points *at to it. Returns the room (at least 1, and no more than the input cap
 * allows), 0 when the connection takes no input now (it is closing, or its input is full until
 * the responses ahead drain), or -ENOMEM. */
int nm_conn_reserve_input(struct nm_conn *c, size_t want, char **at);

/* Takes n bytes received at the place nm_conn_reserve_input gave (n at most the room it gave). */
void nm_conn_commit_input(struct nm_conn *c, size_t n);

/* Handles every complete request in the input buffer (pipelining), queueing responses in order,
 * until the input runs out, the output queue is full, or the connection must close. Call it after
 * nm_conn_commit_input (tests append to c->in directly) and again after output has drained.
 * Returns 0, or -ENOMEM. */
int nm_conn_process(struct nm_conn *c);

/* Queues an error response (408 after a header timeout, for instance) and stops reading. */
int nm_conn_fail(struct nm_conn *c, int status, const char *why);

/* Takes no more requests (the server is stopping): what is queued is still sent, then
 * nm_conn_is_done. */
void nm_conn_stop_reading(struct nm_conn *c);

/* The peer finished sending (a half-close): the connection takes no more input, but every complete
 * request already in is still answered, as the output queue makes room (nm_conn_process); once
 * none is left the connection is CLOSING. Call nm_conn_process after it. */
void nm_conn_end_input(struct nm_conn *c);

/* The number of requests answered so far. */
unsigned nm_conn_count_requests(const struct nm_conn *c);

/* True when nothing is queued and the connection is CLOSING: close it now. */
bool nm_conn_is_done(const struct nm_conn *c);

/* True when part of a request is in, its head or its content (the request's deadline, the header
 * timeout from its first byte, applies), rather than nothing (the idle timeout applies). */
bool nm_conn_is_mid_request(const struct nm_conn *c);

/* True while part of a request head is in and its end is not: a 408 is due when it takes too
 * long (whereas request content that stalls only closes the connection). */
bool nm_conn_is_reading_head(const struct nm_conn *c);

/* Content bytes (file parts) still queued, not sent yet. */
uint64_t nm_conn_count_queued_content(const struct nm_conn *c);

/* ---- output ---- */

/* The first queued segment, or NULL when nothing is queued. */
struct nm_conn_seg *nm_conn_front(struct nm_conn *c);

/* The queued bytes that are in memory (heads, and bodies held in memory), from the front up to
 * the first part that must be read from a file, as iovecs into the queue, valid until the next
 * call that changes the queue. Writes at most max of them (2 * NM_CONN_MAX_SEGS hold the whole
 * queue) and returns how many; *file_follows tells whether a file part stops them. */
size_t nm_conn_gather(const struct nm_conn *c, struct iovec *iov, size_t max, bool *file_follows);

/* Records that n bytes of the queue were sent, from the front (memory part first, then file
 * part, across segments); finished segments release their file references. */
void nm_conn_advance(struct nm_conn *c, uint64_t n);

/* For tests and embedders without sockets: moves every queued byte to dst, reading file parts
 * with pread. Returns 0, -EIO when a file part cannot be read whole, or a buffer error. */
int nm_conn_drain(struct nm_conn *c, struct nm_buf *dst);

#endif
