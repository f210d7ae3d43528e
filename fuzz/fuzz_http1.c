/* Fuzzes the HTTP/1.1 request-head parser and the chunked decoder: slices stay inside the input,
 * results are deterministic, no proper prefix of a head parses, and the decoder never consumes
 * more than it was given nor depends on how its input is split. Each input is parsed under small
 * limits (reached by short inputs) and under the server's defaults (an 8 KiB target, a 32 KiB
 * head: scripts/fuzz-run gives this target a -max_len beyond them). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notmod/http1.h"
#include "notmod/token.h"

static const struct nm_http1_limits small_limits = {.max_target_bytes = 128,
                                                    .max_head_bytes = 1024};
/* The defaults of src/serve/config.c. */
static const struct nm_http1_limits server_limits = {.max_target_bytes = 8192,
                                                     .max_head_bytes = 32768};

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* A documented error of the request parser, with the status it is answered with. */
static bool is_request_error(int rc)
{
    switch (rc) {
    case -EBADMSG:
    case -ENAMETOOLONG:
    case -EOPNOTSUPP:
    case -EMSGSIZE:
    case -ENOSYS:
    case -EPROTONOSUPPORT:
        return nm_http1_status_of(rc) != 500;
    default:
        return false;
    }
}

/* The slice lies inside buf[0..head) (the parsed head, not the bytes after it). */
static void check_inside(struct nm_slice s, const char *buf, size_t head)
{
    if (s.len == 0)
        return;
    check(s.ptr != NULL);
    check(s.ptr >= buf && s.len <= head && (size_t)(s.ptr - buf) <= head - s.len);
}

static void check_request(const struct nm_http1_request *r, const char *buf, size_t head,
                          const struct nm_http1_limits *limits)
{
    check(r->method_token.len > 0);
    check_inside(r->method_token, buf, head);
    for (size_t i = 0; i < r->method_token.len; i++)
        check(nm_token_is_tchar((unsigned char)r->method_token.ptr[i]));
    check(r->method == nm_method_from_token(r->method_token));
    check(r->target.len > 0 && r->target.len <= limits->max_target_bytes);
    check_inside(r->target, buf, head);
    for (size_t i = 0; i < r->target.len; i++) {
        unsigned char c = (unsigned char)r->target.ptr[i];
        check(c > 0x20 && c < 0x7f);
    }
    check(r->minor_version == 0 || r->minor_version == 1);
    check(r->n_fields <= NM_HTTP1_MAX_FIELDS);
    for (size_t i = 0; i < r->n_fields; i++) {
        struct nm_slice n = r->fields[i].name, v = r->fields[i].value;
        check(n.len > 0);
        check_inside(n, buf, head);
        for (size_t k = 0; k < n.len; k++)
            check(nm_token_is_tchar((unsigned char)n.ptr[k]));
        check_inside(v, buf, head);
        for (size_t k = 0; k < v.len; k++) {
            unsigned char c = (unsigned char)v.ptr[k];
            check(c != '\r' && c != '\n' && c != '\0');
        }
        if (v.len > 0) {
            check(v.ptr[0] != ' ' && v.ptr[0] != '\t');
            check(v.ptr[v.len - 1] != ' ' && v.ptr[v.len - 1] != '\t');
        }
    }
    check_inside(r->host, buf, head);
    check(r->minor_version == 0 || nm_http1_find(r, NM_SLICE_LIT("host")).ptr != NULL);
    check(!(r->has_content_length && r->chunked));
    check(!r->chunked || r->minor_version == 1);
    check(!r->expect_continue || r->minor_version == 1);
}

static bool same_slice(struct nm_slice a, struct nm_slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool same_request(const struct nm_http1_request *a, const struct nm_http1_request *b)
{
    if (!same_slice(a->method_token, b->method_token) || a->method != b->method ||
        !same_slice(a->target, b->target) || a->minor_version != b->minor_version ||
        a->n_fields != b->n_fields || !same_slice(a->host, b->host) ||
        a->has_content_length != b->has_content_length || a->content_length != b->content_length ||
        a->chunked != b->chunked || a->keep_alive != b->keep_alive ||
        a->expect_continue != b->expect_continue)
        return false;
    for (size_t i = 0; i < a->n_fields; i++)
        if (!same_slice(a->fields[i].name, b->fields[i].name) ||
            !same_slice(a->fields[i].value, b->fields[i].value))
            return false;
    return true;
}

static void check_chunked(const char *buf, size_t len)
{
    struct nm_http1_chunked d;
    nm_http1_chunked_init(&d);
    bool done = false;
    int64_t whole = nm_http1_chunked_feed(&d, buf, len, &done);
    check(whole == -EBADMSG || whole == -EFBIG || (whole >= 0 && (uint64_t)whole <= len));
    check(whole < 0 || done || (size_t)whole == len);
    bool whole_done = whole >= 0 && done;

    /* One byte at a time must agree with one call over everything. */
    nm_http1_chunked_init(&d);
    done = false;
    int64_t total = 0;
    for (size_t i = 0; i < len && !done; i++) {
        int64_t rc = nm_http1_chunked_feed(&d, buf + i, 1, &done);
        if (rc < 0) {
            total = rc;
            break;
        }
        check(rc == 1);
        total += rc;
    }
    check(total == whole);
    check((total >= 0 && done) == whole_done);
    if (total >= 0 && done) {
        /* A finished decoder takes nothing more. */
        int64_t more = nm_http1_chunked_feed(&d, buf, len, &done);
        check(more == 0 && done);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks one parse of buf under `limits`; `prefix_step` spaces the proper prefixes tried (1: all
 * of them; larger for long heads, whose every prefix would cost a quadratic time). */
static void check_limits(const char *buf, size_t size, const struct nm_http1_limits *limits,
                         size_t prefix_step)
{
    static struct nm_http1_request r1, r2, rp;
    const char *reason = NULL;

    int rc = nm_http1_parse_request(buf, size, limits, &r1, &reason);
    if (rc < 0) {
        check(is_request_error(rc));
        check(reason != NULL && reason[0] != '\0');
    } else if (rc == 0) {
        check(size < limits->max_head_bytes);
    } else {
        check((size_t)rc <= size && (size_t)rc <= limits->max_head_bytes);
        check(buf[rc - 1] == '\n');
        check_request(&r1, buf, (size_t)rc, limits);
    }

    /* Determinism: no hidden state between calls. */
    const char *reason2 = NULL;
    int again = nm_http1_parse_request(buf, size, limits, &r2, &reason2);
    check(again == rc);
    if (rc < 0)
        check(reason2 == reason);
    if (rc > 0)
        check(same_request(&r1, &r2));

    if (rc <= 0)
        return;

    /* The head is self-delimiting: exactly its bytes give the same parse, and no shorter prefix
     * parses at all (the last bytes before the end are always among those tried). */
    again = nm_http1_parse_request(buf, (size_t)rc, limits, &r2, &reason2);
    check(again == rc);
    check(same_request(&r1, &r2));
    for (size_t k = 0; k<(size_t)rc; k += (size_t)rc - k> 8 ? prefix_step : 1)
        check(nm_http1_parse_request(buf, k, limits, &rp, &reason2) <= 0);

    if (r1.chunked && limits == &small_limits)
        check_chunked(buf + rc, size - (size_t)rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    check_limits(buf, size, &small_limits, 1);
    check_limits(buf, size, &server_limits, size / 256 + 1);
    return 0;
}
