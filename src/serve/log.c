/* Access-log formatting and error lines. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notmod/json.h"

/* The marks of a cut field: text the escaping never writes (a lone backslash in Combined, an
 * escaped U+2026 where valid UTF-8 is written as it is in JSON), so a field that ends with its
 * mark was cut, whatever the client sent. */
#define CUT_COMBINED "\\..."
#define CUT_JSON "\\u2026"

/* Combined format: '"', '\\', controls and bytes >= 0x7F as \xHH, as nginx and Apache do. At most
 * NM_LOG_FIELD_MAX bytes of escaped text; a longer field ends with the CUT_COMBINED mark. */
static int put_escaped(struct nm_buf *out, struct nm_slice s)
{
    static const char hex[] = "0123456789abcdef";
    size_t written = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        bool escape = c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
        size_t n = escape ? 4 : 1;
        if (written + n > NM_LOG_FIELD_MAX)
            return nm_buf_append_str(out, CUT_COMBINED);
        char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        int rc = escape ? nm_buf_append(out, esc, n) : nm_buf_append(out, &s.ptr[i], 1);
        if (rc < 0)
            return rc;
        written += n;
    }
    return 0;
}

static int put_json_string(struct nm_buf *out, struct nm_slice s)
{
    int rc = nm_buf_append(out, "\"", 1);
    size_t written = 0;
    while (rc == 0 && s.len > 0) {
        /* Room for a piece at a time: a long field does not reserve six times its length. */
        size_t want = s.len * NM_JSON_ESCAPE_MAX;
        size_t room = NM_LOG_FIELD_MAX - written;
        want = want < 512 ? want : 512;
        want = want < room ? want : room;
        if (want < NM_JSON_ESCAPE_MAX) {
            rc = nm_buf_append_str(out, CUT_JSON);
            break;
        }
        rc = nm_buf_reserve(out, want);
        if (rc < 0)
            break;
        size_t used;
        size_t n = nm_json_escape(s, out->ptr + out->len, want, &used);
        out->len += n;
        written += n;
        s.ptr += used;
        s.len -= used;
    }
    if (rc == 0)
        rc = nm_buf_append(out, "\"", 1);
    return rc;
}

/* A quoted Combined-format field; "-" when empty. */
static int put_quoted(struct nm_buf *out, struct nm_slice s)
{
    if (s.len == 0)
        return nm_buf_append_str(out, "\"-\"");
    int rc = nm_buf_append(out, "\"", 1);
    if (rc == 0)
        rc = put_escaped(out, s);
    if (rc == 0)
        rc = nm_buf_append(out, "\"", 1);
    return rc;
}

struct json_field {
    const char *name;
    struct nm_slice value;
};

/* ,"name":"value" for each field, in order. */
static int put_json_fields(struct nm_buf *out, const struct json_field *f, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = nm_buf_appendf(out, ",\"%s\":", f[i].name);
        if (rc == 0)
            rc = put_json_string(out, f[i].value);
    }
    return rc;
}

int nm_log_format_access(struct nm_buf *out, enum nm_log_format format,
                         const struct nm_log_entry *e)
{
    size_t start = out->len;
    bool json = format == NM_LOG_JSON;
    time_t t = (time_t)e->time;
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[40];
    int rc;
    if (json) {
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        const struct json_field from_client[] = {
            {"remote", nm_slice_from_cstr(e->peer)},
            {"method", e->method},
            {"target", e->target},
        };
        const struct json_field about_response[] = {
            {"referer", e->referer},
            {"user_agent", e->user_agent},
            {"etag", e->etag},
        };
        rc = nm_buf_appendf(out, "{\"time\":\"%s\"", when);
        if (rc == 0)
            rc = put_json_fields(out, from_client, 3);
        if (rc == 0)
            rc = nm_buf_appendf(out, ",\"status\":%d,\"bytes\":%llu", e->status,
                                (unsigned long long)e->bytes);
        if (rc == 0)
            rc = put_json_fields(out, about_response, 3);
        if (rc == 0)
            rc = nm_buf_append_str(out, "}\n");
    } else {
        strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        rc = put_escaped(out, nm_slice_from_cstr(e->peer));
        if (rc == 0)
            rc = nm_buf_appendf(out, " - - [%s] \"", when);
        if (rc == 0 && e->minor_version >= 0) {
            rc = put_escaped(out, e->method);
            if (rc == 0)
                rc = nm_buf_append(out, " ", 1);
            if (rc == 0)
                rc = put_escaped(out, e->target);
            if (rc == 0)
                rc = nm_buf_appendf(out, " HTTP/%d.%d", e->major_version == 2 ? 2 : 1,
                                    e->minor_version);
        } else if (rc == 0) {
            rc = nm_buf_append(out, "-", 1);
        }
        if (rc == 0)
            rc = nm_buf_appendf(out, "\" %d %llu ", e->status, (unsigned long long)e->bytes);
        if (rc == 0)
            rc = put_quoted(out, e->referer);
        if (rc == 0)
            rc = nm_buf_append(out, " ", 1);
        if (rc == 0)
            rc = put_quoted(out, e->user_agent);
        if (rc == 0)
            rc = nm_buf_append(out, "\n", 1);
    }
    if (rc < 0)
        out->len = start;
    return rc;
}

void nm_log_error(const char *fmt, ...)
{
    char line[1024];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ notmod: ", &tm);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
