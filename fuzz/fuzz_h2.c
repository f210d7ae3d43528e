/* Fuzzes an HTTP/2 connection over a small static site: the connection preface, then arbitrary
 * bytes, fed in reads with the output drained after each. Properties: nm_h2_receive and
 * nm_h2_output return what h2.h says; no output is larger than the machine's bound; the output is
 * whole frames (RFC 9113 §4.1), the first a SETTINGS, each on a stream its type allows (§6) and no
 * larger than the default maximum frame size unless the peer raised it; a connection the peer
 * broke ends with a GOAWAY and is done once drained; every access-log line says HTTP/2.0 and a
 * status in 100..599.
 * Input: the first byte picks the read size (bits 0-5, 0 for whole), then the bytes after the
 * preface. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "serve/serve.h"

#define NOW 1700000000LL
#define OUT_CAP (64u << 20)
#define OUTPUT_BOUND (128u << 10)
#define FRAME_DEFAULT_MAX 16384

static char dir[64];
static struct nm_mime_table *mime;
static struct nm_config cfg;
static struct nm_site site;
static int root_fd = -1;
static bool ready;

static const char *const files[] = {"hello.txt", "big.txt", "docs/index.html", ".secret"};

static void fail(int line)
{
    fprintf(stderr, "fuzz_h2.c:%d: property violated\n", line);
    abort();
}

#define check(ok) ((ok) ? (void)0 : fail(__LINE__))

static void path_of(char *out, size_t cap, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    check(n > 0 && (size_t)n < cap);
}

static void write_site_file(const char *rel, size_t len)
{
    char path[256];
    path_of(path, sizeof(path), rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check(fd >= 0);
    for (size_t i = 0; i < len; i++) {
        char c = (char)('a' + i % 26);
        check(write(fd, &c, 1) == 1);
    }
    close(fd);
    struct timespec ts[2] = {{NOW - 86400, 0}, {NOW - 86400, 0}};
    check(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

static void remove_site(void)
{
    char path[256];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        path_of(path, sizeof(path), files[i]);
        unlink(path);
    }
    path_of(path, sizeof(path), "docs");
    rmdir(path);
    rmdir(dir);
}

static void lazy_init(void)
{
    if (ready)
        return;
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, sizeof(dir), "%s/notmod-fuzz-h2-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    check(n > 0 && (size_t)n < sizeof(dir) && mkdtemp(dir) != NULL);
    char path[256];
    path_of(path, sizeof(path), "docs");
    check(mkdir(path, 0755) == 0);
    static const size_t sizes[] = {14, 40000, 60, 7};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        write_site_file(files[i], sizes[i]);
    atexit(remove_site);
    check(nm_mime_table_new(NULL, &mime) == 0);
    nm_config_init(&cfg);
    cfg.root = strdup(dir);
    cfg.index_name = strdup("index.html");
    cfg.access_log = strdup("-");
    check(cfg.root && cfg.index_name && cfg.access_log);
    cfg.small_file_bytes = 1024; /* big.txt goes out read from its file */
    cfg.list_dirs = true;
    cfg.max_head_bytes = 2048;
    cfg.max_discard_bytes = 4096;
    root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    check(root_fd >= 0);
    check(nm_site_init(&site, &cfg, mime, root_fd) == 0);
    check(site.log_enabled);
    nm_site_set_time(&site, NOW);
    ready = true;
}

/* Whether the input raises SETTINGS_MAX_FRAME_SIZE somewhere (then larger frames are allowed). */
static bool may_raise_frame_size(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == 0 && data[i + 1] == 5)
            return true;
    return false;
}

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Walks the whole output as frames. Returns whether the last frame is a GOAWAY. */
static bool check_frames(const struct nm_buf *out, bool big_frames)
{
    check(out->len > 0); /* the server's SETTINGS at least */
    const uint8_t *p = (const uint8_t *)out->ptr, *end = p + out->len;
    bool first = true, goaway = false;
    while (p < end) {
        check(end - p >= 9);
        uint32_t len = be24(p);
        uint8_t type = p[3];
        uint32_t id =
            (uint32_t)(p[5] & 0x7f) << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8];
        check((size_t)(end - p - 9) >= len);
        check(big_frames || len <= FRAME_DEFAULT_MAX);
        if (first)
            check(type == 0x4 && id == 0); /* §3.4: the server's preface is a SETTINGS frame */
        first = false;
        switch (type) {
        case 0x0: /* DATA */
        case 0x1: /* HEADERS */
        case 0x3: /* RST_STREAM */
        case 0x9: /* CONTINUATION */
            check(id != 0 && id % 2 == 1);
            break;
        case 0x4: /* SETTINGS */
        case 0x6: /* PING */
        case 0x7: /* GOAWAY */
            check(id == 0);
            break;
        case 0x8: /* WINDOW_UPDATE */
            check(len == 4);
            break;
        default:
            check(false); /* PRIORITY, PUSH_PROMISE or unknown types: the server sends none */
        }
        if (type == 0x3)
            check(len == 4);
        goaway = type == 0x7;
        p += 9 + len;
    }
    return goaway;
}

static void check_log(const struct nm_buf *log)
{
    if (!log->len)
        return;
    const char *p = log->ptr, *end = p + log->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        check(nl != NULL);
        const char *v = memmem(p, (size_t)(nl - p), " HTTP/2.0\" ", 11);
        check(v != NULL);
        int status = atoi(v + 11);
        check(status >= 100 && status <= 599);
        p = nl + 1;
    }
}

static void drain(struct nm_h2 *h, struct nm_buf *out)
{
    for (int i = 0; i < 100000; i++) {
        const char *data;
        size_t len;
        check(nm_h2_output(h, &data, &len) == 0);
        check(len <= OUTPUT_BOUND);
        if (!len)
            return;
        check(nm_buf_append(out, data, len) == 0);
        nm_h2_advance(h, len);
    }
    check(false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    lazy_init();
    size_t step = data[0] & 0x3f;
    data++;
    size--;
    struct nm_h2 *h;
    check(nm_h2_new(&site, "192.0.2.7", &h) == 0);
    struct nm_buf out;
    nm_buf_init(&out, OUT_CAP);
    int rc = nm_h2_receive(h, NM_H2_PREFACE, NM_H2_PREFACE_LEN);
    check(rc == 0);
    drain(h, &out);
    for (size_t off = 0; off < size && rc == 0;) {
        size_t take = step && size - off > step ? step : size - off;
        rc = nm_h2_receive(h, (const char *)data + off, take);
        check(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
        off += take;
        drain(h, &out);
    }
    bool goaway = check_frames(&out, may_raise_frame_size(data, size));
    if (rc == -EPROTO) {
        check(goaway);
        check(nm_h2_is_done(h));
    }
    check_log(&site.log);
    nm_buf_consume(&site.log, site.log.len);
    nm_h2_free(h);
    nm_buf_cleanup(&out);
    return 0;
}
