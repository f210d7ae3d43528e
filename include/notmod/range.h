/* Byte ranges (RFC 9110 §14.1, §14.2): parsing a Range field and evaluating it against a length. */
#ifndef NOTMOD_RANGE_H
#define NOTMOD_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "notmod/slice.h"

/* A satisfiable range, both ends inclusive: first <= last < length. */
struct nm_range {
    uint64_t first;
    uint64_t last;
};

/* Most range-specs accepted in one field; more makes the whole field ignored (CVE-2011-3192). */
#define NM_RANGE_MAX_SPECS 100

enum nm_range_result {
    NM_RANGE_IGNORE = 0,    /* absent, another unit, a syntax error or an abusive set: send 200 */
    NM_RANGE_SATISFIABLE,   /* send 206 with the ranges written to out */
    NM_RANGE_UNSATISFIABLE, /* send 416 with Content-Range: bytes * /length */
};

/* Evaluates a Range field (one line; more than one line is ignored) against a representation of
 * `length` bytes:
 *   Range = "bytes" "=" 1#range-spec (the unit is case-insensitive, §14.1), range-spec =
 *   first-pos "-" [ last-pos ] / "-" suffix-length, lists with OWS and empty elements (OWS is
 *   also accepted before the first element; none around "=" or inside a range-spec).
 * Any syntax error, another unit, or first-pos > last-pos (compared exactly, however many digits)
 * ignores the whole field (§14.1.1: one invalid range-spec makes the ranges-specifier invalid).
 * Numbers of any length are accepted: values past UINT64_MAX saturate, so a huge first-pos is
 * unsatisfiable and a huge last-pos or suffix-length reaches the end (§14.1.2 overflow MUST).
 * A last-pos past the end is clamped to length - 1; a suffix longer than the representation
 * selects all of it; a range with first-pos >= length, or a suffix of zero, is unsatisfiable.
 * Zero length (§14.1.2): every int-range and "-0" is unsatisfiable, so such sets give
 * UNSATISFIABLE (416, Content-Range: bytes * /0). A non-zero suffix-range is the one form the
 * RFC still calls satisfiable, but it selects the whole, empty, representation, which no 206
 * Content-Range can express: a set containing one is IGNOREd (200 with the empty body, which
 * §14.2 allows: "MAY ignore a Range header field when the selected representation has no
 * content").
 * Satisfiable ranges that overlap or touch are coalesced into one (§14.1.1 allows it whatever
 * their order); the rest keep the order their range-specs had in the field, a coalesced range
 * taking the place of its earliest member, as §15.3.7.2 asks of multipart parts. The result is
 * written to out[0..*n_out). When the coalesced set has more than `cap` ranges, when more than
 * NM_RANGE_MAX_SPECS specs were sent, or when the requested bytes add up to more than twice
 * `length` (many overlapping ranges), the field is ignored. *n_out and out are written only for
 * SATISFIABLE (out may be NULL when cap is 0). Pure: no I/O, no allocation. */
enum nm_range_result nm_range_evaluate(struct nm_field range, uint64_t length, struct nm_range *out,
                                       size_t cap, size_t *n_out);

#endif
