/* The user.notmod.etag extended attribute: a file's content hash kept across restarts, trusted
 * only for the version it was written for. Format: docs/etags.md. */
#ifndef NOTMOD_ATTR_H
#define NOTMOD_ATTR_H

#include <stddef.h>
#include <stdint.h>

#include "hashing.h"

/* The attribute and the longest value it holds. */
#define NM_ATTR_NAME "user.notmod.etag"
#define NM_ATTR_MAX 100

/* How long after reading the clock the attribute write may set the file's ctime. */
#define NM_ATTR_SLACK_NS 20000000LL

/* How far a genuine bound may lie beyond the ctime its write left: the allowance, plus the
 * kernel's coarse timestamp clock, which may stamp the ctime a tick before the clock we read. */
#define NM_ATTR_CTIME_SPREAD_NS (2 * NM_ATTR_SLACK_NS)

/* What the attribute records: the hash of the bytes the file had with this size and mtime, and
 * the latest ctime that file may show. Writing an attribute moves the ctime, so the value cannot
 * hold the final ctime; it holds a bound taken just before the write instead. Any later change
 * of the file (a rewrite that restores size and mtime included) moves the ctime past the bound. */
struct nm_attr_record {
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_max_ns;
    struct nm_hash128 hash;
};

/* The attribute value: "1 <size> <mtime_ns> <ctime_max_ns> <22 base64url characters>", decimal
 * numbers without leading zeros, no NUL. Returns its length, -EINVAL for a negative time, or
 * -ENOSPC. */
int nm_attr_format(const struct nm_attr_record *r, char *buf, size_t cap);

/* Parses an attribute value strictly (exactly what nm_attr_format writes). Returns 0 and the
 * record, or -EINVAL. */
int nm_attr_parse(const char *val, size_t len, struct nm_attr_record *out);

/* Reads the attribute of an open file and returns 0 and the hash only when it records v's size
 * and mtime_ns and v's ctime is not after its bound; -ENODATA when it is absent, malformed,
 * stale, or its bound is one no write could have set (more than NM_ATTR_CTIME_SPREAD_NS past
 * v's ctime, or more than NM_ATTR_SLACK_NS past the clock now); -ENOTSUP and other -errno when the
 * filesystem cannot say. */
int nm_attr_read(int fd, const struct nm_file_version *v, struct nm_hash128 *out);

/* Writes the attribute for v, which must not be racy and must still be the file's version (else
 * -EAGAIN): the bound is the clock read just before the write plus NM_ATTR_SLACK_NS. Writing it
 * changes the file's ctime. Returns 0 or -errno (-ENOTSUP, -EROFS, -EACCES, -EPERM, -ENOSPC,
 * -EDQUOT ...). */
int nm_attr_write(int fd, const struct nm_file_version *v, struct nm_hash128 h);

#endif
