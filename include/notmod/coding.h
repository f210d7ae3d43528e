/* Content codings (RFC 9110 §8.4.1) and their negotiation through Accept-Encoding (§12.5.3) with
 * quality values (§12.4.2): which precompressed sidecar, if any, answers a request. */
#ifndef NOTMOD_CODING_H
#define NOTMOD_CODING_H

#include <stddef.h>

#include "notmod/slice.h"

/* The codings notmod can send. identity is 0; the others are sidecar files beside the original. */
enum nm_coding {
    NM_CODING_IDENTITY = 0,
    NM_CODING_BR,
    NM_CODING_ZSTD,
    NM_CODING_GZIP,
    NM_CODING_COUNT
};

/* A coding's bit in an `available` mask. */
#define NM_CODING_BIT(c) (1u << (c))

/* The coding's registered name, lowercase: "identity", "br", "zstd", "gzip". A static string;
 * NULL for a value outside the enum. */
const char *nm_coding_name(enum nm_coding c);

/* The sidecar file's suffix: "", ".br", ".zst", ".gz". A static string; NULL for a value outside
 * the enum. */
const char *nm_coding_suffix(enum nm_coding c);

/* Parses one coding name (case-insensitive; "x-gzip" is gzip, RFC 9110 §8.4.1.3). Returns 0 and
 * *out, or -EINVAL for a name notmod does not produce (*out untouched). No OWS is skipped. */
int nm_coding_parse(struct nm_slice name, enum nm_coding *out);

/* The coding to send: among the codings in `available` (a mask of NM_CODING_BIT; identity is
 * always available and need not be in it), the one with the highest quality in the request's
 * Accept-Encoding field (`field`, all its lines, one list per RFC 9110 §5.3), ties broken by
 * `preference` (the server's order, n entries, identity implicitly last: an identity entry, or one
 * outside the enum, is skipped; an available coding not in `preference` ranks after those listed,
 * in enum order, but before identity).
 *
 * - No Accept-Encoding field at all (field.n_lines == 0): identity (the server does not guess,
 *   although §12.5.3 would allow any coding).
 * - An empty field value (every line empty or only commas): identity only.
 * - "*" gives its quality to every coding not named explicitly.
 * - identity is acceptable unless excluded by "identity;q=0", or by "*;q=0" when identity is not
 *   named. Not named, it takes the quality of "*" when present, else the lowest non-zero quality
 *   (0.001): a coding the client asks for by name is preferred to no coding at all.
 * - Quality values exactly as §12.4.2: weight = OWS ";" OWS ("q" / "Q") "=" qvalue, qvalue
 *   "0" [ "." 0*3DIGIT ] or "1" [ "." 0*3("0") ]. A malformed qvalue, or any malformed or other
 *   parameter, makes that one element be ignored, never the whole field.
 * - A coding named more than once takes the highest of its qualities (so does "*").
 * - Unknown codings and empty elements are ignored.
 *
 * Returns the coding (>= 0, always identity or in `available`), or -ENOENT when nothing
 * available is acceptable (the server answers 406, or sends identity as §12.5.3 also allows).
 * Never returns a coding whose quality is 0. */
int nm_coding_negotiate(struct nm_field field, unsigned available, const enum nm_coding *preference,
                        size_t n);

#endif
