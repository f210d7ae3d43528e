/* The HTTP/2 machine's contract (h2.h), driven by an nghttp2 client session over a temporary
 * site: the responses the handler decides (the same as over HTTP/1.1, compared with nm_conn),
 * their framing (no content for 304 and HEAD, no connection-specific fields), flow control
 * with small windows and a stalled stream beside a moving one, one listing render per pass of
 * the loop (the streams after it waiting in order), the access log, request content,
 * and the bounds on what a peer may make the server do: rapid reset, CONTINUATION floods, HPACK
 * bombs, SETTINGS, PING, empty DATA and WINDOW_UPDATE floods. */
#include "serve/h2.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/conn.h"

#define NOW 1700000000LL
#define BIG_BYTES 200000u /* more than the fixture's small_file_bytes: read from the file */
#define MAX_RESP 256
#define OUT_BOUND (128u << 10) /* what nm_h2_output may hand out at once (2 * its chunk) */

struct resp {
    int32_t id;
    int status;
    char fields[4096]; /* "name: value\n" lines, as received */
    size_t fields_len;
    struct nm_buf body;
    uint32_t rst; /* the error code of the stream's close */
    bool closed;
    size_t data_frames, max_data;
};

static struct {
    char dir[64];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
    struct nm_h2 *h2;
    nghttp2_session *client;
    struct nm_buf to_server;
    struct resp resps[MAX_RESP];
    size_t n_resps;
    bool goaway;
    uint32_t goaway_code;
    size_t frames_in, max_out;
    bool consume; /* the client consumes what it receives itself (no auto window updates) */
    struct nm_buf server_out; /* what the server sent to hand-built frames */
    int32_t stalled;          /* a stream whose content the client never consumes */
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

static struct resp *resp_of(int32_t id)
{
    for (size_t i = 0; i < fx.n_resps; i++)
        if (fx.resps[i].id == id)
            return &fx.resps[i];
    cr_assert_lt(fx.n_resps, MAX_RESP);
    struct resp *r = &fx.resps[fx.n_resps++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    nm_buf_init(&r->body, 64u << 20);
    return r;
}

/* ---- the client ---- */

static ssize_t c_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *u)
{
    (void)s;
    (void)flags;
    (void)u;
    cr_assert_eq(nm_buf_append(&fx.to_server, data, len), 0);
    return (ssize_t)len;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *u)
{
    (void)s;
    (void)flags;
    (void)u;
    struct resp *r = resp_of(frame->hd.stream_id);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        r->status = atoi((const char *)value);
        return 0;
    }
    int n = snprintf(r->fields + r->fields_len, sizeof(r->fields) - r->fields_len, "%.*s: %.*s\n",
                     (int)namelen, name, (int)valuelen, value);
    cr_assert_lt((size_t)n, sizeof(r->fields) - r->fields_len);
    r->fields_len += (size_t)n;
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                  void *u)
{
    (void)flags;
    (void)u;
    struct resp *r = resp_of(id);
    cr_assert_eq(nm_buf_append(&r->body, data, len), 0);
    if (fx.consume && id != fx.stalled)
        nghttp2_session_consume(s, id, len);
    else if (fx.consume)
        nghttp2_session_consume_connection(s, len);
    return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *frame, void *u)
{
    (void)s;
    (void)u;
    fx.frames_in++;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        fx.goaway = true;
        fx.goaway_code = frame->goaway.error_code;
    }
    if (frame->hd.type == NGHTTP2_DATA) {
        struct resp *r = resp_of(frame->hd.stream_id);
        r->data_frames++;
        if (frame->hd.length > r->max_data)
            r->max_data = frame->hd.length;
    }
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t code, void *u)
{
    (void)s;
    (void)u;
    struct resp *r = resp_of(id);
    r->closed = true;
    r->rst = code;
    return 0;
}

/* A client with an initial stream window of `window` (0: the default), consuming what it gets
 * unless manual, whose connection window is opened to 16 MiB. */
static void client_start(uint32_t window, bool manual)
{
    nghttp2_session_callbacks *cb;
    cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_send_callback(cb, c_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_option *opt;
    cr_assert_eq(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_auto_window_update(opt, manual);
    cr_assert_eq(nghttp2_session_client_new2(&fx.client, cb, NULL, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    cr_assert_eq(nghttp2_submit_settings(fx.client, NGHTTP2_FLAG_NONE, iv, window ? 1 : 0), 0);
    cr_assert_eq(nghttp2_session_set_local_window_size(fx.client, NGHTTP2_FLAG_NONE, 0, 16 << 20),
                 0);
    fx.consume = manual;
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-h2-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    write_site_file("hello.txt", hello, sizeof(hello) - 1);
    char *big = malloc(BIG_BYTES);
    cr_assert_not_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (char)('a' + i % 26);
    write_site_file("big.txt", big, BIG_BYTES);
    free(big);
    write_site_file("style.css", "body { color: red }\n", 20);

    nm_config_init(&fx.cfg);
    fx.cfg.small_file_bytes = 64 * 1024; /* big.txt is above it: not held in memory */
    /* Large files are file parts read from their descriptor, even while racy (just written). */
    fx.cfg.hash_threshold_bytes = BIG_BYTES - 1;
    fx.cfg.root = strdup(fx.dir);
    fx.cfg.index_name = strdup("index.html");
    fx.cfg.access_log = strdup("-");
    fx.cfg.max_head_bytes = 4096;
    fx.cfg.max_discard_bytes = 100000;
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    fx.site.boundary_key = 42;
    nm_site_set_time(&fx.site, NOW);
    cr_assert_eq(nm_h2_new(&fx.site, "192.0.2.1", &fx.h2), 0);
    nm_buf_init(&fx.to_server, 64u << 20);
    nm_buf_init(&fx.server_out, 64u << 20);
}

#define LISTED_DIRS 3 /* directories d0, d1 ... a test may make */

static void remove_listed_dirs(void)
{
    for (int i = 0; i < LISTED_DIRS; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/d%d/f.txt", fx.dir, i);
        unlink(path);
        snprintf(path, sizeof(path), "%s/d%d", fx.dir, i);
        rmdir(path);
    }
}

static void teardown(void)
{
    for (size_t i = 0; i < fx.n_resps; i++)
        nm_buf_cleanup(&fx.resps[i].body);
    nghttp2_session_del(fx.client);
    nm_h2_free(fx.h2);
    nm_buf_cleanup(&fx.to_server);
    nm_buf_cleanup(&fx.server_out);
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    remove_listed_dirs();
    const char *names[] = {"hello.txt", "big.txt", "style.css"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fx.dir, names[i]);
        unlink(path);
    }
    rmdir(fx.dir);
}

TestSuite(h2, .init = setup, .fini = teardown);

/* Sends the preface and whatever the client has queued; then moves bytes both ways until
 * nothing moves. Returns the last nm_h2_receive result. */
static int pump(void)
{
    int last = 0;
    for (int round = 0; round < 100000; round++) {
        cr_assert_eq(nghttp2_session_send(fx.client), 0);
        bool moved = false;
        if (fx.to_server.len) {
            last = nm_h2_receive(fx.h2, fx.to_server.ptr, fx.to_server.len);
            nm_buf_consume(&fx.to_server, fx.to_server.len);
            moved = true;
        }
        const char *data;
        size_t len;
        cr_assert_eq(nm_h2_output(fx.h2, &data, &len), 0);
        if (len > fx.max_out)
            fx.max_out = len;
        if (len) {
            ssize_t n = nghttp2_session_mem_recv(fx.client, (const uint8_t *)data, len);
            cr_assert_eq(n, (ssize_t)len, "the server's output parses as HTTP/2: %zd", n);
            nm_h2_advance(fx.h2, len);
            moved = true;
        }
        if (!moved)
            return last;
    }
    cr_assert_fail("the connection never settled");
    return -1;
}

/* Bytes straight to the server, bypassing the client session (hand-built frames). */
static int raw(const void *bytes, size_t len)
{
    return nm_h2_receive(fx.h2, bytes, len);
}

static int32_t request(const char *method, const char *path, const char *const *extra)
{
    nghttp2_nv nv[4 + 101];
    size_t n = 0;
#define NV(k, v)                                                                                   \
    nv[n++] =                                                                                      \
        (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
    NV(":method", method);
    NV(":scheme", "http");
    NV(":authority", "t");
    NV(":path", path);
    for (size_t i = 0; extra && extra[i]; i += 2)
        NV(extra[i], extra[i + 1]);
#undef NV
    int32_t id = nghttp2_submit_request(fx.client, NULL, nv, n, NULL, NULL);
    cr_assert_gt(id, 0);
    return id;
}

/* The value of a received field, or NULL (copied into a static buffer). */
static const char *field(const struct resp *r, const char *name)
{
    static char v[1024];
    size_t k = strlen(name);
    for (const char *p = r->fields; p < r->fields + r->fields_len;) {
        const char *nl = memchr(p, '\n', (size_t)(r->fields + r->fields_len - p));
        if ((size_t)(nl - p) > k + 1 && memcmp(p, name, k) == 0 && p[k] == ':') {
            snprintf(v, sizeof(v), "%.*s", (int)(nl - p - k - 2), p + k + 2);
            return v;
        }
        p = nl + 1;
    }
    return NULL;
}

static struct resp *get(const char *method, const char *path, const char *const *extra)
{
    int32_t id = request(method, path, extra);
    pump();
    struct resp *r = resp_of(id);
    cr_assert(r->closed, "stream %d is closed", id);
    return r;
}

static bool body_is(const struct resp *r, const char *s, size_t len)
{
    return r->body.len == len && (len == 0 || memcmp(r->body.ptr, s, len) == 0);
}

static void read_server_output(void);

/* ---- the preface ---- */

Test(h2, may_be_preface_follows_the_preface_byte_by_byte)
{
    cr_assert(nm_h2_may_be_preface("", 0));
    cr_assert(nm_h2_may_be_preface("PRI", 3));
    cr_assert(nm_h2_may_be_preface(NM_H2_PREFACE "more", NM_H2_PREFACE_LEN + 4));
    cr_assert_not(nm_h2_may_be_preface("GET / HTTP/1.1\r\n", 16));
    cr_assert_not(nm_h2_may_be_preface("PRI * HTTP/1.1", 14));
}

Test(h2, a_bad_preface_is_a_protocol_error_with_a_goaway_then_done)
{
    cr_assert_eq(raw("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 27), -EPROTO);
    read_server_output();
    cr_assert(fx.goaway);
    cr_assert_eq(fx.goaway_code, NGHTTP2_PROTOCOL_ERROR);
    cr_assert(nm_h2_is_done(fx.h2));
}

/* ---- responses ---- */

Test(h2, get_of_a_file_is_200_with_validators_and_its_bytes)
{
    client_start(0, false);
    struct resp *r = get("GET", "/hello.txt", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(field(r, "etag"));
    cr_assert_not_null(field(r, "last-modified"));
    cr_assert_str_eq(field(r, "content-length"), "14");
    cr_assert_not_null(field(r, "date"));
    cr_assert(body_is(r, hello, sizeof(hello) - 1));
    cr_assert_null(field(r, "connection"));
    cr_assert_not(nm_h2_is_busy(fx.h2), "no stream is left open");
    cr_assert_not(nm_h2_is_done(fx.h2), "the connection waits for more requests");
}

Test(h2, an_idle_connection_trimmed_frees_its_kept_streams_and_still_answers)
{
    client_start(0, false);
    cr_assert_eq(get("GET", "/hello.txt", NULL)->status, 200);
    cr_assert_not(nm_h2_is_busy(fx.h2));
    cr_expect_gt(nm_h2_trim(fx.h2), 0, "the closed stream and the output buffer");
    cr_expect_eq(nm_h2_trim(fx.h2), 0, "nothing is left to free");
    struct resp *r = get("GET", "/hello.txt", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert(body_is(r, hello, sizeof(hello) - 1));
}

Test(h2, a_connection_with_an_open_stream_is_not_trimmed)
{
    client_start(0, false);
    int32_t id = request("GET", "/hello.txt", NULL);
    cr_assert_gt(id, 0);
    cr_assert_eq(nghttp2_session_send(fx.client), 0);
    cr_assert_eq(nm_h2_receive(fx.h2, fx.to_server.ptr, fx.to_server.len), 0);
    fx.to_server.len = 0;
    cr_assert(nm_h2_is_busy(fx.h2), "the request is in, its answer not out");
    cr_expect_eq(nm_h2_trim(fx.h2), 0);
    cr_assert_eq(pump(), 0);
    cr_assert_eq(resp_of(id)->status, 200);
}

Test(h2, field_names_are_lower_case)
{
    client_start(0, false);
    struct resp *r = get("GET", "/style.css", NULL);
    for (size_t i = 0; i < r->fields_len && r->fields[i] != ':'; i++)
        cr_assert(r->fields[i] < 'A' || r->fields[i] > 'Z');
    cr_assert_not_null(field(r, "content-type"));
}

/* The field lines of a response but its date, which is the renderer's own. */
static const char *fields_but_date(const struct resp *r)
{
    static char out[2][4096];
    static int turn;
    char *o = out[turn ^= 1];
    size_t n = 0;
    for (const char *p = r->fields; p < r->fields + r->fields_len;) {
        const char *eol =
            (const char *)memchr(p, '\n', (size_t)(r->fields + r->fields_len - p)) + 1;
        if (strncmp(p, "date: ", 6) != 0) {
            memcpy(o + n, p, (size_t)(eol - p));
            n += (size_t)(eol - p);
        }
        p = eol;
    }
    o[n] = '\0';
    return o;
}

Test(h2, a_version_answered_again_from_its_pre_rendered_head_sends_the_same_fields)
{
    /* A racy version keeps no head (filecache.h): wait until the files have settled. */
    usleep((useconds_t)(NM_HASHING_RACY_NS / 1000 + 100000));
    client_start(0, false);
    struct resp *a = get("GET", "/style.css", NULL);
    struct resp *b = get("GET", "/style.css", NULL);
    cr_assert_eq(b->status, 200);
    cr_assert_str_eq(fields_but_date(b), fields_but_date(a));
    cr_assert_not_null(strstr(b->fields, "content-type: text/css"), "%s", b->fields);
    cr_assert(body_is(b, a->body.ptr, a->body.len));
    char etag[128];
    snprintf(etag, sizeof(etag), "%s", field(a, "etag"));
    const char *inm[] = {"if-none-match", etag, NULL};
    struct resp *c = get("GET", "/style.css", inm);
    struct resp *d = get("GET", "/style.css", inm);
    cr_assert_eq(d->status, 304);
    cr_assert_str_eq(fields_but_date(d), fields_but_date(c));
    cr_assert_str_eq(field(d, "etag"), etag);
    cr_assert_null(field(d, "content-type"));
}

Test(h2, not_modified_has_no_content_and_no_content_fields)
{
    client_start(0, false);
    struct resp *r = get("GET", "/hello.txt", NULL);
    char etag[128];
    snprintf(etag, sizeof(etag), "%s", field(r, "etag"));
    const char *inm[] = {"if-none-match", etag, NULL};
    struct resp *n = get("GET", "/hello.txt", inm);
    cr_assert_eq(n->status, 304);
    cr_assert_eq(n->body.len, 0);
    cr_assert_eq(n->data_frames, 0, "RFC 9110 §15.4.5: no content");
    cr_assert_null(field(n, "content-length"));
    cr_assert_null(field(n, "content-type"));
    cr_assert_null(field(n, "content-encoding"));
    cr_assert_str_eq(field(n, "etag"), etag);
}

Test(h2, several_if_none_match_lines_all_reach_the_handler)
{
    client_start(0, false);
    struct resp *r = get("GET", "/hello.txt", NULL);
    char etag[128];
    snprintf(etag, sizeof(etag), "%s", field(r, "etag"));
    const char *inm[] = {"if-none-match", "\"other\"", "if-none-match", etag, NULL};
    cr_assert_eq(get("GET", "/hello.txt", inm)->status, 304);
}

Test(h2, a_failed_if_match_is_412)
{
    client_start(0, false);
    const char *im[] = {"if-match", "\"nope\"", NULL};
    struct resp *r = get("GET", "/hello.txt", im);
    cr_assert_eq(r->status, 412);
}

Test(h2, a_range_is_206_with_its_bytes)
{
    client_start(0, false);
    const char *rg[] = {"range", "bytes=0-4", NULL};
    struct resp *r = get("GET", "/hello.txt", rg);
    cr_assert_eq(r->status, 206);
    cr_assert_str_eq(field(r, "content-range"), "bytes 0-4/14");
    cr_assert(body_is(r, "Hello", 5));
}

Test(h2, two_ranges_are_multipart_byteranges)
{
    client_start(0, false);
    const char *rg[] = {"range", "bytes=0-1,199990-199999", NULL};
    struct resp *r = get("GET", "/big.txt", rg);
    cr_assert_eq(r->status, 206);
    cr_assert(strncmp(field(r, "content-type"), "multipart/byteranges; boundary=", 31) == 0);
    cr_assert_eq(r->body.len, strtoull(field(r, "content-length"), NULL, 10));
    cr_assert(memmem(r->body.ptr, r->body.len, "Content-Range: bytes 0-1/200000", 31));
}

Test(h2, head_has_the_fields_of_get_and_no_data)
{
    client_start(0, false);
    struct resp *r = get("HEAD", "/big.txt", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_str_eq(field(r, "content-length"), "200000");
    cr_assert_eq(r->data_frames, 0);
}

Test(h2, missing_is_404_other_methods_405_bad_paths_400)
{
    client_start(0, false);
    cr_assert_eq(get("GET", "/nope.txt", NULL)->status, 404);
    struct resp *d = get("DELETE", "/hello.txt", NULL);
    cr_assert_eq(d->status, 405);
    cr_assert_not_null(field(d, "allow"));
    cr_assert_eq(get("GET", "/%zz", NULL)->status, 400);
}

Test(h2, a_host_that_differs_from_the_authority_is_400)
{
    client_start(0, false);
    const char *host[] = {"host", "elsewhere", NULL};
    cr_assert_eq(get("GET", "/hello.txt", host)->status, 400);
    const char *same[] = {"host", "t", NULL};
    cr_assert_eq(get("GET", "/hello.txt", same)->status, 200);
}

Test(h2, each_request_is_logged_as_http2)
{
    client_start(0, false);
    const char *ua[] = {"user-agent", "probe/1", NULL};
    get("GET", "/hello.txt", ua);
    cr_assert(fx.site.log.len > 0);
    cr_assert(memmem(fx.site.log.ptr, fx.site.log.len, "\"GET /hello.txt HTTP/2.0\" 200 14 ", 33) !=
                  NULL,
              "%.*s", (int)fx.site.log.len, fx.site.log.ptr);
    cr_assert(memmem(fx.site.log.ptr, fx.site.log.len, "\"probe/1\"", 9) != NULL);
}

/* ---- flow control ---- */

Test(h2, a_large_body_honours_a_small_window_and_arrives_whole)
{
    client_start(4096, false);
    struct resp *r = get("GET", "/big.txt", NULL);
    cr_assert_eq(r->status, 200);
    cr_assert_eq(r->body.len, BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i++)
        cr_assert_eq(r->body.ptr[i], (char)('a' + i % 26));
    cr_assert_leq(r->max_data, 4096, "no DATA frame beyond the window");
    cr_assert_gt(r->data_frames, BIG_BYTES / 4096 - 1);
    cr_assert_leq(fx.max_out, OUT_BOUND, "the output stays bounded");
}

Test(h2, a_stalled_stream_never_stalls_another)
{
    client_start(16384, true);
    int32_t big = request("GET", "/big.txt", NULL);
    fx.stalled = big;
    pump();
    cr_assert_eq(resp_of(big)->body.len, 16384, "the stalled stream got its window's worth");
    int32_t small = request("GET", "/hello.txt", NULL);
    pump();
    struct resp *s = resp_of(small);
    cr_assert(s->closed);
    cr_assert(body_is(s, hello, sizeof(hello) - 1));
    cr_assert_not(resp_of(big)->closed);
    cr_assert(nm_h2_is_busy(fx.h2), "the stalled stream is still open");
    /* The window opens: the rest follows. */
    fx.stalled = 0;
    nghttp2_session_consume(fx.client, big, 16384);
    pump();
    cr_assert(resp_of(big)->closed);
    cr_assert_eq(resp_of(big)->body.len, BIG_BYTES);
}

Test(h2, a_file_changed_under_its_response_resets_the_stream)
{
    client_start(16384, true);
    int32_t big = request("GET", "/big.txt", NULL);
    fx.stalled = big;
    pump();
    cr_assert_eq(resp_of(big)->body.len, 16384);
    /* Same size, new mtime: not the version the fields described. */
    char path[128];
    snprintf(path, sizeof(path), "%s/big.txt", fx.dir);
    struct timespec ts[2] = {{NOW - 60, 0}, {NOW - 60, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
    fx.stalled = 0;
    nghttp2_session_consume(fx.client, big, 16384);
    pump();
    struct resp *r = resp_of(big);
    cr_assert(r->closed);
    cr_assert_eq(r->rst, NGHTTP2_INTERNAL_ERROR);
    cr_assert_lt(r->body.len, BIG_BYTES);
    cr_assert_not(fx.goaway, "only that stream ends");
    cr_assert_eq(get("GET", "/hello.txt", NULL)->status, 200);
}

/* ---- listings ---- */

/* Directories d0, d1 ... each with a file: distinct listings, none found in the page cache. */
static void make_listed_dirs(void)
{
    for (int i = 0; i < LISTED_DIRS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "d%d", i);
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
        cr_assert_eq(mkdir(path, 0755), 0);
        snprintf(name, sizeof(name), "d%d/f.txt", i);
        write_site_file(name, hello, sizeof(hello) - 1);
    }
}

Test(h2, one_listing_is_rendered_per_pass_and_the_streams_after_it_wait_in_order)
{
    make_listed_dirs();
    fx.cfg.list_dirs = true;
    client_start(0, false);
    int32_t ids[LISTED_DIRS + 1];
    for (int i = 0; i < LISTED_DIRS; i++) {
        char path[16];
        snprintf(path, sizeof(path), "/d%d/", i);
        ids[i] = request("GET", path, NULL);
    }
    ids[LISTED_DIRS] = request("GET", "/hello.txt", NULL);
    fx.site.listing_renders_left = 1; /* the worker's setting for a pass */
    pump();
    cr_assert(resp_of(ids[0])->closed, "the first listing is answered");
    cr_assert_eq(resp_of(ids[0])->status, 200);
    cr_assert_eq(fx.site.listing_renders_left, 0);
    for (int i = 1; i <= LISTED_DIRS; i++)
        cr_assert_not(resp_of(ids[i])->closed, "stream %d waits for the next pass", ids[i]);
    cr_assert(nm_h2_has_waiting(fx.h2));
    cr_assert(nm_h2_is_busy(fx.h2));
    for (int pass = 1; pass < LISTED_DIRS; pass++) {
        fx.site.listing_renders_left = 1;
        cr_assert_eq(nm_h2_answer_waiting(fx.h2), 0);
        pump();
        cr_assert(resp_of(ids[pass])->closed, "pass %d answers listing %d", pass, pass);
        cr_assert_eq(resp_of(ids[pass])->status, 200, "waiting is not failing");
        cr_assert_not_null(
            memmem(resp_of(ids[pass])->body.ptr, resp_of(ids[pass])->body.len, "f.txt", 5));
        if (pass + 1 < LISTED_DIRS)
            cr_assert_not(resp_of(ids[pass + 1])->closed);
    }
    cr_assert_not(resp_of(ids[LISTED_DIRS])->closed, "a file behind a listing keeps its place");
    fx.site.listing_renders_left = 1;
    cr_assert_eq(nm_h2_answer_waiting(fx.h2), 0);
    pump();
    cr_assert(body_is(resp_of(ids[LISTED_DIRS]), hello, sizeof(hello) - 1));
    cr_assert_not(nm_h2_has_waiting(fx.h2));
    cr_assert_not(fx.goaway);
}

Test(h2, a_stream_reset_while_it_waits_is_dropped_unanswered)
{
    make_listed_dirs();
    fx.cfg.list_dirs = true;
    client_start(0, false);
    int32_t first = request("GET", "/d0/", NULL), second = request("GET", "/d1/", NULL);
    fx.site.listing_renders_left = 1;
    pump();
    cr_assert(resp_of(first)->closed);
    cr_assert(nm_h2_has_waiting(fx.h2));
    cr_assert_eq(nghttp2_submit_rst_stream(fx.client, NGHTTP2_FLAG_NONE, second, NGHTTP2_CANCEL),
                 0);
    pump();
    fx.site.listing_renders_left = 1;
    cr_assert_eq(nm_h2_answer_waiting(fx.h2), 0);
    pump();
    cr_assert_eq(fx.site.listing_renders_left, 1, "no listing rendered for a reset stream");
    cr_assert_not(nm_h2_has_waiting(fx.h2));
    cr_assert_not(nm_h2_is_busy(fx.h2));
}

/* ---- request content ---- */

static size_t content_left;

static ssize_t content_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)s;
    (void)id;
    (void)src;
    (void)u;
    size_t n = len < content_left ? len : content_left;
    memset(buf, 'x', n);
    content_left -= n;
    if (!content_left)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int32_t request_with_content(const char *path, size_t bytes, const char *length)
{
    nghttp2_nv nv[5] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"t", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)"content-length", (uint8_t *)length, 14, length ? strlen(length) : 0, 0},
    };
    content_left = bytes;
    nghttp2_data_provider prd = {.read_callback = content_read};
    int32_t id = nghttp2_submit_request(fx.client, NULL, nv, length ? 5 : 4, &prd, NULL);
    cr_assert_gt(id, 0);
    return id;
}

Test(h2, content_on_get_is_read_and_dropped_then_answered)
{
    client_start(0, false);
    int32_t id = request_with_content("/hello.txt", 5000, "5000");
    pump();
    struct resp *r = resp_of(id);
    cr_assert_eq(r->status, 200);
    cr_assert(body_is(r, hello, sizeof(hello) - 1));
}

Test(h2, content_over_the_limit_is_413)
{
    client_start(0, false);
    int32_t id = request_with_content("/hello.txt", 200000, NULL);
    pump();
    cr_assert_eq(resp_of(id)->status, 413);
    int32_t id2 = request_with_content("/hello.txt", 200000, "200000");
    pump();
    cr_assert_eq(resp_of(id2)->status, 413, "a declared length over the limit is 413 at once");
    cr_assert_not(fx.goaway);
}

/* ---- hand-built frames ---- */

struct frames {
    uint8_t b[1 << 20];
    size_t len;
};

static void frame(struct frames *f, uint8_t type, uint8_t flags, uint32_t id, const void *payload,
                  size_t len)
{
    cr_assert_leq(f->len + 9 + len, sizeof(f->b));
    uint8_t *p = f->b + f->len;
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    p[5] = (uint8_t)(id >> 24);
    p[6] = (uint8_t)(id >> 16);
    p[7] = (uint8_t)(id >> 8);
    p[8] = (uint8_t)id;
    if (len)
        memcpy(p + 9, payload, len);
    f->len += 9 + len;
}

/* A header block for GET `path` (static-table indexes and literals without indexing). */
static size_t get_block(uint8_t *out, const char *path)
{
    size_t n = 0;
    out[n++] = 0x82; /* :method GET */
    out[n++] = 0x86; /* :scheme http */
    out[n++] = 0x04; /* :path, literal value */
    out[n++] = (uint8_t)strlen(path);
    memcpy(out + n, path, strlen(path));
    n += strlen(path);
    out[n++] = 0x01; /* :authority "t" */
    out[n++] = 1;
    out[n++] = 't';
    return n;
}

static void preface(struct frames *f)
{
    memcpy(f->b, NM_H2_PREFACE, NM_H2_PREFACE_LEN);
    f->len = NM_H2_PREFACE_LEN;
    frame(f, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* Everything the server has to send, walked as frames (RFC 9113 §4.1): each must be whole, and
 * GOAWAY and RST_STREAM are noted. */
static void read_server_output(void)
{
    const char *data;
    size_t len;
    size_t from = fx.server_out.len;
    for (int i = 0; i < 100000; i++) {
        cr_assert_eq(nm_h2_output(fx.h2, &data, &len), 0);
        if (!len)
            break;
        cr_assert_eq(nm_buf_append(&fx.server_out, data, len), 0);
        nm_h2_advance(fx.h2, len);
    }
    const uint8_t *p = (const uint8_t *)fx.server_out.ptr + from;
    const uint8_t *end = (const uint8_t *)fx.server_out.ptr + fx.server_out.len;
    while (p < end) {
        cr_assert_geq(end - p, 9, "a whole frame header");
        size_t flen = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        cr_assert_geq((size_t)(end - p - 9), flen, "a whole frame");
        uint32_t id =
            (uint32_t)(p[5] & 0x7f) << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8];
        const uint8_t *q = p + 9;
        if (p[3] == NGHTTP2_GOAWAY) {
            cr_assert_geq(flen, 8);
            fx.goaway = true;
            fx.goaway_code =
                (uint32_t)q[4] << 24 | (uint32_t)q[5] << 16 | (uint32_t)q[6] << 8 | q[7];
        } else if (p[3] == NGHTTP2_RST_STREAM) {
            cr_assert_eq(flen, 4);
            struct resp *r = resp_of((int32_t)id);
            r->closed = true;
            r->rst = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
        } else if ((p[3] == NGHTTP2_HEADERS || p[3] == NGHTTP2_DATA) &&
                   (p[4] & NGHTTP2_FLAG_END_STREAM)) {
            resp_of((int32_t)id)->closed = true;
        }
        p += 9 + flen;
    }
}

static size_t log_count(const char *needle)
{
    size_t n = 0, k = strlen(needle);
    const char *p = fx.site.log.ptr, *end = p + fx.site.log.len;
    while (p && p < end && (p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
        n++;
        p += k;
    }
    return n;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *attack, size_t bytes, double cpu)
{
    fprintf(stderr, "h2 attack cost: %s: %zu bytes sent, %.3f ms server CPU (%.1f ns/byte)\n",
            attack, bytes, cpu * 1e3, cpu * 1e9 / (double)(bytes ? bytes : 1));
}

static struct frames fr;

/* Sends fr.b from `from` (what came before it already went in, accepted) and expects the
 * connection to end with GOAWAY ENHANCE_YOUR_CALM, reporting the server CPU it took. */
static void expect_calm(const char *attack, size_t from)
{
    if (from)
        cr_assert_eq(raw(fr.b, from), 0);
    double t0 = cpu_seconds();
    int rc = raw(fr.b + from, fr.len - from);
    double t1 = cpu_seconds();
    report(attack, fr.len - from, t1 - t0);
    cr_assert_eq(rc, -EPROTO);
    read_server_output();
    cr_assert(fx.goaway, "a GOAWAY went out");
    cr_assert_eq(fx.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    cr_assert(nm_h2_is_done(fx.h2));
    cr_assert_eq(raw("x", 1), -EPROTO, "nothing more is read");
}

Test(h2, rapid_reset_ends_with_enhance_your_calm_and_runs_no_handler)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    uint32_t code = 0x8; /* CANCEL */
    uint8_t rst[4] = {0, 0, 0, (uint8_t)code};
    for (uint32_t id = 1; id < 2 * 1000; id += 2) {
        frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, block,
              n);
        frame(&fr, NGHTTP2_RST_STREAM, 0, id, rst, 4);
    }
    expect_calm("rapid reset (1000 HEADERS+RST_STREAM pairs)", 0);
    cr_assert_eq(fx.site.log.len, 0, "no request was answered: %.*s", (int)fx.site.log.len,
                 fx.site.log.ptr);
}

Test(h2, streams_reset_within_the_bound_are_fine)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    uint8_t rst[4] = {0, 0, 0, 8};
    for (uint32_t id = 1; id < 2 * 50; id += 2) {
        frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, block,
              n);
        frame(&fr, NGHTTP2_RST_STREAM, 0, id, rst, 4);
    }
    frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 101, block, n);
    cr_assert_eq(raw(fr.b, fr.len), 0);
    read_server_output();
    cr_assert_not(fx.goaway);
    cr_assert_eq(log_count("HTTP/2.0\" 200 "), 1, "only the stream not reset was answered");
    cr_assert(resp_of(101)->closed);
}

Test(h2, continuation_flood_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    frame(&fr, NGHTTP2_HEADERS, 0, 1, block, n);
    uint8_t lit[1024];
    for (int i = 0; i < 200; i++) {
        /* literal without indexing, new name "x-a", value of 1000 bytes */
        size_t k = 0;
        lit[k++] = 0x00;
        lit[k++] = 3;
        memcpy(lit + k, "x-a", 3);
        k += 3;
        lit[k++] = 0x7f; /* 127 + 873 = 1000 */
        lit[k++] = (uint8_t)(0x80 | ((1000 - 127) & 0x7f));
        lit[k++] = (uint8_t)((1000 - 127) >> 7);
        memset(lit + k, 'v', 1000);
        k += 1000;
        frame(&fr, NGHTTP2_CONTINUATION, 0, 1, lit, k);
    }
    expect_calm("CONTINUATION flood (200 frames of 1 KB)", 0);
}

Test(h2, continuation_flood_of_empty_frames_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    frame(&fr, NGHTTP2_HEADERS, 0, 1, block, n);
    for (int i = 0; i < 10000; i++)
        frame(&fr, NGHTTP2_CONTINUATION, 0, 1, NULL, 0);
    expect_calm("CONTINUATION flood (10000 empty frames)", 0);
}

Test(h2, hpack_bomb_is_431_or_reset_and_repeated_ends_the_connection)
{
    preface(&fr);
    /* One 4000-byte field put in the dynamic table, then named by a 1-byte index many times. */
    uint8_t big[4100];
    size_t k = 0;
    uint8_t b2[64];
    size_t n2 = get_block(b2, "/hello.txt");
    memcpy(big, b2, n2);
    k = n2;
    big[k++] = 0x40; /* literal with incremental indexing, new name */
    big[k++] = 3;
    memcpy(big + k, "x-b", 3);
    k += 3;
    big[k++] = 0x7f;
    big[k++] = (uint8_t)(0x80 | ((4000 - 127) & 0x7f));
    big[k++] = (uint8_t)((4000 - 127) >> 7);
    memset(big + k, 'v', 4000);
    k += 4000;
    frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, big, k);
    size_t first = fr.len;
    uint8_t bomb[2000];
    for (uint32_t id = 3; id < 3 + 2 * 200; id += 2) {
        size_t m = get_block(bomb, "/hello.txt");
        for (int i = 0; i < 1000; i++)
            bomb[m++] = 0xbe; /* dynamic index 62: the 4000-byte field */
        frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, bomb,
              m);
    }
    expect_calm("HPACK bomb (200 header blocks of 1000 indexes to a 4 KB field)", first);
    cr_assert_eq(log_count("\" 431 "), 1, "the first over-large request was answered 431");
    cr_assert_eq(resp_of(1)->rst, 0);
}

Test(h2, a_header_section_over_the_cap_is_431)
{
    client_start(0, false);
    char v[3000];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    const char *extra[] = {"x-a", v, "x-b", v, NULL};
    cr_assert_eq(get("GET", "/hello.txt", extra)->status, 431);
    cr_assert_not(fx.goaway);
}

Test(h2, more_fields_than_an_http1_head_may_have_is_431)
{
    client_start(0, false);
    static char names[101][8];
    const char *extra[2 * 101 + 1];
    for (int i = 0; i < 101; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        extra[2 * i] = names[i];
        extra[2 * i + 1] = "v";
    }
    extra[2 * 101] = NULL;
    cr_assert_eq(get("GET", "/hello.txt", extra)->status, 431);
    extra[2 * 100] = NULL;
    cr_assert_eq(get("GET", "/hello.txt", extra)->status, 200);
}

Test(h2, ping_flood_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < 5000; i++)
        frame(&fr, NGHTTP2_PING, 0, 0, opaque, 8);
    expect_calm("PING flood (5000 frames)", 0);
}

Test(h2, settings_flood_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t entry[6] = {0, NGHTTP2_SETTINGS_ENABLE_PUSH, 0, 0, 0, 0};
    for (int i = 0; i < 5000; i++)
        frame(&fr, NGHTTP2_SETTINGS, 0, 0, entry, 6);
    expect_calm("SETTINGS flood (5000 frames)", 0);
}

Test(h2, empty_data_flood_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, block, n);
    for (int i = 0; i < 5000; i++)
        frame(&fr, NGHTTP2_DATA, 0, 1, NULL, 0);
    expect_calm("empty DATA flood (5000 frames)", 0);
}

Test(h2, window_update_flood_ends_with_enhance_your_calm)
{
    preface(&fr);
    uint8_t inc[4] = {0, 0, 0, 1};
    for (int i = 0; i < 5000; i++)
        frame(&fr, NGHTTP2_WINDOW_UPDATE, 0, 0, inc, 4);
    expect_calm("WINDOW_UPDATE flood (5000 frames)", 0);
}

Test(h2, a_window_overflow_is_a_flow_control_error)
{
    preface(&fr);
    uint8_t inc[4] = {0x7f, 0xff, 0xff, 0xff};
    frame(&fr, NGHTTP2_WINDOW_UPDATE, 0, 0, inc, 4);
    raw(fr.b, fr.len);
    read_server_output();
    cr_assert(fx.goaway);
    cr_assert_eq(fx.goaway_code, NGHTTP2_FLOW_CONTROL_ERROR);
}

/* ---- the stream limit, stopping ---- */

Test(h2, the_101st_concurrent_stream_is_refused)
{
    preface(&fr);
    uint8_t block[64];
    size_t n = get_block(block, "/hello.txt");
    for (uint32_t id = 1; id <= 2 * 101; id += 2)
        frame(&fr, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, block, n);
    cr_assert_eq(raw(fr.b, fr.len), 0);
    read_server_output();
    cr_assert_eq(resp_of(201)->rst, NGHTTP2_REFUSED_STREAM);
    cr_assert_not(resp_of(199)->closed, "the 100th stream is open");
    cr_assert_not(fx.goaway);
    cr_assert(nm_h2_is_busy(fx.h2));
}

Test(h2, stop_sends_goaway_and_open_streams_finish)
{
    client_start(16384, true);
    int32_t big = request("GET", "/big.txt", NULL);
    fx.stalled = big;
    pump();
    nm_h2_stop(fx.h2);
    pump();
    cr_assert(fx.goaway);
    cr_assert_eq(fx.goaway_code, NGHTTP2_NO_ERROR);
    cr_assert_not(nm_h2_is_done(fx.h2), "the open stream finishes first");
    fx.stalled = 0;
    nghttp2_session_consume(fx.client, big, resp_of(big)->body.len);
    for (int i = 0; i < 100 && !resp_of(big)->closed; i++)
        pump();
    cr_assert_eq(resp_of(big)->body.len, BIG_BYTES);
    cr_assert(nm_h2_is_done(fx.h2));
}

/* ---- the same decisions as HTTP/1.1 ---- */

struct golden {
    const char *method, *path;
    const char *fields[6]; /* name, value pairs, NULL-ended */
};

/* The HTTP/1.1 answer to the same request: status, fields (lower-cased, without Date and
 * Connection), body. */
static void http1_answer(const struct golden *g, int *status, char *fields, size_t cap,
                         struct nm_buf *body)
{
    struct nm_conn c;
    nm_conn_init(&c, &fx.site, "192.0.2.1");
    char req[1024];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\n", g->method, g->path);
    for (size_t i = 0; g->fields[i]; i += 2)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "%s: %s\r\n", g->fields[i],
                      g->fields[i + 1]);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    cr_assert_eq(nm_buf_append(&c.in, req, (size_t)n), 0);
    cr_assert_eq(nm_conn_process(&c), 0);
    struct nm_buf out;
    nm_buf_init(&out, 64u << 20);
    cr_assert_eq(nm_conn_drain(&c, &out), 0);
    nm_conn_cleanup(&c);
    const char *eoh = memmem(out.ptr, out.len, "\r\n\r\n", 4);
    cr_assert_not_null(eoh);
    *status = atoi(out.ptr + 9);
    size_t len = 0;
    const char *p = (const char *)memchr(out.ptr, '\n', out.len) + 1;
    while (p < eoh + 2) {
        const char *eol = memmem(p, (size_t)(eoh + 2 - p), "\r\n", 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        char name[64];
        size_t k = (size_t)(colon - p);
        for (size_t i = 0; i < k; i++)
            name[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] | 0x20 : p[i]);
        name[k] = 0;
        if (strcmp(name, "date") && strcmp(name, "connection"))
            len += (size_t)snprintf(fields + len, cap - len, "%s: %.*s\n", name,
                                    (int)(eol - colon - 2), colon + 2);
        p = eol + 2;
    }
    cr_assert_eq(nm_buf_append(body, eoh + 4, out.len - (size_t)(eoh + 4 - out.ptr)), 0);
    nm_buf_cleanup(&out);
}

Test(h2, every_golden_request_gets_the_http1_decision)
{
    /* A rule with CORS fields: on every response for the path, and a preflight answered. */
    fx.cfg.path_rules = calloc(1, sizeof(*fx.cfg.path_rules));
    cr_assert_not_null(fx.cfg.path_rules);
    fx.cfg.path_rules[0] = (struct nm_path_rule){
        .match = strdup("/hello.txt"), .variants = -1, .listing = -1, .n_headers = 2};
    fx.cfg.path_rules[0].headers[0] =
        (struct nm_header_field){strdup("Access-Control-Allow-Origin"), strdup("*")};
    fx.cfg.path_rules[0].headers[1] =
        (struct nm_header_field){strdup("Access-Control-Allow-Methods"), strdup("GET, HEAD")};
    fx.cfg.n_path_rules = 1;
    client_start(0, false);
    struct resp *first = get("GET", "/hello.txt", NULL);
    char etag[128], lm[64];
    snprintf(etag, sizeof(etag), "%s", field(first, "etag"));
    snprintf(lm, sizeof(lm), "%s", field(first, "last-modified"));
    const struct golden set[] = {
        {"GET", "/hello.txt", {NULL}},
        {"HEAD", "/hello.txt", {NULL}},
        {"GET", "/big.txt", {NULL}},
        {"GET", "/style.css", {"accept-encoding", "gzip, br", NULL}},
        {"GET", "/hello.txt", {"if-none-match", etag, NULL}},
        {"GET", "/hello.txt", {"if-none-match", "\"x\"", "if-none-match", etag, NULL}},
        {"HEAD", "/hello.txt", {"if-modified-since", lm, NULL}},
        {"GET", "/hello.txt", {"if-match", "\"x\"", NULL}},
        {"GET", "/hello.txt", {"if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT", NULL}},
        {"GET", "/big.txt", {"range", "bytes=10-19", NULL}},
        {"GET", "/big.txt", {"range", "bytes=0-0,-5", NULL}},
        {"GET", "/big.txt", {"range", "bytes=0-0", "if-range", etag, NULL}},
        {"GET", "/hello.txt", {"range", "bytes=99-", NULL}},
        {"GET", "/missing", {NULL}},
        {"POST", "/hello.txt", {NULL}},
        {"OPTIONS", "/hello.txt", {NULL}},
        {"OPTIONS",
         "/hello.txt",
         {"origin", "https://a.example", "access-control-request-method", "GET", NULL}},
        {"GET", "/", {NULL}},
        {"GET", "/.hidden", {NULL}},
        {"GET", "/%zz", {NULL}},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        const struct golden *g = &set[i];
        int status;
        char fields[4096];
        struct nm_buf body;
        nm_buf_init(&body, 64u << 20);
        http1_answer(g, &status, fields, sizeof(fields), &body);
        struct resp *r = get(g->method, g->path, g->fields);
        cr_assert_eq(r->status, status, "%s %s: h2 %d, HTTP/1.1 %d", g->method, g->path, r->status,
                     status);
        /* Fields in order, minus Date (h2 puts it first) and the framing ones. */
        char h2fields[4096];
        size_t len = 0;
        for (const char *p = r->fields; p < r->fields + r->fields_len;) {
            const char *nl = memchr(p, '\n', (size_t)(r->fields + r->fields_len - p));
            if (strncmp(p, "date: ", 6))
                len += (size_t)snprintf(h2fields + len, sizeof(h2fields) - len, "%.*s\n",
                                        (int)(nl - p), p);
            p = nl + 1;
        }
        cr_assert_str_eq(h2fields, fields, "%s %s", g->method, g->path);
        cr_assert_eq(r->body.len, body.len, "%s %s", g->method, g->path);
        cr_assert(body.len == 0 || memcmp(r->body.ptr, body.ptr, body.len) == 0);
        nm_buf_cleanup(&body);
    }
}

Test(h2, free_with_a_response_in_flight_releases_its_file)
{
    client_start(16384, true);
    int32_t big = request("GET", "/big.txt", NULL);
    fx.stalled = big;
    pump();
    cr_assert(nm_h2_is_busy(fx.h2));
    struct nm_file *f = NULL;
    cr_assert_eq(nm_filecache_lookup(fx.site.files, "/big.txt", &f), 0);
    unsigned held = f->refs;
    nm_h2_free(fx.h2);
    fx.h2 = NULL;
    cr_assert_eq(f->refs, held - 1, "the stream's reference is gone");
    nm_file_release(f);
}
