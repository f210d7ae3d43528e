/* The ETag store: records round-trip and nothing else decodes; a hash is found again only under
 * exactly its key; torn, truncated and foreign records are misses; the file never holds more
 * than its capacity; threads writing at once tear no record; the hashing object reads and writes
 * it instead of the attribute, and a failing store is reported once. */
#include "etags/store.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "etags/etags.h"
#include "fixture.h"

TestSuite(store, .init = make_dir, .fini = remove_dir, .timeout = 120);

static const struct nm_etag_store_key KEY = {
    11, 22, 33, 44, 70000, 1700000000123456789LL, 1700000001987654321LL};
static const struct nm_hash128 HASH = {0x0123456789abcdefull, 0xfedcba9876543210ull};

static char store_path[160];

static const char *store_file(void)
{
    snprintf(store_path, sizeof(store_path), "%s/" NM_ETAG_STORE_FILE, dir);
    return store_path;
}

static struct nm_etag_store *open_store(size_t records)
{
    struct nm_etag_store *s;
    cr_assert_eq(nm_etag_store_open(dir, records, &s), 0);
    return s;
}

static off_t file_size(void)
{
    struct stat st;
    cr_assert_eq(stat(store_file(), &st), 0);
    return st.st_size;
}

Test(store, records_round_trip_and_reject_anything_else)
{
    struct nm_etag_store_record r = {KEY, HASH, 1700000002000000000LL}, back;
    uint8_t b[NM_ETAG_STORE_RECORD_BYTES];
    cr_assert_eq(nm_etag_store_encode(&r, b), 0);
    cr_expect_eq(memcmp(b, "NMET\1\0\0\0", 8), 0);
    cr_assert_eq(nm_etag_store_decode(b, sizeof(b), &back), 0);
    cr_expect_eq(memcmp(&back.key, &r.key, sizeof(r.key)), 0);
    cr_expect(back.hash.hi == HASH.hi && back.hash.lo == HASH.lo);
    cr_expect_eq(back.stored_ns, r.stored_ns);
    /* Any one bit flipped anywhere, checksum included, is refused. */
    for (size_t i = 0; i < sizeof(b); i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            cr_expect_eq(nm_etag_store_decode(b, sizeof(b), &back), -EBADMSG, "byte %zu", i);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    cr_expect_eq(nm_etag_store_decode(b, sizeof(b) - 1, &back), -EBADMSG);
    uint8_t zero[NM_ETAG_STORE_RECORD_BYTES] = {0};
    cr_expect_eq(nm_etag_store_decode(zero, sizeof(zero), &back), -EBADMSG);
    struct nm_etag_store_record neg = r;
    neg.key.ctime_ns = -1;
    cr_expect_eq(nm_etag_store_encode(&neg, b), -EINVAL);
}

Test(store, a_stored_hash_is_found_again_after_reopening)
{
    struct nm_etag_store *s = open_store(64);
    struct nm_hash128 got;
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    cr_assert_eq(nm_etag_store_put(s, &KEY, HASH), 0);
    nm_etag_store_free(s);
    s = open_store(64);
    cr_assert_eq(nm_etag_store_get(s, &KEY, &got), 0);
    cr_expect(got.hi == HASH.hi && got.lo == HASH.lo);
    /* A new hash for the same file replaces the old record. */
    struct nm_etag_store_key k2 = KEY;
    k2.ctime_ns += 5;
    struct nm_hash128 h2 = {1, 2};
    cr_assert_eq(nm_etag_store_put(s, &k2, h2), 0);
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    cr_assert_eq(nm_etag_store_get(s, &k2, &got), 0);
    cr_expect(got.hi == 1 && got.lo == 2);
    nm_etag_store_free(s);
    struct stat st;
    cr_assert_eq(stat(store_file(), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
}

Test(store, a_key_that_differs_in_any_field_misses)
{
    struct nm_etag_store *s = open_store(64);
    cr_assert_eq(nm_etag_store_put(s, &KEY, HASH), 0);
    for (int field = 0; field < 7; field++) {
        struct nm_etag_store_key k = KEY;
        switch (field) {
        case 0:
            k.root_dev++;
            break;
        case 1:
            k.root_ino++;
            break;
        case 2:
            k.dev++;
            break;
        case 3:
            k.ino++;
            break;
        case 4:
            k.size++;
            break;
        case 5:
            k.mtime_ns++;
            break;
        default:
            k.ctime_ns++;
            break;
        }
        struct nm_hash128 got;
        cr_expect_eq(nm_etag_store_get(s, &k, &got), -ENOENT, "field %d", field);
    }
    nm_etag_store_free(s);
}

/* The offset of the one record the store holds (the others are zeros). */
static off_t only_record(void)
{
    int fd = open(store_file(), O_RDONLY);
    cr_assert_geq(fd, 0);
    uint8_t b[NM_ETAG_STORE_RECORD_BYTES];
    off_t at = -1;
    for (off_t off = NM_ETAG_STORE_RECORD_BYTES; pread(fd, b, sizeof(b), off) == (ssize_t)sizeof(b);
         off += (off_t)sizeof(b))
        if (memcmp(b, "NMET", 4) == 0)
            at = off;
    close(fd);
    cr_assert_geq(at, 0);
    return at;
}

Test(store, a_torn_or_truncated_record_misses)
{
    struct nm_etag_store *s = open_store(64);
    cr_assert_eq(nm_etag_store_put(s, &KEY, HASH), 0);
    off_t at = only_record();
    int fd = open(store_file(), O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b[NM_ETAG_STORE_RECORD_BYTES], torn[NM_ETAG_STORE_RECORD_BYTES];
    cr_assert_eq(pread(fd, b, sizeof(b), at), (ssize_t)sizeof(b));
    /* The first half of a new record over the second half of the old one: a crash mid-write. */
    struct nm_etag_store_record other = {KEY, {7, 7}, 1};
    other.key.size++; /* the next version of the same file */
    cr_assert_eq(nm_etag_store_encode(&other, torn), 0);
    memcpy(torn + 64, b + 64, 64);
    cr_assert_eq(pwrite(fd, torn, sizeof(torn), at), (ssize_t)sizeof(torn));
    struct nm_hash128 got;
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    cr_expect_eq(nm_etag_store_get(s, &other.key, &got), -ENOENT);
    /* A record cut short by a truncated file. */
    cr_assert_eq(pwrite(fd, b, sizeof(b), at), (ssize_t)sizeof(b));
    cr_assert_eq(nm_etag_store_get(s, &KEY, &got), 0);
    cr_assert_eq(ftruncate(fd, at + 100), 0);
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    close(fd);
    nm_etag_store_free(s);
    /* Reopened, a file of the wrong size is replaced by an empty one of the right size. */
    s = open_store(64);
    cr_expect_eq(file_size(), (off_t)NM_ETAG_STORE_RECORD_BYTES * 65);
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    nm_etag_store_free(s);
}

Test(store, a_file_others_could_write_or_of_another_capacity_is_replaced)
{
    struct nm_etag_store *s = open_store(64);
    cr_assert_eq(nm_etag_store_put(s, &KEY, HASH), 0);
    nm_etag_store_free(s);
    cr_assert_eq(chmod(store_file(), 0666), 0);
    s = open_store(64);
    struct nm_hash128 got;
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    cr_assert_eq(nm_etag_store_put(s, &KEY, HASH), 0);
    nm_etag_store_free(s);
    s = open_store(128);
    cr_expect_eq(nm_etag_store_capacity(s), 128);
    cr_expect_eq(file_size(), (off_t)NM_ETAG_STORE_RECORD_BYTES * 129);
    cr_expect_eq(nm_etag_store_get(s, &KEY, &got), -ENOENT);
    nm_etag_store_free(s);
}

static struct nm_hash128 hash_for(const struct nm_etag_store_key *k)
{
    return nm_hash_bytes(k, sizeof(*k));
}

static struct nm_etag_store_key key_n(uint64_t n)
{
    struct nm_etag_store_key k = KEY;
    k.ino = n;
    k.size = n * 3;
    return k;
}

Test(store, the_file_never_holds_more_than_its_capacity_and_newest_records_stay)
{
    struct nm_etag_store *s = open_store(64);
    cr_assert_eq(nm_etag_store_capacity(s), 64);
    off_t size = file_size();
    for (uint64_t n = 0; n < 1000; n++) {
        struct nm_etag_store_key k = key_n(n);
        cr_assert_eq(nm_etag_store_put(s, &k, hash_for(&k)), 0);
    }
    cr_expect_eq(file_size(), size);
    size_t found = 0;
    for (uint64_t n = 0; n < 1000; n++) {
        struct nm_etag_store_key k = key_n(n);
        struct nm_hash128 got, want = hash_for(&k);
        if (nm_etag_store_get(s, &k, &got) == 0) {
            found++;
            cr_expect(got.hi == want.hi && got.lo == want.lo);
        }
    }
    /* At most the 64 records it holds: with 16 sets of 4, each set keeps its newest 4. */
    cr_expect_leq(found, 64);
    cr_expect_geq(found, 48);
    /* The last key written is always there. */
    struct nm_etag_store_key last = key_n(999);
    struct nm_hash128 got;
    cr_expect_eq(nm_etag_store_get(s, &last, &got), 0);
    nm_etag_store_free(s);
}

struct writer {
    struct nm_etag_store *s;
    unsigned id;
};

static void *write_many(void *arg)
{
    struct writer *w = arg;
    for (uint64_t i = 0; i < 3000; i++) {
        struct nm_etag_store_key k = key_n(i % 200);
        k.ctime_ns += w->id; /* each thread its own version of the same 200 files */
        if (nm_etag_store_put(w->s, &k, hash_for(&k)) != 0)
            return (void *)1;
    }
    return NULL;
}

Test(store, threads_writing_at_once_leave_no_torn_record)
{
    struct nm_etag_store *s = open_store(256);
    enum { N = 6 };
    pthread_t t[N];
    struct writer w[N];
    for (unsigned i = 0; i < N; i++) {
        w[i] = (struct writer){s, i};
        cr_assert_eq(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        cr_expect_null(rc);
    }
    /* Every record in the file decodes and carries the hash of its own key. */
    int fd = open(store_file(), O_RDONLY);
    cr_assert_geq(fd, 0);
    uint8_t b[NM_ETAG_STORE_RECORD_BYTES];
    size_t whole = 0;
    for (off_t off = NM_ETAG_STORE_RECORD_BYTES; pread(fd, b, sizeof(b), off) == (ssize_t)sizeof(b);
         off += (off_t)sizeof(b)) {
        static const uint8_t zero[NM_ETAG_STORE_RECORD_BYTES];
        if (memcmp(b, zero, sizeof(b)) == 0)
            continue;
        struct nm_etag_store_record r;
        cr_assert_eq(nm_etag_store_decode(b, sizeof(b), &r), 0, "a torn record at %lld",
                     (long long)off);
        struct nm_hash128 want = hash_for(&r.key);
        cr_expect(r.hash.hi == want.hi && r.hash.lo == want.lo);
        whole++;
    }
    close(fd);
    cr_expect_gt(whole, 100);
    nm_etag_store_free(s);
}

/* ---- through the hashing object -------------------------------------------------------------- */

static int warnings;
static char last_warning[256];

__attribute__((format(printf, 1, 2))) static void count_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_warning, sizeof(last_warning), fmt, ap);
    va_end(ap);
    warnings++;
}

static struct nm_hashing *hashing_with_store(void)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.threads = 0;
    o.persist = false;
    o.store_dir = dir;
    o.store_records = 64;
    o.root_dev = 5;
    o.root_ino = 6;
    o.warn = count_warning;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    return h;
}

static struct nm_file_version settled(uint64_t ino)
{
    int64_t old = nm_hashing_now_ns() - 10 * NM_HASHING_RACY_NS;
    return (struct nm_file_version){1, ino, 100000, old, old};
}

Test(store, the_hashing_object_reads_back_what_it_stored_without_touching_the_file)
{
    int fd = write_file("f.bin", "x", 1);
    struct nm_hashing *h = hashing_with_store();
    struct nm_file_version v = settled(77);
    nm_hashing_remember(h, fd, &v, HASH, NULL);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.persisted, 1);
    nm_hashing_free(h);
    char val[8];
    cr_expect_lt(fgetxattr(fd, "user.notmod.etag", val, sizeof(val)), 0);

    h = hashing_with_store();
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, -1, &v, &got), -ENOENT); /* the memo only */
    cr_assert_eq(nm_hashing_find(h, fd, &v, &got), 0);
    cr_expect(got.hi == HASH.hi && got.lo == HASH.lo);
    struct nm_file_version changed = v;
    changed.ctime_ns++;
    cr_expect_eq(nm_hashing_find(h, fd, &changed, &got), -ENOENT);
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.from_store, 1);
    nm_hashing_free(h);
    close(fd);
}

Test(store, a_racy_version_is_not_stored)
{
    int fd = write_file("f.bin", "x", 1);
    struct nm_hashing *h = hashing_with_store();
    int64_t now = nm_hashing_now_ns();
    struct nm_file_version v = {1, 78, 100000, now, now};
    nm_hashing_remember(h, -1, &v, HASH, NULL);
    nm_hashing_free(h);
    h = hashing_with_store();
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, fd, &v, &got), -ENOENT);
    nm_hashing_free(h);
    close(fd);
}

Test(store, failing_store_writes_are_reported_once_and_paused)
{
    static const int errs[] = {ENOSPC, EROFS, EIO};
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        char num[16];
        snprintf(num, sizeof(num), "%d", errs[i]);
        setenv("NOTMOD_TEST_STORE_ERRNO", num, 1);
        warnings = 0;
        struct nm_hashing *h = hashing_with_store();
        unsetenv("NOTMOD_TEST_STORE_ERRNO");
        for (uint64_t ino = 100; ino < 120; ino++) {
            struct nm_file_version v = settled(ino);
            nm_hashing_remember(h, -1, &v, HASH, NULL);
            struct nm_hash128 got;
            cr_expect_eq(nm_hashing_find(h, -1, &v, &got), 0); /* from memory */
        }
        struct nm_hashing_stats st;
        nm_hashing_get_stats(h, &st);
        cr_expect_eq(st.persisted, 0);
        cr_expect_eq(st.persist_failed, 1, "%s", strerror(errs[i]));
        cr_expect_eq(warnings, 1);
        cr_expect_not_null(strstr(last_warning, strerror(errs[i])), "%s", last_warning);
        nm_hashing_free(h);
    }
}
