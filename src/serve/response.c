/* Building a response description: fields formatted into the response's own storage, content as
 * pieces of bytes or of files. */
#include "response.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void nm_response_init(struct nm_response *r)
{
    r->status = 0;
    r->n_fields = 0;
    r->n_pieces = 0;
    r->content_bytes = 0;
    r->unsent_bytes = 0;
    r->etag = nm_slice_from_cstr("");
    nm_buf_init(&r->owned, 0);
    r->text_len = 0;
}

void nm_response_cleanup(struct nm_response *r)
{
    for (size_t i = 0; i < r->n_pieces; i++)
        nm_file_release(r->pieces[i].file);
    nm_buf_cleanup(&r->owned);
    nm_response_init(r);
}

enum nm_coding nm_response_coding(const struct nm_response *r)
{
    enum nm_coding coding = NM_CODING_IDENTITY;
    for (size_t i = 0; i < r->n_fields; i++)
        if (nm_slice_case_eq(r->fields[i].name, NM_SLICE_LIT("Content-Encoding")) &&
            nm_coding_parse(r->fields[i].value, &coding) < 0)
            coding = NM_CODING_IDENTITY;
    return coding;
}

const char *nm_response_status_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int nm_response_add_field(struct nm_response *r, const char *name, const char *fmt, ...)
{
    if (r->n_fields == NM_RESPONSE_MAX_FIELDS)
        return -EMSGSIZE;
    char *at = r->text + r->text_len;
    size_t room = sizeof(r->text) - r->text_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        return -EMSGSIZE;
    r->text_len += (size_t)n;
    r->fields[r->n_fields++] =
        (struct nm_response_field){nm_slice_from_cstr(name), nm_slice_make(at, (size_t)n)};
    return 0;
}

int nm_response_add_value(struct nm_response *r, const char *name, struct nm_slice value)
{
    if (r->n_fields == NM_RESPONSE_MAX_FIELDS || value.len > sizeof(r->text) - r->text_len)
        return -EMSGSIZE;
    char *at = r->text + r->text_len;
    memcpy(at, value.ptr, value.len);
    r->text_len += value.len;
    r->fields[r->n_fields++] =
        (struct nm_response_field){nm_slice_from_cstr(name), nm_slice_make(at, value.len)};
    return 0;
}

int nm_response_add_u64(struct nm_response *r, const char *name, uint64_t v)
{
    char digits[20];
    size_t n = sizeof(digits);
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return nm_response_add_value(r, name, nm_slice_make(digits + n, sizeof(digits) - n));
}

static int add_piece(struct nm_response *r, struct nm_response_piece p)
{
    if (r->n_pieces == NM_RESPONSE_MAX_PIECES)
        return -EMSGSIZE;
    r->pieces[r->n_pieces++] = p;
    r->content_bytes += p.len;
    return 0;
}

int nm_response_add_bytes(struct nm_response *r, const void *bytes, size_t len)
{
    if (len > sizeof(r->text) - r->text_len || r->n_pieces == NM_RESPONSE_MAX_PIECES)
        return -EMSGSIZE;
    char *at = r->text + r->text_len;
    memcpy(at, bytes, len);
    r->text_len += len;
    return add_piece(r, (struct nm_response_piece){.bytes = at, .len = len});
}

int nm_response_add_borrowed(struct nm_response *r, const char *bytes, size_t len)
{
    return add_piece(r, (struct nm_response_piece){.bytes = bytes, .len = len});
}

int nm_response_add_file(struct nm_response *r, struct nm_file *f, uint64_t off, uint64_t len)
{
    if (r->n_pieces == NM_RESPONSE_MAX_PIECES)
        return -EMSGSIZE;
    return add_piece(
        r, (struct nm_response_piece){.file = nm_file_acquire(f), .off = off, .len = len});
}
