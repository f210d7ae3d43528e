/* Fuzzes the HTTP/1.1 response-head parser: it never reads past the length it is given, a status
 * is 100..999, slices stay inside the head, no proper prefix of a head parses, a parsed head
 * written out again parses to the same result, and a field cap only moves lines to n_dropped.
 * Interim 1xx heads are followed into the heads after them. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notmod/http1.h"
#include "notmod/token.h"

#define MAX_FIELDS 128
#define SMALL_CAP 3
#define MAX_HEADS 4

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Parses data[0..len) from a copy that ends exactly at the end of its allocation, so that any
 * read past len is a heap overflow under ASan. The slices in *r point into `copy`. */
static int parse_exact(const char *data, size_t len, char *copy, size_t copy_len,
                       struct nm_http1_field *fields, size_t cap, struct nm_http1_response *r)
{
    char *at = copy + copy_len - len;
    memcpy(at, data, len);
    return nm_http1_parse_response(at, len, fields, cap, r);
}

static void check_inside(struct nm_slice s, const char *buf, size_t head)
{
    if (s.len == 0)
        return;
    check(s.ptr != NULL);
    check(s.ptr >= buf && s.len <= head && (size_t)(s.ptr - buf) <= head - s.len);
}

static void check_response(const struct nm_http1_response *r, const char *buf, size_t head)
{
    check(r->status >= 100 && r->status <= 999);
    check(r->minor_version == 0 || r->minor_version == 1);
    check_inside(r->reason, buf, head);
    for (size_t i = 0; i < r->reason.len; i++) {
        unsigned char c = (unsigned char)r->reason.ptr[i];
        check(c != '\r' && c != '\n' && c != '\0');
    }
    check(r->n_fields <= MAX_FIELDS);
    for (size_t i = 0; i < r->n_fields; i++) {
        struct nm_slice n = r->fields[i].name, v = r->fields[i].value;
        check(nm_token_is_token(n));
        check_inside(n, buf, head);
        check_inside(v, buf, head);
        for (size_t k = 0; k < v.len; k++) {
            unsigned char c = (unsigned char)v.ptr[k];
            check(c != '\r' && c != '\n' && c != '\0');
        }
        if (v.len > 0) {
            check(!nm_token_is_ows((unsigned char)v.ptr[0]));
            check(!nm_token_is_ows((unsigned char)v.ptr[v.len - 1]));
        }
    }
}

static bool same_bytes(struct nm_slice a, struct nm_slice b)
{
    return nm_slice_eq(a, b);
}

static bool same_response(const struct nm_http1_response *a, const struct nm_http1_response *b)
{
    if (a->status != b->status || a->minor_version != b->minor_version ||
        !same_bytes(a->reason, b->reason) || a->n_fields != b->n_fields ||
        a->n_dropped != b->n_dropped)
        return false;
    for (size_t i = 0; i < a->n_fields; i++)
        if (!same_bytes(a->fields[i].name, b->fields[i].name) ||
            !same_bytes(a->fields[i].value, b->fields[i].value))
            return false;
    return true;
}

/* Writes the head in its canonical form: CRLF line ends, "name: value" fields. Returns its
 * length, or 0 when it does not fit. */
static size_t serialize(const struct nm_http1_response *r, char *out, size_t cap)
{
    int n = snprintf(out, cap, "HTTP/1.%d %03d %.*s\r\n", r->minor_version, r->status,
                     (int)r->reason.len, r->reason.ptr);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    for (size_t i = 0; i < r->n_fields; i++) {
        const struct nm_http1_field *f = &r->fields[i];
        n = snprintf(out + len, cap - len, "%.*s: %.*s\r\n", (int)f->name.len, f->name.ptr,
                     (int)f->value.len, f->value.ptr);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    if (cap - len < 3)
        return 0;
    memcpy(out + len, "\r\n", 3);
    return len + 2;
}

/* Checks one head at data[0..size); returns its length when it parsed, else 0. */
static size_t check_head(const char *data, size_t size, char *copy, struct nm_http1_response *r1)
{
    static struct nm_http1_field f1[MAX_FIELDS], f2[MAX_FIELDS], fs[SMALL_CAP];
    static char out[70000];
    struct nm_http1_response r2, rs;

    int rc = parse_exact(data, size, copy, size, f1, MAX_FIELDS, r1);
    check(rc >= 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EMSGSIZE);
    const char *head = copy;
    if (rc <= 0)
        return 0;
    check((size_t)rc <= size);
    check(head[rc - 1] == '\n');
    check_response(r1, head, (size_t)rc);

    /* Determinism, and self-delimitation: exactly the head's bytes give the same result and no
     * proper prefix of them parses. */
    check(nm_http1_parse_response(head, size, f2, MAX_FIELDS, &r2) == rc);
    check(same_response(r1, &r2));
    check(nm_http1_parse_response(head, (size_t)rc, f2, MAX_FIELDS, &r2) == rc);
    check(same_response(r1, &r2));
    char *prefix = malloc(size);
    check(prefix != NULL);
    for (size_t k = 0; k < (size_t)rc; k++)
        check(parse_exact(data, k, prefix, size, f2, MAX_FIELDS, &r2) <= 0);
    free(prefix);

    /* A smaller cap keeps the first lines and counts the rest. */
    check(nm_http1_parse_response(head, (size_t)rc, fs, SMALL_CAP, &rs) == rc);
    size_t total = r1->n_fields + r1->n_dropped;
    check(rs.n_fields == (total < SMALL_CAP ? total : SMALL_CAP));
    check(rs.n_fields + rs.n_dropped == total);
    for (size_t i = 0; i < rs.n_fields; i++)
        check(same_bytes(rs.fields[i].name, r1->fields[i].name) &&
              same_bytes(rs.fields[i].value, r1->fields[i].value));

    /* Written out again, the head parses to the same status, reason and fields. */
    if (r1->n_dropped == 0) {
        size_t len = serialize(r1, out, sizeof(out));
        if (len > 0) {
            check(nm_http1_parse_response(out, len, f2, MAX_FIELDS, &r2) == (int)len);
            check(same_response(r1, &r2));
        }
    }
    return (size_t)rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    for (int heads = 0; heads < MAX_HEADS; heads++) {
        char *copy = malloc(size ? size : 1);
        check(copy != NULL);
        struct nm_http1_response r;
        size_t n = check_head(p, size, copy, &r);
        bool next = n > 0 && nm_http1_response_is_interim(&r);
        free(copy);
        if (!next)
            break;
        check(r.status >= 100 && r.status < 200 && r.status != 101);
        p += n;
        size -= n;
    }
    return 0;
}
