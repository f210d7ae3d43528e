/* Access-log lines in both formats, with network bytes escaped, and error lines on stderr. */
#include "serve/log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SLICE(s) nm_slice_make((s), sizeof(s) - 1)

static struct nm_log_entry entry(void)
{
    return (struct nm_log_entry){
        .peer = "127.0.0.1",
        .time = 1733356800, /* 2024-12-05T00:00:00Z */
        .method = SLICE("GET"),
        .target = SLICE("/app.css"),
        .minor_version = 1,
        .status = 304,
        .bytes = 0,
        .referer = SLICE("http://example.com/"),
        .user_agent = SLICE("curl/7.88.1"),
        .etag = SLICE("\"abc\""),
    };
}

static void expect_line(enum nm_log_format format, const struct nm_log_entry *e, const char *want)
{
    struct nm_buf b;
    nm_buf_init(&b, 1 << 16);
    cr_assert_eq(nm_log_format_access(&b, format, e), 0);
    cr_expect_eq(b.len, strlen(want), "%.*s", (int)b.len, b.ptr);
    cr_expect(b.len == strlen(want) && memcmp(b.ptr, want, b.len) == 0, "%.*s", (int)b.len, b.ptr);
    nm_buf_cleanup(&b);
}

Test(log, combined_line_has_the_fields_nginx_and_apache_write)
{
    struct nm_log_entry e = entry();
    expect_line(NM_LOG_COMBINED, &e,
                "127.0.0.1 - - [05/Dec/2024:00:00:00 +0000] \"GET /app.css HTTP/1.1\" 304 0 "
                "\"http://example.com/\" \"curl/7.88.1\"\n");
}

Test(log, an_http2_request_is_logged_as_http_2_0)
{
    struct nm_log_entry e = entry();
    e.major_version = 2;
    e.minor_version = 0;
    expect_line(NM_LOG_COMBINED, &e,
                "127.0.0.1 - - [05/Dec/2024:00:00:00 +0000] \"GET /app.css HTTP/2.0\" 304 0 "
                "\"http://example.com/\" \"curl/7.88.1\"\n");
}

Test(log, combined_escapes_quotes_backslashes_controls_and_high_bytes)
{
    struct nm_log_entry e = entry();
    e.target = SLICE("/a\"b\\c\x01\xff");
    e.user_agent = SLICE("caf\xc3\xa9");
    e.referer = nm_slice_make(NULL, 0);
    expect_line(NM_LOG_COMBINED, &e,
                "127.0.0.1 - - [05/Dec/2024:00:00:00 +0000] \"GET /a\\x22b\\x5cc\\x01\\xff "
                "HTTP/1.1\" 304 0 \"-\" \"caf\\xc3\\xa9\"\n");
}

Test(log, a_request_line_not_understood_is_a_dash)
{
    struct nm_log_entry e = entry();
    e.minor_version = -1;
    e.status = 400;
    e.bytes = 17;
    expect_line(NM_LOG_COMBINED, &e,
                "127.0.0.1 - - [05/Dec/2024:00:00:00 +0000] \"-\" 400 17 "
                "\"http://example.com/\" \"curl/7.88.1\"\n");
}

Test(log, json_keeps_utf8_and_escapes_other_bytes_as_lone_surrogates)
{
    struct nm_log_entry e = entry();
    e.target = SLICE("/caf\xc3\xa9\xff\"");
    e.status = 200;
    e.bytes = 1234;
    expect_line(NM_LOG_JSON, &e,
                "{\"time\":\"2024-12-05T00:00:00Z\",\"remote\":\"127.0.0.1\",\"method\":\"GET\","
                "\"target\":\"/caf\xc3\xa9\\udcff\\\"\",\"status\":200,\"bytes\":1234,"
                "\"referer\":\"http://example.com/\",\"user_agent\":\"curl/7.88.1\","
                "\"etag\":\"\\\"abc\\\"\"}\n");
}

Test(log, a_line_that_does_not_fit_leaves_the_buffer_as_it_was)
{
    struct nm_buf b;
    nm_buf_init(&b, 64);
    cr_assert_eq(nm_buf_append_str(&b, "kept"), 0);
    struct nm_log_entry e = entry();
    for (int format = NM_LOG_COMBINED; format <= NM_LOG_JSON; format++) {
        cr_expect_lt(nm_log_format_access(&b, (enum nm_log_format)format, &e), 0);
        cr_expect_eq(b.len, 4u);
        cr_expect(memcmp(b.ptr, "kept", 4) == 0);
    }
    nm_buf_cleanup(&b);
}

/* Formats e into a fresh buffer; the caller frees b. */
static void format_into(struct nm_buf *b, enum nm_log_format format, const struct nm_log_entry *e)
{
    nm_buf_init(b, 1 << 20);
    cr_assert_eq(nm_log_format_access(b, format, e), 0);
}

/* The text between the n-th pair of double quotes that a field opens (1-based) in a line. */
static struct nm_slice quoted_field(const struct nm_buf *b, int n)
{
    const char *p = b->ptr, *end = b->ptr + b->len;
    for (int i = 1;; i++) {
        const char *open = memchr(p, '"', (size_t)(end - p));
        cr_assert_not_null(open);
        const char *close = memchr(open + 1, '"', (size_t)(end - open - 1));
        cr_assert_not_null(close);
        if (i == n)
            return nm_slice_make(open + 1, (size_t)(close - open - 1));
        p = close + 1;
    }
}

static bool ends_with(struct nm_slice s, const char *tail)
{
    size_t n = strlen(tail);
    return s.len >= n && memcmp(s.ptr + s.len - n, tail, n) == 0;
}

Test(log, a_combined_field_keeps_at_most_the_field_cap_and_ends_with_the_cut_mark)
{
    static char ua[32768];
    memset(ua, 0xff, sizeof(ua)); /* 4 bytes each once escaped */
    struct nm_log_entry e = entry();
    e.user_agent = nm_slice_make(ua, sizeof(ua));
    e.referer = nm_slice_make(ua, 100);
    struct nm_buf b;
    format_into(&b, NM_LOG_COMBINED, &e);
    struct nm_slice got = quoted_field(&b, 3); /* request line, referer, user agent */
    cr_expect_leq(got.len, NM_LOG_FIELD_MAX + 4);
    cr_expect_geq(got.len, NM_LOG_FIELD_MAX - 4);
    cr_expect(ends_with(got, "\\..."), "%.*s", (int)got.len, got.ptr);
    cr_expect_eq(memcmp(got.ptr, "\\xff", 4), 0);
    cr_expect_eq((got.len - 4) % 4, 0, "an escape was split: %zu", got.len);
    struct nm_slice referer = quoted_field(&b, 2);
    cr_expect_eq(referer.len, 400, "a short field is whole and unmarked");
    cr_expect_eq(b.ptr[b.len - 1], '\n');
    nm_buf_cleanup(&b);
}

Test(log, a_json_field_keeps_at_most_the_field_cap_and_ends_with_the_escaped_ellipsis)
{
    static char ua[32768];
    memset(ua, 0xff, sizeof(ua)); /* 6 bytes each once escaped */
    struct nm_log_entry e = entry();
    e.user_agent = nm_slice_make(ua, sizeof(ua));
    struct nm_buf b;
    format_into(&b, NM_LOG_JSON, &e);
    const char *key = "\"user_agent\":\"";
    const char *at = memmem(b.ptr, b.len, key, strlen(key));
    cr_assert_not_null(at);
    at += strlen(key);
    const char *close = memchr(at, '"', (size_t)(b.ptr + b.len - at));
    cr_assert_not_null(close);
    struct nm_slice got = nm_slice_make(at, (size_t)(close - at));
    cr_expect_leq(got.len, NM_LOG_FIELD_MAX + 6);
    cr_expect(ends_with(got, "\\u2026"), "%.*s", (int)got.len, got.ptr);
    cr_expect_eq((got.len - 6) % 6, 0, "an escape was split: %zu", got.len);
    cr_expect_eq(memcmp(b.ptr + b.len - 2, "}\n", 2), 0);
    nm_buf_cleanup(&b);
}

Test(log, a_line_of_capped_fields_fits_many_times_in_the_worker_buffer)
{
    static char big[8192];
    memset(big, 0xff, sizeof(big));
    struct nm_log_entry e = entry();
    e.target = e.referer = e.user_agent = e.method = e.etag = nm_slice_make(big, sizeof(big));
    for (int f = 0; f < 2; f++) {
        struct nm_buf b;
        format_into(&b, f ? NM_LOG_JSON : NM_LOG_COMBINED, &e);
        cr_expect_lt(b.len, 16384, "%zu bytes", b.len);
        nm_buf_cleanup(&b);
    }
}

static size_t capture_error(const char *message, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    cr_assert_not_null(tmp);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    nm_log_error("%s", message);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

Test(log, an_error_line_is_timestamped_and_ends_in_one_newline)
{
    char out[2048];
    size_t n = capture_error("cannot open x: No such file", out, sizeof(out));
    /* "2026-12-05T20:41:07Z notmod: ..." */
    cr_assert_gt(n, 21u);
    cr_expect_eq(out[4], '-');
    cr_expect_eq(out[10], 'T');
    cr_expect_eq(out[19], 'Z');
    cr_expect_str_eq(out + 20, " notmod: cannot open x: No such file\n");
}

Test(log, an_overlong_error_is_cut_to_one_line)
{
    char msg[3000];
    memset(msg, 'x', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char out[4096];
    size_t n = capture_error(msg, out, sizeof(out));
    cr_expect_leq(n, 1024u);
    cr_expect_eq(out[n - 1], '\n');
    cr_expect_null(memchr(out, '\n', n - 1));
}
