/* A response as the handler decides it, in no protocol's bytes: a status, header fields in order,
 * and content as pieces, each either bytes or a part of a file. The HTTP/1.1 connection renders
 * it (conn.c); HTTP/2 will render the same description. */
#ifndef NOTMOD_RESPONSE_H
#define NOTMOD_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "filecache.h"
#include "notmod/coding.h"
#include "notmod/slice.h"

#define NM_RESPONSE_MAX_FIELDS 48 /* the server's own and a path rule's (config.h) */
#define NM_RESPONSE_MAX_RANGES 16 /* ranges of one multipart/byteranges response */
/* A multipart/byteranges body: a part head and a range each, then the closing delimiter. */
#define NM_RESPONSE_MAX_PIECES (2 * NM_RESPONSE_MAX_RANGES + 1)
/* Field values and generated content: a Location holds an encoded path (3 * NM_PATH_MAX) and the
 * query (the request target is at most 8 KiB); the part heads of a multipart body come to 5 KiB;
 * the path rules' fields to 8 KiB (NM_RULE_HEADER_BYTES). */
#define NM_RESPONSE_TEXT_BYTES (32u << 10)

struct nm_response_field {
    struct nm_slice name;
    struct nm_slice value;
};

/* Content bytes: `len` bytes at `bytes` (living as long as the response: whoever sends them copies
 * them), or `len` bytes of `file` from `off` (a reference the response holds; file->data is set
 * for a file held in memory, whose own bytes are then sent). */
struct nm_response_piece {
    const char *bytes;
    struct nm_file *file;
    uint64_t off;
    uint64_t len;
};

/* Lives where nm_response_init put it: the slices point into it, so it is never copied. */
struct nm_response {
    int status;
    struct nm_response_field fields[NM_RESPONSE_MAX_FIELDS];
    size_t n_fields;
    struct nm_response_piece pieces[NM_RESPONSE_MAX_PIECES];
    size_t n_pieces;
    uint64_t content_bytes; /* the sum of the pieces' lengths */
    struct nm_slice etag;   /* the ETag field's value, for the access log; empty when none */
    /* Head fields rendered once for a file version (nm_file.head): "Name: value\r\n" lines that
     * go before `fields`, in that order; empty when none. The handler sets them only when the
     * caller asked (use_block, HTTP/1.1: an HTTP/2 response is all fields), they live while
     * block_file (a reference the response holds) does and until the handler describes its next
     * response for that file, and block_coding is the Content-Encoding among them. */
    bool use_block;
    struct nm_slice block;
    struct nm_file *block_file;
    enum nm_coding block_coding;
    uint64_t unsent_bytes; /* a 304: the content a 200 would have carried (for the metrics) */
    struct nm_buf owned;   /* a generated body (a listing); freed by nm_response_cleanup */
    size_t text_len;
    char text[NM_RESPONSE_TEXT_BYTES]; /* field values and short generated content */
};

/* Starts an empty response (status 0, use_block false) without touching its text storage. */
void nm_response_init(struct nm_response *r);

/* Releases the file references of the pieces and the owned body; the response is empty after. */
void nm_response_cleanup(struct nm_response *r);

/* The content coding its Content-Encoding field (among the fields or in the block) names,
 * identity when it has none. */
enum nm_coding nm_response_coding(const struct nm_response *r);

/* The reason phrase of a status code (RFC 9110 §15), "Unknown" for one this server never sends. */
const char *nm_response_status_phrase(int status);

/* Adds a field whose value is formatted into the response's text. `name` is a static string, or
 * one that outlives the response (a path rule's field name).
 * Returns 0, or -EMSGSIZE when the fields or the text are full (nothing is added). */
__attribute__((format(printf, 3, 4))) int
nm_response_add_field(struct nm_response *r, const char *name, const char *fmt, ...);

/* Adds a field whose value is `value`, copied into the response's text without formatting: the
 * fields of every response (validators, lengths, types) take this path. Returns 0, or -EMSGSIZE
 * when the fields or the text are full (nothing is added). */
int nm_response_add_value(struct nm_response *r, const char *name, struct nm_slice value);

/* Adds a field whose value is the decimal digits of v. Returns 0 or -EMSGSIZE. */
int nm_response_add_u64(struct nm_response *r, const char *name, uint64_t v);

/* Sets the block: `block` (bytes of f->head) with f's Content-Encoding `coding`, taking a reference
 * to f. The response must have no fields yet (the block goes before them): -EINVAL if it has. */
int nm_response_set_block(struct nm_response *r, struct nm_file *f, struct nm_slice block,
                          enum nm_coding coding);

/* The bytes the fields from index `from` on take as "Name: value\r\n" lines. */
size_t nm_response_fields_len(const struct nm_response *r, size_t from);

/* Writes the fields from index `from` on as "Name: value\r\n" lines at p, which has room for
 * nm_response_fields_len(r, from) bytes, and returns the end of what it wrote. */
char *nm_response_put_fields(const struct nm_response *r, size_t from, char *p);

/* The block's lines as fields (slices into the block) in out[0..cap): for a renderer that takes
 * fields one by one (HTTP/2). Returns how many; lines past cap are left out. */
size_t nm_response_block_fields(const struct nm_response *r, struct nm_response_field *out,
                                size_t cap);

/* Adds content bytes, copied into the response's text. Returns 0, or -EMSGSIZE when the pieces or
 * the text are full (nothing is added). */
int nm_response_add_bytes(struct nm_response *r, const void *bytes, size_t len);

/* Adds content bytes that are not copied: they must live as long as the response (the bytes of
 * r->owned, which must not grow afterwards). Returns 0 or -EMSGSIZE. */
int nm_response_add_borrowed(struct nm_response *r, const char *bytes, size_t len);

/* Adds `len` bytes of f from `off`, taking a reference to f. Returns 0 or -EMSGSIZE. */
int nm_response_add_file(struct nm_response *r, struct nm_file *f, uint64_t off, uint64_t len);

#endif
