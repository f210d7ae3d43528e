/* Capped growable buffers. */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nm_buf_init(struct nm_buf *b, size_t max_cap)
{
    *b = (struct nm_buf){.max_cap = max_cap};
}

void nm_buf_cleanup(struct nm_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

int nm_buf_reserve(struct nm_buf *b, size_t more)
{
    if (more > b->max_cap - b->len)
        return -EMSGSIZE;
    size_t need = b->len + more;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max_cap)
        cap = b->max_cap;
    char *p = realloc(b->ptr, cap);
    if (!p)
        return -ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int nm_buf_append(struct nm_buf *b, const void *data, size_t len)
{
    int rc = nm_buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->ptr + b->len, data, len);
    b->len += len;
    return 0;
}

int nm_buf_append_str(struct nm_buf *b, const char *s)
{
    return nm_buf_append(b, s, strlen(s));
}

int nm_buf_appendf(struct nm_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof(small))
        return nm_buf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = nm_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void nm_buf_consume(struct nm_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
}
