/* The user.notmod.etag attribute: its value's format, and reading and writing it for a version. */
#include "attr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "internal.h"
#include "notmod/etag.h"

int nm_attr_format(const struct nm_attr_record *r, char *buf, size_t cap)
{
    char tag[NM_ETAG_MAX + 1];
    int t = nm_etag_make_hash128(r->hash.hi, r->hash.lo, tag, sizeof(tag));
    if (t < 0 || r->mtime_ns < 0 || r->ctime_max_ns < 0)
        return -EINVAL;
    tag[t - 1] = '\0'; /* the 22 characters between the quotes */
    int n = snprintf(buf, cap, "1 %llu %lld %lld %s", (unsigned long long)r->size,
                     (long long)r->mtime_ns, (long long)r->ctime_max_ns, tag + 1);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int nm_attr_parse(const char *val, size_t len, struct nm_attr_record *out)
{
    /* Five fields one space apart: the format's version, size, mtime, ctime bound, hash. */
    const char *field[5], *end = val + len;
    size_t field_len[5];
    const char *p = val;
    for (int i = 0; i < 5; i++) {
        const char *sp = i < 4 ? memchr(p, ' ', (size_t)(end - p)) : end;
        if (!sp)
            return -EINVAL;
        field[i] = p;
        field_len[i] = (size_t)(sp - p);
        p = sp + (i < 4);
    }
    uint64_t version, sz, mt, ct;
    struct nm_hash128 hash;
    if (!nm__parse_decimal(field[0], field_len[0], 1, &version) || version != 1 ||
        !nm__parse_decimal(field[1], field_len[1], UINT64_MAX, &sz) ||
        !nm__parse_decimal(field[2], field_len[2], INT64_MAX, &mt) ||
        !nm__parse_decimal(field[3], field_len[3], INT64_MAX, &ct) ||
        nm_hash_parse_b64url(field[4], field_len[4], &hash) != 0)
        return -EINVAL;
    *out = (struct nm_attr_record){sz, (int64_t)mt, (int64_t)ct, hash};
    return 0;
}

int nm_attr_read(int fd, const struct nm_file_version *v, struct nm_hash128 *out)
{
    char val[NM_ATTR_MAX + 1];
    ssize_t n = fgetxattr(fd, NM_ATTR_NAME, val, sizeof(val) - 1);
    if (n < 0)
        return errno == ERANGE ? -ENODATA : -errno;
    struct nm_attr_record r;
    if (nm_attr_parse(val, (size_t)n, &r) != 0 || r.size != v->size || r.mtime_ns != v->mtime_ns ||
        v->ctime_ns > r.ctime_max_ns)
        return -ENODATA;
    /* A bound no write of ours could have produced (forged, or copied from another file) would
     * outlive later rewrites that keep size and mtime: nm_attr_write sets it from the clock just
     * before the write, so it lies within the allowance of the ctime that write left and of now. */
    if (r.ctime_max_ns - v->ctime_ns > NM_ATTR_CTIME_SPREAD_NS ||
        r.ctime_max_ns > nm_hashing_now_ns() + NM_ATTR_SLACK_NS)
        return -ENODATA;
    *out = r.hash;
    return 0;
}

int nm_attr_write(int fd, const struct nm_file_version *v, struct nm_hash128 h)
{
    /* The version is checked right before the clock is read: a rewrite that restored size and
     * mtime before this point is refused, one after it moves the ctime past the bound. */
    struct stat st;
    struct nm_file_version now;
    if (fstat(fd, &st) != 0)
        return -errno;
    nm_hashing_version_of(&st, &now);
    if (!nm_hashing_version_equal(&now, v))
        return -EAGAIN;
    struct nm_attr_record r = {v->size, v->mtime_ns, nm_hashing_now_ns() + NM_ATTR_SLACK_NS, h};
    char val[NM_ATTR_MAX + 1];
    int n = nm_attr_format(&r, val, sizeof(val));
    if (n < 0)
        return n;
    return fsetxattr(fd, NM_ATTR_NAME, val, (size_t)n, 0) == 0 ? 0 : -errno;
}
