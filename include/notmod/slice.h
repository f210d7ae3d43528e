/* Borrowed byte ranges and multi-line field values: the currency of the pure core. */
#ifndef NOTMOD_SLICE_H
#define NOTMOD_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A borrowed run of bytes, not NUL-terminated. It lives as long as the buffer it points into. */
struct nm_slice {
    const char *ptr;
    size_t len;
};

/* A field value as received: one slice per field line with that name, in order. RFC 9110 §5.3
 * makes repeated lines one comma-separated list. n_lines == 0 means the field is absent. */
struct nm_field {
    const struct nm_slice *lines;
    size_t n_lines;
};

#define NM_SLICE_LIT(s) ((struct nm_slice){(s), sizeof(s) - 1})

/* The same, as an initializer for static tables. */
#define NM_SLICE_INIT(s)                                                                           \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

static inline struct nm_slice nm_slice_make(const char *ptr, size_t len)
{
    return (struct nm_slice){ptr, len};
}

static inline struct nm_slice nm_slice_from_cstr(const char *s)
{
    return (struct nm_slice){s, strlen(s)};
}

static inline bool nm_slice_eq(struct nm_slice a, struct nm_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ASCII case-insensitive equality, for field names and tokens (RFC 9110 §5.1). */
bool nm_slice_case_eq(struct nm_slice a, struct nm_slice b);

/* The slice without leading and trailing OWS (SP and HTAB, RFC 9110 §5.6.3). */
struct nm_slice nm_slice_trim_ows(struct nm_slice s);

/* The value of a hexadecimal digit (either case), or -1 for any other byte. */
static inline int nm_hex_digit_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool nm_field_is_present(struct nm_field f)
{
    return f.n_lines > 0;
}

#endif
