/* Well-formed UTF-8 (RFC 3629 §4), one sequence at a time: for the JSON escaper and for names
 * shown as HTML text. */
#ifndef NOTMOD_UTF8_H
#define NOTMOD_UTF8_H

#include <stddef.h>

/* The length (1 to 4) of the well-formed UTF-8 sequence at p[0, len), or 0 when p[0] does not
 * begin one (len must be at least 1). Overlong forms, the surrogates U+D800..U+DFFF and anything
 * above U+10FFFF are not well formed, nor is a sequence cut short by len. */
size_t nm_utf8_sequence_len(const unsigned char *p, size_t len);

#endif
