/* The user.notmod.source record: written and read back per coding and version, absent or
 * malformed records told apart, and a sidecar current by its record (source and, in version 2,
 * its own bytes) or, without one, by its age. */
#include "variants/record.h"

#include <errno.h>

#include "fixture.h"

TestSuite(record, .init = make_dir, .fini = remove_dir, .timeout = 60);

static int sidecar(void)
{
    int fd = write_file("x.css.br", "zz", 2);
    if (!xattrs_work(fd)) {
        close(fd);
        cr_skip_test("no user xattrs on %s", dir);
    }
    return fd;
}

static void expect_text(int fd, const char *want)
{
    char val[NM_VARIANTS_RECORD_MAX + 1];
    ssize_t n = fgetxattr(fd, NM_VARIANTS_RECORD_NAME, val, sizeof(val) - 1);
    cr_assert_gt(n, 0);
    val[n] = '\0';
    cr_expect_str_eq(val, want);
}

Test(record, a_written_record_reads_back_with_its_hash_and_text)
{
    int fd = sidecar();
    struct nm_variants_record w = {.source = {0x0123456789abcdefull, 0xfedcba9876543210ull}};
    struct nm_variants_record got = {.has_own = true};
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_BR, &w), 0);
    cr_assert_eq(nm_variants_record_read(fd, NM_CODING_BR, &got), 0);
    cr_expect(got.source.hi == w.source.hi && got.source.lo == w.source.lo);
    cr_expect_not(got.has_own, "version 1 names no own bytes");
    expect_text(fd, "1 br ASNFZ4mrze_-3LqYdlQyEA");
    close(fd);
}

Test(record, a_version_2_record_also_names_the_sidecars_own_bytes)
{
    int fd = sidecar();
    struct nm_variants_record w = {.source = {0x0123456789abcdefull, 0xfedcba9876543210ull},
                                   .has_own = true,
                                   .own = {0xfedcba9876543210ull, 0x0123456789abcdefull}};
    struct nm_variants_record got;
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_GZIP, &w), 0);
    cr_assert_eq(nm_variants_record_read(fd, NM_CODING_GZIP, &got), 0);
    cr_expect(got.has_own);
    cr_expect(got.source.hi == w.source.hi && got.source.lo == w.source.lo);
    cr_expect(got.own.hi == w.own.hi && got.own.lo == w.own.lo);
    expect_text(fd, "2 gzip ASNFZ4mrze_-3LqYdlQyEA _ty6mHZUMhABI0VniavN7w");
    close(fd);
}

Test(record, a_sidecar_without_the_attribute_has_no_record)
{
    int fd = sidecar();
    struct nm_variants_record got = {.source = {1, 2}};
    cr_expect_eq(nm_variants_record_read(fd, NM_CODING_GZIP, &got), -ENODATA);
    cr_expect(got.source.hi == 1 && got.source.lo == 2, "untouched on failure");
    close(fd);
}

Test(record, malformed_records_and_records_of_another_coding_are_einval)
{
    int fd = sidecar();
    static const char *const bad[] = {
        "",
        "1 br",
        "2 br ASNFZ4mrze_-3LqYdlQyEA",
        "2 br ASNFZ4mrze_-3LqYdlQyEA ",
        "2 br ASNFZ4mrze_-3LqYdlQyEAASNFZ4mrze_-3LqYdlQyEA",
        "2 br ASNFZ4mrze_-3LqYdlQyEA ASNFZ4mrze_-3LqYdlQyE",
        "2 br ASNFZ4mrze_-3LqYdlQyEA ASNFZ4mrze_-3LqYdlQyEA ",
        "3 br ASNFZ4mrze_-3LqYdlQyEA ASNFZ4mrze_-3LqYdlQyEA",
        "1 gzip ASNFZ4mrze_-3LqYdlQyEA",
        "1 br  ASNFZ4mrze_-3LqYdlQyEA",
        "1 br ASNFZ4mrze_-3LqYdlQyE",
        "1 br ASNFZ4mrze_-3LqYdlQyEA ",
        "1 br ASNFZ4mrze_-3LqYdlQyEB",
        "1 BR ASNFZ4mrze_-3LqYdlQyEA",
        "1 br ASNFZ4mrze_-3LqYdlQyEA-and-much-more-than-the-longest-record-can-be",
    };
    struct nm_variants_record got;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(fsetxattr(fd, NM_VARIANTS_RECORD_NAME, bad[i], strlen(bad[i]), 0), 0);
        cr_expect_eq(nm_variants_record_read(fd, NM_CODING_BR, &got), -EINVAL, "%s", bad[i]);
    }
    close(fd);
}

Test(record, identity_has_no_sidecar_and_no_record)
{
    int fd = sidecar();
    struct nm_variants_record r = {.source = {1, 2}};
    cr_expect_eq(nm_variants_record_write(fd, NM_CODING_IDENTITY, &r), -EINVAL);
    cr_expect_eq(nm_variants_record_read(fd, NM_CODING_IDENTITY, &r), -EINVAL);
    close(fd);
}

Test(record, a_recorded_sidecar_is_current_only_for_the_same_source_hash)
{
    int fd = sidecar();
    struct nm_hash128 h = nm_hash_bytes("body", 4), other = nm_hash_bytes("body2", 5);
    struct nm_variants_record r = {.source = h};
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_ZSTD, &r), 0);
    /* The record decides, whatever the times say. */
    cr_expect(nm_variants_sidecar_is_current(fd, NM_CODING_ZSTD, h, 2000, 1000));
    cr_expect_not(nm_variants_sidecar_is_current(fd, NM_CODING_ZSTD, other, 1000, 2000));
    cr_expect_not(nm_variants_sidecar_is_current(fd, NM_CODING_BR, h, 1000, 2000),
                  "a record of another coding");
    close(fd);
}

Test(record, a_sidecar_without_a_record_is_current_unless_older_than_its_source)
{
    int fd = sidecar();
    struct nm_hash128 h = nm_hash_bytes("body", 4);
    cr_expect(nm_variants_sidecar_is_current(fd, NM_CODING_GZIP, h, 1000, 2000));
    cr_expect(nm_variants_sidecar_is_current(fd, NM_CODING_GZIP, h, 1000, 1000));
    cr_expect_not(nm_variants_sidecar_is_current(fd, NM_CODING_GZIP, h, 1001, 1000));
    const char *bad = "1 gzip nonsense";
    cr_assert_eq(fsetxattr(fd, NM_VARIANTS_RECORD_NAME, bad, strlen(bad), 0), 0);
    cr_expect_not(nm_variants_sidecar_is_current(fd, NM_CODING_GZIP, h, 1000, 2000),
                  "a malformed record is never current");
    close(fd);
}

Test(record, a_version_2_sidecar_is_current_only_while_its_bytes_are_the_ones_recorded)
{
    int fd = sidecar(); /* holds "zz" */
    struct nm_hash128 h = nm_hash_bytes("body", 4);
    struct nm_variants_record r = {.source = h, .has_own = true, .own = nm_hash_bytes("zz", 2)};
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_BR, &r), 0);
    cr_expect(nm_variants_sidecar_is_current(fd, NM_CODING_BR, h, 2000, 1000));
    /* Rewritten in place and caught before its truncate: new bytes over the old. */
    cr_assert_eq(pwrite(fd, "y", 1, 0), 1);
    cr_expect_not(nm_variants_sidecar_is_current(fd, NM_CODING_BR, h, 1000, 2000));
    cr_assert_eq(pwrite(fd, "z", 1, 0), 1);
    cr_expect(nm_variants_sidecar_is_current(fd, NM_CODING_BR, h, 1000, 2000), "the bytes again");
    cr_expect_not(
        nm_variants_sidecar_is_current(fd, NM_CODING_BR, nm_hash_bytes("x", 1), 1000, 2000),
        "its own bytes, but another source");
    close(fd);
}
