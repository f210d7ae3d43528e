/* The client's pure helpers: raw response splitting and URL normalization. */
#include <criterion/criterion.h>
#include <errno.h>
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
