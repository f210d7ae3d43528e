/* HTTP-date (RFC 9110 §5.6.7): strict parsing of IMF-fixdate, rfc850-date and asctime-date, and
 * IMF-fixdate output. Calendar arithmetic is proleptic Gregorian on integers: no libc time
 * functions, no time zone, no locale. */
#include "notmod/date.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define SECS_PER_DAY 86400

static const char short_days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_days[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct civil {
    int64_t year;
    int month; /* 1..12 */
    int day;   /* 1..31 */
    int hour;
    int minute;
    int second; /* 0..60 */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* a mod b in [0, b) for b > 0, without forming floor_div(a, b) * b, which can overflow. */
static int64_t floor_mod(int64_t a, int64_t b)
{
    int64_t r = a % b;
    return r < 0 ? r + b : r;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Days since 1970-01-01 of a Gregorian date. The year is counted from March so that the leap
 * day falls last; 400-year eras repeat exactly (146097 days). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = m > 2 ? m - 3 : m + 9;
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil, for any int64 day count a caller's clock can produce. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday_from_days(int64_t days)
{
    return (int)floor_mod(days + 4, 7);
}

static int digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : -1;
}

static int two_digits(const char *p)
{
    int a = digit(p[0]), b = digit(p[1]);
    return a < 0 || b < 0 ? -1 : a * 10 + b;
}

static int four_digits(const char *p)
{
    int hi = two_digits(p), lo = two_digits(p + 2);
    return hi < 0 || lo < 0 ? -1 : hi * 100 + lo;
}

static int month_from_name(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(p, months[i], 3) == 0)
            return i + 1;
    return -1;
}

static int short_day_from_name(const char *p)
{
    for (int i = 0; i < 7; i++)
        if (memcmp(p, short_days[i], 3) == 0)
            return i;
    return -1;
}

/* time-of-day = hour ":" minute ":" second, each 2DIGIT (§5.6.7). */
static bool parse_time(const char *p, struct civil *c)
{
    if (p[2] != ':' || p[5] != ':')
        return false;
    c->hour = two_digits(p);
    c->minute = two_digits(p + 3);
    c->second = two_digits(p + 6);
    return c->hour >= 0 && c->hour < 24 && c->minute >= 0 && c->minute < 60 && c->second >= 0 &&
           c->second <= 60;
}

/* IMF-fixdate = day-name "," SP day SP month SP year SP time-of-day SP "GMT" */
static bool parse_imf(const char *p, size_t len, int *wday, struct civil *c)
{
    if (len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
        return false;
    *wday = short_day_from_name(p);
    c->day = two_digits(p + 5);
    c->month = month_from_name(p + 8);
    int y = four_digits(p + 12);
    c->year = y;
    return *wday >= 0 && c->day >= 0 && c->month > 0 && y >= 0 && parse_time(p + 17, c);
}

/* asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year */
static bool parse_asctime(const char *p, size_t len, int *wday, struct civil *c)
{
    if (len != 24 || p[3] != ' ' || p[7] != ' ' || p[10] != ' ' || p[19] != ' ')
        return false;
    *wday = short_day_from_name(p);
    c->month = month_from_name(p + 4);
    c->day = p[8] == ' ' ? digit(p[9]) : two_digits(p + 8);
    int y = four_digits(p + 20);
    c->year = y;
    return *wday >= 0 && c->month > 0 && c->day >= 0 && y >= 0 && parse_time(p + 11, c);
}

/* rfc850-date = day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT".
 * The year is left as its two digits; the caller resolves the century. */
static bool parse_rfc850(const char *p, size_t len, int *wday, struct civil *c)
{
    int w = -1;
    size_t n = 0;
    for (int i = 0; i < 7; i++) {
        n = strlen(long_days[i]);
        if (len > n && memcmp(p, long_days[i], n) == 0 && p[n] == ',') {
            w = i;
            break;
        }
    }
    if (w < 0)
        return false;
    p += n;
    len -= n;
    /* ", 06-Nov-94 08:49:37 GMT" */
    if (len != 24 || p[1] != ' ' || p[4] != '-' || p[8] != '-' || p[11] != ' ' || p[20] != ' ' ||
        memcmp(p + 21, "GMT", 3) != 0)
        return false;
    *wday = w;
    c->day = two_digits(p + 2);
    c->month = month_from_name(p + 5);
    c->year = two_digits(p + 9);
    return c->day >= 0 && c->month > 0 && c->year >= 0 && parse_time(p + 12, c);
}

static int64_t civil_cmp_no_year(const struct civil *a, const struct civil *b)
{
    int64_t ka =
        ((((int64_t)a->month * 32 + a->day) * 24 + a->hour) * 60 + a->minute) * 61 + a->second;
    int64_t kb =
        ((((int64_t)b->month * 32 + b->day) * 24 + b->hour) * 60 + b->minute) * 61 + b->second;
    return ka - kb;
}

/* RFC 9110 §5.6.7: a two-digit year that appears to be more than 50 years in the future is the
 * most recent past year with the same last two digits. So the year is the latest one ending in
 * those digits whose date is at most 50 calendar years after `now` (same month, day and time of
 * day fifty years on); the window is the century ending there. */
static int64_t resolve_two_digit_year(const struct civil *c, int64_t now)
{
    int64_t now_days = floor_div(now, SECS_PER_DAY);
    int64_t now_secs = floor_mod(now, SECS_PER_DAY);
    struct civil limit;
    civil_from_days(now_days, &limit.year, &limit.month, &limit.day);
    limit.year += 50;
    limit.hour = (int)(now_secs / 3600);
    limit.minute = (int)(now_secs / 60 % 60);
    limit.second = (int)(now_secs % 60);

    int64_t y = limit.year - floor_mod(limit.year, 100) + c->year;
    if (y > limit.year || (y == limit.year && civil_cmp_no_year(c, &limit) > 0))
        y -= 100;
    return y;
}

int nm_date_parse(struct nm_slice s, int64_t now, int64_t *out)
{
    s = nm_slice_trim_ows(s);
    const char *p = s.ptr;
    size_t len = s.len;
    if (len < 24)
        return -EINVAL;

    struct civil c;
    int wday;
    if (p[3] == ',') {
        if (!parse_imf(p, len, &wday, &c))
            return -EINVAL;
    } else if (p[3] == ' ') {
        if (!parse_asctime(p, len, &wday, &c))
            return -EINVAL;
    } else {
        if (!parse_rfc850(p, len, &wday, &c))
            return -EINVAL;
        c.year = resolve_two_digit_year(&c, now);
    }

    /* IMF-fixdate output stops at 9999 (and four digits cannot go below 0000). */
    if (c.year < 0 || c.year > 9999)
        return -EINVAL;
    if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > days_in_month(c.year, c.month))
        return -EINVAL;

    int64_t days = days_from_civil(c.year, c.month, c.day);
    if (weekday_from_days(days) != wday)
        return -EINVAL;

    /* Second 60 is a leap second: like POSIX, it reads as the first second of the next minute. */
    int64_t t = days * SECS_PER_DAY + c.hour * 3600 + c.minute * 60 + c.second;
    if (t > NM_DATE_MAX)
        return -EINVAL;
    *out = t;
    return 0;
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

int nm_date_format(int64_t t, char out[NM_DATE_LEN + 1])
{
    if (t < NM_DATE_MIN || t > NM_DATE_MAX)
        return -ERANGE;
    int64_t days = floor_div(t, SECS_PER_DAY);
    int secs = (int)floor_mod(t, SECS_PER_DAY);
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);

    memcpy(out, short_days[weekday_from_days(days)], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, d);
    out[7] = ' ';
    memcpy(out + 8, months[m - 1], 3);
    out[11] = ' ';
    put2(out + 12, (int)(y / 100));
    put2(out + 14, (int)(y % 100));
    out[16] = ' ';
    put2(out + 17, secs / 3600);
    out[19] = ':';
    put2(out + 20, secs / 60 % 60);
    out[22] = ':';
    put2(out + 23, secs % 60);
    memcpy(out + 25, " GMT", 4);
    out[NM_DATE_LEN] = '\0';
    return NM_DATE_LEN;
}
