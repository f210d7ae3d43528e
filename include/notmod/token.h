/* The common grammar of field values (RFC 9110 §5.6): tchar and token (§5.6.2), OWS (§5.6.3) and
 * comma-separated lists (§5.6.1), one definition for the message parsers and the field parsers. */
#ifndef NOTMOD_TOKEN_H
#define NOTMOD_TOKEN_H

#include <stdbool.h>

#include "notmod/slice.h"

/* Nothing here fails or keeps a slice: the predicates read only their argument, and the list
 * step returns slices of the list it is given, which live as long as that list's buffer. */

/* tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" /
 * "~" / DIGIT / ALPHA (RFC 9110 §5.6.2). False for every byte above 0x7f. */
bool nm_token_is_tchar(unsigned char c);

/* OWS bytes: SP or HTAB (RFC 9110 §5.6.3). */
bool nm_token_is_ows(unsigned char c);

/* token = 1*tchar (RFC 9110 §5.6.2): s is non-empty and every byte is a tchar. */
bool nm_token_is_token(struct nm_slice s);

/* One step through a comma-separated list as a recipient reads it (RFC 9110 §5.6.1): writes the
 * element that starts at *pos, without its surrounding OWS and possibly empty, to *elem, moves
 * *pos past the comma that ends it, and returns true; returns false once the list is used up.
 * Start with *pos = 0. A list with n commas has n + 1 elements (an empty list has one, empty).
 * Quoted strings are not recognized: for lists of tokens and numbers. */
bool nm_token_list_next(struct nm_slice list, size_t *pos, struct nm_slice *elem);

/* True when an element of the list equals `token`, ASCII case-insensitively: the test for
 * connection options (§7.6.1) and transfer codings (§10.1.4), whose names are case-insensitive. */
bool nm_token_list_has(struct nm_slice list, struct nm_slice token);

#endif
