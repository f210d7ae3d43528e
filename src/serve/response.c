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
    r->use_block = false;
    r->block = nm_slice_make("", 0);
    r->block_file = NULL;
    r->block_coding = NM_CODING_IDENTITY;
    nm_buf_init(&r->owned, 0);
    r->text_len = 0;
}

void nm_response_cleanup(struct nm_response *r)
{
    for (size_t i = 0; i < r->n_pieces; i++)
        nm_file_release(r->pieces[i].file);
    nm_file_release(r->block_file);
    nm_buf_cleanup(&r->owned);
    nm_response_init(r);
}

enum nm_coding nm_response_coding(const struct nm_response *r)
{
    enum nm_coding coding = r->block_coding;
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

int nm_response_set_block(struct nm_response *r, struct nm_file *f, struct nm_slice block,
                          enum nm_coding coding)
{
    if (r->n_fields || r->block_file)
        return -EINVAL;
    r->block = block;
    r->block_file = nm_file_acquire(f);
    r->block_coding = coding;
    return 0;
}

size_t nm_response_fields_len(const struct nm_response *r, size_t from)
{
    size_t len = 0;
    for (size_t i = from; i < r->n_fields; i++)
        len += r->fields[i].name.len + r->fields[i].value.len + 4;
    return len;
}

char *nm_response_put_fields(const struct nm_response *r, size_t from, char *p)
{
    for (size_t i = from; i < r->n_fields; i++) {
        const struct nm_response_field *f = &r->fields[i];
        memcpy(p, f->name.ptr, f->name.len);
        p += f->name.len;
        memcpy(p, ": ", 2);
        memcpy(p + 2, f->value.ptr, f->value.len);
        p += 2 + f->value.len;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    return p;
}

size_t nm_response_block_fields(const struct nm_response *r, struct nm_response_field *out,
                                size_t cap)
{
    const char *p = r->block.ptr, *end = r->block.ptr + r->block.len;
    size_t n = 0;
    while (p < end && n < cap) {
        /* Lines the handler rendered: "Name: value\r\n", a name never holds ':'. */
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = colon ? memchr(colon, '\r', (size_t)(end - colon)) : NULL;
        if (!eol || colon + 2 > eol)
            break;
        out[n++] = (struct nm_response_field){nm_slice_make(p, (size_t)(colon - p)),
                                              nm_slice_make(colon + 2, (size_t)(eol - colon - 2))};
        p = eol + 2;
    }
    return n;
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
