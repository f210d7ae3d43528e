/* The client's pure helpers: raw response splitting and URL normalization. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/transport.h"

Test(client, a_raw_304_splits_into_status_fields_and_the_bytes_after_it)
{
    const char raw[] = "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\nDate:  x \r\n\r\nstray";
    struct nm_http1_field h[8];
    size_t n, head_len;
    int status;
    cr_assert_eq(
        nm_client_parse_response(nm_slice_make(raw, sizeof(raw) - 1), &status, h, 8, &n, &head_len),
        0);
    cr_assert_eq(status, 304);
    cr_assert_eq(n, 2);
    cr_assert(nm_slice_eq(h[0].name, NM_SLICE_LIT("ETag")));
    cr_assert(nm_slice_eq(h[1].value, NM_SLICE_LIT("x")));
    cr_assert_eq(sizeof(raw) - 1 - head_len, 5);
}

Test(client, an_incomplete_or_non_http_reply_is_ebadmsg)
{
    struct nm_http1_field h[8];
    size_t n, head_len;
    int status;
    const char *bad[] = {"HTTP/1.1 200 OK\r\nA: b\r\n", "SSH-2.0-OpenSSH\r\n\r\n",
                         "HTTP/1.1 2x0 OK\r\n\r\n", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(
            nm_client_parse_response(nm_slice_from_cstr(bad[i]), &status, h, 8, &n, &head_len),
            -EBADMSG, "%s", bad[i]);
}

Test(client, field_lines_beyond_the_cap_are_dropped)
{
    const char raw[] = "HTTP/1.0 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    struct nm_http1_field h[2];
    size_t n, head_len;
    int status;
    cr_assert_eq(nm_client_parse_response(nm_slice_from_cstr(raw), &status, h, 2, &n, &head_len),
                 0);
    cr_assert_eq(n, 2);
}

Test(client, urls_are_normalized_and_only_http_and_https_pass)
{
    char out[256];
    cr_assert_eq(nm_client_url_normalize("HTTP://Example.TEST/a?b#frag", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "http://example.test/a?b");
    cr_assert_eq(nm_client_url_normalize("ftp://example.test/", out, sizeof(out)),
                 -EPROTONOSUPPORT);
    cr_assert_eq(nm_client_url_normalize("not a url", out, sizeof(out)), -EINVAL);
    cr_assert_eq(nm_client_url_normalize("http://example.test/very/long", out, 10), -ENAMETOOLONG);
}

Test(client, the_authority_defaults_to_the_scheme_port)
{
    char host[64];
    unsigned port;
    cr_assert_eq(nm_client_url_authority("https://example.test/x", host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "example.test");
    cr_assert_eq(port, 443);
    cr_assert_eq(nm_client_url_authority("http://127.0.0.1:8080/", host, sizeof(host), &port), 0);
    cr_assert_eq(port, 8080);
}

Test(client, a_location_is_resolved_against_the_request_url)
{
    char out[256];
    cr_assert_eq(
        nm_client_url_resolve("http://example.test/a/b?q", NM_SLICE_LIT("c"), out, sizeof(out)), 0);
    cr_assert_str_eq(out, "http://example.test/a/c");
    cr_assert_eq(
        nm_client_url_resolve("http://example.test/a", NM_SLICE_LIT("/x#f"), out, sizeof(out)), 0);
    cr_assert_str_eq(out, "http://example.test/x");
    cr_assert_eq(nm_client_url_resolve("http://example.test/a", NM_SLICE_LIT("HTTPS://Other.TEST/"),
                                       out, sizeof(out)),
                 0);
    cr_assert_str_eq(out, "https://other.test/");
    cr_assert_eq(nm_client_url_resolve("http://example.test/a", NM_SLICE_LIT("ftp://example.test/"),
                                       out, sizeof(out)),
                 -EPROTONOSUPPORT);
    cr_assert_eq(nm_client_url_resolve("http://example.test/a", NM_SLICE_LIT(""), out, sizeof(out)),
                 -EINVAL);
}

Test(client, the_accept_encoding_lists_the_codings_libcurl_decodes)
{
    const char *ae = nm_client_accept_encoding();
    cr_assert_not_null(ae, "this libcurl is built with zlib");
    cr_assert_not_null(strstr(ae, "gzip"));
    cr_assert_eq(ae, nm_client_accept_encoding(), "one static string");
}

/* Feeds lines to nm_client_head_line as libcurl's header callback would; returns the last rc. */
static int feed_lines(struct nm_client_head *hd, struct nm_client_response *r,
                      const char *const *lines, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = nm_client_head_line(hd, r, nm_slice_from_cstr(lines[i]));
    return rc;
}

Test(client, a_head_read_line_by_line_unfolds_obs_fold_and_skips_interim_heads_and_trailers)
{
    static struct nm_client_response r;
    nm_client_response_init(&r);
    struct nm_client_head hd = {0};
    const char *lines[] = {"HTTP/1.1 103 Early Hints\r\n",
                           "Link: </a>\r\n",
                           "\r\n",
                           "HTTP/1.1 200 OK\r\n",
                           "X-Long: a\r\n",
                           "  b \r\n",
                           "\r\n",
                           "Cache-Control: max-age=9\r\n"};
    cr_assert_eq(feed_lines(&hd, &r, lines, 8), 0);
    cr_assert(hd.done);
    cr_assert_eq(hd.status, 200);
    cr_assert_eq(r.n_headers, 1);
    cr_assert(nm_slice_eq(r.headers[0].value, NM_SLICE_LIT("a b")));
    nm_client_response_cleanup(&r);
}

Test(client, a_bare_cr_in_a_head_line_is_refused_even_where_folding_would_end_the_line_with_it)
{
    static struct nm_client_response r;
    const char *folded[] = {"HTTP/1.1 200 OK\r\n", "X: a\r\n", "  b\r \r\n", "\r\n"};
    const char *plain[] = {"HTTP/1.1 200 OK\r\n", "X: a\rb\r\n", "\r\n"};
    const char *doubled[] = {"HTTP/1.1 200 OK\r\n", "X: a\r\r\n", "\r\n"};
    const char *const *cases[] = {folded, plain, doubled};
    size_t counts[] = {4, 3, 3};
    for (size_t i = 0; i < 3; i++) {
        nm_client_response_init(&r);
        struct nm_client_head hd = {0};
        cr_assert_eq(feed_lines(&hd, &r, cases[i], counts[i]), -EBADMSG, "case %zu", i);
        cr_assert(!hd.done);
        nm_client_response_cleanup(&r);
    }
}

Test(client, a_header_option_is_a_token_and_a_trimmed_value_without_controls)
{
    struct nm_http1_field h;
    cr_assert_eq(nm_client_parse_header_option("X-Trace:  a\tb ", &h), 0);
    cr_assert(nm_slice_eq(h.name, NM_SLICE_LIT("X-Trace")));
    cr_assert(nm_slice_eq(h.value, NM_SLICE_LIT("a\tb")));
    cr_assert_eq(nm_client_parse_header_option("range: bytes=0-1", &h), -EPERM);
    const char *bad[] = {"NoColon", ": v", "Bad Name: v", "X: a\r\nY: b", "X: \x1b[31m"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(nm_client_parse_header_option(bad[i], &h), -EINVAL, "%s", bad[i]);
}

Test(client, backends_are_host_port_items_and_a_bad_one_adds_none)
{
    const char *out[3];
    size_t n = 0;
    char ok[] = "a:1,,[::1]:8080";
    cr_assert_eq(nm_client_parse_backends(ok, out, 3, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[1], "[::1]:8080");
    const char *bad[] = {"", ",", "a", ":80", "a:0", "a:65536", "a: 80", "a:+80", "b:1,c:2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char copy[32];
        snprintf(copy, sizeof(copy), "%s", bad[i]);
        cr_assert_eq(nm_client_parse_backends(copy, out, 3, &n), -EINVAL, "%s", bad[i]);
        cr_assert_eq(n, 2);
    }
}
