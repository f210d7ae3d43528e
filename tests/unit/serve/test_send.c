/* The send path's contract (send.h): queued output reaches the socket byte for byte, heads of
 * pipelined responses leave together, and a file that changes before its last bytes leave aborts
 * the response short of its Content-Length; a send made elsewhere (a batch) gathers the memory
 * front and its result advances the queue as the sendmsg's would. Over a socketpair. */
#include "serve/send.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000LL
#define BIG_BYTES 300000u

static struct {
    char dir[64];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
    struct nm_conn conn;
    struct nm_send_aborts aborts;
    struct nm_send send;
    struct nm_send_tail tail;
    struct nm_send_splice splice;
    int sock[2];
    struct nm_buf got;
} fx;

static void write_big(char first)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    char *big = malloc(BIG_BYTES);
    cr_assert_not_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (char)('a' + i % 26);
    big[0] = first;
    cr_assert_eq(pwrite(fd, big, BIG_BYTES, 0), (ssize_t)BIG_BYTES);
    free(big);
    close(fd);
}

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-send-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    write_big('a');
    char path[96];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    struct timespec ts[2] = {{NOW - 3600, 0}, {NOW - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
    nm_config_init(&fx.cfg);
    fx.cfg.root = strdup(fx.dir);
    /* big.txt was just written (racy): below the threshold it would be held in memory whole. */
    fx.cfg.hash_threshold_bytes = BIG_BYTES - 1;
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    nm_site_set_time(&fx.site, NOW);
    nm_conn_init(&fx.conn, &fx.site, NULL);
    nm_send_aborts_init(&fx.aborts);
    nm_send_init(&fx.send, &fx.aborts);
    fx.tail.len = 0;
    nm_send_splice_init(&fx.splice);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fx.sock), 0);
    nm_buf_init(&fx.got, 64u << 20);
}

static void teardown(void)
{
    nm_send_splice_reset(&fx.splice);
    nm_buf_cleanup(&fx.got);
    close(fx.sock[0]);
    close(fx.sock[1]);
    nm_send_cleanup(&fx.send);
    nm_send_aborts_cleanup(&fx.aborts);
    nm_conn_cleanup(&fx.conn);
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    char path[96];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    unlink(path);
    rmdir(fx.dir);
}

TestSuite(send, .init = setup, .fini = teardown);

static void request(const char *req)
{
    cr_assert_eq(nm_buf_append(&fx.conn.in, req, strlen(req)), 0);
    cr_assert_eq(nm_conn_process(&fx.conn), 0);
}

/* Reads what the peer has. */
static void receive(void)
{
    for (;;) {
        cr_assert_eq(nm_buf_reserve(&fx.got, 65536), 0);
        ssize_t n = recv(fx.sock[1], fx.got.ptr + fx.got.len, 65536, 0);
        if (n <= 0)
            return;
        fx.got.len += (size_t)n;
    }
}

/* Sends until the queue is empty or the sender gives up; returns the last result. */
static int send_all(void)
{
    for (int i = 0; i < 100000; i++) {
        int rc = nm_send_some(&fx.send, fx.sock[0], NULL, &fx.conn, &fx.tail, &fx.splice, 0);
        receive();
        if (rc < 0 || nm_conn_front(&fx.conn) == NULL)
            return rc;
    }
    cr_assert_fail("sending never ended");
    return -1;
}

static bool got_has(const char *needle)
{
    return memmem(fx.got.ptr, fx.got.len, needle, strlen(needle)) != NULL;
}

Test(send, a_tagged_file_arrives_whole_after_its_head)
{
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_geq(send_all(), 0);
    cr_assert_null(nm_conn_front(&fx.conn));
    const char *end = memmem(fx.got.ptr, fx.got.len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    size_t head = (size_t)(end + 4 - fx.got.ptr);
    cr_assert_eq(fx.got.len - head, BIG_BYTES);
    cr_assert_eq(fx.got.ptr[head], 'a');
    cr_assert_eq(fx.got.ptr[fx.got.len - 1], (char)('a' + (BIG_BYTES - 1) % 26));
}

Test(send, an_untagged_file_arrives_whole_by_sendfile)
{
    fx.cfg.etag_mode = NM_ETAG_OFF;
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_geq(send_all(), 0);
    cr_assert(got_has("Content-Length: 300000\r\n"));
    cr_assert_null(memmem(fx.got.ptr, fx.got.len, "ETag", 4));
    const char *end = memmem(fx.got.ptr, fx.got.len, "\r\n\r\n", 4);
    cr_assert_eq(fx.got.len - (size_t)(end + 4 - fx.got.ptr), BIG_BYTES);
}

Test(send, pipelined_heads_leave_in_one_call)
{
    request("HEAD /big.txt HTTP/1.1\r\nHost: t\r\n\r\n"
            "HEAD /big.txt HTTP/1.1\r\nHost: t\r\n\r\n"
            "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(nm_send_some(&fx.send, fx.sock[0], NULL, &fx.conn, &fx.tail, &fx.splice, 0), 1);
    cr_assert_null(nm_conn_front(&fx.conn), "everything left at once");
    receive();
    size_t n = 0;
    for (const char *p = fx.got.ptr;
         (p = memmem(p, fx.got.len - (size_t)(p - fx.got.ptr), "HTTP/1.1 ", 9)) != NULL; p += 9)
        n++;
    cr_assert_eq(n, 3);
}

Test(send, a_file_changed_before_its_end_leaves_aborts_the_response)
{
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    write_big('Z'); /* same size, new mtime and ctime: another version */
    cr_assert_eq(send_all(), -1);
    const char *end = memmem(fx.got.ptr, fx.got.len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    cr_assert_lt(fx.got.len - (size_t)(end + 4 - fx.got.ptr), BIG_BYTES,
                 "short of Content-Length: the client caches nothing");
    cr_assert_not_null(nm_conn_front(&fx.conn), "the rest stays queued until the drop");
}

Test(send, nothing_queued_is_nothing_sent)
{
    cr_assert_eq(nm_send_some(&fx.send, fx.sock[0], NULL, &fx.conn, &fx.tail, &fx.splice, 0), 0);
}

/* The lease signals blocked, as in a worker: the file table then takes read leases. */
static void block_lease_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, nm_filecache_lease_signal());
    sigaddset(&set, SIGIO);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

static int open_big(int flags)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    return open(path, flags | O_CLOEXEC);
}

Test(send, a_leased_file_goes_whole_by_sendfile_and_is_followed_by_the_connection)
{
    block_lease_signals();
    fx.cfg.sendfile = NM_SENDFILE_ALL; /* the socketpair's peer is on this host */
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    struct nm_file *f = nm_conn_front(&fx.conn)->file;
    cr_assert(f->leased);
    cr_assert_geq(send_all(), 0);
    cr_assert_eq(fx.splice.file, f, "the connection follows the file it spliced");
    const char *end = memmem(fx.got.ptr, fx.got.len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    cr_assert_eq(fx.got.len - (size_t)(end + 4 - fx.got.ptr), BIG_BYTES);
}

Test(send, a_file_refused_a_lease_is_copied_and_checked)
{
    block_lease_signals();
    int wfd = open_big(O_WRONLY);
    cr_assert_geq(wfd, 0);
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_not(nm_conn_front(&fx.conn)->file->leased, "a writer has it open");
    close(wfd);
    write_big('Z');
    cr_assert_eq(send_all(), -1, "the copy's final check sees the change");
    cr_assert_null(fx.splice.file);
}

Test(send, a_leased_file_is_copied_to_a_peer_on_this_host_unless_sendfile_is_all)
{
    block_lease_signals();
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(nm_conn_front(&fx.conn)->file->leased);
    cr_assert_geq(send_all(), 0);
    cr_assert_null(fx.splice.file, "a reader here could read the pages after the lease went");
    cr_assert_eq(fx.splice.peer_here, 1);
}

Test(send, a_broken_lease_exposes_the_connection_sending_the_file)
{
    block_lease_signals();
    fx.cfg.sendfile = NM_SENDFILE_ALL;
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    struct nm_file *f = nm_conn_front(&fx.conn)->file;
    cr_assert(f->leased);
    int other = open(fx.dir, O_PATH | O_CLOEXEC); /* a descriptor that is no leased file */
    for (int i = 0; i < 1000 &&
                    nm_send_some(&fx.send, fx.sock[0], NULL, &fx.conn, &fx.tail, &fx.splice, 0) > 0;
         i++)
        ;
    cr_assert_not_null(nm_conn_front(&fx.conn), "the peer reads nothing: the part waits");
    cr_assert_eq(fx.splice.file, f);
    cr_assert_not(nm_send_is_exposed(&fx.send, fx.sock[0], &fx.conn, &fx.splice, other, 0));
    cr_assert_lt(open_big(O_WRONLY | O_NONBLOCK), 0, "the writer must wait for the lease");
    cr_assert_eq(errno, EWOULDBLOCK);
    cr_assert(nm_send_is_exposed(&fx.send, fx.sock[0], &fx.conn, &fx.splice, f->fd, 0));
    cr_assert(nm_send_is_exposed(&fx.send, fx.sock[0], &fx.conn, &fx.splice, -1, 0),
              "a lost notice finds it too");
    nm_send_unlease(&fx.conn, &fx.splice, f->fd);
    cr_assert_not(f->leased);
    int wfd = open_big(O_WRONLY | O_NONBLOCK);
    cr_assert_geq(wfd, 0, "once let go, the writer opens");
    close(wfd);
    close(other);
}

Test(send, a_send_made_elsewhere_gathers_the_memory_front_and_its_result_advances_the_queue)
{
    request("GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert(nm_send_is_memory_next(&fx.conn), "the head is held in memory");
    struct iovec iov[8];
    int flags = 0;
    size_t n = nm_send_gather(&fx.conn, iov, 8, &flags);
    cr_assert_geq(n, 1);
    cr_assert(flags & MSG_NOSIGNAL);
    cr_assert(flags & MSG_MORE, "a file part follows the head");
    size_t head = 0;
    for (size_t i = 0; i < n; i++)
        head += iov[i].iov_len;
    /* A full socket changes nothing; part of the head sent advances by that much. */
    cr_assert_eq(nm_send_apply(&fx.conn, -EAGAIN), 0);
    cr_assert_eq(nm_send_apply(&fx.conn, 10), 1);
    cr_assert(nm_send_is_memory_next(&fx.conn));
    size_t left = 0, m = nm_send_gather(&fx.conn, iov, 8, &flags);
    for (size_t i = 0; i < m; i++)
        left += iov[i].iov_len;
    cr_assert_eq(left, head - 10, "the rest of the head is what is gathered next");
    cr_assert_eq(nm_send_apply(&fx.conn, (int)(head - 10)), 1);
    cr_assert_not(nm_send_is_memory_next(&fx.conn), "the file part is the front now");
    cr_assert_not_null(nm_conn_front(&fx.conn));
    cr_assert_eq(nm_send_apply(&fx.conn, -EPIPE), -1);
}
