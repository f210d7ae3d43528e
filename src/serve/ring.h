/* A worker's io_uring: the socket sends (and reads) of many connections queued during a pass of
 * the event loop and made with one io_uring_enter, instead of one system call each. The one
 * user of liburing. */
#ifndef NOTMOD_RING_H
#define NOTMOD_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define NM_RING_OPS 256    /* operations one batch holds */
#define NM_RING_MAX_IOV 32 /* pieces one queued send gathers; the rest goes in a later one */

struct nm_ring;

/* One queued operation: the caller fills iov[0..n) before nm_ring_queue_send. The ring keeps it
 * (and what iov points to must stay valid) until nm_ring_submit has reported its result or
 * nm_ring_cancel took it out. */
struct nm_ring_op {
    struct iovec iov[NM_RING_MAX_IOV];
    struct msghdr msg;
    void *tag; /* the caller's, reported with the result; NULL once cancelled */
    void *sqe; /* the submission entry, while queued */
};

/* Sets up a ring of NM_RING_OPS entries for the calling thread only (it alone may queue and
 * submit). Returns 0, or a negative errno when the kernel refuses io_uring (-ENOSYS: no
 * io_uring, -EPERM: forbidden by /proc/sys/kernel/io_uring_disabled or a seccomp filter,
 * -ENOMEM), and then *out is left alone. */
int nm_ring_new(struct nm_ring **out);

/* nm_ring_free(NULL) is a no-op. Anything still queued is dropped, not sent. */
void nm_ring_free(struct nm_ring *r);

/* A free operation to fill, or NULL when the batch is full (the caller then makes its system call
 * itself, or submits first). */
struct nm_ring_op *nm_ring_reserve(struct nm_ring *r);

/* Queues the op reserve gave: a sendmsg of op->iov[0..n_iov) on socket fd with flags, to which
 * MSG_DONTWAIT | MSG_NOSIGNAL are added, so the send completes at submit: what a non-blocking
 * sendmsg would have returned, bytes or -EAGAIN, never a wait. */
void nm_ring_queue_send(struct nm_ring *r, struct nm_ring_op *op, int fd, size_t n_iov, int flags,
                        void *tag);

/* Queues a recv of at most len bytes into buf on socket fd, MSG_DONTWAIT: the result is what a
 * non-blocking recv returns (bytes, 0 at the peer's end, -EAGAIN when there is nothing). */
void nm_ring_queue_recv(struct nm_ring *r, struct nm_ring_op *op, int fd, void *buf, size_t len,
                        void *tag);

/* Takes every queued operation with this tag out of the batch: it is never made, nor reported.
 * For a connection closed between queueing and submit. */
void nm_ring_cancel(struct nm_ring *r, void *tag);

/* Operations queued and not yet submitted. */
unsigned nm_ring_count_queued(const struct nm_ring *r);

/* Makes every queued operation with one io_uring_enter and reports each, in the order they were
 * queued, as done(arg, tag, res) with res the system call's result (bytes, or a negative errno).
 * done may queue new operations: they wait for the next submit. Returns the number reported, or a
 * negative errno when the kernel refused the batch (then none was made, and each is reported with
 * that error so that its connection does not wait forever). */
int nm_ring_submit(struct nm_ring *r, void (*done)(void *arg, void *tag, int res), void *arg);

#endif
