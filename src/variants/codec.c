/* gzip (RFC 1952) through zlib, zstd (RFC 8878) through libzstd and brotli (RFC 7932) through
 * libbrotli: one-shot compression with reproducible output, and capped decompression. */
#include "codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* RFC 1952 §2.3.1: OS 255 is "unknown", so the member does not depend on the build machine. */
#define GZIP_OS_UNKNOWN 255

struct level_range {
    int min, max, dflt;
};

static const struct level_range levels[NM_CODING_COUNT] = {
    [NM_CODING_BR] = {0, 11, 11},
    [NM_CODING_ZSTD] = {1, 22, 19},
    [NM_CODING_GZIP] = {1, 9, 9},
};

static bool coding_is_sidecar(enum nm_coding coding)
{
    return coding > NM_CODING_IDENTITY && coding < NM_CODING_COUNT;
}

int nm_variants_codec_level(enum nm_coding coding, int level)
{
    if (!coding_is_sidecar(coding))
        return 0;
    const struct level_range *r = &levels[coding];
    if (level == NM_VARIANTS_LEVEL_DEFAULT)
        return r->dflt;
    return level < r->min ? r->min : level > r->max ? r->max : level;
}

static int gzip_compress(int level, const void *in, size_t in_len, void **out, size_t *out_len)
{
    if (in_len > UINT_MAX / 2)
        return -EMSGSIZE;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* windowBits 31: a gzip wrapper around a 32 KiB window. */
    int zr = deflateInit2(&zs, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK)
        return zr == Z_MEM_ERROR ? -ENOMEM : -EIO;
    int rc;
    /* RFC 1952 §2.3.1: MTIME 0 means no time stamp; no name, no comment. */
    gz_header hdr;
    memset(&hdr, 0, sizeof(hdr));
    hdr.os = GZIP_OS_UNKNOWN;
    if (deflateSetHeader(&zs, &hdr) != Z_OK) {
        rc = -EIO;
        goto fail_end_deflate;
    }
    uLong bound = deflateBound(&zs, (uLong)in_len);
    unsigned char *buf = malloc(bound);
    if (!buf) {
        rc = -ENOMEM;
        goto fail_end_deflate;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        rc = -EIO;
        goto fail_free_buf;
    }
    *out_len = zs.total_out;
    *out = buf;
    deflateEnd(&zs);
    return 0;

fail_free_buf:
    free(buf);
fail_end_deflate:
    deflateEnd(&zs);
    return rc;
}

static int zstd_compress(int level, const void *in, size_t in_len, void **out, size_t *out_len)
{
    size_t bound = ZSTD_compressBound(in_len);
    if (ZSTD_isError(bound))
        return -EMSGSIZE;
    void *buf = malloc(bound);
    if (!buf)
        return -ENOMEM;
    size_t n = ZSTD_compress(buf, bound, in, in_len, level);
    if (ZSTD_isError(n)) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static int brotli_compress(int level, const void *in, size_t in_len, void **out, size_t *out_len)
{
    size_t bound = BrotliEncoderMaxCompressedSize(in_len);
    if (bound == 0)
        return -EMSGSIZE;
    uint8_t *buf = malloc(bound);
    if (!buf)
        return -ENOMEM;
    size_t n = bound;
    if (!BrotliEncoderCompress(level, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, in_len, in, &n,
                               buf)) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int nm_variants_codec_compress(enum nm_coding coding, int level, const void *in, size_t in_len,
                               void **out, size_t *out_len)
{
    static const unsigned char none;
    if (!in)
        in = &none; /* the libraries want a pointer even for no bytes */
    level = nm_variants_codec_level(coding, level);
    switch (coding) {
    case NM_CODING_GZIP:
        return gzip_compress(level, in, in_len, out, out_len);
    case NM_CODING_ZSTD:
        return zstd_compress(level, in, in_len, out, out_len);
    case NM_CODING_BR:
        return brotli_compress(level, in, in_len, out, out_len);
    default:
        return -EINVAL;
    }
}

/* The output of a decompression: grows by doubling up to max bytes, one more than the caller
 * allows, so a content of exactly the allowed length is told from a longer one. */
struct sink {
    unsigned char *ptr;
    size_t len, cap, max;
};

/* Makes room after len. Returns 0, -EMSGSIZE when len is already max, or -ENOMEM. */
static int sink_grow(struct sink *s)
{
    if (s->len < s->cap)
        return 0;
    if (s->cap >= s->max)
        return -EMSGSIZE;
    size_t cap = s->cap ? s->cap * 2 : 16384;
    if (cap > s->max || cap < s->cap)
        cap = s->max;
    unsigned char *p = realloc(s->ptr, cap ? cap : 1);
    if (!p)
        return -ENOMEM;
    s->ptr = p;
    s->cap = cap;
    return 0;
}

static int gzip_decompress(const void *in, size_t in_len, struct sink *s)
{
    if (in_len > UINT_MAX)
        return -EINVAL;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int zr = inflateInit2(&zs, 31); /* a gzip member only, no zlib or raw stream */
    if (zr != Z_OK)
        return zr == Z_MEM_ERROR ? -ENOMEM : -EIO;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    int rc;
    for (;;) {
        rc = sink_grow(s);
        if (rc < 0)
            break;
        size_t room = s->cap - s->len;
        if (room > UINT_MAX)
            room = UINT_MAX;
        zs.next_out = s->ptr + s->len;
        zs.avail_out = (uInt)room;
        zr = inflate(&zs, Z_NO_FLUSH);
        s->len += room - zs.avail_out;
        if (zr == Z_STREAM_END) {
            rc = zs.avail_in == 0 ? 0 : -EINVAL; /* a second member, or garbage, follows */
            break;
        }
        if (zr == Z_MEM_ERROR) {
            rc = -ENOMEM;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = -EINVAL;
            break;
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            rc = -EINVAL; /* truncated */
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static int zstd_decompress(const void *in, size_t in_len, struct sink *s)
{
    /* One frame and nothing after it. */
    size_t frame = ZSTD_findFrameCompressedSize(in, in_len);
    if (ZSTD_isError(frame) || frame != in_len)
        return -EINVAL;
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds)
        return -ENOMEM;
    ZSTD_inBuffer ib = {in, in_len, 0};
    int rc;
    for (;;) {
        rc = sink_grow(s);
        if (rc < 0)
            break;
        ZSTD_outBuffer ob = {s->ptr + s->len, s->cap - s->len, 0};
        size_t r = ZSTD_decompressStream(ds, &ob, &ib);
        s->len += ob.pos;
        if (ZSTD_isError(r)) {
            rc = -EINVAL;
            break;
        }
        if (r == 0) {
            rc = 0; /* the frame is complete and flushed */
            break;
        }
        if (ib.pos == ib.size && ob.pos < ob.size) {
            rc = -EINVAL;
            break;
        }
    }
    ZSTD_freeDStream(ds);
    return rc;
}

static int brotli_decompress(const void *in, size_t in_len, struct sink *s)
{
    BrotliDecoderState *ds = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!ds)
        return -ENOMEM;
    const uint8_t *next_in = in;
    size_t avail_in = in_len;
    int rc;
    for (;;) {
        rc = sink_grow(s);
        if (rc < 0)
            break;
        uint8_t *next_out = s->ptr + s->len;
        size_t avail_out = s->cap - s->len;
        size_t room = avail_out;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(ds, &avail_in, &next_in, &avail_out, &next_out, NULL);
        s->len += room - avail_out;
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            rc = avail_in == 0 ? 0 : -EINVAL;
            break;
        }
        if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
            rc = -EINVAL; /* an error, or more input needed: truncated */
            break;
        }
    }
    BrotliDecoderDestroyInstance(ds);
    return rc;
}

int nm_variants_codec_decompress(enum nm_coding coding, const void *in, size_t in_len,
                                 size_t max_out, void **out, size_t *out_len)
{
    static const unsigned char none;
    if (!in)
        in = &none;
    struct sink s = {NULL, 0, 0, max_out == SIZE_MAX ? max_out : max_out + 1};
    int rc;
    switch (coding) {
    case NM_CODING_GZIP:
        rc = gzip_decompress(in, in_len, &s);
        break;
    case NM_CODING_ZSTD:
        rc = zstd_decompress(in, in_len, &s);
        break;
    case NM_CODING_BR:
        rc = brotli_decompress(in, in_len, &s);
        break;
    default:
        rc = -EINVAL;
    }
    if (rc == 0 && s.len > max_out)
        rc = -EMSGSIZE;
    if (rc < 0) {
        free(s.ptr);
        return rc;
    }
    if (!s.ptr) {
        s.ptr = malloc(1); /* an empty content is still a buffer the caller frees */
        if (!s.ptr)
            return -ENOMEM;
    }
    *out = s.ptr;
    *out_len = s.len;
    return 0;
}
