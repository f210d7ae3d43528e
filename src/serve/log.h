/* Access-log lines (Combined Log Format or JSON, bytes from the network escaped) and error lines.
 */
#ifndef NOTMOD_LOG_H
#define NOTMOD_LOG_H

#include <stdint.h>

#include "base/base.h"
#include "config.h"
#include "notmod/slice.h"

struct nm_log_entry {
    const char *peer;
    int64_t time; /* seconds since the epoch */
    struct nm_slice method;
    struct nm_slice target;
    int major_version; /* 2 for HTTP/2 ("HTTP/2.0"), else HTTP/1.x */
    int minor_version; /* -1 when the request line was not understood */
    int status;
    uint64_t bytes; /* body bytes of the response */
    struct nm_slice referer;
    struct nm_slice user_agent;
    struct nm_slice etag;
};

/* Escaped text kept of one field of an access-log line (client bytes can grow 4-6 times when
 * escaped): a line stays under 16 KiB whatever the request held. */
#define NM_LOG_FIELD_MAX 2048

/* Appends one line. In Combined format, '"', '\\', controls and bytes >= 0x7F are written as
 * \xHH; in JSON, strings are written by nm_json_escape: valid UTF-8 as it is, controls escaped,
 * and each byte that is not UTF-8 as \udcHH (PEP 383 surrogateescape, reversible). Each field
 * keeps at most NM_LOG_FIELD_MAX bytes of escaped text, never splitting an escape; a field cut
 * there ends with a mark the escaping never writes: a backslash and three dots in Combined
 * format, the escape \u2026 in JSON. Returns 0 or a buffer error (the line is then not written
 * at all; the caller counts it). */
int nm_log_format_access(struct nm_buf *out, enum nm_log_format format,
                         const struct nm_log_entry *e);

/* Writes "notmod: <message>\n" to stderr with a UTC timestamp, in one write. */
__attribute__((format(printf, 1, 2))) void nm_log_error(const char *fmt, ...);

#endif
