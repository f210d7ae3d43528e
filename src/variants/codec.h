/* Compressing and decompressing bytes as gzip (RFC 1952), zstd (RFC 8878) and brotli (RFC 7932).
 * The one module that speaks to zlib, libzstd and libbrotli. For one input, library version and
 * level the output is the same bytes every time: a gzip member carries mtime 0, no name and OS
 * byte 255 (unknown). */
#ifndef NOTMOD_VARIANTS_CODEC_H
#define NOTMOD_VARIANTS_CODEC_H

#include <stddef.h>

#include "notmod/coding.h"

/* Each coding's level range and the level used when none is given: gzip 1..9 (9), zstd 1..22
 * (19), brotli 0..11 (11). Returns the level clamped into the coding's range, or the default
 * when level is NM_VARIANTS_LEVEL_DEFAULT. */
#define NM_VARIANTS_LEVEL_DEFAULT (-1000)
int nm_variants_codec_level(enum nm_coding coding, int level);

/* Compresses in_len bytes (in may be NULL when in_len is 0) at level (clamped as above) into a
 * new buffer of *out_len bytes, which the caller frees with free(). Returns 0, -EINVAL for
 * NM_CODING_IDENTITY or an unknown coding, -EMSGSIZE when in_len is larger than the library
 * accepts, -ENOMEM, or -EIO when the library fails. *out and *out_len are written only on
 * success. */
int nm_variants_codec_compress(enum nm_coding coding, int level, const void *in, size_t in_len,
                               void **out, size_t *out_len);

/* Decompresses one complete stream (a gzip member, a zstd frame, a brotli stream) into a new
 * buffer of at most max_out bytes, freed with free(). Returns 0, -EINVAL for a malformed or
 * truncated stream, trailing bytes, or an unknown coding, -EMSGSIZE when the content is longer
 * than max_out, or -ENOMEM. *out and *out_len are written only on success. */
int nm_variants_codec_decompress(enum nm_coding coding, const void *in, size_t in_len,
                                 size_t max_out, void **out, size_t *out_len);

#endif
