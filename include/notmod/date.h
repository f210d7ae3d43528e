/* HTTP-date (RFC 9110 §5.6.7): strict parsing of the three formats, IMF-fixdate output. */
#ifndef NOTMOD_DATE_H
#define NOTMOD_DATE_H

#include <stdint.h>

#include "notmod/slice.h"

/* Length of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", without the NUL. */
#define NM_DATE_LEN 29

/* Latest time nm_date_format can write: 9999-12-31 23:59:59 GMT. */
#define NM_DATE_MAX 253402300799LL

/* Parses an HTTP-date in any of the three formats of §5.6.7:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT"  (two-digit year: the 50-year rule of
 *                §5.6.7, relative to `now`: the latest year with those two digits whose date is
 *                not after the same calendar moment 50 years after `now`)
 *   asctime-date "Sun Nov  6 08:49:37 1994"
 * Strict: day and month names are case-sensitive, "GMT" is required (not in asctime), the day
 * must exist in that month and year, hour < 24, minute < 60, second < 61 (a leap second reads as
 * :59 of the same minute plus one second, like POSIX). Leading and trailing OWS is allowed,
 * nothing else. The weekday is checked against the date.
 * Writes seconds since the Unix epoch to *out and returns 0, or returns -EINVAL and leaves *out
 * alone. Dates before 1970 are -EINVAL (no HTTP validator predates the epoch), and so are dates
 * after NM_DATE_MAX (only a leap second on 9999-12-31 gets there), so that every parsed time can
 * be formatted again. */
int nm_date_parse(struct nm_slice s, int64_t now, int64_t *out);

/* Writes the IMF-fixdate for t (0 <= t <= NM_DATE_MAX) and a NUL to out, returns NM_DATE_LEN.
 * Returns -ERANGE, writing nothing, for t outside that range. */
int nm_date_format(int64_t t, char out[NM_DATE_LEN + 1]);

#endif
