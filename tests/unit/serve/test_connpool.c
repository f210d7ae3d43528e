/* The connection-state pool's contract (connpool.h): states taken are drained and count from 0,
 * drained ones are reused with their buffers, spares follow the recent peak, a bounded pool
 * refuses rather than fails, and a state given back with work left drops its file references. */
#include "serve/connpool.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    char dir[64];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
    struct nm_connpool pool;
    struct nm_conn_peer peer;
} fx;

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-connpool-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/hello.txt", fx.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "hello\n", 6), 6);
    close(fd);
    nm_config_init(&fx.cfg);
    fx.cfg.root = strdup(fx.dir);
    fx.cfg.index_name = strdup("index.html");
    fx.cfg.small_file_bytes = 0; /* hello.txt is a file part, with a file reference */
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    nm_site_set_time(&fx.site, 1700000000LL);
    nm_connpool_init(&fx.pool, &fx.site, 8, 0);
    struct sockaddr_storage ss = {.ss_family = AF_INET};
    ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(0xC0000207); /* 192.0.2.7 */
    nm_conn_peer_set(&fx.peer, &ss);
}

static void teardown(void)
{
    nm_connpool_cleanup(&fx.pool);
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    char path[128];
    snprintf(path, sizeof(path), "%s/hello.txt", fx.dir);
    unlink(path);
    rmdir(fx.dir);
}

TestSuite(connpool, .init = setup, .fini = teardown);

static struct nm_connpool_state *take(void)
{
    struct nm_connpool_state *s = NULL;
    cr_assert_eq(nm_connpool_take(&fx.pool, &fx.peer, &s), 0);
    cr_assert_not_null(s);
    return s;
}

static void feed(struct nm_conn *c, const char *text)
{
    cr_assert_eq(nm_buf_append(&c->in, text, strlen(text)), 0);
}

Test(connpool, a_taken_state_is_drained_with_an_empty_tail_and_the_peer_given)
{
    struct nm_connpool_state *s = take();
    cr_expect(nm_conn_is_drained(&s->conn));
    cr_expect_eq(s->tail.len, 0);
    cr_expect_eq(nm_conn_count_requests(&s->conn), 0);
    char text[64];
    nm_conn_peer_format(&s->conn.peer, text, sizeof(text));
    cr_expect_str_eq(text, "192.0.2.7");
    cr_expect_eq(fx.pool.n_used, 1);
    nm_connpool_give(&fx.pool, s);
    cr_expect_eq(fx.pool.n_used, 0);
}

Test(connpool, a_drained_state_given_back_is_taken_again_with_its_buffers_and_counts_from_zero)
{
    struct nm_connpool_state *s = take();
    feed(&s->conn, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(nm_conn_process(&s->conn), 0);
    struct nm_buf out;
    nm_buf_init(&out, 1 << 20);
    cr_assert_eq(nm_conn_drain(&s->conn, &out), 0);
    cr_assert_eq(nm_conn_count_requests(&s->conn), 1);
    cr_assert(nm_conn_is_drained(&s->conn), "a keep-alive connection answered is drained");
    char *in_buffer = s->conn.in.ptr;
    cr_assert_not_null(in_buffer);
    nm_connpool_give(&fx.pool, s);
    cr_expect_eq(fx.pool.n_spare, 1);
    struct nm_connpool_state *again = take();
    cr_expect_eq(again, s, "the spare is reused");
    cr_expect_eq(again->conn.in.ptr, in_buffer, "with its input buffer");
    cr_expect_eq(nm_conn_count_requests(&again->conn), 0);
    nm_connpool_give(&fx.pool, again);
    nm_buf_cleanup(&out);
}

Test(connpool, a_bounded_pool_refuses_at_its_bound_and_a_state_given_back_makes_room)
{
    nm_connpool_cleanup(&fx.pool);
    nm_connpool_init(&fx.pool, &fx.site, 8, 2);
    struct nm_connpool_state *a = take(), *b = take(), *c = (void *)1;
    cr_expect_eq(nm_connpool_take(&fx.pool, &fx.peer, &c), -ENOMEM);
    cr_expect_eq(c, (void *)1, "nothing is written on failure");
    cr_expect_eq(fx.pool.n_used, 2);
    nm_connpool_give(&fx.pool, a);
    c = take();
    nm_connpool_give(&fx.pool, b);
    nm_connpool_give(&fx.pool, c);
}

Test(connpool, spares_follow_the_recent_peak_and_a_quiet_period_frees_them)
{
    struct nm_connpool_state *s[5];
    for (int i = 0; i < 5; i++)
        s[i] = take();
    for (int i = 0; i < 5; i++)
        nm_connpool_give(&fx.pool, s[i]);
    cr_expect_eq(fx.pool.n_spare, 5, "up to the peak of 5");
    nm_connpool_trim(&fx.pool);
    cr_expect_eq(fx.pool.n_spare, 5, "the burst was since the last trim");
    struct nm_connpool_state *one = take();
    nm_connpool_give(&fx.pool, one);
    nm_connpool_trim(&fx.pool);
    cr_expect_eq(fx.pool.n_spare, 1, "one at a time since: one spare is kept");
    nm_connpool_trim(&fx.pool);
    cr_expect_eq(fx.pool.n_spare, 0, "nothing since: nothing kept");
}

Test(connpool, spares_stay_within_max_spare_whatever_the_peak)
{
    struct nm_connpool_state *s[12];
    for (int i = 0; i < 12; i++)
        s[i] = take();
    for (int i = 0; i < 12; i++)
        nm_connpool_give(&fx.pool, s[i]);
    cr_expect_eq(fx.pool.n_spare, 8);
}

Test(connpool, a_state_given_back_with_a_response_queued_drops_its_file_reference)
{
    struct nm_connpool_state *s = take();
    feed(&s->conn, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hel");
    cr_assert_eq(nm_conn_process(&s->conn), 0);
    struct nm_conn_seg *g = nm_conn_front(&s->conn);
    cr_assert_not_null(g);
    struct nm_file *f = NULL;
    for (unsigned i = 0; i < s->conn.n_segs && !f; i++)
        f = s->conn.segs[(s->conn.seg_head + i) % NM_CONN_MAX_SEGS].file;
    cr_assert_not_null(f, "the body is a file part");
    nm_file_acquire(f); /* the test's own, so f outlives the response's */
    unsigned refs = f->refs;
    cr_assert(!nm_conn_is_drained(&s->conn), "a partial request and a response are held");
    nm_connpool_give(&fx.pool, s);
    cr_expect_eq(f->refs, refs - 1);
    nm_file_release(f);
    struct nm_connpool_state *again = take();
    cr_expect(nm_conn_is_drained(&again->conn));
    cr_expect_eq(again->conn.in.len, 0);
    nm_connpool_give(&fx.pool, again);
}
