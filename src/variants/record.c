/* The user.notmod.source attribute of a sidecar: "1 <coding> <hash>", the XXH3-128 of the source
 * bytes it was compressed from, in the text of a content tag. */
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include "notmod/etag.h"

static bool coding_is_sidecar(enum nm_coding coding)
{
    return coding > NM_CODING_IDENTITY && coding < NM_CODING_COUNT;
}

int nm_variants_record_read(int sidecar_fd, enum nm_coding coding, struct nm_hash128 *source_hash)
{
    if (!coding_is_sidecar(coding))
        return -EINVAL;
    char val[NM_VARIANTS_RECORD_MAX + 1];
    ssize_t n = fgetxattr(sidecar_fd, NM_VARIANTS_RECORD_NAME, val, sizeof(val) - 1);
    if (n < 0) {
        if (errno == ENODATA || errno == ENOTSUP)
            return -ENODATA;
        return errno == ERANGE ? -EINVAL : -errno;
    }
    /* Three fields one space apart: the format's version, the coding, the hash. */
    const char *name = nm_coding_name(coding);
    size_t name_len = strlen(name);
    const char *p = val, *end = val + n;
    if (end - p < 2 || memcmp(p, "1 ", 2) != 0)
        return -EINVAL;
    p += 2;
    if ((size_t)(end - p) < name_len + 1 || memcmp(p, name, name_len) != 0 || p[name_len] != ' ')
        return -EINVAL;
    p += name_len + 1;
    struct nm_hash128 h;
    if (nm_hash_parse_b64url(p, (size_t)(end - p), &h) != 0)
        return -EINVAL;
    *source_hash = h;
    return 0;
}

int nm_variants_record_write(int sidecar_fd, enum nm_coding coding, struct nm_hash128 source_hash)
{
    if (!coding_is_sidecar(coding))
        return -EINVAL;
    char tag[NM_ETAG_MAX + 1];
    int t = nm_etag_make_hash128(source_hash.hi, source_hash.lo, tag, sizeof(tag));
    if (t < 0)
        return t;
    tag[t - 1] = '\0'; /* the 22 characters between the quotes */
    char val[NM_VARIANTS_RECORD_MAX + 1];
    int n = snprintf(val, sizeof(val), "1 %s %s", nm_coding_name(coding), tag + 1);
    if (n < 0 || n >= (int)sizeof(val))
        return -ENOSPC;
    return fsetxattr(sidecar_fd, NM_VARIANTS_RECORD_NAME, val, (size_t)n, 0) == 0 ? 0 : -errno;
}

bool nm_variants_sidecar_is_current(int sidecar_fd, enum nm_coding coding,
                                    struct nm_hash128 source_hash, int64_t source_mtime_ns,
                                    int64_t sidecar_mtime_ns)
{
    struct nm_hash128 made_from;
    int rc = nm_variants_record_read(sidecar_fd, coding, &made_from);
    if (rc == 0)
        return made_from.hi == source_hash.hi && made_from.lo == source_hash.lo;
    /* A sidecar from gzip -k or brotli: only its age speaks for it. */
    return rc == -ENODATA && sidecar_mtime_ns >= source_mtime_ns;
}
