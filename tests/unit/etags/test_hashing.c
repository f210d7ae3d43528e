/* The hashing object's own parts: versions and their racy window, the content tag of a hash,
 * the counters' line, and one file on its own as notmod etag hashes it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "fixture.h"

TestSuite(hashing, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(hashing, a_hash_formats_as_its_content_tag)
{
    /* The reference XXH3-128 value of no bytes (tests/unit/base/test_hash.c). */
    struct nm_hash128 h = nm_hashing_hash_bytes("", 0);
    char tag[80];
    cr_assert_eq(nm_hashing_format_etag(h, tag, sizeof(tag)), 24);
    cr_expect_str_eq(tag, "\"maoG0wFHmNhgAcMkRo1Jfw\"");
}

Test(hashing, a_version_is_racy_for_two_seconds_after_its_ctime)
{
    struct nm_file_version v = {.ctime_ns = 10 * 1000000000LL};
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns));
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns - 5));
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns + NM_HASHING_RACY_NS - 1));
    cr_expect_not(nm_hashing_is_racy(&v, v.ctime_ns + NM_HASHING_RACY_NS));
}

Test(hashing, one_file_uses_a_valid_attribute_unless_asked_to_rehash)
{
    size_t n = 4096;
    char *data = fill(n, 8);
    int fd = write_file("f", data, n);
    if (!xattrs_work(fd)) {
        close(fd);
        free(data);
        cr_skip_test("no user xattrs on %s", dir);
    }
    struct nm_hashing_file_options o = {.small_file_bytes = 1024, .persist = true};
    struct nm_hash128 h, want = nm_hashing_hash_bytes(data, n);
    enum nm_hash_source src;
    struct nm_file_version v;
    int stored;
    /* New: the racy window is waited out before the value is stored. */
    cr_assert_eq(nm_hashing_hash_file(fd, &o, &h, &src, &v, &stored), 0);
    cr_expect_eq(stored, 1);
    cr_expect_eq(src, NM_HASH_HASHED);
    cr_expect(h.hi == want.hi && h.lo == want.lo);
    o.persist = false;
    cr_assert_eq(nm_hashing_hash_file(fd, &o, &h, &src, &v, &stored), 0);
    cr_expect_eq(src, NM_HASH_XATTR);
    cr_expect_eq(stored, 0);
    o.rehash = true;
    cr_assert_eq(nm_hashing_hash_file(fd, &o, &h, &src, &v, &stored), 0);
    cr_expect_eq(src, NM_HASH_HASHED);
    /* A small file is always hashed from its bytes, as the server does. */
    o.rehash = false;
    o.small_file_bytes = n;
    cr_assert_eq(nm_hashing_hash_file(fd, &o, &h, &src, &v, &stored), 0);
    cr_expect_eq(src, NM_HASH_HASHED);
    close(fd);
    free(data);
}

Test(hashing, counters_format_as_one_line)
{
    struct nm_hashing_stats st = {.hashed_files = 2, .hashed_bytes = 300, .from_xattr = 5};
    char line[512];
    cr_assert_gt(nm_hashing_format_stats(&st, line, sizeof(line)), 0);
    cr_expect_str_eq(line, "hashed_files=2 hashed_bytes=300 small_files=0 small_bytes=0 "
                           "from_xattr=5 from_store=0 from_manifest=0 persisted=0 "
                           "persist_failed=0 discarded=0 waited_racy=0 prehash_files=0");
    cr_expect_eq(nm_hashing_format_stats(&st, line, 10), -ENOSPC);
    cr_expect_eq(strchr(line, '\n'), NULL);
}

static int warnings;

__attribute__((format(printf, 1, 2))) static void count_warning(const char *fmt, ...)
{
    (void)fmt;
    warnings++;
}

Test(hashing, a_full_disk_warns_once_and_pauses_attribute_writes)
{
    cr_assert_eq(setenv("NOTMOD_TEST_XATTR_ERRNO", "28", 1), 0); /* ENOSPC */
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = true;
    o.low_priority = false;
    o.warn = count_warning;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    unsetenv("NOTMOD_TEST_XATTR_ERRNO");
    int a = write_file("a", "abc", 3), b = write_file("b", "xyz", 3);
    sleep_ms(NM_HASHING_RACY_NS / 1000000 + 100); /* only a settled version is persisted */
    struct nm_file_version va, vb, now_v;
    version_of_fd(a, &va);
    version_of_fd(b, &vb);
    struct nm_hash128 ha = nm_hashing_hash_bytes("abc", 3), hb = nm_hashing_hash_bytes("xyz", 3);
    warnings = 0;
    nm_hashing_remember(h, a, &va, ha, &now_v);
    nm_hashing_remember(h, b, &vb, hb, &now_v);
    struct nm_hash128 got;
    cr_assert_eq(nm_hashing_find(h, a, &va, &got), 0);
    cr_expect(got.hi == ha.hi && got.lo == ha.lo);
    cr_assert_eq(nm_hashing_find(h, b, &vb, &got), 0);
    cr_expect(got.hi == hb.hi && got.lo == hb.lo);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(warnings, 1);
    cr_expect_eq(st.persist_failed, 1, "the second write waits out the back-off");
    cr_expect_eq(st.persisted, 0);
    char val[8];
    cr_expect_lt(fgetxattr(a, "user.notmod.etag", val, sizeof(val)), 0);
    nm_hashing_free(h);
    close(a);
    close(b);
}

Test(hashing, a_version_found_in_memory_is_counted_as_such_and_nothing_is_queued)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.low_priority = false;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    int a = write_file("m", "abc", 3);
    struct nm_file_version va, now_v;
    version_of_fd(a, &va);
    struct nm_hash128 ha = nm_hashing_hash_bytes("abc", 3), got;
    nm_hashing_remember(h, a, &va, ha, &now_v);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.from_memo, 0);
    cr_assert_eq(nm_hashing_find(h, a, &va, &got), 0);
    cr_assert_eq(nm_hashing_find(h, a, &va, &got), 0);
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.from_memo, 2);
    cr_expect_eq(st.queued, 0);
    nm_hashing_free(h);
    close(a);
}

Test(hashing, a_forgotten_version_is_no_longer_in_memory_and_others_stay)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.low_priority = false;
    o.persist = false;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    int a = write_file("fa", "abc", 3), b = write_file("fb", "xyz", 3);
    struct nm_file_version va, vb, other;
    version_of_fd(a, &va);
    version_of_fd(b, &vb);
    struct nm_hash128 got;
    nm_hashing_remember(h, a, &va, nm_hashing_hash_bytes("abc", 3), NULL);
    nm_hashing_remember(h, b, &vb, nm_hashing_hash_bytes("xyz", 3), NULL);
    other = vb;
    other.size++;
    nm_hashing_forget(h, &other); /* another version of b: b's stays */
    nm_hashing_forget(h, &va);
    cr_expect_eq(nm_hashing_find(h, -1, &va, &got), -ENOENT);
    cr_expect_eq(nm_hashing_find(h, -1, &vb, &got), 0);
    nm_hashing_forget(h, &va); /* twice: nothing left to forget */
    nm_hashing_free(h);
    close(a);
    close(b);
}
