/* The codecs: every coding round-trips, output is the same bytes every time, a gzip member has
 * no time stamp, and decompression refuses damaged, trailing or oversized content. */
#include "variants/codec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const enum nm_coding codings[] = {NM_CODING_BR, NM_CODING_ZSTD, NM_CODING_GZIP};
#define N_CODINGS (sizeof(codings) / sizeof(codings[0]))

/* Some compressible text of n bytes. */
static char *sample(size_t n)
{
    char *p = malloc(n + 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = "body { color: #333; margin: 0 auto; }\n"[i % 38] + (char)(i / 997 % 3);
    return p;
}

Test(codec, every_coding_round_trips_at_every_level)
{
    static const size_t sizes[] = {0, 1, 100, 70000, 300000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        char *in = sample(sizes[s]);
        for (size_t c = 0; c < N_CODINGS; c++) {
            for (int level = 0; level <= 22; level += 11) {
                void *z, *back;
                size_t zn, bn;
                cr_assert_eq(nm_variants_codec_compress(codings[c], level, in, sizes[s], &z, &zn),
                             0);
                if (sizes[s] >= 70000)
                    cr_expect_lt(zn, sizes[s] / 4, "coding %d compresses", codings[c]);
                cr_assert_eq(nm_variants_codec_decompress(codings[c], z, zn, sizes[s], &back, &bn),
                             0, "coding %d size %zu level %d", codings[c], sizes[s], level);
                cr_expect_eq(bn, sizes[s]);
                cr_expect(bn == 0 || memcmp(back, in, bn) == 0);
                free(back);
                free(z);
            }
        }
        free(in);
    }
}

Test(codec, the_same_input_and_level_give_the_same_bytes)
{
    char *in = sample(50000);
    for (size_t c = 0; c < N_CODINGS; c++) {
        void *a, *b;
        size_t an, bn;
        cr_assert_eq(
            nm_variants_codec_compress(codings[c], NM_VARIANTS_LEVEL_DEFAULT, in, 50000, &a, &an),
            0);
        cr_assert_eq(
            nm_variants_codec_compress(codings[c], NM_VARIANTS_LEVEL_DEFAULT, in, 50000, &b, &bn),
            0);
        cr_expect(an == bn && memcmp(a, b, an) == 0, "coding %d", codings[c]);
        free(a);
        free(b);
    }
    free(in);
}

Test(codec, a_gzip_member_has_mtime_zero_no_name_and_a_fixed_os_byte)
{
    void *z;
    size_t zn;
    cr_assert_eq(nm_variants_codec_compress(NM_CODING_GZIP, 9, "hello hello hello", 17, &z, &zn),
                 0);
    const unsigned char *g = z;
    cr_assert_gt(zn, 18);
    cr_expect(g[0] == 0x1f && g[1] == 0x8b && g[2] == 8, "RFC 1952 magic and deflate");
    cr_expect_eq(g[3], 0, "no FNAME, FCOMMENT, FEXTRA, FHCRC");
    cr_expect(g[4] == 0 && g[5] == 0 && g[6] == 0 && g[7] == 0, "MTIME 0");
    cr_expect_eq(g[9], 255, "OS unknown");
    free(z);
}

Test(codec, levels_are_clamped_into_each_codings_range)
{
    cr_expect_eq(nm_variants_codec_level(NM_CODING_GZIP, 22), 9);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_GZIP, 0), 1);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_BR, 22), 11);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_BR, 0), 0);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_ZSTD, 0), 1);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_ZSTD, 22), 22);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_GZIP, NM_VARIANTS_LEVEL_DEFAULT), 9);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_ZSTD, NM_VARIANTS_LEVEL_DEFAULT), 19);
    cr_expect_eq(nm_variants_codec_level(NM_CODING_BR, NM_VARIANTS_LEVEL_DEFAULT), 11);
}

Test(codec, identity_is_no_codec)
{
    void *z;
    size_t zn;
    cr_expect_eq(nm_variants_codec_compress(NM_CODING_IDENTITY, 1, "a", 1, &z, &zn), -EINVAL);
    cr_expect_eq(nm_variants_codec_decompress(NM_CODING_IDENTITY, "a", 1, 10, &z, &zn), -EINVAL);
}

Test(codec, damaged_truncated_trailing_and_oversized_content_is_refused)
{
    char *in = sample(20000);
    for (size_t c = 0; c < N_CODINGS; c++) {
        void *z, *back;
        size_t zn, bn;
        cr_assert_eq(nm_variants_codec_compress(codings[c], 6, in, 20000, &z, &zn), 0);
        cr_expect_eq(nm_variants_codec_decompress(codings[c], z, zn - 3, 20000, &back, &bn),
                     -EINVAL, "truncated, coding %d", codings[c]);
        unsigned char *more = malloc(zn + 1);
        memcpy(more, z, zn);
        more[zn] = 'x';
        cr_expect_eq(nm_variants_codec_decompress(codings[c], more, zn + 1, 20000, &back, &bn),
                     -EINVAL, "trailing byte, coding %d", codings[c]);
        free(more);
        cr_expect_eq(nm_variants_codec_decompress(codings[c], z, zn, 19999, &back, &bn), -EMSGSIZE,
                     "one byte over the cap, coding %d", codings[c]);
        cr_expect_eq(nm_variants_codec_decompress(codings[c], "garbage!", 8, 20000, &back, &bn),
                     -EINVAL, "not a stream, coding %d", codings[c]);
        free(z);
    }
    free(in);
}
