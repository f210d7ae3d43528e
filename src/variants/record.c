/* The user.notmod.source attribute of a sidecar: "2 <coding> <source> <own>", the XXH3-128 of the
 * source bytes it was compressed from and of its own bytes, each in the text of a content tag
 * (version 1 has no <own>). */
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include "notmod/etag.h"

static bool coding_is_sidecar(enum nm_coding coding)
{
    return coding > NM_CODING_IDENTITY && coding < NM_CODING_COUNT;
}

/* Parses one hash and the space before it, if `space`. Returns the rest, or NULL. */
static const char *parse_hash(const char *p, const char *end, bool space, struct nm_hash128 *h)
{
    if (space && (p == end || *p++ != ' '))
        return NULL;
    if (end - p < NM_HASH_B64URL_LEN || nm_hash_parse_b64url(p, NM_HASH_B64URL_LEN, h) != 0)
        return NULL;
    return p + NM_HASH_B64URL_LEN;
}

int nm_variants_record_read(int sidecar_fd, enum nm_coding coding, struct nm_variants_record *rec)
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
    /* Fields one space apart: the format's version, the coding, the hashes. */
    const char *name = nm_coding_name(coding);
    size_t name_len = strlen(name);
    const char *p = val, *end = val + n;
    if (end - p < 2 || (p[0] != '1' && p[0] != '2') || p[1] != ' ')
        return -EINVAL;
    bool has_own = p[0] == '2';
    p += 2;
    if ((size_t)(end - p) < name_len + 1 || memcmp(p, name, name_len) != 0 || p[name_len] != ' ')
        return -EINVAL;
    p += name_len + 1;
    struct nm_variants_record r = {.has_own = has_own};
    p = parse_hash(p, end, false, &r.source);
    if (p && has_own)
        p = parse_hash(p, end, true, &r.own);
    if (p != end)
        return -EINVAL;
    *rec = r;
    return 0;
}

/* The 22 characters of a content tag for h, NUL-terminated, into out[NM_HASH_B64URL_LEN + 1]. */
static int hash_text(struct nm_hash128 h, char out[NM_HASH_B64URL_LEN + 1])
{
    char tag[NM_ETAG_MAX + 1];
    int t = nm_etag_make_hash128(h.hi, h.lo, tag, sizeof(tag));
    if (t < 0)
        return t;
    memcpy(out, tag + 1, NM_HASH_B64URL_LEN); /* between the quotes */
    out[NM_HASH_B64URL_LEN] = '\0';
    return 0;
}

int nm_variants_record_write(int sidecar_fd, enum nm_coding coding,
                             const struct nm_variants_record *rec)
{
    if (!coding_is_sidecar(coding))
        return -EINVAL;
    char source[NM_HASH_B64URL_LEN + 1], own[NM_HASH_B64URL_LEN + 1];
    int rc = hash_text(rec->source, source);
    if (rc == 0 && rec->has_own)
        rc = hash_text(rec->own, own);
    if (rc < 0)
        return rc;
    char val[NM_VARIANTS_RECORD_MAX + 1];
    int n = rec->has_own
                ? snprintf(val, sizeof(val), "2 %s %s %s", nm_coding_name(coding), source, own)
                : snprintf(val, sizeof(val), "1 %s %s", nm_coding_name(coding), source);
    if (n < 0 || n >= (int)sizeof(val))
        return -ENOSPC;
    return fsetxattr(sidecar_fd, NM_VARIANTS_RECORD_NAME, val, (size_t)n, 0) == 0 ? 0 : -errno;
}

bool nm_variants_sidecar_is_current(int sidecar_fd, enum nm_coding coding,
                                    struct nm_hash128 source_hash, int64_t source_mtime_ns,
                                    int64_t sidecar_mtime_ns)
{
    struct nm_variants_record rec;
    int rc = nm_variants_record_read(sidecar_fd, coding, &rec);
    if (rc == 0 && (rec.source.hi != source_hash.hi || rec.source.lo != source_hash.lo))
        return false;
    if (rc == 0 && rec.has_own) {
        struct stat st;
        struct nm_hash128 h;
        return fstat(sidecar_fd, &st) == 0 &&
               nm_hash_fd(sidecar_fd, (uint64_t)st.st_size, NULL, &h) == 0 && h.hi == rec.own.hi &&
               h.lo == rec.own.lo;
    }
    if (rc == 0)
        return true;
    /* A sidecar from gzip -k or brotli: only its age speaks for it. */
    return rc == -ENODATA && sidecar_mtime_ns >= source_mtime_ns;
}
