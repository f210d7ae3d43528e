/* The send path: a connection's queued output into its socket. Heads and bodies held in memory
 * leave in one sendmsg; a file part's end is read, then the file checked to be the version the
 * head described, and only then does that end leave, unless a read lease on the file keeps every
 * writer out and the part goes whole by sendfile (see docs/etags.md). A response aborted because
 * its file changed is logged, at a bounded rate. */
#ifndef NOTMOD_SEND_H
#define NOTMOD_SEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "conn.h"
#include "tls.h"

#define NM_SEND_TAIL_BYTES 256 /* the last bytes of a file part: read, then checked, then sent */
#define NM_SEND_ABORT_NOTES 64 /* files whose aborted responses are being counted */

/* Aborted responses of one file, while they are counted rather than logged. */
struct nm_send_abort_note {
    char path[256]; /* "" for a free note; longer paths are cut (and told apart by the hash) */
    uint64_t path_hash;
    int64_t logged_ms;
    unsigned suppressed;
};

/* The aborted-response log of a whole server: every worker reports into it. */
struct nm_send_aborts {
    pthread_mutex_t lock;
    struct nm_send_abort_note notes[NM_SEND_ABORT_NOTES];
    atomic_uint pending;         /* notes with a count not logged yet */
    atomic_uint_least64_t total; /* every response aborted, for the metrics */
};

/* One worker's sender: the buffer tagged bodies are copied through, allocated on first use. */
struct nm_send {
    char *copy_buf;
    struct nm_send_aborts *aborts;
};

/* The end of one connection's current file part, once read; len 0 when not read yet. It lives
 * with the connection's working state (connpool.h), only while the connection has work. */
struct nm_send_tail {
    char bytes[NM_SEND_TAIL_BYTES];
    size_t len;
};

/* What a connection keeps of its splicing for as long as it is open, idle or not: the file it
 * last sent bytes of by sendfile under a lease (a reference, NULL for none), whose break may have
 * to cut the connection while the socket still holds those bytes, and whether its peer is on
 * this host (0 until asked, 1 on this host, -1 elsewhere). */
struct nm_send_splice {
    struct nm_file *file;
    signed char peer_here;
};

/* A connection's at its start; reset releases what it holds, at its end. */
void nm_send_splice_init(struct nm_send_splice *sp);
void nm_send_splice_reset(struct nm_send_splice *sp);

void nm_send_aborts_init(struct nm_send_aborts *a);
void nm_send_aborts_cleanup(struct nm_send_aborts *a);

/* Logs the counts of aborts whose second is over at now_ms (monotonic), or all of them. */
void nm_send_aborts_flush(struct nm_send_aborts *a, int64_t now_ms, bool all);

/* Reports to `aborts`, which must outlive the sender. */
void nm_send_init(struct nm_send *s, struct nm_send_aborts *aborts);
void nm_send_cleanup(struct nm_send *s);

/* Sends c's queued output into the non-blocking socket fd (through tls when it is not NULL: heads
 * and small bodies coalesced into records, file parts copied) until it is gone or the socket is
 * full, advancing the queue by what left. `tail` belongs to the connection and is empty at its
 * start. A file that shrank or changed under a part aborts the response: logged (one line per file
 * per second; the others counted, see nm_send_aborts_flush, with now_ms the time they count from).
 * Returns 1 when bytes left, 0 when blocked or empty, -1 when the connection must be dropped
 * (a socket error, an aborted response, no memory for the copy buffer). */
int nm_send_some(struct nm_send *s, int fd, struct nm_tls_conn *tls, struct nm_conn *c,
                 struct nm_send_tail *tail, struct nm_send_splice *sp, int64_t now_ms);

/* Whether c's queue starts with bytes held in memory (heads, small bodies), which leave by one
 * sendmsg; false when it is empty or starts with a file part, which only nm_send_some sends. */
bool nm_send_is_memory_next(struct nm_conn *c);

/* The sendmsg nm_send_some would make for c's memory front, for a caller that makes it itself
 * (a batch of many connections' sends, ring.h): at most max pieces into iov, the count returned,
 * and the flags in *flags (MSG_NOSIGNAL, and MSG_MORE when a file part follows). The pieces stay
 * valid until c's queue changes. */
size_t nm_send_gather(const struct nm_conn *c, struct iovec *iov, size_t max, int *flags);

/* Applies what that sendmsg returned, res (bytes, or a negative errno), to c's queue. Returns 1
 * when bytes left, 0 when the socket was full (-EAGAIN, -EINTR), -1 when the connection must be
 * dropped (any other error). */
int nm_send_apply(struct nm_conn *c, int res);

/* The lease on the file with descriptor file_fd broke (nm_filecache_lease_signal): true when
 * connection c (socket fd; c NULL for an idle connection, which queues nothing) must be cut before
 * the lease goes, because it sent bytes of that file by sendfile that may still be read from the
 * page cache: its front part is that file, or the socket holds bytes the peer has not
 * acknowledged (SIOCOUTQ). file_fd -1 (notices were lost): any file it spliced whose lease no
 * longer holds. A cut is logged like an abort. */
bool nm_send_is_exposed(struct nm_send *s, int fd, struct nm_conn *c, struct nm_send_splice *sp,
                        int file_fd, int64_t now_ms);

/* Lets go the lease of every file with descriptor file_fd (-1: whose lease no longer holds) that
 * c's queue (c NULL: none) and sp hold, once no connection that must be cut is left
 * (nm_file_unlease). */
void nm_send_unlease(struct nm_conn *c, struct nm_send_splice *sp, int file_fd);

#endif
