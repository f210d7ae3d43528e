/* Fuzzes a whole connection over a small static site: request bytes in, response bytes out. Every
 * response is framed (status line, head, Content-Length bytes of body), a 304 has no content
 * fields and only answers GET or HEAD, each response matches its access-log line, a connection
 * that closes says so in its last response, and feeding the input in pieces gives the responses
 * that feeding it whole gives.
 * Input: the first byte picks the site (bit 7) and the read size (bits 0-5, 0 for whole), then the
 * bytes the client sends. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "serve/serve.h"

#define NOW 1700000000LL
#define OUT_CAP (256u << 20)

struct fuzz_site {
    struct nm_config cfg;
    struct nm_site site;
    int root_fd;
};

static char dir[64];
static struct nm_mime_table *mime;
static struct fuzz_site sites[2];
static bool ready;

static const char *const files[] = {
    "hello.txt",       "big.txt",     "empty.txt",     "style.css",
    "docs/index.html", "files/a.txt", "files/.hidden", ".secret",
};

static void fail(int line)
{
    fprintf(stderr, "fuzz_conn.c:%d: property violated\n", line);
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
    char *data = malloc(len + 1);
    check(data != NULL);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + (i * 7 + i / 26) % 26);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check(fd >= 0);
    check(write(fd, data, len) == (ssize_t)len);
    close(fd);
    free(data);
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
    path_of(path, sizeof(path), "files");
    rmdir(path);
    rmdir(dir);
}

static void init_site(struct fuzz_site *s, int variant)
{
    struct nm_config *cfg = &s->cfg;
    nm_config_init(cfg);
    cfg->root = strdup(dir);
    cfg->index_name = strdup("index.html");
    cfg->access_log = strdup("-");
    check(cfg->root && cfg->index_name && cfg->access_log);
    cfg->small_file_bytes = 1024; /* big.txt goes out as a file part */
    if (variant == 0) {
        cfg->list_dirs = true;
        cfg->max_age = 60;
        cfg->expires = true;
    } else {
        cfg->etag_mode = NM_ETAG_METADATA;
        cfg->ims_mode = NM_IMS_EXACT;
        cfg->allow_dotfiles = true;
        cfg->max_target_bytes = 64;
        cfg->max_head_bytes = 512;
        cfg->max_discard_bytes = 64;
    }
    s->root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    check(s->root_fd >= 0);
    check(nm_site_init(&s->site, cfg, mime, s->root_fd) == 0);
    check(s->site.log_enabled);
    nm_site_set_time(&s->site, NOW);
}

static void lazy_init(void)
{
    if (ready)
        return;
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, sizeof(dir), "%s/notmod-fuzz-conn-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    check(n > 0 && (size_t)n < sizeof(dir) && mkdtemp(dir) != NULL);
    char path[256];
    path_of(path, sizeof(path), "docs");
    check(mkdir(path, 0755) == 0);
    path_of(path, sizeof(path), "files");
    check(mkdir(path, 0755) == 0);
    static const size_t sizes[] = {14, 4000, 0, 40, 60, 11, 5, 7};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        write_site_file(files[i], sizes[i]);
    atexit(remove_site);
    check(nm_mime_table_new(NULL, &mime) == 0);
    init_site(&sites[0], 0);
    init_site(&sites[1], 1);
    ready = true;
}

/* Feeds the input as reads of `step` bytes (0: as much as the input buffer takes), processing and
 * draining after each, until nothing moves. Access-log lines go to `log`. */
static void run(struct nm_site *site, const uint8_t *data, size_t size, size_t step,
                struct nm_buf *out, struct nm_buf *log, bool *done)
{
    struct nm_conn c;
    nm_conn_init(&c, site, "192.0.2.7");
    size_t off = 0;
    for (size_t rounds = 0;; rounds++) {
        check(rounds <= size + 100000);
        /* As the server reads: into the room the connection gives, none once it is closing. */
        size_t take = size - off;
        if (step && take > step)
            take = step;
        char *at = NULL;
        int room = take ? nm_conn_reserve_input(&c, take, &at) : 0;
        check(room >= 0);
        if (take > (size_t)room)
            take = (size_t)room;
        if (take) {
            memcpy(at, data + off, take);
            nm_conn_commit_input(&c, take);
            off += take;
        }
        int rc = nm_conn_process(&c);
        /* conn.h: 0 or -ENOMEM, nothing else. */
        check(rc == 0 || rc == -ENOMEM);
        size_t before = out->len;
        check(nm_conn_drain(&c, out) == 0);
        check(nm_buf_append(log, site->log.ptr, site->log.len) == 0);
        nm_buf_consume(&site->log, site->log.len);
        if (rc < 0 || nm_conn_is_done(&c))
            break;
        if (take == 0 && out->len == before)
            break;
    }
    *done = nm_conn_is_done(&c);
    nm_conn_cleanup(&c);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The value of a header field in head[0..len) (which starts with the status line), or NULL. */
static const char *find_field(const char *head, size_t len, const char *name, size_t *count)
{
    const char *found = NULL;
    size_t k = strlen(name);
    *count = 0;
    for (const char *p = head; p < head + len;) {
        const char *eol = memmem(p, (size_t)(head + len - p), "\r\n", 2);
        check(eol != NULL);
        if ((size_t)(eol - p) > k && strncasecmp(p, name, k) == 0 && p[k] == ':') {
            if (!found)
                found = p + k + 1;
            ++*count;
        }
        p = eol + 2;
    }
    return found;
}

/* The next access-log line (Combined format: peer - - [date] "METHOD target HTTP/1.x" status ...):
 * its method (escaped as logged), its status, and whether the request is logged as "-" (a head
 * that was not understood). */
static struct nm_slice next_log_line(const char **lp, const char *lend, int *status, bool *unparsed)
{
    const char *nl = memchr(*lp, '\n', (size_t)(lend - *lp));
    check(nl != NULL);
    const char *q = memchr(*lp, '"', (size_t)(nl - *lp));
    check(q != NULL);
    const char *m = q + 1, *close = memchr(m, '"', (size_t)(nl - m));
    check(close != NULL);
    size_t n = 0;
    while (m + n < close && m[n] != ' ')
        n++;
    check(nl - close > 5 && close[1] == ' ' && is_digit(close[2]) && is_digit(close[3]) &&
          is_digit(close[4]) && close[5] == ' ');
    *status = (close[2] - '0') * 100 + (close[3] - '0') * 10 + (close[4] - '0');
    *unparsed = close - m == 1 && m[0] == '-';
    *lp = nl + 1;
    return nm_slice_make(m, n);
}

/* One response of an output: where it lies, and whether it answers a head that could not be
 * parsed (its access-log line has "-" for the request). */
struct response {
    size_t off, len;
    int status;
    bool unparsed;
};

struct responses {
    struct response *v;
    size_t n, cap;
};

static void add_response(struct responses *rs, struct response r)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->v = realloc(rs->v, rs->cap * sizeof(*rs->v));
        check(rs->v != NULL);
    }
    rs->v[rs->n++] = r;
}

/* Splits the output into responses, checking each one's framing against its log line; `done`
 * says whether the connection closed. */
static void check_output(const struct nm_buf *out, const struct nm_buf *log, bool done,
                         struct responses *rs)
{
    static const char none[1];
    const char *start = out->len ? out->ptr : none, *p = start, *end = p + out->len;
    const char *lp = log->len ? log->ptr : none, *lend = lp + log->len;
    while (p < end) {
        check(end - p >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 && is_digit(p[9]) &&
              is_digit(p[10]) && is_digit(p[11]) && p[12] == ' ');
        int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        const char *eoh = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        check(eoh != NULL);
        size_t head = (size_t)(eoh + 4 - p);
        struct response r = {.off = (size_t)(p - start), .status = status};
        if (status == 100) {
            check(head == sizeof("HTTP/1.1 100 Continue\r\n\r\n") - 1);
            r.len = head;
            add_response(rs, r);
            p += head;
            continue;
        }
        check(status >= 200 && status <= 599);
        int logged;
        check(lp < lend); /* no response without a request */
        struct nm_slice method = next_log_line(&lp, lend, &logged, &r.unparsed);
        check(logged == status);
        bool is_head = nm_slice_eq(method, NM_SLICE_LIT("HEAD"));
        bool is_get = nm_slice_eq(method, NM_SLICE_LIT("GET"));
        /* RFC 9110 §15.4.5, §13.1.2: 304 only for GET and HEAD; §14.2: ranges for GET only. */
        if (status == 304)
            check(is_get || is_head);
        if (status == 206)
            check(is_get);
        if (r.unparsed)
            check(status >= 400);
        size_t n_cl, n_ct;
        const char *cl = find_field(p, head - 2, "Content-Length", &n_cl);
        find_field(p, head - 2, "Content-Type", &n_ct);
        uint64_t body = 0;
        if (status == 304 || status == 204) {
            /* §15.4.5: no content and no content fields; §8.6: no Content-Length for 204. */
            check(n_cl == 0);
            check(status != 304 || n_ct == 0);
        } else {
            check(n_cl == 1 && cl[0] == ' ' && is_digit(cl[1]));
            char *after;
            unsigned long long v = strtoull(cl + 1, &after, 10);
            check(after[0] == '\r');
            body = is_head ? 0 : v;
            /* A head that did not parse is answered without content when it began with "HEAD "
             * (§9.3.2); its method is not in the log, so the bytes that follow decide. Such an
             * answer closes the connection, so it is the last. */
            if (r.unparsed && (uint64_t)(end - p) - head == 0)
                body = 0;
        }
        check(body <= (uint64_t)(end - p) - head);
        r.len = head + (size_t)body;
        add_response(rs, r);
        p += r.len;
    }
    check(lp == lend); /* every logged request was answered */
    /* RFC 9112 §9.6: a server that closes sends "close" in its last response; so no request is
     * answered as if the connection went on (a 200 for a GET whose chunked content then turns
     * out malformed) when it does not. */
    if (done && rs->n > 0) {
        const struct response *last = &rs->v[rs->n - 1];
        check(last->status != 100);
        const char *head = start + last->off;
        const char *eoh = memmem(head, last->len, "\r\n\r\n", 4);
        check(eoh != NULL);
        size_t n_conn;
        const char *conn = find_field(head, (size_t)(eoh + 2 - head), "Connection", &n_conn);
        check(n_conn == 1 && strncmp(conn, " close\r\n", 8) == 0);
    }
}

/* Pieces give the responses that the whole input gives, in order, though maybe fewer: a head is
 * parsed again only when a line has ended, so an error that a whole read shows at once may wait
 * for the next line, and may be found at another byte of a bad head (another status or reason).
 */
static void check_split(const struct nm_buf *whole, const struct responses *w,
                        const struct nm_buf *split, const struct responses *s)
{
    check(s->n <= w->n);
    for (size_t i = 0; i < s->n; i++) {
        const struct response *a = &w->v[i], *b = &s->v[i];
        check(a->off == b->off);
        if (b->unparsed) {
            check(a->unparsed);
            check(i + 1 == s->n && i + 1 == w->n);
            continue;
        }
        check(a->len == b->len && a->status == b->status);
        check(memcmp(whole->ptr + a->off, split->ptr + b->off, a->len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    lazy_init();
    struct nm_site *site = &sites[data[0] >> 7].site;
    size_t step = data[0] & 0x3f;
    data++;
    size--;

    struct nm_buf whole, log;
    struct responses w = {0};
    nm_buf_init(&whole, OUT_CAP);
    nm_buf_init(&log, OUT_CAP);
    bool done;
    run(site, data, size, 0, &whole, &log, &done);
    check_output(&whole, &log, done, &w);
    if (step) {
        struct nm_buf split;
        struct responses s = {0};
        nm_buf_init(&split, OUT_CAP);
        nm_buf_consume(&log, log.len);
        run(site, data, size, step, &split, &log, &done);
        check_output(&split, &log, done, &s);
        check_split(&whole, &w, &split, &s);
        free(s.v);
        nm_buf_cleanup(&split);
    }
    free(w.v);
    nm_buf_cleanup(&log);
    nm_buf_cleanup(&whole);
    return 0;
}
