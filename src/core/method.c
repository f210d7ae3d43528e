/* Request method tokens (RFC 9110 §9). */
#include "notmod/method.h"

static const char *const names[] = {
    [NM_METHOD_OTHER] = "OTHER",     [NM_METHOD_GET] = "GET",         [NM_METHOD_HEAD] = "HEAD",
    [NM_METHOD_POST] = "POST",       [NM_METHOD_PUT] = "PUT",         [NM_METHOD_DELETE] = "DELETE",
    [NM_METHOD_CONNECT] = "CONNECT", [NM_METHOD_OPTIONS] = "OPTIONS", [NM_METHOD_TRACE] = "TRACE",
    [NM_METHOD_PATCH] = "PATCH",
};

enum nm_method nm_method_from_token(struct nm_slice token)
{
    for (size_t m = 1; m < sizeof(names) / sizeof(names[0]); m++)
        if (nm_slice_eq(token, nm_slice_from_cstr(names[m])))
            return (enum nm_method)m;
    return NM_METHOD_OTHER;
}

const char *nm_method_name(enum nm_method m)
{
    return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : names[0];
}
