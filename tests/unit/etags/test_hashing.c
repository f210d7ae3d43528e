/* Content hashing: bytes and descriptors, the attribute format, racy versions, the memo and the
 * pool (one job per version, discarded on change, persisted), manifests checked against files,
 * and the one-file path of notmod etag. Pool tests wait out the 2 s racy window of new files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "etags/hashing.h"
#include "etags/manifest.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nm_hashing_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(hashing, .init = make_dir, .fini = remove_dir, .timeout = 60);

static char *fill(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u + seed) >> 7);
    return p;
}

/* Writes a file in place (no truncation), keeping its inode. */
static int write_file(const char *name, const char *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    cr_assert_eq(ftruncate(fd, (off_t)n), 0);
    return fd;
}

static void version_of_fd(int fd, struct nm_file_version *v)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    nm_hashing_version_of(&st, v);
}

static bool xattrs_work(int fd)
{
    if (fsetxattr(fd, "user.nm_probe", "1", 1, 0) != 0)
        return false;
    fremovexattr(fd, "user.nm_probe");
    return true;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls the memo until it knows v, for up to 15 s. */
static bool wait_for_hash(struct nm_hashing *h, const struct nm_file_version *v,
                          struct nm_hash128 *out)
{
    for (int i = 0; i < 1500; i++) {
        if (nm_hashing_find(h, -1, v, out) == 0)
            return true;
        sleep_ms(10);
    }
    return false;
}

static struct nm_hashing *pool(bool persist)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = persist;
    o.low_priority = false;
    o.small_file_bytes = 1024;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    return h;
}

Test(hashing, empty_input_has_the_reference_xxh3_128_value)
{
    /* The value xxHash's own sanity table gives for XXH3_128bits of no bytes. */
    struct nm_hash128 h = nm_hashing_hash_bytes("", 0);
    cr_expect_eq(h.hi, 0x99aa06d3014798d8ull);
    cr_expect_eq(h.lo, 0x6001c324468d497full);
    char tag[80];
    cr_assert_eq(nm_hashing_format_etag(h, tag, sizeof(tag)), 24);
    cr_expect_str_eq(tag, "\"maoG0wFHmNhgAcMkRo1Jfw\"");
}

Test(hashing, a_descriptor_hashes_like_its_bytes)
{
    size_t n = 3 * (1u << 20) + 17;
    char *data = fill(n, 1);
    int fd = write_file("f", data, n);
    struct nm_hash128 a = nm_hashing_hash_bytes(data, n), b;
    cr_assert_eq(nm_hashing_hash_fd(fd, n, NULL, &b), 0);
    cr_expect(a.hi == b.hi && a.lo == b.lo);
    /* A size that is not the file's is a change, not a hash. */
    cr_expect_eq(nm_hashing_hash_fd(fd, n - 1, NULL, &b), -EAGAIN);
    cr_expect_eq(nm_hashing_hash_fd(fd, n + 1, NULL, &b), -EAGAIN);
    atomic_bool stop = true;
    cr_expect_eq(nm_hashing_hash_fd(fd, n, &stop, &b), -ECANCELED);
    close(fd);
    free(data);
}

Test(hashing, attribute_values_round_trip_and_reject_anything_else)
{
    struct nm_hashing_record r = {1234,
                                  1700000000123456789LL,
                                  1700000001000000000LL,
                                  {0x0123456789abcdefull, 0xfedcba9876543210ull}},
                             back;
    char val[NM_HASHING_XATTR_MAX + 1];
    int n = nm_hashing_xattr_format(&r, val, sizeof(val));
    cr_assert_gt(n, 0);
    cr_expect_str_eq(val, "1 1234 1700000000123456789 1700000001000000000 ASNFZ4mrze_-3LqYdlQyEA");
    cr_assert_eq(nm_hashing_xattr_parse(val, (size_t)n, &back), 0);
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
        cr_expect_eq(nm_hashing_xattr_parse(bad[i], strlen(bad[i]), &back), -EINVAL, "%s", bad[i]);
}

Test(hashing, an_attribute_is_trusted_only_for_its_size_mtime_and_ctime_bound)
{
    int fd = write_file("f", "abc", 3);
    if (!xattrs_work(fd)) {
        close(fd);
        cr_skip_test("no user xattrs on %s", dir);
    }
    struct nm_file_version v;
    version_of_fd(fd, &v);
    struct nm_hash128 h = nm_hashing_hash_bytes("abc", 3), got;
    cr_assert_eq(nm_hashing_xattr_write(fd, &v, h), 0);
    cr_expect_eq(nm_hashing_xattr_read(fd, &v, &got), 0);
    cr_expect(got.hi == h.hi && got.lo == h.lo);
    struct nm_file_version other = v;
    other.mtime_ns++;
    cr_expect_eq(nm_hashing_xattr_read(fd, &other, &got), -ENODATA);
    other = v;
    other.size++;
    cr_expect_eq(nm_hashing_xattr_read(fd, &other, &got), -ENODATA);
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
    cr_expect_eq(nm_hashing_xattr_read(fd, &after, &got), 0, "the version the write left");
    cr_expect_eq(nm_hashing_xattr_read(fd, &rewritten, &got), -ENODATA);
    cr_assert_eq(fsetxattr(fd, NM_HASHING_XATTR, "junk", 4, 0), 0);
    cr_expect_eq(nm_hashing_xattr_read(fd, &v, &got), -ENODATA);
    close(fd);
}

Test(hashing, a_version_is_racy_for_two_seconds_after_its_ctime)
{
    struct nm_file_version v = {.ctime_ns = 10 * 1000000000LL};
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns));
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns - 5));
    cr_expect(nm_hashing_is_racy(&v, v.ctime_ns + NM_HASHING_RACY_NS - 1));
    cr_expect_not(nm_hashing_is_racy(&v, v.ctime_ns + NM_HASHING_RACY_NS));
}

struct asker {
    struct nm_hashing *h;
    int fd;
    struct nm_file_version v;
};

static void *ask_many_times(void *arg)
{
    struct asker *a = arg;
    for (int i = 0; i < 200; i++)
        nm_hashing_request(a->h, a->fd, &a->v);
    return NULL;
}

Test(hashing, one_version_is_hashed_once_whoever_asks_and_persisted)
{
    size_t n = 2u << 20;
    char *data = fill(n, 2);
    int fd = write_file("big", data, n);
    bool xattrs = xattrs_work(fd);
    struct nm_hashing *h = pool(true);
    struct asker a = {h, fd, {0}};
    version_of_fd(fd, &a.v);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, ask_many_times, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct nm_hash128 got, want = nm_hashing_hash_bytes(data, n);
    cr_assert(wait_for_hash(h, &a.v, &got), "no hash within 15 s");
    cr_expect(got.hi == want.hi && got.lo == want.lo);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.hashed_files, 1);
    cr_expect_eq(st.hashed_bytes, n);
    cr_expect_eq(st.waited_racy, 1, "a new file waits out its racy window");
    if (xattrs) {
        /* The attribute write moved ctime; the change check knows it was ours. */
        for (int i = 0; i < 100 && (nm_hashing_get_stats(h, &st), st.persisted == 0); i++)
            sleep_ms(10);
        cr_expect_eq(st.persisted, 1);
        struct nm_file_version now;
        version_of_fd(fd, &now);
        cr_expect_neq(now.ctime_ns, a.v.ctime_ns);
        cr_expect(nm_hashing_is_own_change(h, &a.v, &now));
        cr_expect_eq(nm_hashing_find(h, -1, &now, &got), 0);
        struct nm_file_version written = now;
        written.mtime_ns++;
        cr_expect_not(nm_hashing_is_own_change(h, &a.v, &written));
    }
    nm_hashing_free(h);

    if (xattrs) {
        /* A restart: the attribute answers, nothing is hashed again. */
        h = pool(true);
        struct nm_file_version now;
        version_of_fd(fd, &now);
        cr_expect_eq(nm_hashing_find(h, fd, &now, &got), 0);
        cr_expect(got.hi == want.hi && got.lo == want.lo);
        nm_hashing_get_stats(h, &st);
        cr_expect_eq(st.hashed_files, 0);
        cr_expect_eq(st.from_xattr, 1);
        nm_hashing_free(h);
    }
    close(fd);
    free(data);
}

Test(hashing, a_file_that_changes_before_its_job_runs_gets_no_hash)
{
    size_t n = 1u << 20;
    char *data = fill(n, 3);
    int fd = write_file("f", data, n);
    struct nm_hashing *h = pool(false);
    struct nm_file_version v1, v2;
    version_of_fd(fd, &v1);
    cr_assert_eq(nm_hashing_request(h, fd, &v1), 0);
    sleep_ms(20);
    data[0] ^= 1;
    cr_assert_eq(pwrite(fd, data, 1, 0), 1);
    version_of_fd(fd, &v2);
    cr_assert(!nm_hashing_version_equal(&v1, &v2));
    /* The job wakes after the racy window, sees another version and drops out. */
    unsigned g = nm_hashing_generation(h);
    for (int i = 0; i < 1500 && nm_hashing_generation(h) == g; i++)
        sleep_ms(10);
    cr_assert_neq(nm_hashing_generation(h), g, "the job never ended");
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, -1, &v1, &got), -ENOENT);
    cr_expect_eq(nm_hashing_find(h, -1, &v2, &got), -ENOENT);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.hashed_files, 0);
    cr_expect_eq(st.discarded, 1);
    /* Asking for the new version hashes the new bytes. */
    cr_assert_eq(nm_hashing_request(h, fd, &v2), 0);
    cr_assert(wait_for_hash(h, &v2, &got));
    struct nm_hash128 want = nm_hashing_hash_bytes(data, n);
    cr_expect(got.hi == want.hi && got.lo == want.lo);
    nm_hashing_free(h);
    close(fd);
    free(data);
}

Test(hashing, same_bytes_give_the_same_tag_after_a_rollback)
{
    size_t n = 1u << 20;
    char *a = fill(n, 4), *b = fill(n, 5);
    struct nm_hashing *h = pool(false);
    struct nm_hash128 got[3];
    const char *contents[3] = {a, b, a};
    int fd = -1;
    for (int i = 0; i < 3; i++) {
        if (fd >= 0)
            close(fd);
        fd = write_file("f", contents[i], n);
        struct nm_file_version v;
        version_of_fd(fd, &v);
        cr_assert_eq(nm_hashing_request(h, fd, &v), 0);
        cr_assert(wait_for_hash(h, &v, &got[i]));
    }
    cr_expect(got[0].hi == got[2].hi && got[0].lo == got[2].lo);
    cr_expect(got[0].hi != got[1].hi || got[0].lo != got[1].lo);
    nm_hashing_free(h);
    close(fd);
    free(a);
    free(b);
}

Test(hashing, a_pool_of_none_refuses_jobs)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.threads = 0;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    int fd = write_file("f", "x", 1);
    struct nm_file_version v;
    version_of_fd(fd, &v);
    cr_expect_eq(nm_hashing_request(h, fd, &v), -ENOTSUP);
    cr_expect_eq(nm_hashing_prehash(h, AT_FDCWD, false, NULL, NULL), -ENOTSUP);
    nm_hashing_free(h);
    close(fd);
}

static int warnings;
static char last_warning[256];

static void on_warn(void *arg, const char *path, const char *why)
{
    (void)arg;
    warnings++;
    snprintf(last_warning, sizeof(last_warning), "%s: %s", path, why);
}

Test(hashing, manifest_entries_are_checked_against_the_tree)
{
    size_t big = 64 * 1024;
    char *data = fill(big, 6);
    close(write_file("small", "hello", 5));
    close(write_file("wrong", "hellO", 5));
    close(write_file("resized", "hello!", 6));
    close(write_file("big", data, big));
    struct nm_hash128 hs = nm_hashing_hash_bytes("hello", 5), hb = nm_hashing_hash_bytes(data, big);
    struct nm_hash128 claimed = {1, 2};
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/small", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/wrong", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/resized", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/missing", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/big", big, claimed.hi, claimed.lo, 2000), 0);
    cr_assert_eq(nm_manifest_sort(m), 0);

    struct nm_hashing *h = pool(false);
    int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    warnings = 0;
    int kept = nm_hashing_use_manifest(h, root, m, on_warn, NULL);
    /* /small matches; /big is kept but not believed: its hash will come from its bytes. */
    cr_expect_eq(kept, 2);
    cr_expect_eq(warnings, 3, "last: %s", last_warning);
    int64_t lm;
    cr_expect(nm_hashing_manifest_last_modified(h, "/small", 5, hs, &lm));
    cr_expect_eq(lm, 1000);
    cr_expect_not(nm_hashing_manifest_last_modified(h, "/wrong", 5, hs, &lm));
    cr_expect_not(nm_hashing_manifest_last_modified(h, "/small", 5, hb, &lm));
    /* The bytes hash to hb, not to the claim: the manifest's date never goes with them. */
    cr_expect_not(nm_hashing_manifest_last_modified(h, "/big", big, hb, &lm));
    nm_hashing_free(h);
    close(root);
    free(data);
}

Test(hashing, a_large_file_is_never_taken_at_the_manifests_word)
{
    size_t big = 64 * 1024 + 1;
    char *data = fill(big, 7);
    int fd = write_file("big", data, big);
    struct nm_hash128 real = nm_hashing_hash_bytes(data, big);
    struct nm_hash128 other = {3, 4};
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/big", big, real.hi, real.lo, 2000), 0);
    cr_assert_eq(nm_manifest_sort(m), 0);
    sleep_ms(2100); /* past the racy window */
    struct nm_hashing *h = pool(false);
    int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_expect_eq(nm_hashing_use_manifest(h, root, m, NULL, NULL), 1);
    struct nm_file_version v;
    version_of_fd(fd, &v);
    struct nm_hash128 got;
    /* Kept, but no hash enters the memo on the manifest's word ... */
    cr_expect_eq(nm_hashing_find(h, -1, &v, &got), -ENOENT);
    /* ... and its date goes with the bytes once they are known to hash to the entry. */
    int64_t lm;
    cr_expect(nm_hashing_manifest_last_modified(h, "/big", big, real, &lm));
    cr_expect_eq(lm, 2000);
    nm_hashing_free(h);

    /* A valid attribute naming other bytes: the entry is ignored. */
    cr_assert_eq(nm_hashing_xattr_write(fd, &v, other), 0);
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/big", big, real.hi, real.lo, 2000), 0);
    cr_assert_eq(nm_manifest_sort(m), 0);
    h = pool(false);
    warnings = 0;
    cr_expect_eq(nm_hashing_use_manifest(h, root, m, on_warn, NULL), 0);
    cr_expect_eq(warnings, 1);
    nm_hashing_free(h);
    close(root);
    close(fd);
    free(data);
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
                           "from_xattr=5 from_manifest=0 persisted=0 discarded=0 waited_racy=0 "
                           "prehash_files=0");
    cr_expect_eq(nm_hashing_format_stats(&st, line, 10), -ENOSPC);
    cr_expect_eq(strchr(line, '\n'), NULL);
}

Test(hashing, a_job_that_cannot_be_queued_leaves_no_answer_behind)
{
    struct nm_hashing *h = pool(false);
    struct nm_file_version v = {.dev = 1, .ino = 2, .size = 3, .mtime_ns = 4, .ctime_ns = 5};
    cr_expect_eq(nm_hashing_request(h, -1, &v), -EBADF);
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, -1, &v, &got), -ENOENT);
    struct nm_file_version later = v;
    later.mtime_ns++;
    cr_expect_not(nm_hashing_is_own_change(h, &v, &later));
    nm_hashing_free(h);
}
