/* The worker's io_uring: sends and reads of many sockets queued, then made with one
 * io_uring_enter. Every operation carries MSG_DONTWAIT, so the kernel makes it at submit as the
 * non-blocking system call would and never parks it: the batch is over when submit returns. */
#include "ring.h"

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct nm_ring {
    struct io_uring ring;
    unsigned n_free;
    unsigned n_queued;
    unsigned n_sqes; /* entries queued since the last submit, cancelled ones (now no-ops) too */
    unsigned n_reporting;
    unsigned n_cancelled;
    struct nm_ring_op *free[NM_RING_OPS];
    struct nm_ring_op *queued[NM_RING_OPS];    /* in the order they were queued */
    struct nm_ring_op *reporting[NM_RING_OPS]; /* the batch being reported */
    struct nm_ring_op *cancelled[NM_RING_OPS]; /* free once their no-op entries are submitted */
    int res[NM_RING_OPS];                      /* by index into ops */
    struct nm_ring_op ops[NM_RING_OPS];
};

/* The kernel's cheapest mode first: one thread submits, and completion work runs only when it
 * enters the kernel (Linux 6.1); then one that does not interrupt the thread for it (5.19); then
 * none. */
static int setup(struct io_uring *ring)
{
    static const unsigned flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]) && rc == -EINVAL; i++)
        rc = io_uring_queue_init(NM_RING_OPS, ring, flags[i]);
    return rc;
}

int nm_ring_new(struct nm_ring **out)
{
    struct nm_ring *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int rc = setup(&r->ring);
    if (rc < 0) {
        free(r);
        return rc;
    }
    /* Saves the descriptor lookup on every io_uring_enter; a kernel without it just does it. */
    (void)io_uring_register_ring_fd(&r->ring);
    for (unsigned i = 0; i < NM_RING_OPS; i++)
        r->free[r->n_free++] = &r->ops[NM_RING_OPS - 1 - i];
    *out = r;
    return 0;
}

void nm_ring_free(struct nm_ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

struct nm_ring_op *nm_ring_reserve(struct nm_ring *r)
{
    return r->n_free ? r->free[--r->n_free] : NULL;
}

/* The entry for op; the ring holds as many as there are ops, so one is always there. */
static struct io_uring_sqe *take_sqe(struct nm_ring *r, struct nm_ring_op *op, void *tag)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    op->tag = tag;
    op->sqe = sqe;
    r->queued[r->n_queued++] = op;
    r->n_sqes++;
    return sqe;
}

void nm_ring_queue_send(struct nm_ring *r, struct nm_ring_op *op, int fd, size_t n_iov, int flags,
                        void *tag)
{
    op->msg = (struct msghdr){.msg_iov = op->iov, .msg_iovlen = n_iov};
    struct io_uring_sqe *sqe = take_sqe(r, op, tag);
    io_uring_prep_sendmsg(sqe, fd, &op->msg, (unsigned)(flags | MSG_DONTWAIT | MSG_NOSIGNAL));
    io_uring_sqe_set_data(sqe, op);
}

void nm_ring_queue_recv(struct nm_ring *r, struct nm_ring_op *op, int fd, void *buf, size_t len,
                        void *tag)
{
    struct io_uring_sqe *sqe = take_sqe(r, op, tag);
    io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
    io_uring_sqe_set_data(sqe, op);
}

void nm_ring_cancel(struct nm_ring *r, void *tag)
{
    for (unsigned i = 0; i < r->n_queued;) {
        struct nm_ring_op *op = r->queued[i];
        if (op->tag != tag) {
            i++;
            continue;
        }
        /* The entry is the kernel's only at submit: until then it can still become a no-op. */
        io_uring_prep_nop(op->sqe);
        io_uring_sqe_set_data(op->sqe, NULL);
        memmove(&r->queued[i], &r->queued[i + 1], (r->n_queued - i - 1) * sizeof(r->queued[0]));
        r->n_queued--;
        op->tag = NULL;
        /* Not free before submit: its entry still takes a place in the submission queue. */
        r->cancelled[r->n_cancelled++] = op;
    }
    for (unsigned i = 0; i < r->n_reporting; i++)
        if (r->reporting[i] && r->reporting[i]->tag == tag)
            r->reporting[i] = NULL; /* made, but no longer anyone's to hear of */
}

unsigned nm_ring_count_queued(const struct nm_ring *r)
{
    return r->n_queued;
}

/* Collects the results of `want` entries, waiting only for those the kernel did not finish at
 * submit (none, with MSG_DONTWAIT). */
static int reap(struct nm_ring *r, unsigned want)
{
    while (want > 0) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe)
        {
            struct nm_ring_op *op = io_uring_cqe_get_data(cqe);
            if (op)
                r->res[op - r->ops] = cqe->res;
            seen++;
        }
        io_uring_cq_advance(&r->ring, seen);
        want = seen < want ? want - seen : 0;
        if (want > 0) {
            int rc = io_uring_wait_cqe(&r->ring, &cqe);
            if (rc < 0 && rc != -EINTR)
                return rc;
        }
    }
    return 0;
}

int nm_ring_submit(struct nm_ring *r, void (*done)(void *arg, void *tag, int res), void *arg)
{
    if (r->n_sqes == 0)
        return 0;
    unsigned n = r->n_queued, sqes = r->n_sqes;
    memcpy(r->reporting, r->queued, n * sizeof(r->queued[0]));
    r->n_reporting = n;
    r->n_queued = 0;
    r->n_sqes = 0;
    int rc;
    do /* a signal before anything was submitted: the entries are all still there */
        rc = io_uring_submit_and_wait(&r->ring, sqes);
    while (rc == -EINTR);
    while (r->n_cancelled > 0)
        r->free[r->n_free++] = r->cancelled[--r->n_cancelled];
    if (rc >= 0 && (unsigned)rc == sqes)
        rc = reap(r, sqes);
    else if (rc >= 0)
        rc = -EIO; /* entries the kernel did not take: none of this batch is trusted */
    for (unsigned i = 0; i < n; i++)
        if (r->reporting[i])
            r->res[r->reporting[i] - r->ops] = rc < 0 ? rc : r->res[r->reporting[i] - r->ops];
    int reported = 0;
    for (unsigned i = 0; i < r->n_reporting; i++) {
        struct nm_ring_op *op = r->reporting[i];
        if (!op)
            continue;
        void *tag = op->tag;
        int res = r->res[op - r->ops];
        op->tag = NULL;
        r->free[r->n_free++] = op; /* free before done, which may queue again */
        r->reporting[i] = NULL;
        done(arg, tag, res);
        reported++;
    }
    r->n_reporting = 0;
    return rc < 0 ? rc : reported;
}
