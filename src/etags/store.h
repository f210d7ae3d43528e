/* The ETag store: content hashes kept across restarts in one file outside the served tree, so
 * that serving never writes into the tree. A fixed table of checksummed 128-byte records,
 * 4-way set associative, each written with one pwrite; a record is trusted only for the exact
 * version it names. Format and crash safety: docs/etags.md. */
#ifndef NOTMOD_ETAGS_STORE_H
#define NOTMOD_ETAGS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define NM_ETAG_STORE_FILE "etag-store"          /* the file inside the store directory */
#define NM_ETAG_STORE_RECORD_BYTES 128           /* one record, also the header's size */
#define NM_ETAG_STORE_WAYS 4                     /* records a key may occupy */
#define NM_ETAG_STORE_DEFAULT_RECORDS (1u << 17) /* 131072 records: a 16 MiB file at most */
#define NM_ETAG_STORE_MAX_RECORDS (1u << 26)

/* What a record is trusted for: one version of one file (dev, ino, size, mtime_ns, ctime_ns, as
 * fstat says), under one served root (the root directory's dev and ino). Writing a record does
 * not touch the file, so the ctime is matched exactly: any change to the file moves it. */
struct nm_etag_store_key {
    uint64_t root_dev;
    uint64_t root_ino;
    uint64_t dev;
    uint64_t ino;
    uint64_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;
};

struct nm_etag_store_record {
    struct nm_etag_store_key key;
    struct nm_hash128 hash;
    int64_t stored_ns; /* when it was written: the oldest of a full set is replaced */
};

/* Encodes r as NM_ETAG_STORE_RECORD_BYTES bytes: "NMET", the format version 1 (u32), the key's
 * seven fields, hash.hi, hash.lo and stored_ns (all 64-bit little-endian), zeros up to byte 120,
 * then the first 64 bits of the XXH3-128 of bytes 0..119 (little-endian). Returns 0, or -EINVAL
 * for a negative time. */
int nm_etag_store_encode(const struct nm_etag_store_record *r,
                         uint8_t out[NM_ETAG_STORE_RECORD_BYTES]);

/* Decodes exactly what nm_etag_store_encode writes: len must be NM_ETAG_STORE_RECORD_BYTES, the
 * magic, version, zero padding, non-negative times and checksum must all be right. Returns 0 and
 * the record, or -EBADMSG (a torn, truncated, empty or foreign record). */
int nm_etag_store_decode(const uint8_t *p, size_t len, struct nm_etag_store_record *out);

struct nm_etag_store;

/* Opens the store file in dir (which must exist; nm_dir_make_private makes it), sized for
 * max_records (rounded down to whole sets of NM_ETAG_STORE_WAYS, at least one set, at most
 * NM_ETAG_STORE_MAX_RECORDS). A missing file, one with another header or of another size is
 * replaced by an empty one (written to a temporary name, then renamed), so the file never
 * exceeds 128 bytes per record plus the header. Returns 0 or -errno. */
int nm_etag_store_open(const char *dir, size_t max_records, struct nm_etag_store **out);

/* Closes the store. NULL is a no-op. */
void nm_etag_store_free(struct nm_etag_store *s);

/* The number of records the store holds at most. */
size_t nm_etag_store_capacity(const struct nm_etag_store *s);

/* Looks up key: 0 and the hash when a record decodes and names exactly key; -ENOENT when none
 * does (a torn or foreign record is a miss); another -errno when the file cannot be read.
 * Thread-safe, takes no lock: a record being rewritten meanwhile reads as a miss. */
int nm_etag_store_get(struct nm_etag_store *s, const struct nm_etag_store_key *key,
                      struct nm_hash128 *out);

/* Stores hash for key with one pwrite of one record: over the record of the same file (root,
 * dev, ino) in its set, else over an empty or undecodable one, else over the oldest. Writers in
 * this process are serialised per set, so no record is torn by another thread; a crash, or a
 * writer in another process, can only leave a record that fails its checksum, which reads as a
 * miss. Nothing is synced to disk. Returns 0 or -errno (-ENOSPC, -EIO, -EROFS ...). */
int nm_etag_store_put(struct nm_etag_store *s, const struct nm_etag_store_key *key,
                      struct nm_hash128 hash);

#endif
