/* Numbers in option values: plain decimal digits, nothing else, so that a value is what it
 * reads as (strtoll would also take " 5", "+5" and "-0"). */
#ifndef NOTMOD_NUM_H
#define NOTMOD_NUM_H

#include <stdint.h>

/* Parses s, one or more ASCII digits and nothing else (no sign, space or other base), as a
 * number up to max. Returns 0 with *out set, -EINVAL for anything else, -ERANGE above max. */
int nm_parse_u64(const char *s, uint64_t max, uint64_t *out);

#endif
