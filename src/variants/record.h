/* Which source version a sidecar (x.css.br, x.css.zst, x.css.gz) was made from: the
 * user.notmod.source attribute, and whether a sidecar may stand in for its source. */
#ifndef NOTMOD_VARIANTS_RECORD_H
#define NOTMOD_VARIANTS_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/coding.h"

/* The attribute's name, and the most bytes its value takes: "1 <coding> <hash>", where coding is
 * nm_coding_name's token and hash the 22 base64url characters of a content tag (XXH3-128 of the
 * source's bytes, as nm_hash_parse_b64url reads them). */
#define NM_VARIANTS_RECORD_NAME "user.notmod.source"
#define NM_VARIANTS_RECORD_MAX 64

/* What a sidecar says of its source: 0 and the hash it was made from, -ENODATA when it carries no
 * record (made by another tool, or on a file system without user attributes), -EINVAL for a
 * malformed one or one that names another coding than `coding`, or -errno. *source_hash is
 * written only on success. */
int nm_variants_record_read(int sidecar_fd, enum nm_coding coding, struct nm_hash128 *source_hash);

/* Stores the record on the sidecar (replacing any). Returns 0, -EINVAL for NM_CODING_IDENTITY or
 * an unknown coding, or -errno of fsetxattr (-ENOTSUP where the file system has no user
 * attributes). */
int nm_variants_record_write(int sidecar_fd, enum nm_coding coding, struct nm_hash128 source_hash);

/* Whether a sidecar may be served for a source: with a record, its hash must equal the source's
 * current content hash; without one (gzip -k, brotli), the sidecar must not be older than the
 * source (mtime_ns). A malformed record, one of another coding, or a failure to read it, is never
 * current. Reads only the sidecar's attribute. */
bool nm_variants_sidecar_is_current(int sidecar_fd, enum nm_coding coding,
                                    struct nm_hash128 source_hash, int64_t source_mtime_ns,
                                    int64_t sidecar_mtime_ns);

#endif
