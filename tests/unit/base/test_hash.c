/* Content hashes: the reference XXH3-128 value, descriptors and streams hash like their bytes,
 * seeds, and the hex and base64url text forms. */
#include "base/hash.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notmod/etag.h"

static char *fill(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u + seed) >> 7);
    return p;
}

static bool same(struct nm_hash128 a, struct nm_hash128 b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

Test(hash, empty_input_has_the_reference_xxh3_128_value)
{
    /* The value xxHash's own sanity table gives for XXH3_128bits of no bytes. */
    struct nm_hash128 h = nm_hash_bytes("", 0);
    cr_expect_eq(h.hi, 0x99aa06d3014798d8ull);
    cr_expect_eq(h.lo, 0x6001c324468d497full);
    cr_expect(same(nm_hash_bytes(NULL, 0), h));
}

Test(hash, a_descriptor_hashes_like_its_bytes)
{
    char path[] = "/tmp/nm-hash-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    size_t n = 3 * (1u << 20) + 17;
    char *data = fill(n, 1);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    cr_assert_eq(lseek(fd, 5, SEEK_SET), 5);
    struct nm_hash128 a = nm_hash_bytes(data, n), b;
    cr_assert_eq(nm_hash_fd(fd, n, NULL, &b), 0);
    cr_expect(a.hi == b.hi && a.lo == b.lo);
    /* A size that is not the file's is a change, not a hash. */
    cr_expect_eq(nm_hash_fd(fd, n - 1, NULL, &b), -EAGAIN);
    cr_expect_eq(nm_hash_fd(fd, n + 1, NULL, &b), -EAGAIN);
    atomic_bool stop = true;
    cr_expect_eq(nm_hash_fd(fd, n, &stop, &b), -ECANCELED);
    /* The file offset is neither used nor moved. */
    cr_expect_eq(lseek(fd, 0, SEEK_CUR), 5);
    close(fd);
    free(data);
}

Test(hash, a_stream_hashes_like_its_pieces_concatenated)
{
    size_t n = 100000;
    char *data = fill(n, 2);
    struct nm_hash_stream *s;
    cr_assert_eq(nm_hash_stream_new(&s), 0);
    cr_expect(same(nm_hash_stream_digest(s), nm_hash_bytes("", 0)));
    nm_hash_stream_update(s, data, 1);
    nm_hash_stream_update(s, data + 1, 4095);
    nm_hash_stream_update(s, data + 4096, 0);
    nm_hash_stream_update(s, data + 4096, n - 4096);
    cr_expect(same(nm_hash_stream_digest(s), nm_hash_bytes(data, n)));
    nm_hash_stream_free(s);
    nm_hash_stream_free(NULL);
    free(data);
}

Test(hash, a_seed_gives_another_hash_and_the_same_one_each_time)
{
    const char in[] = "multipart";
    struct nm_hash128 plain = nm_hash_bytes(in, sizeof(in));
    struct nm_hash128 a = nm_hash_bytes_seeded(in, sizeof(in), 42);
    cr_expect(same(nm_hash_bytes_seeded(in, sizeof(in), 0), plain));
    cr_expect(same(nm_hash_bytes_seeded(in, sizeof(in), 42), a));
    cr_expect_not(same(a, plain));
    cr_expect_not(same(nm_hash_bytes_seeded(in, sizeof(in), 43), a));
}

Test(hash, hex_is_32_lowercase_digits_hi_first)
{
    char hex[NM_HASH_HEX_LEN + 1];
    nm_hash_format_hex((struct nm_hash128){0x0123456789abcdefull, 0xfedcba9876543210ull}, hex);
    cr_expect_str_eq(hex, "0123456789abcdeffedcba9876543210");
    nm_hash_format_hex((struct nm_hash128){0, 1}, hex);
    cr_expect_str_eq(hex, "00000000000000000000000000000001");
}

Test(hash, base64url_reads_exactly_what_a_content_tag_carries)
{
    struct nm_hash128 h;
    cr_assert_eq(nm_hash_parse_b64url("maoG0wFHmNhgAcMkRo1Jfw", 22, &h), 0);
    cr_expect(same(h, nm_hash_bytes("", 0)));
    cr_assert_eq(nm_hash_parse_b64url("ASNFZ4mrze_-3LqYdlQyEA", 22, &h), 0);
    cr_expect_eq(h.hi, 0x0123456789abcdefull);
    cr_expect_eq(h.lo, 0xfedcba9876543210ull);
    /* Every hash comes back from the text nm_etag_make_hash128 writes for it. */
    struct nm_hash128 cases[] = {{0, 0}, {UINT64_MAX, UINT64_MAX}, {1, 0}, {0, 1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char tag[NM_ETAG_MAX + 1];
        cr_assert_eq(nm_etag_make_hash128(cases[i].hi, cases[i].lo, tag, sizeof(tag)), 24);
        cr_assert_eq(nm_hash_parse_b64url(tag + 1, 22, &h), 0);
        cr_expect(same(h, cases[i]), "%s", tag);
    }
    static const char *const bad[] = {
        "ASNFZ4mrze_-3LqYdlQyEB", /* a padding bit set */
        "ASNFZ4mrze_-3LqYdlQyE",  "ASNFZ4mrze_-3LqYdlQyEAA",
        "ASNFZ4mrze+/3LqYdlQyEA", /* base64, not base64url */
        "ASNFZ4mrze_-3LqYdlQy=A", "\"SNFZ4mrze_-3LqYdlQyEA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(nm_hash_parse_b64url(bad[i], strlen(bad[i]), &h), -EINVAL, "%s", bad[i]);
}
