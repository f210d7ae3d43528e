/* Request methods (RFC 9110 §9): the registered ones by token, everything else as OTHER. */
#ifndef NOTMOD_METHOD_H
#define NOTMOD_METHOD_H

#include "notmod/slice.h"

enum nm_method {
    NM_METHOD_OTHER = 0,
    NM_METHOD_GET,
    NM_METHOD_HEAD,
    NM_METHOD_POST,
    NM_METHOD_PUT,
    NM_METHOD_DELETE,
    NM_METHOD_CONNECT,
    NM_METHOD_OPTIONS,
    NM_METHOD_TRACE,
    NM_METHOD_PATCH,
};

/* Maps a method token to its enum; methods are case-sensitive (§9.1), so "get" is OTHER. */
enum nm_method nm_method_from_token(struct nm_slice token);

/* The method's token ("GET"), or "OTHER" for NM_METHOD_OTHER. */
const char *nm_method_name(enum nm_method m);

#endif
