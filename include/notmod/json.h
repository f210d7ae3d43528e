/* JSON string contents (RFC 8259 §7) from arbitrary bytes, for the JSON access log and
 * notmod check --json: valid UTF-8 kept as it is, every other byte escaped reversibly. */
#ifndef NOTMOD_JSON_H
#define NOTMOD_JSON_H

#include <stddef.h>

#include "notmod/slice.h"

/* The longest escape of one input byte ("\u00XX" or "\udcXX"): an out_cap of at least this
 * always makes progress, and 6 * in.len bytes always hold the whole input. */
#define NM_JSON_ESCAPE_MAX 6

/* Writes the bytes of `in` into out[0, out_cap) as the inside of a JSON string (no quotes):
 * - valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) is copied
 *   as it is, except for:
 * - '"' and '\' as \" and \\; U+0008, U+0009, U+000A, U+000C, U+000D as \b \t \n \f \r; the
 *   other controls (U+0000..U+001F, U+007F, and U+0080..U+009F) as \u00xx, lowercase hex;
 * - each byte that is not part of a valid UTF-8 sequence (always 0x80..0xFF) as \udcxx, the lone
 *   low surrogate of PEP 383's "surrogateescape": Python's
 *   json.loads(s).encode("utf-8", "surrogateescape") gives back the exact input bytes. High
 *   surrogates are never written, so no two escapes read as a surrogate pair.
 * Stops before the first character whose text does not fit, never splitting a UTF-8 sequence
 * or an escape. Sets *consumed to the input bytes written and returns the output length. When
 * in.len > 0 and out_cap >= NM_JSON_ESCAPE_MAX, *consumed is at least 1. */
size_t nm_json_escape(struct nm_slice in, char *out, size_t out_cap, size_t *consumed);

#endif
