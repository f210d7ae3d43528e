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
 *  - the target must start with "/"; control bytes (0x00-0x1F, 0x7F), SP and '#' are refused
 *    anywhere in it, query included (a fragment is never sent, RFC 9110 §7.1); other bytes,
 *    backslash among them, are taken literally: a backslash is no separator on Linux;
 *  - the query (from the first '?') is dropped;
 *  - percent-escapes are decoded once ("%252e" is the three bytes "%2e"); a bad escape ("%G1",
 *    "%4" at the end, "%u002e"), "%00", an encoded "/" ("%2F", "%2f") and any decoded control
 *    byte are refused, so an encoded "/" never becomes a separator;
 *  - dot segments are removed per RFC 3986 §5.2.4 after decoding (so "%2e%2e" is ".."), never
 *    climbing above "/", and runs of "/" collapse to one;
 *  - a trailing "/" is kept ("/dir/" stays "/dir/"), so the caller can tell a directory URL;
 *    a final "." or ".." segment leaves one too ("/a/b/.." is "/a/", RFC 3986 §5.2.4 step 2.C).
 * The result starts with "/", holds no "." or ".." segment, no "//" and no NUL, and is written
 * to out with a NUL. Returns its length, -EINVAL for a target that is not origin-form or is
 * malformed (400), or -ENAMETOOLONG (414) when the result, or the path at any point while dot
 * segments are removed left to right, exceeds NM_PATH_MAX or cap - 1. On failure out is not
 * written. Pure: no I/O, no allocation. */
int nm_path_normalize(struct nm_slice target, char *out, size_t cap);

/* True when some segment of a normalized path starts with "." (a dotfile or dot-directory),
 * except a first segment ".well-known" (RFC 8615): "/.well-known/x" is not hidden,
 * "/.well-known/.x" and "/a/.well-known/" are. */
bool nm_path_is_hidden(const char *path);

/* Percent-encodes a path for a Location field or an HTML href: unreserved characters, "/",
 * the sub-delims of RFC 3986 and ":" "@" stay (pchar, RFC 3986 §3.3); everything else,
 * '%', '?', '#', SP and every non-ASCII byte included, becomes %XX with upper-case hex. So
 * nm_path_normalize of the result gives back any normalized path. An HTML attribute still needs
 * its own escaping of '&' and the single quote. Returns the length written (NUL added) or -ENOSPC,
 * leaving out unwritten, when cap cannot hold it. */
int nm_path_encode(const char *path, char *out, size_t cap);

#endif
