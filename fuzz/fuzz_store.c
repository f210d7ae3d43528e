/* The metadata files of notmod get's cache (src/client/store.c), which anything that can write
 * the cache directory controls. Input: the first byte's low bit chooses the mode, the rest is
 *   bit 0 = 1: a metadata file. A loaded entry stores back to bytes that load to an equal entry,
 *              and those bytes are a fixed point (storing the reloaded entry gives them again).
 *   bit 0 = 0: an entry built from the bytes: '\n'-separated URL, body name and then header
 *              lines "name:value" (request fields after a line "--"), status and times from the
 *              first byte. An entry that stores reloads equal; one refused names a reason the
 *              contract gives (-EINVAL). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "client/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(struct nm_slice a, struct nm_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool same_fields(const struct nm_http1_field *a, const struct nm_http1_field *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same(a[i].name, b[i].name) || !same(a[i].value, b[i].value))
            return false;
    return true;
}

static void check_equal(const struct nm_store_entry *a, const struct nm_store_entry *b)
{
    nm_fuzz_check(same(a->url, b->url));
    nm_fuzz_check(a->status == b->status);
    nm_fuzz_check(a->request_time == b->request_time && a->response_time == b->response_time);
    nm_fuzz_check(a->body_len == b->body_len);
    nm_fuzz_check(strcmp(a->body_hash, b->body_hash) == 0);
    nm_fuzz_check(strcmp(a->body_name, b->body_name) == 0);
    nm_fuzz_check(a->n_headers == b->n_headers && a->n_request == b->n_request);
    nm_fuzz_check(same_fields(a->headers, b->headers, a->n_headers));
    nm_fuzz_check(same_fields(a->request, b->request, a->n_request));
}

/* Renders e and loads the text into *back (initialized); returns the render's result. */
static int store_and_reload(const struct nm_store_entry *e, struct nm_store_entry *back)
{
    int rc = nm_store_meta_render(e, &back->text);
    if (rc != 0)
        return rc;
    nm_fuzz_check(nm_store_meta_parse(back) == 0);
    check_equal(e, back);
    return 0;
}

static void from_file(const char *p, size_t len)
{
    static struct nm_store_entry e, back, again;
    nm_store_entry_init(&e);
    nm_store_entry_init(&back);
    nm_store_entry_init(&again);
    nm_fuzz_check(nm_buf_append(&e.text, p, len) == 0);
    if (nm_store_meta_parse(&e) == 0) {
        nm_fuzz_check(e.url.len > 0 && e.status >= 100 && e.status <= 999);
        nm_fuzz_check(store_and_reload(&e, &back) == 0);
        nm_fuzz_check(store_and_reload(&back, &again) == 0);
        nm_fuzz_check(same(nm_buf_slice(&back.text), nm_buf_slice(&again.text)));
    }
    nm_store_entry_cleanup(&again);
    nm_store_entry_cleanup(&back);
    nm_store_entry_cleanup(&e);
}

/* The next '\n'-ended piece of [*p, end). */
static struct nm_slice next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    struct nm_slice s = nm_slice_make(*p, nl ? (size_t)(nl - *p) : (size_t)(end - *p));
    *p = nl ? nl + 1 : end;
    return s;
}

static void from_parts(uint8_t flags, const char *p, size_t len)
{
    static struct nm_store_entry e, back;
    nm_store_entry_init(&e);
    nm_store_entry_init(&back);
    const char *end = p + len;
    e.url = next_line(&p, end);
    struct nm_slice name = next_line(&p, end);
    snprintf(e.body_name, sizeof(e.body_name), "%.*s", (int)name.len, name.ptr);
    static const int statuses[] = {200, 203, 206, 300, 404, 99, 1000, 0};
    e.status = statuses[(flags >> 1) & 7];
    e.request_time = flags & 0x10 ? -1 : 1700000000;
    e.response_time = flags & 0x20 ? INT64_C(999999999999999999) : 1700000001;
    e.body_len = flags & 0x40 ? UINT64_MAX : 12345;
    snprintf(e.body_hash, sizeof(e.body_hash), "%s",
             flags & 0x80 ? "0123456789abcdef0123456789ABCDEF"
                          : "0123456789abcdef0123456789abcdef");
    bool request = false;
    while (p < end) {
        struct nm_slice line = next_line(&p, end);
        if (nm_slice_eq(line, NM_SLICE_LIT("--"))) {
            request = true;
            continue;
        }
        const char *colon = memchr(line.ptr, ':', line.len);
        struct nm_http1_field f = {.name = line, .value = nm_slice_make("", 0)};
        if (colon) {
            f.name.len = (size_t)(colon - line.ptr);
            f.value = nm_slice_make(colon + 1, line.len - f.name.len - 1);
        }
        if (request && e.n_request < NM_STORE_MAX_REQUEST)
            e.request[e.n_request++] = f;
        else if (!request && e.n_headers < NM_STORE_MAX_HEADERS)
            e.headers[e.n_headers++] = f;
    }
    int rc = store_and_reload(&e, &back);
    nm_fuzz_check(rc == 0 || rc == -EINVAL);
    bool storable = e.url.len > 0 && e.status >= 100 && e.status <= 999 && e.request_time >= 0 &&
                    !(flags & 0x80);
    if (rc == 0)
        nm_fuzz_check(storable);
    nm_store_entry_cleanup(&back);
    nm_store_entry_cleanup(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        from_file((const char *)data + 1, size - 1);
    else
        from_parts(data[0], (const char *)data + 1, size - 1);
    return 0;
}
