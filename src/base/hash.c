/* XXH3-128 of bytes, descriptors and streams, and the hash's hex and base64url text. */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#define CHUNK_BYTES (256u << 10)

struct nm_hash_stream {
    XXH3_state_t *state;
};

static struct nm_hash128 from_xxh(XXH128_hash_t h)
{
    return (struct nm_hash128){h.high64, h.low64};
}

struct nm_hash128 nm_hash_bytes(const void *p, size_t n)
{
    return from_xxh(XXH3_128bits(p, n));
}

struct nm_hash128 nm_hash_bytes_seeded(const void *p, size_t n, uint64_t seed)
{
    return from_xxh(XXH3_128bits_withSeed(p, n, seed));
}

int nm_hash_stream_new(struct nm_hash_stream **out)
{
    struct nm_hash_stream *s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->state = XXH3_createState();
    if (!s->state)
        goto fail_free_stream;
    XXH3_128bits_reset(s->state);
    *out = s;
    return 0;

fail_free_stream:
    free(s);
    return -ENOMEM;
}

void nm_hash_stream_update(struct nm_hash_stream *s, const void *p, size_t n)
{
    XXH3_128bits_update(s->state, p, n);
}

struct nm_hash128 nm_hash_stream_digest(const struct nm_hash_stream *s)
{
    return from_xxh(XXH3_128bits_digest(s->state));
}

void nm_hash_stream_free(struct nm_hash_stream *s)
{
    if (!s)
        return;
    XXH3_freeState(s->state);
    free(s);
}

/* Reads [0, size) into the stream; -EAGAIN when the file ends early. */
static int feed_fd(struct nm_hash_stream *s, int fd, uint64_t size, const atomic_bool *stop,
                   char *chunk)
{
    uint64_t off = 0;
    while (off < size) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            return -ECANCELED;
        size_t want = size - off < CHUNK_BYTES ? (size_t)(size - off) : CHUNK_BYTES;
        ssize_t n = pread(fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EAGAIN; /* shrank while being read */
        nm_hash_stream_update(s, chunk, (size_t)n);
        off += (uint64_t)n;
    }
    char extra;
    ssize_t n;
    do
        n = pread(fd, &extra, 1, (off_t)size);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        return n < 0 ? -errno : -EAGAIN; /* grew while being read */
    return 0;
}

int nm_hash_fd(int fd, uint64_t size, const atomic_bool *stop, struct nm_hash128 *out)
{
    struct nm_hash_stream *s;
    int rc = nm_hash_stream_new(&s);
    if (rc < 0)
        return rc;
    /* Page-aligned: copying from the page cache into a buffer 16 bytes off a page boundary
     * (what malloc returns for this size) ran three times slower (docs/benchmarks.md). */
    char *chunk = aligned_alloc(4096, CHUNK_BYTES);
    if (!chunk) {
        rc = -ENOMEM;
        goto fail_free_stream;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    rc = feed_fd(s, fd, size, stop, chunk);
    if (rc == 0)
        *out = nm_hash_stream_digest(s);
    free(chunk);
fail_free_stream:
    nm_hash_stream_free(s);
    return rc;
}

void nm_hash_format_hex(struct nm_hash128 h, char out[NM_HASH_HEX_LEN + 1])
{
    snprintf(out, NM_HASH_HEX_LEN + 1, "%016" PRIx64 "%016" PRIx64, h.hi, h.lo);
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int nm_hash_parse_b64url(const char *p, size_t len, struct nm_hash128 *out)
{
    if (len != NM_HASH_B64URL_LEN)
        return -EINVAL;
    uint64_t hi = 0, lo = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)p[i]);
        if (v < 0)
            return -EINVAL;
        for (int b = 5; b >= 0; b--, bits++) {
            unsigned bit = (unsigned)(v >> b) & 1;
            if (bits < 64)
                hi = hi << 1 | bit;
            else if (bits < 128)
                lo = lo << 1 | bit;
            else if (bit)
                return -EINVAL; /* a nonzero padding bit: a second text for the same hash */
        }
    }
    *out = (struct nm_hash128){hi, lo};
    return 0;
}
