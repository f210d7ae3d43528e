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

/* Sets the attribute to a record for v's size and mtime with the given ctime bound. */
static void forge(int fd, const struct nm_file_version *v, int64_t ctime_max_ns,
                  struct nm_hash128 h)
{
    struct nm_attr_record r = {v->size, v->mtime_ns, ctime_max_ns, h};
    char val[NM_ATTR_MAX + 1];
    int n = nm_attr_format(&r, val, sizeof(val));
    cr_assert_gt(n, 0);
    cr_assert_eq(fsetxattr(fd, NM_ATTR_NAME, val, (size_t)n, 0), 0);
}

Test(attr, a_ctime_bound_no_write_could_have_set_is_ignored)
{
    int fd = write_file("f", "abc", 3);
    if (!xattrs_work(fd)) {
        close(fd);
        cr_skip_test("no user xattrs on %s", dir);
    }
    struct nm_hash128 h = nm_hashing_hash_bytes("abc", 3), got;
    static const int64_t hour_ns = 3600LL * 1000000000LL;
    int64_t bounds[] = {INT64_MAX, nm_hashing_now_ns() + hour_ns};
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        struct nm_file_version v;
        version_of_fd(fd, &v);
        forge(fd, &v, bounds[i], h);
        version_of_fd(fd, &v);
        cr_expect_eq(nm_attr_read(fd, &v, &got), -ENODATA, "bound %lld", (long long)bounds[i]);
        /* The rewrite it was forged to hide: same size, mtime put back. */
        struct timespec keep[2] = {
            {0, UTIME_OMIT}, {(time_t)(v.mtime_ns / 1000000000), (long)(v.mtime_ns % 1000000000)}};
        cr_assert_eq(pwrite(fd, "xyz", 3, 0), 3);
        cr_assert_eq(futimens(fd, keep), 0);
        struct nm_file_version rewritten;
        version_of_fd(fd, &rewritten);
        cr_expect_eq(nm_attr_read(fd, &rewritten, &got), -ENODATA);
    }
    close(fd);
}

Test(attr, an_attribute_the_hashing_writes_is_accepted)
{
    int fd = write_file("f", "abc", 3);
    if (!xattrs_work(fd)) {
        close(fd);
        cr_skip_test("no user xattrs on %s", dir);
    }
    sleep_ms(NM_HASHING_RACY_NS / 1000000 + 100); /* only a settled version is persisted */
    struct nm_file_version v, now_v;
    version_of_fd(fd, &v);
    struct nm_hash128 h = nm_hashing_hash_bytes("abc", 3), got;
    struct nm_hashing *hs = pool(true);
    nm_hashing_remember(hs, fd, &v, h, &now_v);
    nm_hashing_free(hs);
    struct nm_file_version after;
    version_of_fd(fd, &after);
    cr_assert_eq(nm_attr_read(fd, &after, &got), 0);
    cr_expect(got.hi == h.hi && got.lo == h.lo);
    close(fd);
}
