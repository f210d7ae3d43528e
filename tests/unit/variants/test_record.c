/* The user.notmod.source record: written and read back per coding, absent or malformed records
 * told apart, and a sidecar current by its record or, without one, by its age. */
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

Test(record, a_written_record_reads_back_with_its_hash_and_text)
{
    int fd = sidecar();
    struct nm_hash128 h = {0x0123456789abcdefull, 0xfedcba9876543210ull}, got = {0, 0};
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_BR, h), 0);
    cr_assert_eq(nm_variants_record_read(fd, NM_CODING_BR, &got), 0);
    cr_expect(got.hi == h.hi && got.lo == h.lo);
    char val[NM_VARIANTS_RECORD_MAX + 1];
    ssize_t n = fgetxattr(fd, NM_VARIANTS_RECORD_NAME, val, sizeof(val) - 1);
    cr_assert_gt(n, 0);
    val[n] = '\0';
    cr_expect_str_eq(val, "1 br ASNFZ4mrze_-3LqYdlQyEA");
    close(fd);
}

Test(record, a_sidecar_without_the_attribute_has_no_record)
{
    int fd = sidecar();
    struct nm_hash128 got = {1, 2};
    cr_expect_eq(nm_variants_record_read(fd, NM_CODING_GZIP, &got), -ENODATA);
    cr_expect(got.hi == 1 && got.lo == 2, "untouched on failure");
    close(fd);
}

Test(record, malformed_records_and_records_of_another_coding_are_einval)
{
    int fd = sidecar();
    static const char *const bad[] = {
        "",
        "1 br",
        "2 br ASNFZ4mrze_-3LqYdlQyEA",
        "1 gzip ASNFZ4mrze_-3LqYdlQyEA",
        "1 br  ASNFZ4mrze_-3LqYdlQyEA",
        "1 br ASNFZ4mrze_-3LqYdlQyE",
        "1 br ASNFZ4mrze_-3LqYdlQyEA ",
        "1 br ASNFZ4mrze_-3LqYdlQyEB",
        "1 BR ASNFZ4mrze_-3LqYdlQyEA",
        "1 br ASNFZ4mrze_-3LqYdlQyEA-and-much-more-than-the-longest-record-can-be",
    };
    struct nm_hash128 got;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(fsetxattr(fd, NM_VARIANTS_RECORD_NAME, bad[i], strlen(bad[i]), 0), 0);
        cr_expect_eq(nm_variants_record_read(fd, NM_CODING_BR, &got), -EINVAL, "%s", bad[i]);
    }
    close(fd);
}

Test(record, identity_has_no_sidecar_and_no_record)
{
    int fd = sidecar();
    struct nm_hash128 h = {1, 2};
    cr_expect_eq(nm_variants_record_write(fd, NM_CODING_IDENTITY, h), -EINVAL);
    cr_expect_eq(nm_variants_record_read(fd, NM_CODING_IDENTITY, &h), -EINVAL);
    close(fd);
}

Test(record, a_recorded_sidecar_is_current_only_for_the_same_source_hash)
{
    int fd = sidecar();
    struct nm_hash128 h = nm_hash_bytes("body", 4), other = nm_hash_bytes("body2", 5);
    cr_assert_eq(nm_variants_record_write(fd, NM_CODING_ZSTD, h), 0);
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
