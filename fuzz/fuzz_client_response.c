/* The client's reading of response heads (src/client/transport.c) on arbitrary bytes.
 * nm_client_parse_response on the whole input: the head lies inside the input, no field spans a
 * line end, and the fields written out again under the same status parse to the same fields.
 * nm_client_head_line on the input cut into lines as libcurl's header callback receives them:
 * the collected head is capped, a finished head holds no CR and parses as one whose fields are
 * the ones collected, lines after it (trailer fields) change nothing, and its fields written out
 * again parse to the same fields. Content-Range (src/client/policy.c), on every such field and
 * on the whole input: an accepted range lies within its complete length, and written out again
 * (numbers without leading zeros) reads back the same, and is the input when it had none. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "client/client.h"
#include "notmod/token.h"

#define CAP 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct nm_slice s, const char *buf, size_t len)
{
    return s.len == 0 || (s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len);
}

static bool same(struct nm_slice a, struct nm_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* A field as a parser of response heads must leave it: a token name, a value without line ends,
 * NUL or surrounding whitespace. */
static void check_field(const struct nm_http1_field *f, const char *buf, size_t len)
{
    nm_fuzz_check(f->name.len > 0 && inside(f->name, buf, len) && inside(f->value, buf, len));
    for (size_t i = 0; i < f->name.len; i++)
        nm_fuzz_check(nm_token_is_tchar((unsigned char)f->name.ptr[i]));
    for (size_t i = 0; i < f->value.len; i++)
        nm_fuzz_check(f->value.ptr[i] != '\r' && f->value.ptr[i] != '\n' && f->value.ptr[i] != 0);
    if (f->value.len > 0) {
        nm_fuzz_check(!nm_token_is_ows((unsigned char)f->value.ptr[0]));
        nm_fuzz_check(!nm_token_is_ows((unsigned char)f->value.ptr[f->value.len - 1]));
    }
}

/* Writes status and fields as a canonical head and parses it back: the same status and fields. */
static void check_reserialized(int status, const struct nm_http1_field *f, size_t n)
{
    static char out[NM_CLIENT_MAX_HEAD_BYTES + 256];
    int len = snprintf(out, sizeof(out), "HTTP/1.1 %03d R\r\n", status);
    nm_fuzz_check(len > 0);
    size_t used = (size_t)len;
    for (size_t i = 0; i < n; i++) {
        len = snprintf(out + used, sizeof(out) - used, "%.*s: %.*s\r\n", (int)f[i].name.len,
                       f[i].name.ptr, (int)f[i].value.len, f[i].value.ptr);
        nm_fuzz_check(len > 0 && (size_t)len < sizeof(out) - used);
        used += (size_t)len;
    }
    nm_fuzz_check(used + 2 < sizeof(out));
    memcpy(out + used, "\r\n", 2);
    used += 2;
    static struct nm_http1_field again[NM_CLIENT_MAX_HEADERS];
    int st = 0;
    size_t n2 = 0, head = 0;
    nm_fuzz_check(nm_client_parse_response(nm_slice_make(out, used), &st, again,
                                           NM_CLIENT_MAX_HEADERS, &n2, &head) == 0);
    nm_fuzz_check(st == status && n2 == n && head == used);
    for (size_t i = 0; i < n; i++)
        nm_fuzz_check(same(again[i].name, f[i].name) && same(again[i].value, f[i].value));
}

static void check_content_range(struct nm_slice v)
{
    uint64_t first, last, complete;
    if (!nm_policy_content_range(v, &first, &last, &complete))
        return;
    nm_fuzz_check(first <= last && last < complete);
    char out[80];
    int n =
        snprintf(out, sizeof(out), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, complete);
    nm_fuzz_check(n > 0 && (size_t)n < sizeof(out));
    uint64_t f2, l2, c2;
    nm_fuzz_check(nm_policy_content_range(nm_slice_make(out, (size_t)n), &f2, &l2, &c2));
    nm_fuzz_check(f2 == first && l2 == last && c2 == complete);
    bool zeros = false;
    for (size_t i = 1; i < v.len; i++)
        if (v.ptr[i] == '0' && (v.ptr[i - 1] < '0' || v.ptr[i - 1] > '9') && i + 1 < v.len &&
            v.ptr[i + 1] >= '0' && v.ptr[i + 1] <= '9')
            zeros = true;
    if (!zeros)
        nm_fuzz_check(same(v, nm_slice_make(out, (size_t)n)));
}

static void check_raw(const char *buf, size_t size)
{
    struct nm_http1_field f[CAP];
    int status = 0;
    size_t n = 0, head = 0;
    if (nm_client_parse_response(nm_slice_make(buf, size), &status, f, CAP, &n, &head) != 0)
        return;
    nm_fuzz_check(head > 0 && head <= size && buf[head - 1] == '\n');
    nm_fuzz_check(status >= 100 && status <= 999 && n <= CAP);
    for (size_t i = 0; i < n; i++) {
        check_field(&f[i], buf, head);
        if (nm_slice_case_eq(f[i].name, NM_SLICE_LIT("Content-Range")))
            check_content_range(f[i].value);
    }
    /* The head alone parses the same. */
    struct nm_http1_field g[CAP];
    int status2 = 0;
    size_t n2 = 0, head2 = 0;
    nm_fuzz_check(
        nm_client_parse_response(nm_slice_make(buf, head), &status2, g, CAP, &n2, &head2) == 0);
    nm_fuzz_check(status2 == status && n2 == n && head2 == head);
    check_reserialized(status, f, n);
}

static void check_lines(const char *buf, size_t size)
{
    static struct nm_client_response r;
    static char done_head[NM_CLIENT_MAX_HEAD_BYTES];
    nm_client_response_init(&r);
    struct nm_client_head hd = {0};
    size_t done_len = 0;
    bool was_done = false;
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0;) {
        const char *nl = memchr(buf + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (buf + at)) + 1 : size - at;
        rc = nm_client_head_line(&hd, &r, nm_slice_make(buf + at, len));
        at += len;
        nm_fuzz_check(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
        nm_fuzz_check(r.head.len <= NM_CLIENT_MAX_HEAD_BYTES);
        if (rc == 0 && hd.done && !was_done) {
            was_done = true;
            done_len = r.head.len;
            memcpy(done_head, r.head.ptr, done_len);
        } else if (rc == 0 && was_done && hd.done) {
            /* Trailer fields never reach the header section. */
            nm_fuzz_check(r.head.len == done_len && memcmp(r.head.ptr, done_head, done_len) == 0);
        } else if (!hd.done) {
            was_done = false;
        }
    }
    if (rc == 0 && hd.done) {
        nm_fuzz_check(hd.status >= 100 && hd.status <= 999);
        nm_fuzz_check(memchr(r.head.ptr, '\r', r.head.len) == NULL);
        nm_fuzz_check(strchr(r.reason, '\n') == NULL && strchr(r.reason, '\r') == NULL);
        nm_fuzz_check(r.n_headers <= NM_CLIENT_MAX_HEADERS);
        for (size_t i = 0; i < r.n_headers; i++)
            check_field(&r.headers[i], r.head.ptr, r.head.len);
        /* The collected head is one whole head with exactly these fields. */
        static struct nm_http1_field g[NM_CLIENT_MAX_HEADERS];
        int status = 0;
        size_t n = 0, head = 0;
        nm_fuzz_check(nm_client_parse_response(nm_slice_make(r.head.ptr, r.head.len), &status, g,
                                               NM_CLIENT_MAX_HEADERS, &n, &head) == 0);
        nm_fuzz_check(status == hd.status && head == r.head.len && n == r.n_headers);
        for (size_t i = 0; i < n; i++)
            nm_fuzz_check(same(g[i].name, r.headers[i].name) &&
                          same(g[i].value, r.headers[i].value));
        check_reserialized(hd.status, r.headers, r.n_headers);
    }
    nm_client_response_cleanup(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_content_range(nm_slice_make(buf, size));
    check_raw(buf, size);
    check_lines(buf, size);
    return 0;
}
