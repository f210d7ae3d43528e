/* The on-the-fly variant cache: each (version, coding) coded once off the caller's thread, the
 * byte budget kept by dropping the least recently used, entries alive while referenced, and a
 * source that changed before it was read discarded. */
#include "variants/cache.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "variants/codec.h"

/* Sources are unlinked as soon as they are open: the cache reads through the descriptor. */
static int write_file(const char *name, const void *bytes, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/nm-cache-%d-%s", (int)getpid(), name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "%s", path);
    cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
    unlink(path);
    return fd;
}

TestSuite(cache, .timeout = 60);

#define TEXT_BYTES 8192u

/* Letters drawn at random: they code to about five eighths of their size. */
static char *text(size_t len, unsigned seed)
{
    char *p = malloc(len);
    cr_assert_not_null(p);
    uint64_t x = 0x9e3779b97f4a7c15ull + seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)('a' + x % 26);
    }
    return p;
}

static struct nm_variants_cache_key key_of(int fd, const void *bytes, size_t len,
                                           enum nm_coding coding)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    return (struct nm_variants_cache_key){
        .dev = (uint64_t)st.st_dev,
        .ino = (uint64_t)st.st_ino,
        .size = len,
        .mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
        .ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec,
        .hash = nm_hash_bytes(bytes, len),
        .coding = coding,
    };
}

static struct nm_variants_cache *new_cache(uint64_t budget)
{
    struct nm_variants_cache_options o;
    nm_variants_cache_options_init(&o);
    o.budget_bytes = budget;
    struct nm_variants_cache *c = NULL;
    cr_assert_eq(nm_variants_cache_new(&o, &c), 0);
    return c;
}

Test(cache, a_version_is_compressed_once_and_served_from_memory_after)
{
    char *src = text(TEXT_BYTES, 0);
    int fd = write_file("a.txt", src, TEXT_BYTES);
    struct nm_variants_cache *c = new_cache((uint64_t)1 << 20);
    struct nm_variants_cache_key k = key_of(fd, src, TEXT_BYTES, NM_CODING_GZIP);
    struct nm_variants_cache_entry *e = NULL;
    cr_expect_eq(nm_variants_cache_get(c, &k, fd, NULL, &e), -EAGAIN);
    cr_expect_eq(nm_variants_cache_get(c, &k, fd, NULL, &e), -EAGAIN);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    cr_assert_eq(nm_variants_cache_get(c, &k, fd, NULL, &e), 0);
    struct nm_variants_cache_entry *again = NULL;
    cr_assert_eq(nm_variants_cache_get(c, &k, fd, NULL, &again), 0);
    cr_expect_eq(again, e, "the same bytes, not a second copy");

    void *plain = NULL;
    size_t plain_len = 0;
    cr_assert_eq(nm_variants_codec_decompress(NM_CODING_GZIP, nm_variants_cache_entry_bytes(e),
                                              nm_variants_cache_entry_len(e), TEXT_BYTES, &plain,
                                              &plain_len),
                 0);
    cr_expect(plain_len == TEXT_BYTES && memcmp(plain, src, TEXT_BYTES) == 0);
    struct nm_hash128 h = nm_variants_cache_entry_hash(e);
    struct nm_hash128 want =
        nm_hash_bytes(nm_variants_cache_entry_bytes(e), nm_variants_cache_entry_len(e));
    cr_expect(h.hi == want.hi && h.lo == want.lo);

    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.compressed, 1);
    cr_expect_eq(st.entries, 1);
    free(plain);
    nm_variants_cache_entry_release(again);
    nm_variants_cache_entry_release(e);
    nm_variants_cache_free(c);
    close(fd);
    free(src);
}

Test(cache, the_same_source_gives_the_same_bytes_at_the_fixed_level)
{
    char *src = text(TEXT_BYTES, 3);
    int fd = write_file("a.css", src, TEXT_BYTES);
    enum nm_coding codings[] = {NM_CODING_GZIP, NM_CODING_ZSTD, NM_CODING_BR};
    for (size_t i = 0; i < 3; i++) {
        struct nm_hash128 seen[2];
        for (int round = 0; round < 2; round++) {
            struct nm_variants_cache *c = new_cache((uint64_t)1 << 20);
            struct nm_variants_cache_key k = key_of(fd, src, TEXT_BYTES, codings[i]);
            struct nm_variants_cache_entry *e = NULL;
            /* From memory in one round, from the descriptor in the other. */
            const void *mem = round ? src : NULL;
            cr_expect_eq(nm_variants_cache_get(c, &k, fd, mem, &e), -EAGAIN);
            cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
            cr_assert_eq(nm_variants_cache_get(c, &k, fd, mem, &e), 0);
            seen[round] = nm_variants_cache_entry_hash(e);
            nm_variants_cache_entry_release(e);
            nm_variants_cache_free(c);
        }
        cr_expect(seen[0].hi == seen[1].hi && seen[0].lo == seen[1].lo, "coding %zu", i);
    }
    close(fd);
    free(src);
}

Test(cache, the_budget_drops_the_least_recently_used_entry)
{
    enum { N = 3 };
    char *src[N];
    int fd[N];
    struct nm_variants_cache_key k[N];
    for (unsigned i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%u.txt", i);
        src[i] = text(TEXT_BYTES, i);
        fd[i] = write_file(name, src[i], TEXT_BYTES);
        k[i] = key_of(fd[i], src[i], TEXT_BYTES, NM_CODING_GZIP);
    }
    /* Learn one entry's cost, then allow two. */
    struct nm_variants_cache *probe = new_cache((uint64_t)1 << 20);
    struct nm_variants_cache_entry *e = NULL;
    nm_variants_cache_get(probe, &k[0], fd[0], NULL, &e);
    cr_assert_eq(nm_variants_cache_drain(probe, 10000), 0);
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(probe, &st);
    nm_variants_cache_free(probe);
    uint64_t one = st.bytes;
    cr_assert_gt(one, 0);

    struct nm_variants_cache *c = new_cache(2 * one + one / 2);
    for (unsigned i = 0; i < 2; i++) {
        cr_expect_eq(nm_variants_cache_get(c, &k[i], fd[i], NULL, &e), -EAGAIN);
        cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    }
    /* f0 used last: f1 is the one to go. */
    cr_assert_eq(nm_variants_cache_get(c, &k[0], fd[0], NULL, &e), 0);
    nm_variants_cache_entry_release(e);
    cr_expect_eq(nm_variants_cache_get(c, &k[2], fd[2], NULL, &e), -EAGAIN);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.evicted, 1);
    cr_expect_leq(st.bytes, 2 * one + one / 2);
    cr_expect_eq(nm_variants_cache_get(c, &k[0], fd[0], NULL, &e), 0);
    nm_variants_cache_entry_release(e);
    cr_expect_eq(nm_variants_cache_get(c, &k[2], fd[2], NULL, &e), 0);
    nm_variants_cache_entry_release(e);
    cr_expect_eq(nm_variants_cache_get(c, &k[1], fd[1], NULL, &e), -EAGAIN, "asked afresh");
    nm_variants_cache_free(c);
    for (unsigned i = 0; i < N; i++) {
        close(fd[i]);
        free(src[i]);
    }
}

Test(cache, a_held_entry_outlives_its_eviction_and_the_cache)
{
    char *a = text(TEXT_BYTES, 1), *b = text(TEXT_BYTES, 2);
    int fa = write_file("a.txt", a, TEXT_BYTES), fb = write_file("b.txt", b, TEXT_BYTES);
    struct nm_variants_cache_key ka = key_of(fa, a, TEXT_BYTES, NM_CODING_ZSTD);
    struct nm_variants_cache_key kb = key_of(fb, b, TEXT_BYTES, NM_CODING_ZSTD);
    /* Room for one entry only. */
    struct nm_variants_cache *c = new_cache(TEXT_BYTES + 1024);
    struct nm_variants_cache_entry *held = NULL, *e = NULL;
    nm_variants_cache_get(c, &ka, fa, NULL, &held);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    cr_assert_eq(nm_variants_cache_get(c, &ka, fa, NULL, &held), 0);
    nm_variants_cache_get(c, &kb, fb, NULL, &e);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.evicted, 1);
    nm_variants_cache_free(c);

    void *plain = NULL;
    size_t plain_len = 0;
    cr_assert_eq(nm_variants_codec_decompress(NM_CODING_ZSTD, nm_variants_cache_entry_bytes(held),
                                              nm_variants_cache_entry_len(held), TEXT_BYTES, &plain,
                                              &plain_len),
                 0);
    cr_expect(plain_len == TEXT_BYTES && memcmp(plain, a, TEXT_BYTES) == 0);
    free(plain);
    nm_variants_cache_entry_release(held);
    close(fa);
    close(fb);
    free(a);
    free(b);
}

Test(cache, a_source_changed_before_it_was_read_is_discarded)
{
    char *src = text(TEXT_BYTES, 4);
    int fd = write_file("a.txt", src, TEXT_BYTES);
    struct nm_variants_cache_key k = key_of(fd, src, TEXT_BYTES, NM_CODING_GZIP);
    /* The thread reads after this write: a new mtime and ctime. */
    struct timespec ts[2] = {{1000, 0}, {1000, 0}};
    cr_assert_eq(futimens(fd, ts), 0);
    struct nm_variants_cache *c = new_cache((uint64_t)1 << 20);
    struct nm_variants_cache_entry *e = NULL;
    cr_expect_eq(nm_variants_cache_get(c, &k, fd, NULL, &e), -EAGAIN);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.discarded, 1);
    cr_expect_eq(st.entries, 0);
    cr_expect_eq(nm_variants_cache_get(c, &k, fd, NULL, &e), -EAGAIN, "queued again, not kept");
    nm_variants_cache_free(c);
    close(fd);
    free(src);
}

Test(cache, bytes_that_do_not_hash_to_the_key_are_discarded)
{
    char *src = text(TEXT_BYTES, 5);
    int fd = write_file("a.txt", src, TEXT_BYTES);
    struct nm_variants_cache_key k = key_of(fd, src, TEXT_BYTES, NM_CODING_BR);
    k.hash.lo ^= 1;
    struct nm_variants_cache *c = new_cache((uint64_t)1 << 20);
    struct nm_variants_cache_entry *e = NULL;
    nm_variants_cache_get(c, &k, fd, NULL, &e);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.discarded, 1);
    nm_variants_cache_free(c);
    close(fd);
    free(src);
}

Test(cache, coding_that_does_not_pay_is_remembered_as_such)
{
    /* Bytes with no redundancy: every coding adds its framing. */
    char src[512];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(src); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        src[i] = (char)x;
    }
    int fd = write_file("noise.txt", src, sizeof(src));
    struct nm_variants_cache_key k = key_of(fd, src, sizeof(src), NM_CODING_GZIP);
    struct nm_variants_cache *c = new_cache((uint64_t)1 << 20);
    struct nm_variants_cache_entry *e = NULL;
    cr_expect_eq(nm_variants_cache_get(c, &k, -1, src, &e), -EAGAIN);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    cr_expect_eq(nm_variants_cache_get(c, &k, -1, src, &e), -ENODATA);
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_expect_eq(st.not_smaller, 1);
    k.coding = NM_CODING_IDENTITY;
    cr_expect_eq(nm_variants_cache_get(c, &k, -1, src, &e), -EINVAL);
    nm_variants_cache_free(c);
    close(fd);
}
