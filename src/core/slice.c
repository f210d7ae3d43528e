/* Slice helpers shared by the pure HTTP modules. */
#include "notmod/slice.h"

#include "notmod/token.h"

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

bool nm_slice_case_eq(struct nm_slice a, struct nm_slice b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (lower((unsigned char)a.ptr[i]) != lower((unsigned char)b.ptr[i]))
            return false;
    return true;
}

struct nm_slice nm_slice_trim_ows(struct nm_slice s)
{
    while (s.len > 0 && nm_token_is_ows((unsigned char)s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && nm_token_is_ows((unsigned char)s.ptr[s.len - 1]))
        s.len--;
    return s;
}
