/* Entity tags (RFC 9110 §8.8.3): parsing, list scanning (§5.6.1, §5.3), strong and weak
 * comparison (§8.8.3.2), and making tags from a content hash, metadata or a version string. */
#ifndef NOTMOD_ETAG_H
#define NOTMOD_ETAG_H

#include <stdbool.h>
#include <stdint.h>

#include "notmod/slice.h"

/* An entity-tag. `opaque` is the opaque-tag with its DQUOTEs; it borrows from the parsed input. */
struct nm_etag {
    struct nm_slice opaque;
    bool weak;
};

/* Longest tag the make functions write, quotes and W/ included. */
#define NM_ETAG_MAX 80

/* Parses exactly one entity-tag, optionally surrounded by OWS:
 *   entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text (%x80-FF).
 * "W/" is case-sensitive. Returns 0 and writes *out, or -EINVAL. */
int nm_etag_parse(struct nm_slice s, struct nm_etag *out);

/* Strong comparison: both strong and opaque-tags octet-equal. */
bool nm_etag_matches_strong(const struct nm_etag *a, const struct nm_etag *b);

/* Weak comparison: opaque-tags octet-equal, whatever either's weakness. */
bool nm_etag_matches_weak(const struct nm_etag *a, const struct nm_etag *b);

/* True when the field is exactly "*" (one line, OWS around allowed): "any current representation"
 * for If-Match and If-None-Match. A "*" inside a list is not this; it is a malformed member. */
bool nm_etag_list_is_any(struct nm_field f);

/* Iterates over the entity-tags of a list field (#entity-tag, all lines in order). Empty
 * elements and OWS (SP, HTAB) are skipped (§5.6.1); a malformed member is skipped up to the next
 * comma outside a quoted tag, and the scan goes on. Tags borrow from the field's lines. */
struct nm_etag_iter {
    struct nm_field field;
    size_t line;
    size_t pos;
};

void nm_etag_iter_init(struct nm_etag_iter *it, struct nm_field f);

/* Writes the next well-formed tag to *out and returns true, or returns false at the end. */
bool nm_etag_iter_next(struct nm_etag_iter *it, struct nm_etag *out);

/* True when some tag of the list matches `tag` by strong (If-Match, §13.1.1) or weak
 * (If-None-Match, §13.1.2) comparison. "*" is not handled here: see nm_etag_list_is_any. */
bool nm_etag_list_matches_strong(struct nm_field f, const struct nm_etag *tag);
bool nm_etag_list_matches_weak(struct nm_field f, const struct nm_etag *tag);

/* Writes the tag's text (W/"..." or "...") to buf with a NUL; returns its length, or -ENOSPC. */
int nm_etag_format(const struct nm_etag *tag, char *buf, size_t cap);

/* Makers. Each writes a strong tag, DQUOTEs included, with a NUL, and returns its length, or
 * -ENOSPC when cap is too small (NM_ETAG_MAX + 1 is always enough).
 *
 * Content: the 128 hash bits as 22 characters of unpadded base64url (RFC 4648 §5), most
 * significant bit first: "AAAAAAAAAAAAAAAAAAAAAA" is all zero bits. */
int nm_etag_make_hash128(uint64_t hi, uint64_t lo, char *buf, size_t cap);

/* Metadata: size and mtime in nanoseconds, lowercase hex, "<size>-<mtime_ns>". No inode, so
 * replicas whose files have the same size and mtime agree. mtime_ns before the epoch is -ERANGE. */
int nm_etag_make_metadata(uint64_t size, int64_t mtime_ns, char *buf, size_t cap);

/* Version: the operator's string inside quotes. Refuses (-EINVAL) an empty string, one longer
 * than NM_ETAG_MAX - 2 bytes, or any byte outside etagc (DQUOTE, controls, SP, DEL). */
int nm_etag_make_version(struct nm_slice version, char *buf, size_t cap);

#endif
