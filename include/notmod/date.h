/* HTTP-date (RFC 9110 §5.6.7): strict parsing of the three formats, IMF-fixdate output. */
#ifndef NOTMOD_DATE_H
#define NOTMOD_DATE_H

#include <stdint.h>

#include "notmod/slice.h"

/* Length of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT", without the NUL. */
#define NM_DATE_LEN 29

/* The times an HTTP-date can express (its year has four digits): 0000-01-01 00:00:00 GMT to
 * 9999-12-31 23:59:59 GMT, in seconds since the Unix epoch. */
#define NM_DATE_MIN (-62167219200LL)
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
 * alone. Dates before 1970 are valid HTTP-dates and give negative times (RFC 9110 §13.1.4: an
 * If-Unmodified-Since of 1960 must fail, not be ignored); a date after NM_DATE_MAX (only a leap
 * second on 9999-12-31 gets there) is -EINVAL, so that every parsed time can be formatted again. */
int nm_date_parse(struct nm_slice s, int64_t now, int64_t *out);

/* Writes the IMF-fixdate for t (NM_DATE_MIN <= t <= NM_DATE_MAX) and a NUL to out, returns
 * NM_DATE_LEN.
 * Returns -ERANGE, writing nothing, for t outside that range. */
int nm_date_format(int64_t t, char out[NM_DATE_LEN + 1]);

#endif
