/* The connection machine's contract (conn.h): segments, advance and drain accounting, backpressure,
 * closing, input room and gathering for the server, the mid-request test, nm_conn_fail, 304
 * framing, and input split at any byte. */
#include "serve/conn.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000LL
#define BIG_BYTES 200000u /* more than the fixture's small_file_bytes: sent as a file part */

static struct {
    char dir[64];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
    struct nm_conn conn;
    struct nm_buf out;
} fx;

static const char hello[] = "Hello, world!\n";

static void write_site_file(const char *name, const char *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    struct timespec ts[2] = {{NOW - 3600, 0}, {NOW - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-conn-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    write_site_file("hello.txt", hello, sizeof(hello) - 1);
    char *big = malloc(BIG_BYTES);
    cr_assert_not_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (char)('a' + i % 26);
    write_site_file("big.txt", big, BIG_BYTES);
    free(big);

    nm_config_init(&fx.cfg);
    fx.cfg.small_file_bytes = 64 * 1024; /* big.txt is above it: not held in memory */
    /* Large files are file parts read from their descriptor, even while racy (just written). */
    fx.cfg.hash_threshold_bytes = BIG_BYTES - 1;
    fx.cfg.root = strdup(fx.dir);
    fx.cfg.index_name = strdup("index.html");
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    nm_site_set_time(&fx.site, NOW);
    nm_conn_init(&fx.conn, &fx.site, "192.0.2.1");
    nm_buf_init(&fx.out, 64u << 20);
}

static void teardown(void)
{
    nm_buf_cleanup(&fx.out);
    nm_conn_cleanup(&fx.conn);
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    char path[128];
    snprintf(path, sizeof(path), "%s/hello.txt", fx.dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    unlink(path);
    rmdir(fx.dir);
}

TestSuite(conn, .init = setup, .fini = teardown);

static void feed(struct nm_conn *c, const char *s, size_t len)
{
    cr_assert_eq(nm_buf_append(&c->in, s, len), 0);
}

static void feed_str(struct nm_conn *c, const char *s)
{
    feed(c, s, strlen(s));
}

/* Processes and drains until nothing moves, as a server with a fast peer would. */
static void run(struct nm_conn *c, struct nm_buf *out)
{
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(nm_conn_process(c), 0);
        size_t before = out->len;
        cr_assert_eq(nm_conn_drain(c, out), 0);
        if (out->len == before)
            return;
    }
    cr_assert_fail("the connection never settled");
}

static size_t count(const struct nm_buf *b, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = b->ptr; p && (p = memmem(p, b->len - (size_t)(p - b->ptr), needle, k));
         p += k)
        n++;
    return n;
}

static bool out_has(const char *needle)
{
    return fx.out.len && memmem(fx.out.ptr, fx.out.len, needle, strlen(needle)) != NULL;
}

/* Total bytes queued in every segment. */
static uint64_t queued_bytes(const struct nm_conn *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < c->n_segs; i++) {
        const struct nm_conn_seg *s = &c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS];
        n += s->mem_len + s->len;
    }
    return n;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

/* ---- segments, advance, drain -------------------------------------------------------------- */

Test(conn, nothing_is_queued_before_a_request)
{
    cr_assert_null(nm_conn_front(&fx.conn));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_null(nm_conn_front(&fx.conn));
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert_eq(fx.out.len, 0);
}

Test(conn, small_file_is_its_head_then_its_own_bytes_by_reference)
{
    feed_str(&fx.conn, GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    struct nm_conn_seg *s = nm_conn_front(&fx.conn);
    cr_assert_not_null(s);
    cr_assert_eq(fx.conn.n_segs, 1);
    cr_assert_eq(s->mem_len, fx.conn.out.len, "the head is the memory part");
    cr_assert_not_null(s->file);
    cr_assert_eq(s->data, s->file->data, "the body is the bytes that were hashed");
    cr_assert_eq(s->len, sizeof(hello) - 1);
    cr_assert(memmem(fx.conn.out.ptr, fx.conn.out.len, hello, sizeof(hello) - 1) == NULL,
              "the body is not copied into the output buffer");
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert(memmem(fx.out.ptr, fx.out.len, hello, sizeof(hello) - 1) != NULL);
}

Test(conn, large_file_is_a_head_then_a_file_part)
{
    feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    struct nm_conn_seg *s = nm_conn_front(&fx.conn);
    cr_assert_not_null(s);
    cr_assert_not_null(s->file);
    cr_assert_eq(s->off, 0);
    cr_assert_eq(s->len, BIG_BYTES);
    cr_assert_eq(s->mem_len, fx.conn.out.len, "the head is the whole memory part");
    cr_assert(memmem(fx.conn.out.ptr, fx.conn.out.len, "Content-Length: 200000\r\n", 24));
    cr_assert_eq(fx.conn.out.ptr[s->mem_len - 1], '\n');
}

Test(conn, advance_takes_the_memory_part_first_then_the_file_part)
{
    feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    struct nm_conn_seg *s = nm_conn_front(&fx.conn);
    size_t head = s->mem_len;
    nm_conn_advance(&fx.conn, 10);
    cr_assert_eq(s->mem_len, head - 10);
    cr_assert_eq(fx.conn.out_sent, 10);
    cr_assert_eq(s->off, 0);
    cr_assert_eq(s->len, BIG_BYTES);
    nm_conn_advance(&fx.conn, head - 10 + 1000);
    cr_assert_eq(nm_conn_front(&fx.conn), s);
    cr_assert_eq(s->mem_len, 0);
    cr_assert_eq(s->off, 1000);
    cr_assert_eq(s->len, BIG_BYTES - 1000);
    nm_conn_advance(&fx.conn, BIG_BYTES - 1000);
    cr_assert_null(nm_conn_front(&fx.conn));
    cr_assert_eq(fx.conn.n_segs, 0);
    cr_assert_eq(fx.conn.out.len, 0, "the output buffer is compacted once drained");
    cr_assert_eq(fx.conn.out_sent, 0);
}

Test(conn, the_last_response_with_content_is_named_and_its_unsent_bytes_counted)
{
    feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_expect_str_eq(fx.conn.sending_what, "GET /big.txt");
    cr_expect_eq(fx.conn.sending_total, BIG_BYTES);
    cr_expect_eq(nm_conn_count_queued_content(&fx.conn), BIG_BYTES);
    nm_conn_advance(&fx.conn, nm_conn_front(&fx.conn)->mem_len + 1000);
    cr_expect_eq(nm_conn_count_queued_content(&fx.conn), BIG_BYTES - 1000);
}

Test(conn, advance_across_segments_in_one_call)
{
    feed_str(&fx.conn, GET("/big.txt") GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(fx.conn.requests, 2);
    cr_assert_eq(fx.conn.n_segs, 2);
    uint64_t total = queued_bytes(&fx.conn);
    struct nm_conn_seg *first = nm_conn_front(&fx.conn);
    uint64_t first_len = first->mem_len + first->len;
    nm_conn_advance(&fx.conn, first_len + 5);
    cr_assert_eq(fx.conn.n_segs, 1);
    cr_assert_eq(queued_bytes(&fx.conn), total - first_len - 5);
    nm_conn_advance(&fx.conn, total - first_len - 5);
    cr_assert_null(nm_conn_front(&fx.conn));
}

Test(conn, drain_moves_every_queued_byte_and_releases_the_queue)
{
    feed_str(&fx.conn, GET("/big.txt") GET("/hello.txt") GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    uint64_t total = queued_bytes(&fx.conn);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert_eq(fx.out.len, total);
    cr_assert_null(nm_conn_front(&fx.conn));
    cr_assert_eq(fx.conn.out.len, 0);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), 3);
    /* The file part comes out whole: the last byte of big.txt ends the output. */
    cr_assert_eq(fx.out.ptr[fx.out.len - 1], (char)('a' + (BIG_BYTES - 1) % 26));
}

Test(conn, drain_after_partial_advance_continues_where_sending_stopped)
{
    feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    struct nm_buf whole;
    nm_buf_init(&whole, 1u << 20);
    struct nm_conn other;
    nm_conn_init(&other, &fx.site, NULL);
    feed_str(&other, GET("/big.txt"));
    run(&other, &whole);
    nm_conn_cleanup(&other);

    size_t head = nm_conn_front(&fx.conn)->mem_len;
    nm_conn_advance(&fx.conn, head + 7);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert_eq(fx.out.len, whole.len - head - 7);
    cr_assert_eq(memcmp(fx.out.ptr, whole.ptr + head + 7, fx.out.len), 0);
    nm_buf_cleanup(&whole);
}

Test(conn, drain_reports_eio_when_the_file_shrank)
{
    feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    cr_assert_eq(truncate(path, 1000), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), -EIO);
}

Test(conn, cleanup_with_queued_file_parts_releases_them)
{
    feed_str(&fx.conn, GET("/big.txt") GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(fx.conn.n_segs, 2);
    nm_conn_cleanup(&fx.conn);
    cr_assert_null(nm_conn_front(&fx.conn));
    nm_conn_init(&fx.conn, &fx.site, NULL); /* teardown cleans up again */
}

/* ---- backpressure --------------------------------------------------------------------------- */

Test(conn, pipelined_requests_stop_when_the_queue_fills_and_resume_after_drain)
{
    enum { N = 100 };
    for (int i = 0; i < N; i++)
        feed_str(&fx.conn, GET("/big.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    unsigned first = fx.conn.requests;
    cr_assert_gt(first, 0);
    cr_assert_lt(first, N, "the queue takes a bounded number of responses");
    cr_assert_leq(fx.conn.n_segs, NM_CONN_MAX_SEGS);
    cr_assert_gt(fx.conn.in.len, 0, "the rest waits in the input buffer");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(fx.conn.requests, first, "no progress without draining");

    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), first);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_gt(fx.conn.requests, first, "draining lets the next requests in");
    run(&fx.conn, &fx.out);
    cr_assert_eq(fx.conn.requests, N);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), N);
    cr_assert_eq(fx.conn.in.len, 0);
    cr_assert_eq(fx.out.len % (fx.out.len / N), 0, "every response has the same length");
}

Test(conn, pipelined_small_files_stop_when_the_queue_fills_and_resume_after_drain)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t per = sizeof(req) - 1;
    unsigned last = ~0u;
    /* Keep the input full without draining until the connection takes no more requests. */
    while (fx.conn.requests != last) {
        last = fx.conn.requests;
        while (fx.conn.in.max_cap - fx.conn.in.len >= per)
            feed(&fx.conn, req, per);
        cr_assert_eq(nm_conn_process(&fx.conn), 0);
        cr_assert_leq(fx.conn.n_segs, NM_CONN_MAX_SEGS);
    }
    unsigned stalled = fx.conn.requests;
    cr_assert_gt(stalled, 0);
    cr_assert_gt(fx.conn.in.len, 0);
    cr_assert_eq(fx.conn.n_segs, stalled, "one segment a response: its head and its bytes");
    cr_assert_lt(fx.conn.out.len, 64u << 10, "only heads are queued in the output buffer");
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), stalled);
    cr_assert_leq(fx.conn.out.cap, 16u << 10, "a drained connection keeps no large output buffer");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_gt(fx.conn.requests, stalled);
}

/* ---- closing -------------------------------------------------------------------------------- */

Test(conn, connection_close_is_done_once_drained)
{
    feed_str(&fx.conn,
             "GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(fx.conn.state, NM_CONN_CLOSING);
    cr_assert_not(nm_conn_is_done(&fx.conn), "not while the response is queued");
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert(nm_conn_is_done(&fx.conn));
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), 1, "the request after close is not read");
    cr_assert(out_has("Connection: close\r\n"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_null(nm_conn_front(&fx.conn));
}

Test(conn, keep_alive_connection_is_never_done)
{
    feed_str(&fx.conn, GET("/hello.txt"));
    run(&fx.conn, &fx.out);
    cr_assert_not(nm_conn_is_done(&fx.conn));
    cr_assert_eq(fx.conn.state, NM_CONN_HEAD);
    cr_assert_eq(fx.conn.requests, 1);
}

Test(conn, http10_without_keep_alive_is_done_after_the_response)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.0\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_assert(nm_conn_is_done(&fx.conn));
    cr_assert(out_has("Connection: close\r\n"));
}

Test(conn, malformed_head_is_answered_400_and_closes)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_assert(nm_conn_is_done(&fx.conn));
    cr_assert_eq(memcmp(fx.out.ptr, "HTTP/1.1 400 Bad Request\r\n", 26), 0);
}

/* ---- the server's side: input room, gathering, stopping ------------------------------------- */

/* Feeds bytes as the server does: into the room nm_conn_reserve_input gives. */
static void receive(struct nm_conn *c, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        char *at;
        int room = nm_conn_reserve_input(c, 7, &at);
        cr_assert_gt(room, 0);
        size_t n = len < (size_t)room ? len : (size_t)room;
        memcpy(at, s, n);
        nm_conn_commit_input(c, n);
        s += n;
        len -= n;
    }
}

Test(conn, input_room_takes_a_request_as_a_socket_would)
{
    receive(&fx.conn, GET("/hello.txt"));
    cr_assert(nm_conn_is_reading_head(&fx.conn));
    run(&fx.conn, &fx.out);
    cr_assert_eq(nm_conn_count_requests(&fx.conn), 1);
    cr_assert(out_has("HTTP/1.1 200 OK\r\n"));
    cr_assert(out_has(hello));
    cr_assert_not(nm_conn_is_reading_head(&fx.conn));
}

Test(conn, a_full_input_buffer_gives_no_room)
{
    char *at;
    while (fx.conn.in.len < fx.conn.in.max_cap) {
        int room = nm_conn_reserve_input(&fx.conn, 1u << 20, &at);
        cr_assert_gt(room, 0);
        memset(at, 'x', (size_t)room);
        nm_conn_commit_input(&fx.conn, (size_t)room);
    }
    cr_assert_eq(nm_conn_reserve_input(&fx.conn, 1, &at), 0);
}

Test(conn, a_stopped_connection_takes_no_input_and_is_done_once_drained)
{
    feed_str(&fx.conn, GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    nm_conn_stop_reading(&fx.conn);
    char *at;
    cr_assert_eq(nm_conn_reserve_input(&fx.conn, 64, &at), 0);
    cr_assert_not(nm_conn_is_done(&fx.conn), "the queued response still goes");
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert(nm_conn_is_done(&fx.conn));
}

Test(conn, requests_in_before_the_input_ended_are_all_answered_then_done)
{
    /* More requests than the output queue holds answers for: the rest wait in the input. */
    for (int i = 0; i < 100; i++)
        feed_str(&fx.conn, GET("/hello.txt"));
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHo");
    nm_conn_end_input(&fx.conn);
    char *at;
    cr_assert_eq(nm_conn_reserve_input(&fx.conn, 64, &at), 0);
    for (int i = 0; i < 100 && !nm_conn_is_done(&fx.conn); i++) {
        cr_assert_eq(nm_conn_process(&fx.conn), 0);
        cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    }
    cr_assert(nm_conn_is_done(&fx.conn), "the unfinished head is never answered");
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), 100);
}

Test(conn, gather_stops_at_the_first_part_read_from_a_file)
{
    feed_str(&fx.conn, GET("/hello.txt") GET("/big.txt") GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    struct iovec iov[2 * NM_CONN_MAX_SEGS];
    bool file_follows;
    size_t n = nm_conn_gather(&fx.conn, iov, 2 * NM_CONN_MAX_SEGS, &file_follows);
    cr_assert(file_follows);
    cr_assert_eq(n, 3, "a head, its bytes held in memory, the next head");
    cr_assert_eq(iov[1].iov_len, sizeof(hello) - 1);
    cr_assert_eq(memcmp(iov[1].iov_base, hello, sizeof(hello) - 1), 0);
    cr_assert_eq(memcmp(iov[2].iov_base, "HTTP/1.1 200 OK\r\n", 17), 0);
    nm_conn_advance(&fx.conn, iov[0].iov_len + iov[1].iov_len + iov[2].iov_len + BIG_BYTES);
    n = nm_conn_gather(&fx.conn, iov, 2 * NM_CONN_MAX_SEGS, &file_follows);
    cr_assert_not(file_follows);
    cr_assert_eq(n, 2, "the last response is all in memory");
}

/* ---- mid-request ---------------------------------------------------------------------------- */

Test(conn, is_mid_request_follows_the_input)
{
    cr_assert_not(nm_conn_is_mid_request(&fx.conn), "an idle connection");
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHo");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert(nm_conn_is_mid_request(&fx.conn), "part of a head");
    cr_assert_null(nm_conn_front(&fx.conn), "no answer to half a head");
    feed_str(&fx.conn, "st: t\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_assert_not(nm_conn_is_mid_request(&fx.conn), "between requests");
}

Test(conn, is_mid_request_while_content_is_being_read)
{
    feed_str(&fx.conn, "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
    run(&fx.conn, &fx.out);
    cr_assert_eq(fx.conn.state, NM_CONN_CONTENT);
    cr_assert_eq(fx.conn.discard_left, 5);
    cr_assert(nm_conn_is_mid_request(&fx.conn), "five content bytes still to come");
    cr_assert_eq(fx.out.len, 0, "no answer before the content is in");
    feed_str(&fx.conn, "67890");
    run(&fx.conn, &fx.out);
    cr_assert_eq(fx.conn.state, NM_CONN_HEAD);
    cr_assert_not(nm_conn_is_mid_request(&fx.conn));
    cr_assert_eq(fx.conn.in.len, 0);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 405 "), 1);
}

Test(conn, is_mid_request_while_chunked_content_is_being_discarded)
{
    feed_str(&fx.conn, "POST /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n");
    run(&fx.conn, &fx.out);
    cr_assert_eq(fx.conn.state, NM_CONN_CHUNKED);
    cr_assert(nm_conn_is_mid_request(&fx.conn));
    feed_str(&fx.conn, "0\r\n\r\n" GET("/hello.txt"));
    run(&fx.conn, &fx.out);
    cr_assert_not(nm_conn_is_mid_request(&fx.conn));
    cr_assert_eq(count(&fx.out, "HTTP/1.1 405 "), 1);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), 1);
}

/* ---- nm_conn_fail --------------------------------------------------------------------------- */

Test(conn, fail_queues_an_error_that_closes_and_stops_reading)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHo");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_fail(&fx.conn, 408, "request head not received in time"), 0);
    cr_assert_eq(fx.conn.state, NM_CONN_CLOSING);
    cr_assert_not_null(nm_conn_front(&fx.conn));
    feed_str(&fx.conn, "st: t\r\n\r\n");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_assert(nm_conn_is_done(&fx.conn));
    static const char want[] = "HTTP/1.1 408 Request Timeout\r\n";
    cr_assert_eq(memcmp(fx.out.ptr, want, sizeof(want) - 1), 0);
    cr_assert(out_has("Connection: close\r\n"));
    cr_assert(out_has("\r\n\r\n408 Request Timeout: request head not received in time\n"));
    cr_assert_eq(count(&fx.out, "HTTP/1.1 "), 1, "the completed head is not answered");
}

Test(conn, fail_after_queued_responses_comes_after_them)
{
    feed_str(&fx.conn, GET("/hello.txt"));
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_fail(&fx.conn, 503, NULL), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    const char *second = memmem(fx.out.ptr, fx.out.len, "HTTP/1.1 503 ", 13);
    cr_assert_not_null(second);
    cr_assert_gt(second, fx.out.ptr);
    cr_assert_eq(memcmp(fx.out.ptr, "HTTP/1.1 200 OK\r\n", 17), 0);
    cr_assert(nm_conn_is_done(&fx.conn));
}

/* ---- 304 ------------------------------------------------------------------------------------ */

/* The ETag a plain GET of path gets, quoted. */
static void current_etag(const char *path, char *tag, size_t cap)
{
    struct nm_conn c;
    struct nm_buf out;
    nm_conn_init(&c, &fx.site, NULL);
    nm_buf_init(&out, 1u << 20);
    char req[256];
    snprintf(req, sizeof(req), "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    feed_str(&c, req);
    run(&c, &out);
    const char *p = memmem(out.ptr, out.len, "\r\nETag: ", 8);
    cr_assert_not_null(p);
    p += 8;
    const char *e = memchr(p, '\r', out.len - (size_t)(p - out.ptr));
    cr_assert_not_null(e);
    cr_assert_lt((size_t)(e - p), cap);
    memcpy(tag, p, (size_t)(e - p));
    tag[e - p] = '\0';
    nm_buf_cleanup(&out);
    nm_conn_cleanup(&c);
}

static void assert_bare_304(const char *resp, size_t len)
{
    cr_assert_eq(memcmp(resp, "HTTP/1.1 304 Not Modified\r\n", 27), 0);
    const char *end = memmem(resp, len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    size_t head = (size_t)(end + 4 - resp);
    cr_assert_eq(head, len, "nothing after the head of a 304");
    cr_assert_null(memmem(resp, head, "Content-Length", 14));
    cr_assert_null(memmem(resp, head, "Content-Type", 12));
    cr_assert_null(memmem(resp, head, "Content-Range", 13));
}

Test(conn, not_modified_carries_no_content_or_content_length)
{
    char tag[128], req[512];
    current_etag("/hello.txt", tag, sizeof(tag));
    snprintf(req, sizeof(req), "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n",
             tag);
    feed_str(&fx.conn, req);
    run(&fx.conn, &fx.out);
    assert_bare_304(fx.out.ptr, fx.out.len);
}

Test(conn, not_modified_for_a_file_part_queues_no_file)
{
    char tag[128], req[512];
    current_etag("/big.txt", tag, sizeof(tag));
    snprintf(req, sizeof(req),
             "GET /big.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\nRange: bytes=0-9\r\n\r\n",
             tag);
    feed_str(&fx.conn, req);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_null(nm_conn_front(&fx.conn)->file);
    run(&fx.conn, &fx.out);
    assert_bare_304(fx.out.ptr, fx.out.len);
}

Test(conn, not_modified_by_date_carries_no_content_or_content_length)
{
    feed_str(&fx.conn, "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n"
                       "If-Modified-Since: Tue, 14 Nov 2023 21:13:20 GMT\r\n\r\n");
    run(&fx.conn, &fx.out);
    assert_bare_304(fx.out.ptr, fx.out.len);
}

Test(conn, not_modified_in_a_pipeline_is_followed_directly_by_the_next_response)
{
    char tag[128], req[512];
    current_etag("/hello.txt", tag, sizeof(tag));
    snprintf(req, sizeof(req),
             "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n" GET("/hello.txt"),
             tag);
    feed_str(&fx.conn, req);
    run(&fx.conn, &fx.out);
    const char *end = memmem(fx.out.ptr, fx.out.len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    size_t first = (size_t)(end + 4 - fx.out.ptr);
    assert_bare_304(fx.out.ptr, first);
    cr_assert_eq(memcmp(fx.out.ptr + first, "HTTP/1.1 200 OK\r\n", 17), 0);
}

Test(conn, other_methods_never_get_304)
{
    feed_str(&fx.conn, "OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n"
                       "DELETE /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_assert_eq(count(&fx.out, " 304 "), 0);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 204 No Content\r\n"), 1);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 405 Method Not Allowed\r\n"), 1);
}

/* ---- splitting ------------------------------------------------------------------------------ */

static const char script[] =
    "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /big.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=5-9, 100-104\r\n\r\n"
    "HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Tue, 14 Nov 2023 21:13:20 "
    "GMT\r\n\r\n"
    "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
    "PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b\r\nhi\r\n0\r\nX: "
    "y\r\n\r\n"
    "GET /hello.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"
    "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
    "\r\nGET /big.txt HTTP/1.0\r\nRange: bytes=-3\r\n\r\n";

static void run_script_split(size_t at, struct nm_buf *out, bool *done)
{
    struct nm_conn c;
    nm_conn_init(&c, &fx.site, NULL);
    feed(&c, script, at);
    run(&c, out);
    feed(&c, script + at, sizeof(script) - 1 - at);
    run(&c, out);
    *done = nm_conn_is_done(&c);
    nm_conn_cleanup(&c);
}

Test(conn, a_request_split_at_every_byte_gives_the_same_output)
{
    struct nm_buf whole;
    nm_buf_init(&whole, 1u << 20);
    bool done;
    run_script_split(sizeof(script) - 1, &whole, &done);
    cr_assert(done, "the HTTP/1.0 request at the end closes");
    cr_assert_eq(count(&whole, "HTTP/1.1 "), 10, "nine responses and one 100 Continue");
    for (size_t at = 0; at < sizeof(script) - 1; at++) {
        struct nm_buf out;
        nm_buf_init(&out, 1u << 20);
        run_script_split(at, &out, &done);
        cr_assert(done);
        cr_assert_eq(out.len, whole.len, "split at %zu: %zu bytes, want %zu", at, out.len,
                     whole.len);
        cr_assert_eq(memcmp(out.ptr, whole.ptr, whole.len), 0, "split at %zu", at);
        nm_buf_cleanup(&out);
    }
    nm_buf_cleanup(&whole);
}

Test(conn, a_request_fed_one_byte_at_a_time_gives_the_same_output)
{
    struct nm_buf whole, out;
    nm_buf_init(&whole, 1u << 20);
    nm_buf_init(&out, 1u << 20);
    bool done;
    run_script_split(sizeof(script) - 1, &whole, &done);
    struct nm_conn c;
    nm_conn_init(&c, &fx.site, NULL);
    for (size_t i = 0; i < sizeof(script) - 1; i++) {
        feed(&c, script + i, 1);
        run(&c, &out);
    }
    cr_assert(nm_conn_is_done(&c));
    cr_assert_eq(out.len, whole.len);
    cr_assert_eq(memcmp(out.ptr, whole.ptr, whole.len), 0);
    nm_conn_cleanup(&c);
    nm_buf_cleanup(&out);
    nm_buf_cleanup(&whole);
}

/* ---- 100-continue ------------------------------------------------------------------------- */

Test(conn, continue_is_sent_at_once_and_the_final_response_after_the_content)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       "Content-Length: 3\r\n\r\n");
    run(&fx.conn, &fx.out);
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    cr_assert_eq(fx.out.len, sizeof(interim) - 1);
    cr_assert_eq(memcmp(fx.out.ptr, interim, sizeof(interim) - 1), 0);
    cr_assert_eq(fx.conn.state, NM_CONN_CONTENT);
    feed_str(&fx.conn, "abc");
    run(&fx.conn, &fx.out);
    static const char want[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
    cr_assert_eq(memcmp(fx.out.ptr, want, sizeof(want) - 1), 0);
    cr_assert_eq(fx.conn.state, NM_CONN_HEAD);
}

/* ---- request content ---------------------------------------------------------------------- */

/* RFC 9112 §7.1, §2.2: content is read and its framing checked before the answer, so a malformed
 * chunked body is a 400 that closes, with nothing before it (no 200 that the close would
 * contradict), for GET and HEAD alike. */
Test(conn, malformed_chunked_content_is_a_400_with_nothing_before_it)
{
    static const char *const bodies[] = {
        "zz\r\n",                              /* not a size */
        "10000000000000000\r\nx\r\n0\r\n\r\n", /* 2^64 */
        "5\r\nhelloEXTRA\r\n0\r\n\r\n",        /* more data than the size line says */
        "5\r\nhel",                            /* then the rest, malformed, in a later read */
    };
    static const char *const methods[] = {"GET", "HEAD"};
    for (size_t m = 0; m < 2; m++) {
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
            struct nm_conn c;
            struct nm_buf out;
            nm_conn_init(&c, &fx.site, NULL);
            nm_buf_init(&out, 1u << 20);
            char head[128];
            snprintf(head, sizeof(head),
                     "%s /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                     methods[m]);
            feed_str(&c, head);
            feed_str(&c, bodies[i]);
            run(&c, &out);
            if (i == 3) {
                cr_assert_eq(out.len, 0, "nothing before the content is in");
                feed_str(&c, "loXX\r\n0\r\n\r\n" GET("/hello.txt"));
                run(&c, &out);
            }
            static const char want[] = "HTTP/1.1 400 Bad Request\r\n";
            cr_assert_geq(out.len, sizeof(want) - 1, "%s body %zu", methods[m], i);
            cr_expect_eq(memcmp(out.ptr, want, sizeof(want) - 1), 0, "%s body %zu: %.*s",
                         methods[m], i, (int)out.len, out.ptr);
            cr_expect(memmem(out.ptr, out.len, "Connection: close\r\n", 19));
            cr_expect_eq(count(&out, "HTTP/1.1 "), 1, "one answer, and the next is not read");
            cr_expect_eq(m == 1, memmem(out.ptr, out.len, "\r\n\r\n400", 7) == NULL,
                         "no content for HEAD");
            cr_expect(nm_conn_is_done(&c));
            nm_buf_cleanup(&out);
            nm_conn_cleanup(&c);
        }
    }
}

Test(conn, the_answer_waits_for_every_content_byte_and_the_next_request_follows)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n");
    run(&fx.conn, &fx.out);
    cr_assert_eq(fx.out.len, 0, "the trailer section has not ended");
    cr_assert_eq(fx.conn.state, NM_CONN_CHUNKED);
    feed_str(&fx.conn, "T: v\r\n\r\n" GET("/hello.txt"));
    run(&fx.conn, &fx.out);
    cr_assert_eq(count(&fx.out, "HTTP/1.1 200 OK\r\n"), 2);
    cr_assert_eq(count(&fx.out, hello), 2);
    cr_assert_not(nm_conn_is_mid_request(&fx.conn));
}

/* The cap counts chunked bytes; a chunk that announces more than is left is refused as soon as its
 * size line is read, without waiting for (or reading) its data. */
Test(conn, a_chunk_over_the_content_cap_is_413_at_its_size_line)
{
    char line[64];
    snprintf(line, sizeof(line), "%llx\r\n", (unsigned long long)fx.cfg.max_discard_bytes + 1);
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    feed_str(&fx.conn, line);
    run(&fx.conn, &fx.out);
    static const char want[] = "HTTP/1.1 413 Content Too Large\r\n";
    cr_assert_geq(fx.out.len, sizeof(want) - 1);
    cr_expect_eq(memcmp(fx.out.ptr, want, sizeof(want) - 1), 0);
    cr_expect(out_has("Connection: close\r\n"));
    cr_expect(nm_conn_is_done(&fx.conn));
}

/* ---- long content types --------------------------------------------------------------------- */

Test(conn, multipart_parts_carry_a_long_content_type)
{
    /* mime.types allows types of up to 127 bytes; every part header repeats the type. */
    char type[128], line[256], path[128];
    memset(type, 'x', sizeof(type) - 1);
    memcpy(type, "application/", 12);
    type[sizeof(type) - 1] = '\0';
    int n = snprintf(line, sizeof(line), "%s long\n", type);
    write_site_file("mime.types", line, (size_t)n);
    char *data = calloc(1, BIG_BYTES);
    cr_assert_not_null(data);
    write_site_file("x.long", data, BIG_BYTES);
    free(data);
    snprintf(path, sizeof(path), "%s/mime.types", fx.dir);
    struct nm_mime_table *mime;
    cr_assert_eq(nm_mime_table_new(path, &mime), 0);
    struct nm_site site;
    cr_assert_eq(nm_site_init(&site, &fx.cfg, mime, fx.root_fd), 0);
    nm_site_set_time(&site, NOW);
    struct nm_conn c;
    nm_conn_init(&c, &site, NULL);
    feed_str(&c, "GET /x.long HTTP/1.1\r\nHost: t\r\n"
                 "Range: bytes=100000-100009, 199990-199999\r\n\r\n");
    cr_assert_eq(nm_conn_process(&c), 0);
    cr_assert_eq(nm_conn_drain(&c, &fx.out), 0);
    cr_assert_eq(memcmp(fx.out.ptr, "HTTP/1.1 206 Partial Content\r\n", 30), 0);
    snprintf(line, sizeof(line),
             "\r\nContent-Type: %s\r\nContent-Range: bytes 199990-199999/%u\r\n", type, BIG_BYTES);
    cr_assert(out_has(line));
    nm_conn_cleanup(&c);
    nm_site_cleanup(&site);
    nm_mime_table_free(mime);
    unlink(path);
    snprintf(path, sizeof(path), "%s/x.long", fx.dir);
    unlink(path);
}

/* ---- X-Content-Type-Options ---------------------------------------------------------------- */

/* The drained output of one request on a fresh connection over `site`. */
static void one_request(struct nm_site *site, const char *req, struct nm_buf *out)
{
    struct nm_conn c;
    nm_conn_init(&c, site, NULL);
    feed_str(&c, req);
    out->len = 0;
    run(&c, out);
    nm_conn_cleanup(&c);
}

static bool has(const struct nm_buf *b, const char *needle)
{
    return b->len && memmem(b->ptr, b->len, needle, strlen(needle)) != NULL;
}

/* nosniff goes with a Content-Type from the built-in table (200, 206, multipart 206) and with a
 * listing; not with a mime.types type, the octet-stream fallback, a 304 or an error text. */
Test(conn, nosniff_goes_with_built_in_types_and_listings_only)
{
    static const char nosniff[] = "X-Content-Type-Options: nosniff\r\n";
    static const char types[] = "text/x-custom cus\ntext/plain txt\n";
    write_site_file("mime.types", types, sizeof(types) - 1);
    write_site_file("a.cus", "custom\n", 7);
    write_site_file("a.css", "b{}\n", 4);
    write_site_file("noext", "bytes\n", 6);
    char path[128];
    snprintf(path, sizeof(path), "%s/mime.types", fx.dir);
    struct nm_mime_table *mime;
    cr_assert_eq(nm_mime_table_new(path, &mime), 0);
    struct nm_config cfg = fx.cfg;
    cfg.list_dirs = true;
    cfg.index_name = NULL;
    struct nm_site site;
    cr_assert_eq(nm_site_init(&site, &cfg, mime, fx.root_fd), 0);
    nm_site_set_time(&site, NOW);
    struct nm_buf out;
    nm_buf_init(&out, 1u << 20);

    static const struct {
        const char *req, *status;
        bool nosniff;
    } cases[] = {
        {GET("/a.css"), "HTTP/1.1 200 ", true},
        {"GET /a.css HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n", "HTTP/1.1 206 ", true},
        {"GET /a.css HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,2-2\r\n\r\n", "HTTP/1.1 206 ", true},
        {"HEAD /a.css HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 200 ", true},
        {GET("/"), "HTTP/1.1 200 ", true},
        {GET("/a.cus"), "HTTP/1.1 200 ", false},
        {GET("/hello.txt"), "HTTP/1.1 200 ", false}, /* txt: the file's line wins */
        {GET("/noext"), "HTTP/1.1 200 ", false},
        {GET("/missing.css"), "HTTP/1.1 404 ", false},
        {"GET /a.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n", "HTTP/1.1 304 ", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        one_request(&site, cases[i].req, &out);
        cr_assert_geq(out.len, strlen(cases[i].status));
        cr_expect_eq(memcmp(out.ptr, cases[i].status, strlen(cases[i].status)), 0, "case %zu", i);
        cr_expect_eq(has(&out, nosniff), cases[i].nosniff, "case %zu: %.*s", i, (int)out.len,
                     out.ptr);
        cr_expect_leq(count(&out, nosniff), 1, "case %zu", i);
    }
    /* Without a mime.types file, txt is the table's own type. */
    one_request(&fx.site, GET("/hello.txt"), &out);
    cr_expect(has(&out, nosniff));

    nm_buf_cleanup(&out);
    nm_site_cleanup(&site);
    nm_mime_table_free(mime);
    static const char *const made[] = {"mime.types", "a.cus", "a.css", "noext"};
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fx.dir, made[i]);
        unlink(path);
    }
}

/* The boundary= value of the drained response in fx.out, NUL-terminated into b. */
static void boundary_of(char *b, size_t cap)
{
    const char *p = memmem(fx.out.ptr, fx.out.len, "boundary=", 9);
    cr_assert_not_null(p, "no multipart response");
    p += 9;
    size_t n = 0;
    while (n + 1 < cap && p[n] != '\r')
        n++;
    memcpy(b, p, n);
    b[n] = '\0';
}

Test(conn, multipart_boundary_is_stable_per_request_and_unknown_without_the_key)
{
    static const char req[] = "GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,2-2\r\n\r\n";
    char first[64], again[64], rekeyed[64];
    feed_str(&fx.conn, req);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    boundary_of(first, sizeof(first));
    fx.out.len = 0;
    feed_str(&fx.conn, req);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    boundary_of(again, sizeof(again));
    cr_expect_str_eq(first, again, "the same request gets the same bytes");
    fx.site.boundary_key ^= 1;
    fx.out.len = 0;
    feed_str(&fx.conn, req);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    boundary_of(rekeyed, sizeof(rekeyed));
    cr_expect_str_neq(first, rekeyed, "another key, another boundary");
    cr_expect_geq(strlen(first), 32);
}

Test(conn, a_drained_connection_holds_no_request_and_no_response)
{
    cr_expect(nm_conn_is_drained(&fx.conn), "a new connection");
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hel");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_expect(!nm_conn_is_drained(&fx.conn), "a response queued, part of a request in");
    cr_assert_eq(nm_conn_drain(&fx.conn, &fx.out), 0);
    cr_expect(!nm_conn_is_drained(&fx.conn), "part of a request in");
    feed_str(&fx.conn, "lo.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_expect_eq(count(&fx.out, "HTTP/1.1 200 OK"), 2);
    cr_expect(nm_conn_is_drained(&fx.conn), "both answered and sent");
    feed_str(&fx.conn, "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
    cr_expect(!nm_conn_is_drained(&fx.conn), "content owed");
    feed_str(&fx.conn, "abcde");
    run(&fx.conn, &fx.out);
    cr_expect(nm_conn_is_drained(&fx.conn), "the content read and the 405 sent");
    nm_conn_end_input(&fx.conn);
    cr_expect(!nm_conn_is_drained(&fx.conn), "the peer's end: the connection closes");
}

Test(conn, a_reused_machine_starts_a_new_connection_with_its_buffers)
{
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_assert_eq(nm_conn_count_requests(&fx.conn), 1);
    cr_assert(nm_conn_is_drained(&fx.conn));
    char *in = fx.conn.in.ptr;
    struct nm_conn_peer peer;
    struct sockaddr_storage ss = {.ss_family = AF_INET6};
    ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr[0] = 0x20;
    ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr[1] = 0x01;
    ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr[2] = 0x0d;
    ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr[3] = 0xb8;
    ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr[15] = 0x01;
    nm_conn_peer_set(&peer, &ss);
    nm_conn_reuse(&fx.conn, &peer);
    cr_expect_eq(nm_conn_count_requests(&fx.conn), 0);
    cr_expect_eq(fx.conn.in.ptr, in, "the input buffer is kept");
    char text[INET6_ADDRSTRLEN];
    nm_conn_peer_format(&fx.conn.peer, text, sizeof(text));
    cr_expect_str_eq(text, "2001:db8::1");
    feed_str(&fx.conn, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    run(&fx.conn, &fx.out);
    cr_expect_eq(nm_conn_count_requests(&fx.conn), 1);
    cr_expect_eq(count(&fx.out, "HTTP/1.1 200 OK"), 2);
}

Test(conn, a_peer_is_kept_in_binary_and_text_that_is_no_address_logs_as_a_dash)
{
    char text[INET6_ADDRSTRLEN];
    nm_conn_peer_format(&fx.conn.peer, text, sizeof(text));
    cr_expect_str_eq(text, "192.0.2.1");
    struct nm_conn other;
    nm_conn_init(&other, &fx.site, "not an address");
    nm_conn_peer_format(&other.peer, text, sizeof(text));
    cr_expect_str_eq(text, "-");
    nm_conn_cleanup(&other);
    struct sockaddr_storage ss = {.ss_family = AF_UNIX};
    struct nm_conn_peer p;
    nm_conn_peer_set(&p, &ss);
    nm_conn_peer_format(&p, text, sizeof(text));
    cr_expect_str_eq(text, "-");
}
