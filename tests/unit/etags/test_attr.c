/* The user.notmod.etag attribute: its value round-trips and nothing else parses; a value is
 * trusted only for the size, mtime and ctime bound it records. */
#include "etags/attr.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "fixture.h"

TestSuite(attr, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(attr, attribute_values_round_trip_and_reject_anything_else)
{
    struct nm_attr_record r = {1234,
                               1700000000123456789LL,
                               1700000001000000000LL,
                               {0x0123456789abcdefull, 0xfedcba9876543210ull}},
                          back;
    char val[NM_ATTR_MAX + 1];
    int n = nm_attr_format(&r, val, sizeof(val));
    cr_assert_gt(n, 0);
    cr_expect_str_eq(val, "1 1234 1700000000123456789 1700000001000000000 ASNFZ4mrze_-3LqYdlQyEA");
    cr_assert_eq(nm_attr_parse(val, (size_t)n, &back), 0);
    cr_expect(back.size == r.size && back.mtime_ns == r.mtime_ns &&
              back.ctime_max_ns == r.ctime_max_ns && back.hash.hi == r.hash.hi &&
              back.hash.lo == r.hash.lo);
    static const char *const bad[] = {
        "",
        "2 1234 1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyEA",
        "1 01234 1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyEA",
        "1 1234 -1 1 ASNFZ4mrze_-3LqYdlQyEA",
        "1 1234 9223372036854775808 1 ASNFZ4mrze_-3LqYdlQyEA",
        "1 1234 1700000000123456789 ASNFZ4mrze_-3LqYdlQyEA",
        "1 1234 1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyEB",
        "1 1234 1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyE",
        "1 1234 1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyEA ",
        "1 1234  1700000000123456789 1 ASNFZ4mrze_-3LqYdlQyEA",
        "1 1234 1700000000123456789 1 ASNFZ4mrze+/3LqYdlQyEA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(nm_attr_parse(bad[i], strlen(bad[i]), &back), -EINVAL, "%s", bad[i]);
}

Test(attr, an_attribute_is_trusted_only_for_its_size_mtime_and_ctime_bound)
{
    int fd = write_file("f", "abc", 3);
    if (!xattrs_work(fd)) {
        close(fd);
        cr_skip_test("no user xattrs on %s", dir);
    }
    struct nm_file_version v;
    version_of_fd(fd, &v);
    struct nm_hash128 h = nm_hashing_hash_bytes("abc", 3), got;
    cr_assert_eq(nm_attr_write(fd, &v, h), 0);
    cr_expect_eq(nm_attr_read(fd, &v, &got), 0);
    cr_expect(got.hi == h.hi && got.lo == h.lo);
    struct nm_file_version other = v;
    other.mtime_ns++;
    cr_expect_eq(nm_attr_read(fd, &other, &got), -ENODATA);
    other = v;
    other.size++;
    cr_expect_eq(nm_attr_read(fd, &other, &got), -ENODATA);
    /* A rewrite that restores size and mtime still moves the ctime past the bound. */
    struct nm_file_version after;
    version_of_fd(fd, &after);
    struct timespec keep[2] = {
        {0, UTIME_OMIT}, {(time_t)(v.mtime_ns / 1000000000), (long)(v.mtime_ns % 1000000000)}};
    sleep_ms(30);
    cr_assert_eq(pwrite(fd, "xyz", 3, 0), 3);
    cr_assert_eq(futimens(fd, keep), 0);
    struct nm_file_version rewritten;
    version_of_fd(fd, &rewritten);
    cr_assert_eq(rewritten.mtime_ns, v.mtime_ns);
    cr_expect_eq(nm_attr_read(fd, &after, &got), 0, "the version the write left");
    cr_expect_eq(nm_attr_read(fd, &rewritten, &got), -ENODATA);
    cr_assert_eq(fsetxattr(fd, NM_ATTR_NAME, "junk", 4, 0), 0);
    cr_expect_eq(nm_attr_read(fd, &v, &got), -ENODATA);
    close(fd);
}
