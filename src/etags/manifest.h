/* ETag manifests: one text file listing, for each file of a tree, its URL path, size, content
 * ETag and a canonical Last-Modified, so that every replica loading it sends the same validators.
 * Only the canonical form is accepted, so parse and format are inverses (docs/etags.md):
 *
 *   notmod-manifest 1\n
 *   <path> <size> <etag> <IMF-fixdate>\n      (one line per file, paths in strcmp order)
 *
 * <path> is the decoded URL path as nm_path_encode writes it, <size> decimal without leading
 * zeros, <etag> the quoted 22-character content tag of nm_etag_make_hash128. Parsing and
 * formatting do no I/O; the check at startup (nm_hashing_use_manifest) reads the files. */
#ifndef NOTMOD_MANIFEST_H
#define NOTMOD_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define NM_MANIFEST_MAGIC "notmod-manifest 1"
#define NM_MANIFEST_MAX_ENTRIES (1u << 24)

struct nm_manifest_entry {
    const char *path; /* decoded, normalized, no trailing '/'; lives as long as the manifest */
    uint64_t size;
    uint64_t hash_hi, hash_lo; /* the XXH3-128 bits the ETag carries */
    int64_t last_modified;     /* seconds since the epoch, 0 to NM_DATE_MAX */
};

struct nm_manifest;

/* An empty manifest. Returns 0 or -ENOMEM. */
int nm_manifest_new(struct nm_manifest **out);

/* NULL is a no-op. */
void nm_manifest_free(struct nm_manifest *m);

/* Adds an entry (the path is copied). Returns 0; -EINVAL when the path is not a normalized file
 * path (it must start with '/', end with no '/', and come back unchanged from nm_path_encode then
 * nm_path_normalize) or last_modified is out of range; -E2BIG past NM_MANIFEST_MAX_ENTRIES;
 * -ENOMEM. Entries may come in any order: nm_manifest_sort puts them in order. */
int nm_manifest_add(struct nm_manifest *m, const char *path, uint64_t size, uint64_t hash_hi,
                    uint64_t hash_lo, int64_t last_modified);

/* Sorts the entries by path (strcmp). Returns 0, or -EEXIST when two entries share a path.
 * Required before nm_manifest_find or nm_manifest_format after any nm_manifest_add. */
int nm_manifest_sort(struct nm_manifest *m);

/* Appends the canonical text. Returns 0 or the buffer's error (-EMSGSIZE, -ENOMEM). */
int nm_manifest_format(const struct nm_manifest *m, struct nm_buf *out);

/* Parses untrusted text: accepts exactly the canonical form (magic line, sorted unique paths,
 * every line ending in "\n"). Returns 0 and a sorted manifest, or -EINVAL with the 1-based line
 * number and a short reason in *err_line and *err_what (a static string), or -ENOMEM, or -E2BIG
 * past NM_MANIFEST_MAX_ENTRIES. */
int nm_manifest_parse(const char *text, size_t len, struct nm_manifest **out, size_t *err_line,
                      const char **err_what);

size_t nm_manifest_count(const struct nm_manifest *m);

/* The i-th entry in path order (i < count), valid until the manifest changes or is freed. */
const struct nm_manifest_entry *nm_manifest_at(const struct nm_manifest *m, size_t i);

/* The entry for a decoded URL path, or NULL. Binary search: read-only and thread-safe. */
const struct nm_manifest_entry *nm_manifest_find(const struct nm_manifest *m, const char *path);

struct nm_hashing;

/* Takes a parsed manifest (ownership passes, even on failure) and checks each entry against the
 * file at its path under root_fd: a file that is missing or has another size is ignored; a file
 * up to small_file_bytes is read and must hash to the entry; a larger one is never trusted on
 * the manifest's word: it is ignored when its valid attribute names another hash, and otherwise
 * gets its hash from the attribute or the pool like any file, the entry's Last-Modified then
 * applying once that hash equals the entry's. `warn` hears about each ignored entry. Returns the
 * number of entries kept, or -errno. */
int nm_hashing_use_manifest(struct nm_hashing *h, int root_fd, struct nm_manifest *m,
                            void (*warn)(void *arg, const char *path, const char *why), void *arg);

/* The manifest's Last-Modified for a URL path, when the manifest has an entry kept at startup
 * whose size and hash are these. Read-only after nm_hashing_use_manifest: lock-free. */
bool nm_hashing_manifest_last_modified(const struct nm_hashing *h, const char *path, uint64_t size,
                                       struct nm_hash128 hash, int64_t *out);

#endif
