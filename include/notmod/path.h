/* Request paths: from an origin-form request-target to a normalized, decoded path that cannot
 * leave the served root (RFC 9112 §3.2.1, RFC 3986 §2.1 and §5.2.4). */
#ifndef NOTMOD_PATH_H
#define NOTMOD_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "notmod/slice.h"

/* Longest normalized path accepted, without the NUL. */
#define NM_PATH_MAX 4096

/* Normalizes an origin-form target ("/a/b?q"):
 *  - the query (from the first '?') is dropped; a fragment ('#') is refused;
 *  - percent-escapes are decoded; a bad escape, "%00", an encoded "/" ("%2F") and any decoded
 *    control byte (0x00-0x1F, 0x7F) are refused, so an encoded "/" never becomes a separator;
 *  - dot segments are removed per RFC 3986 §5.2.4, never climbing above "/", and runs of "/"
 *    collapse to one;
 *  - a trailing "/" is kept ("/dir/" stays "/dir/"), so the caller can tell a directory URL.
 * The result starts with "/" and is written to out with a NUL. Returns its length, -EINVAL for a
 * target that is not origin-form or is malformed (400), or -ENAMETOOLONG when it exceeds
 * NM_PATH_MAX or cap - 1 (414). Pure: no I/O, no allocation. */
int nm_path_normalize(struct nm_slice target, char *out, size_t cap);

/* True when some segment of a normalized path starts with "." (a dotfile or dot-directory),
 * except "/.well-known/" at the root (RFC 8615). */
bool nm_path_is_hidden(const char *path);

/* Percent-encodes a path for a Location field or an HTML href: unreserved characters, "/" and
 * the sub-delims of RFC 3986 stay, everything else becomes %XX. Returns the length written
 * (NUL added) or -ENOSPC. */
int nm_path_encode(const char *path, char *out, size_t cap);

#endif
