/* Which source version a sidecar (x.css.br, x.css.zst, x.css.gz) was made from: the
 * user.notmod.source attribute, and whether a sidecar may stand in for its source. */
#ifndef NOTMOD_VARIANTS_RECORD_H
#define NOTMOD_VARIANTS_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/coding.h"

/* The attribute's name, and the most bytes its value takes: "2 <coding> <source> <own>", where
 * coding is nm_coding_name's token and source and own the 22 base64url characters of a content tag
 * (XXH3-128, as nm_hash_parse_b64url reads them) of the source bytes the sidecar was compressed
 * from and of the sidecar's own bytes. Version 1, "1 <coding> <source>", names no own bytes and is
 * still read. */
#define NM_VARIANTS_RECORD_NAME "user.notmod.source"
#define NM_VARIANTS_RECORD_MAX 64

/* What a record says. The sidecar's own hash lets a reader tell its bytes from those of a rewrite
 * in place caught half done (new bytes over the old, not yet truncated), which the source hash
 * alone still vouches for. */
struct nm_variants_record {
    struct nm_hash128 source; /* the bytes it was made from */
    bool has_own;             /* version 2: own is the hash of the sidecar's bytes */
    struct nm_hash128 own;
};

/* What a sidecar says of itself: 0 and its record, -ENODATA when it carries none (made by another
 * tool, or on a file system without user attributes), -EINVAL for a malformed one or one that
 * names another coding than `coding`, or -errno. *rec is written only on success. */
int nm_variants_record_read(int sidecar_fd, enum nm_coding coding, struct nm_variants_record *rec);

/* Stores the record on the sidecar (replacing any): version 2 when rec->has_own, else version 1.
 * Returns 0, -EINVAL for NM_CODING_IDENTITY or an unknown coding, or -errno of fsetxattr
 * (-ENOTSUP where the file system has no user attributes). */
int nm_variants_record_write(int sidecar_fd, enum nm_coding coding,
                             const struct nm_variants_record *rec);

/* Whether a sidecar may be served for a source: with a record, its source hash must equal the
 * source's current content hash, and a version 2 record's own hash the hash of the sidecar's
 * bytes as they are now (read through sidecar_fd); without one (gzip -k, brotli), the sidecar
 * must not be older than the source (mtime_ns). A malformed record, one of another coding, or a
 * failure to read it, is never current. */
bool nm_variants_sidecar_is_current(int sidecar_fd, enum nm_coding coding,
                                    struct nm_hash128 source_hash, int64_t source_mtime_ns,
                                    int64_t sidecar_mtime_ns);

#endif
