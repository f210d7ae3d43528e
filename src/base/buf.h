/* A growable byte buffer with a hard cap: growing past the cap is an error, never a silent
 * truncation or an unbounded allocation. */
#ifndef NOTMOD_BUF_H
#define NOTMOD_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "notmod/slice.h"

struct nm_buf {
    char *ptr;
    size_t len;
    size_t cap;     /* bytes allocated */
    size_t max_cap; /* hard cap on len */
};

/* Starts an empty buffer that will never hold more than max_cap bytes. Allocates nothing. */
void nm_buf_init(struct nm_buf *b, size_t max_cap);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void nm_buf_cleanup(struct nm_buf *b);

/* Makes room for `more` bytes after len. Returns 0, -EMSGSIZE past max_cap, or -ENOMEM. */
int nm_buf_reserve(struct nm_buf *b, size_t more);

/* Appends bytes. Returns 0, or -EMSGSIZE / -ENOMEM leaving the buffer as it was. */
int nm_buf_append(struct nm_buf *b, const void *data, size_t len);
int nm_buf_append_str(struct nm_buf *b, const char *s);

/* Appends printf output. Returns 0, or -EMSGSIZE / -ENOMEM leaving the buffer as it was. */
__attribute__((format(printf, 2, 3))) int nm_buf_appendf(struct nm_buf *b, const char *fmt, ...);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void nm_buf_consume(struct nm_buf *b, size_t n);

static inline struct nm_slice nm_buf_slice(const struct nm_buf *b)
{
    return nm_slice_make(b->ptr, b->len);
}

#endif
