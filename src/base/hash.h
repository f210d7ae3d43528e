/* Content hashes: XXH3-128 of bytes, of a file's bytes and of a stream, and their text forms.
 * Every 128-bit hash notmod writes (ETags, multipart boundaries, cache keys) comes from here. */
#ifndef NOTMOD_HASH_H
#define NOTMOD_HASH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The 128 bits of an XXH3-128 digest; hi holds the most significant half. */
struct nm_hash128 {
    uint64_t hi;
    uint64_t lo;
};

#define NM_HASH_HEX_LEN 32    /* lowercase hex digits, hi first */
#define NM_HASH_B64URL_LEN 22 /* base64url characters, as inside a content tag */

/* XXH3-128 of n bytes (p may be NULL when n is 0). */
struct nm_hash128 nm_hash_bytes(const void *p, size_t n);

/* XXH3-128 of n bytes under a 64-bit seed: a key nobody outside knows makes the value
 * unpredictable (multipart boundaries), it is no MAC. */
struct nm_hash128 nm_hash_bytes_seeded(const void *p, size_t n, uint64_t seed);

/* Streams bytes [0, size) of fd through XXH3-128 with pread (the file offset is not used), in
 * page-aligned chunks. Returns 0, -EAGAIN when the file turns out shorter or longer than size,
 * -ECANCELED when *stop becomes true (stop may be NULL; it is read between chunks), -ENOMEM, or
 * the read's -errno. */
int nm_hash_fd(int fd, uint64_t size, const atomic_bool *stop, struct nm_hash128 *out);

/* A hash fed piece by piece: the digest equals nm_hash_bytes of the pieces concatenated. */
struct nm_hash_stream;

/* Returns 0 and an empty stream, or -ENOMEM. */
int nm_hash_stream_new(struct nm_hash_stream **out);

void nm_hash_stream_update(struct nm_hash_stream *s, const void *p, size_t n);

/* The hash of everything fed so far; the stream can go on being fed. */
struct nm_hash128 nm_hash_stream_digest(const struct nm_hash_stream *s);

/* NULL is a no-op. */
void nm_hash_stream_free(struct nm_hash_stream *s);

/* Writes the NM_HASH_HEX_LEN lowercase hex digits of h, hi first, and a NUL. */
void nm_hash_format_hex(struct nm_hash128 h, char out[NM_HASH_HEX_LEN + 1]);

/* Reads the 22 base64url characters (RFC 4648 §5, no padding) nm_etag_make_hash128 writes
 * between the quotes of a content tag: most significant bit first, the 4 bits after the 128th
 * zero. Exactly that text is accepted, so one hash has one text. Returns 0 and the hash, or
 * -EINVAL. */
int nm_hash_parse_b64url(const char *p, size_t len, struct nm_hash128 *out);

#endif
