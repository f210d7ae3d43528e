/* The ring's contract (ring.h): a batch of sends and reads made by one submit, each reported with
 * what the non-blocking system call would have returned (bytes in order, a partial send, -EAGAIN,
 * an error, 0 at the peer's end), a cancelled operation neither made nor reported, a full batch,
 * and a kernel that refuses io_uring. Over socketpairs. */
#include "serve/ring.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_REPORTS 16

struct reports {
    unsigned n;
    void *tags[MAX_REPORTS];
    int res[MAX_REPORTS];
};

static void record(void *arg, void *tag, int res)
{
    struct reports *r = arg;
    cr_assert_lt(r->n, MAX_REPORTS);
    r->tags[r->n] = tag;
    r->res[r->n++] = res;
}

static struct nm_ring *new_ring(void)
{
    struct nm_ring *r = NULL;
    int rc = nm_ring_new(&r);
    cr_assert_eq(rc, 0, "io_uring refused: %s", strerror(-rc));
    return r;
}

/* A non-blocking stream socketpair: sv[0] the server's end, sv[1] the peer's. */
static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

static void queue_text(struct nm_ring *r, int fd, const char *a, const char *b, void *tag)
{
    struct nm_ring_op *op = nm_ring_reserve(r);
    cr_assert_not_null(op);
    op->iov[0] = (struct iovec){.iov_base = (void *)a, .iov_len = strlen(a)};
    op->iov[1] = (struct iovec){.iov_base = (void *)b, .iov_len = strlen(b)};
    nm_ring_queue_send(r, op, fd, 2, 0, tag);
}

Test(ring, a_batch_of_sends_on_many_sockets_completes_at_submit_with_the_bytes_in_order)
{
    struct nm_ring *r = new_ring();
    int a[2], b[2];
    pair(a);
    pair(b);
    int tag_a1, tag_b, tag_a2;
    queue_text(r, a[0], "HTTP/1.1 304 ", "Not Modified\r\n\r\n", &tag_a1);
    queue_text(r, b[0], "HTTP/1.1 200 OK\r\n\r\n", "body", &tag_b);
    queue_text(r, a[0], "second ", "response", &tag_a2);
    cr_assert_eq(nm_ring_count_queued(r), 3);
    struct reports rep = {0};
    cr_assert_eq(nm_ring_submit(r, record, &rep), 3);
    cr_assert_eq(nm_ring_count_queued(r), 0);
    cr_assert_eq(rep.n, 3);
    cr_assert_eq(rep.tags[0], &tag_a1);
    cr_assert_eq(rep.tags[1], &tag_b);
    cr_assert_eq(rep.tags[2], &tag_a2);
    cr_assert_eq(rep.res[0], 29);
    cr_assert_eq(rep.res[1], 23);
    cr_assert_eq(rep.res[2], 15);
    char got[128] = "";
    cr_assert_eq(read(a[1], got, sizeof(got) - 1), 44);
    cr_assert_str_eq(got, "HTTP/1.1 304 Not Modified\r\n\r\nsecond response");
    memset(got, 0, sizeof(got));
    cr_assert_eq(read(b[1], got, sizeof(got) - 1), 23);
    cr_assert_str_eq(got, "HTTP/1.1 200 OK\r\n\r\nbody");
    nm_ring_free(r);
}

Test(ring, a_full_socket_reports_a_partial_send_then_eagain)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    static char big[4 << 20];
    struct reports rep = {0};
    for (int k = 0; k < 2; k++) {
        struct nm_ring_op *op = nm_ring_reserve(r);
        op->iov[0] = (struct iovec){.iov_base = big, .iov_len = sizeof(big)};
        nm_ring_queue_send(r, op, s[0], 1, 0, (void *)1);
        cr_assert_eq(nm_ring_submit(r, record, &rep), 1);
    }
    cr_assert_gt(rep.res[0], 0);
    cr_assert_lt(rep.res[0], (int)sizeof(big), "a socket took 4 MiB at once");
    cr_assert_eq(rep.res[1], -EAGAIN);
    nm_ring_free(r);
}

Test(ring, a_send_to_a_peer_that_closed_reports_an_error_without_a_signal)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    close(s[1]);
    queue_text(r, s[0], "HTTP/1.1 200 OK\r\n\r\n", "", (void *)1);
    struct reports rep = {0};
    cr_assert_eq(nm_ring_submit(r, record, &rep), 1);
    cr_assert_eq(rep.res[0], -EPIPE); /* and no SIGPIPE, which would have ended this test */
    nm_ring_free(r);
}

Test(ring, reads_report_bytes_eagain_on_an_empty_socket_and_zero_at_the_peers_end)
{
    struct nm_ring *r = new_ring();
    int full[2], empty[2], ended[2];
    pair(full);
    pair(empty);
    pair(ended);
    cr_assert_eq(write(full[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
    close(ended[1]);
    char buf[3][64];
    int fds[3] = {full[0], empty[0], ended[0]};
    for (int i = 0; i < 3; i++)
        nm_ring_queue_recv(r, nm_ring_reserve(r), fds[i], buf[i], sizeof(buf[i]), &fds[i]);
    struct reports rep = {0};
    cr_assert_eq(nm_ring_submit(r, record, &rep), 3);
    cr_assert_eq(rep.res[0], 18);
    cr_assert_eq(memcmp(buf[0], "GET / HTTP/1.1\r\n\r\n", 18), 0);
    cr_assert_eq(rep.res[1], -EAGAIN);
    cr_assert_eq(rep.res[2], 0);
    nm_ring_free(r);
}

Test(ring, a_cancelled_send_is_neither_made_nor_reported)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    int keep, drop;
    queue_text(r, s[0], "kept", "", &keep);
    queue_text(r, s[0], "dropped", "", &drop);
    nm_ring_cancel(r, &drop);
    cr_assert_eq(nm_ring_count_queued(r), 1);
    struct reports rep = {0};
    cr_assert_eq(nm_ring_submit(r, record, &rep), 1);
    cr_assert_eq(rep.n, 1);
    cr_assert_eq(rep.tags[0], &keep);
    char got[32] = "";
    cr_assert_eq(read(s[1], got, sizeof(got) - 1), 4);
    cr_assert_str_eq(got, "kept");
    nm_ring_free(r);
}

static void queue_again(void *arg, void *tag, int res)
{
    struct nm_ring *r = arg;
    (void)res;
    if (tag)
        queue_text(r, *(int *)tag, "later", "", NULL);
}

Test(ring, an_operation_queued_while_results_are_reported_waits_for_the_next_submit)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    queue_text(r, s[0], "first ", "", &s[0]);
    cr_assert_eq(nm_ring_submit(r, queue_again, r), 1);
    cr_assert_eq(nm_ring_count_queued(r), 1);
    cr_assert_eq(nm_ring_submit(r, queue_again, r), 1);
    char got[32] = "";
    cr_assert_eq(read(s[1], got, sizeof(got) - 1), 11);
    cr_assert_str_eq(got, "first later");
    nm_ring_free(r);
}

static void count(void *arg, void *tag, int res)
{
    (void)tag;
    cr_assert_eq(res, 1);
    (*(unsigned *)arg)++;
}

Test(ring, a_full_batch_gives_no_more_operations_until_it_is_submitted)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    for (int i = 0; i < NM_RING_OPS; i++)
        queue_text(r, s[0], "x", "", (void *)1);
    cr_assert_null(nm_ring_reserve(r));
    unsigned n = 0;
    cr_assert_eq(nm_ring_submit(r, count, &n), NM_RING_OPS);
    cr_assert_eq(n, NM_RING_OPS);
    cr_assert_not_null(nm_ring_reserve(r));
    nm_ring_free(r);
}

/* What a container's seccomp profile does: io_uring_setup fails with EPERM (Docker's default
 * profile), and so does every other io_uring call. */
static void forbid_io_uring(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    cr_assert_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

Test(ring, a_kernel_that_refuses_io_uring_gives_its_errno_and_no_ring)
{
    forbid_io_uring();
    struct nm_ring *r = (struct nm_ring *)&r; /* left alone on failure */
    cr_assert_eq(nm_ring_new(&r), -EPERM);
    cr_assert_eq(r, (struct nm_ring *)&r);
    nm_ring_free(NULL);
}

Test(ring, a_cancelled_operation_holds_its_place_in_the_queue_until_the_next_submit)
{
    struct nm_ring *r = new_ring();
    int s[2];
    pair(s);
    int gone;
    queue_text(r, s[0], "x", "", &gone);
    nm_ring_cancel(r, &gone);
    for (int i = 0; i < NM_RING_OPS - 1; i++)
        queue_text(r, s[0], "x", "", (void *)1);
    cr_assert_null(nm_ring_reserve(r), "a cancelled entry was handed out again before submit");
    unsigned n = 0;
    cr_assert_eq(nm_ring_submit(r, count, &n), NM_RING_OPS - 1);
    cr_assert_eq(n, NM_RING_OPS - 1);
    for (int i = 0; i < NM_RING_OPS; i++)
        cr_assert_not_null(nm_ring_reserve(r));
    nm_ring_free(r);
}
