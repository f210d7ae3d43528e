/* The common grammar of field values (RFC 9110 §5.6): tchar and token, OWS, list elements. */
#include "notmod/token.h"

#include <stdint.h>

/* Bit c of row c / 32 is set when byte c is a tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~",
 * digits and letters. A constant table, read only, is no global state. */
static const uint32_t tchar_bits[8] = {
    0x00000000, /* 0x00-0x1f: controls */
    0x03ff6cfa, /* 0x20-0x3f: ! # $ % & ' * + - . 0-9 */
    0xc7fffffe, /* 0x40-0x5f: A-Z ^ _ */
    0x57ffffff, /* 0x60-0x7f: ` a-z | ~ */
    0,          0, 0, 0,
};

bool nm_token_is_tchar(unsigned char c)
{
    return (tchar_bits[c >> 5] >> (c & 31)) & 1u;
}

bool nm_token_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

bool nm_token_is_token(struct nm_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!nm_token_is_tchar((unsigned char)s.ptr[i]))
            return false;
    return true;
}

bool nm_token_list_next(struct nm_slice list, size_t *pos, struct nm_slice *elem)
{
    size_t start = *pos;
    if (start > list.len)
        return false;
    size_t end = start;
    while (end < list.len && list.ptr[end] != ',')
        end++;
    /* An absent value may have no buffer at all: no offset is added to a null pointer. */
    const char *p = list.len > 0 ? list.ptr + start : list.ptr;
    *elem = nm_slice_trim_ows(nm_slice_make(p, end - start));
    *pos = end + 1;
    return true;
}

bool nm_token_list_has(struct nm_slice list, struct nm_slice token)
{
    size_t pos = 0;
    struct nm_slice e;
    while (nm_token_list_next(list, &pos, &e))
        if (nm_slice_case_eq(e, token))
            return true;
    return false;
}
