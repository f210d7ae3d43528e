/* The event loop's send path (src/serve/send.c) under partial sends: responses are queued on a
 * connection (heads, bodies held in memory, file parts read from a temporary site, ranges), and
 * nm_send_some sends them into a socketpair with a small send buffer while the peer reads in
 * small pieces of sizes the input chooses. Property: the peer receives exactly the bytes that
 * nm_conn_drain gives for the same requests, and the queue ends empty.
 * Input: byte 0 picks the site (bit 7: ETags on, so file parts leave by the copy-then-check
 * path; off, by sendfile) and the number of requests (bits 0-2, plus one); then one byte per
 * request choosing it; the remaining bytes are the peer's read sizes, used in turn. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "check.h"
#include "serve/serve.h"

#define NOW 1700000000LL
#define OUT_CAP (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_site {
    struct nm_config cfg;
    struct nm_site site;
    int root_fd;
};

static char dir[64];
static struct nm_mime_table *mime;
static struct fuzz_site sites[2];
static struct nm_send_aborts aborts;
static bool ready;

static const char *const files[] = {"small.txt", "mid.txt", "big.bin"};
static const size_t sizes[] = {40, 3000, 8000};

static const char *const requests[] = {
    "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-99,5000-5299\r\n\r\n",
    "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-300\r\n\r\n",
    "GET /mid.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n",
    "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /mid.txt HTTP/1.1\r\nHost: t\r\n\r\n",
};

static void path_of(char *out, size_t cap, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    nm_fuzz_check(n > 0 && (size_t)n < cap);
}

static void remove_site(void)
{
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        path_of(path, sizeof(path), files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void lazy_init(void)
{
    if (ready)
        return;
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, sizeof(dir), "%s/notmod-fuzz-send-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    nm_fuzz_check(n > 0 && (size_t)n < sizeof(dir) && mkdtemp(dir) != NULL);
    atexit(remove_site);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[128];
        path_of(path, sizeof(path), files[i]);
        char *bytes = malloc(sizes[i]);
        nm_fuzz_check(bytes != NULL);
        for (size_t k = 0; k < sizes[i]; k++)
            bytes[k] = (char)('a' + (k * 7 + k / 26) % 26);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        nm_fuzz_check(fd >= 0 && write(fd, bytes, sizes[i]) == (ssize_t)sizes[i]);
        close(fd);
        free(bytes);
        struct timespec ts[2] = {{NOW - 86400, 0}, {NOW - 86400, 0}};
        nm_fuzz_check(utimensat(AT_FDCWD, path, ts, 0) == 0);
    }
    nm_fuzz_check(nm_mime_table_new(NULL, &mime) == 0);
    for (int v = 0; v < 2; v++) {
        struct fuzz_site *s = &sites[v];
        nm_config_init(&s->cfg);
        s->cfg.root = strdup(dir);
        s->cfg.index_name = strdup("index.html");
        nm_fuzz_check(s->cfg.root && s->cfg.index_name);
        s->cfg.small_file_bytes = 1024; /* mid.txt and big.bin are file parts */
        s->cfg.etag_mode = v ? NM_ETAG_METADATA : NM_ETAG_OFF;
        s->root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        nm_fuzz_check(s->root_fd >= 0);
        nm_fuzz_check(nm_site_init(&s->site, &s->cfg, mime, s->root_fd) == 0);
        nm_site_set_time(&s->site, NOW);
    }
    nm_send_aborts_init(&aborts);
    ready = true;
}

static void queue_requests(struct nm_conn *c, const uint8_t *kinds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *r = requests[kinds[i] % (sizeof(requests) / sizeof(requests[0]))];
        nm_fuzz_check(nm_buf_append(&c->in, r, strlen(r)) == 0);
    }
    nm_fuzz_check(nm_conn_process(c) == 0);
}

/* Everything the requests give, by nm_conn_drain. */
static void expected(struct nm_site *site, const uint8_t *kinds, size_t n, struct nm_buf *out)
{
    static struct nm_conn c;
    nm_conn_init(&c, site, NULL);
    queue_requests(&c, kinds, n);
    for (int i = 0; i < 64 && nm_conn_front(&c) != NULL; i++) {
        nm_fuzz_check(nm_conn_drain(&c, out) == 0);
        nm_fuzz_check(nm_conn_process(&c) == 0);
    }
    nm_fuzz_check(nm_conn_front(&c) == NULL);
    nm_conn_cleanup(&c);
}

/* Reads up to `piece` bytes the peer has; returns how many. */
static size_t peer_read(int fd, size_t piece, struct nm_buf *got)
{
    nm_fuzz_check(nm_buf_reserve(got, piece) == 0);
    ssize_t n = recv(fd, got->ptr + got->len, piece, MSG_DONTWAIT);
    if (n <= 0) {
        nm_fuzz_check(n == 0 || errno == EAGAIN || errno == EWOULDBLOCK);
        return 0;
    }
    got->len += (size_t)n;
    return (size_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    lazy_init();
    struct nm_site *site = &sites[data[0] >> 7].site;
    size_t n = (size_t)(data[0] & 7) + 1;
    if (size < 1 + n)
        return 0;
    const uint8_t *kinds = data + 1, *reads = data + 1 + n;
    size_t n_reads = size - 1 - n;

    struct nm_buf want, got;
    nm_buf_init(&want, OUT_CAP);
    nm_buf_init(&got, OUT_CAP);
    expected(site, kinds, n, &want);

    int sock[2];
    nm_fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sock) == 0);
    int small = 1; /* the kernel's minimum: sends are cut short often */
    setsockopt(sock[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sock[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));

    static struct nm_conn c;
    struct nm_send send;
    struct nm_send_tail tail = {.len = 0};
    struct nm_send_splice splice;
    nm_send_splice_init(&splice);
    nm_send_init(&send, &aborts);
    nm_conn_init(&c, site, NULL);
    queue_requests(&c, kinds, n);
    size_t r = 0;
    for (unsigned rounds = 0; nm_conn_front(&c) != NULL; rounds++) {
        nm_fuzz_check(rounds < 1000000);
        int rc = nm_send_some(&send, sock[0], NULL, &c, &tail, &splice, 0);
        nm_fuzz_check(rc >= 0); /* nothing changes under these files: no abort */
        size_t piece = n_reads ? ((size_t)reads[r++ % n_reads] + 1) * 4 : 256;
        size_t took = peer_read(sock[1], piece, &got);
        if (rc == 0 && took == 0) {
            /* Blocked and nothing to read would be a stall. */
            nm_fuzz_check(nm_conn_front(&c) == NULL || peer_read(sock[1], 65536, &got) > 0);
        }
        nm_fuzz_check(nm_conn_process(&c) == 0);
    }
    while (peer_read(sock[1], 65536, &got) > 0)
        ;
    nm_fuzz_check(got.len == want.len);
    nm_fuzz_check(memcmp(got.ptr, want.ptr, want.len) == 0);

    nm_send_splice_reset(&splice);
    nm_conn_cleanup(&c);
    nm_send_cleanup(&send);
    close(sock[0]);
    close(sock[1]);
    nm_buf_cleanup(&got);
    nm_buf_cleanup(&want);
    return 0;
}
