/* The file table's content ETags: from the bytes held in memory, from the pool for larger files
 * (served without an ETag until then), synchronously without a pool, and always new for new
 * bytes and old for old bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etags/etags.h"
#include "serve/config.h"
#include "serve/filecache.h"
#include "serve/mime.h"

static char dir[64];
static int root_fd = -1;
static struct nm_config cfg;
static struct nm_mime_table *mime;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nm_filecache_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    nm_config_init(&cfg);
    cr_assert_eq(nm_mime_table_new("/nonexistent/mime.types", &mime), 0);
}

static void teardown(void)
{
    nm_mime_table_free(mime);
    nm_config_cleanup(&cfg);
    close(root_fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(filecache, .init = setup, .fini = teardown, .timeout = 60);

static char *fill(size_t n, unsigned seed)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 2654435761u + seed) >> 9);
    return p;
}

/* Rewrites a file in place with the same inode. */
static void put(const char *name, const char *data, size_t n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    cr_assert_eq(ftruncate(fd, (off_t)n), 0);
    close(fd);
}

static void expect_tag_of(const struct nm_file *f, const char *data, size_t n)
{
    char want[NM_ETAG_MAX + 1];
    nm_hashing_format_etag(nm_hashing_hash_bytes(data, n), want, sizeof(want));
    cr_assert(f->has_etag);
    cr_expect_eq(f->etag.opaque.len, strlen(want));
    cr_expect_eq(memcmp(f->etag.opaque.ptr, want, strlen(want)), 0, "%.*s vs %s",
                 (int)f->etag.opaque.len, f->etag.opaque.ptr, want);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

Test(filecache, a_small_file_is_tagged_with_the_hash_of_its_bytes)
{
    put("a.txt", "hello\n", 6);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/a.txt", &f), 0);
    expect_tag_of(f, "hello\n", 6);
    cr_expect_not(f->hash_pending);
    nm_file_release(f);
    nm_filecache_free(fc);
}

Test(filecache, a_same_size_rewrite_gets_a_new_tag_and_a_rollback_the_old_one)
{
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    const char *bodies[] = {"version A\n", "version B\n", "version A\n"};
    char tags[3][NM_ETAG_MAX + 1];
    for (int i = 0; i < 3; i++) {
        put("f", bodies[i], 10);
        struct nm_file *f;
        cr_assert_eq(nm_filecache_lookup(fc, "/f", &f), 0);
        expect_tag_of(f, bodies[i], 10);
        snprintf(tags[i], sizeof(tags[i]), "%.*s", (int)f->etag.opaque.len, f->etag.opaque.ptr);
        nm_file_release(f);
    }
    cr_expect_str_neq(tags[0], tags[1]);
    cr_expect_str_eq(tags[0], tags[2]);
    nm_filecache_free(fc);
}

Test(filecache, a_racy_small_file_is_read_again_on_every_lookup)
{
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    put("r", "one", 3);
    struct nm_file *a, *b;
    cr_assert_eq(nm_filecache_lookup(fc, "/r", &a), 0);
    cr_expect(a->racy);
    cr_assert_eq(nm_filecache_lookup(fc, "/r", &b), 0);
    cr_expect_neq(a, b, "a racy entry is not reused");
    nm_file_release(a);
    nm_file_release(b);
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.hits, 0);
    nm_filecache_free(fc);
}

Test(filecache, without_a_pool_a_large_file_is_hashed_when_loaded)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 1);
    put("big", data, n);
    cfg.hash_threshold_bytes = n - 1; /* not read whole while it is racy (just written) */
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect_null(f->data);
    expect_tag_of(f, data, n);
    nm_file_release(f);
    nm_filecache_free(fc);
    free(data);
}

Test(filecache, above_the_threshold_a_file_is_served_untagged_until_the_pool_hashes_it)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 2);
    put("big", data, n);
    cfg.hash_threshold_bytes = 100 * 1024;
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = false;
    o.low_priority = false;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect_not(f->has_etag);
    cr_expect(f->hash_pending);
    cr_expect(f->has_last_modified);
    struct nm_file *first = f;
    /* The file is new, so the job waits about 2 s; lookups meanwhile stay untagged. */
    bool tagged = false;
    for (int i = 0; i < 1500 && !tagged; i++) {
        sleep_ms(10);
        struct nm_file *g;
        cr_assert_eq(nm_filecache_lookup(fc, "/big", &g), 0);
        tagged = g->has_etag;
        if (tagged) {
            cr_expect_eq(g, first, "the same entry gets its tag");
            expect_tag_of(g, data, n);
        }
        nm_file_release(g);
    }
    cr_expect(tagged, "no tag within 15 s");
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.pending_filled, 1);
    nm_file_release(f);
    nm_filecache_free(fc);
    nm_hashing_free(h);
    free(data);
}

static struct nm_hashing *pool_for_test(void)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = false;
    o.low_priority = false;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    return h;
}

Test(filecache, a_racy_large_file_up_to_the_threshold_is_tagged_from_the_bytes_it_is_sent_from)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 7);
    put("big", data, n);
    struct nm_hashing *h = pool_for_test();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect(f->racy);
    cr_assert_not_null(f->data, "held in memory while racy");
    cr_expect_not(f->in_table, "only as long as the responses sending it");
    cr_expect_eq(memcmp(f->data, data, n), 0);
    expect_tag_of(f, data, n);
    cr_expect_eq(f->fd, -1);
    /* Rewritten in place, same size: the next lookup reads it again, whatever the stat says. */
    data[n / 2] ^= 1;
    put("big", data, n);
    struct nm_file *g;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &g), 0);
    cr_assert_neq(g, f);
    cr_assert_not_null(g->data);
    cr_expect_eq(memcmp(g->data, data, n), 0);
    expect_tag_of(g, data, n);
    expect_tag_of(f, f->data, n); /* the first entry still sends the bytes of its own tag */
    nm_file_release(f);
    nm_file_release(g);
    /* Settled: loaded again as a large file, read from its descriptor, with the same tag. */
    sleep_ms(2100);
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect_not(f->racy);
    cr_expect_null(f->data);
    cr_expect_geq(f->fd, 0);
    expect_tag_of(f, data, n);
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.racy_held, 2);
    nm_file_release(f);
    nm_filecache_free(fc);
    nm_hashing_free(h);
    free(data);
}

Test(filecache, racy_large_files_are_held_up_to_8_mib_per_worker_then_go_out_untagged)
{
    size_t n = 1u << 20, files = 9;
    char *data = fill(n, 8);
    struct nm_hashing *h = pool_for_test();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *held[9];
    for (size_t i = 0; i < files; i++) {
        char name[16], path[16];
        snprintf(name, sizeof(name), "f%zu", i);
        snprintf(path, sizeof(path), "/f%zu", i);
        data[0] = (char)i;
        put(name, data, n);
        cr_assert_eq(nm_filecache_lookup(fc, path, &held[i]), 0);
        cr_assert(held[i]->racy);
    }
    for (size_t i = 0; i < 8; i++)
        cr_expect_not_null(held[i]->data, "file %zu held", i);
    cr_expect_null(held[8]->data, "the ninth is over the bound");
    cr_expect_not(held[8]->has_etag, "and goes out untagged, as before");
    /* A response still sending an entry keeps its bytes counted after the table lets it go. */
    nm_filecache_free(fc);
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/f8", &f), 0);
    cr_expect_null(f->data, "still over the bound while the others are referenced");
    nm_file_release(f);
    for (size_t i = 0; i < files; i++)
        nm_file_release(held[i]);
    put("f9", data, n);
    cr_assert_eq(nm_filecache_lookup(fc, "/f9", &f), 0);
    cr_expect_not_null(f->data, "the bytes are counted back when the last reference goes");
    nm_file_release(f);
    nm_filecache_free(fc);
    nm_hashing_free(h);
    free(data);
}

/* The held bytes of a table, as its stats say, checked against the sizes of its held entries. */
static void expect_held(struct nm_filecache *fc, uint64_t files, uint64_t bytes, uint64_t evicted)
{
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.held_files, files, "held files %llu, want %llu",
                 (unsigned long long)st.held_files, (unsigned long long)files);
    cr_expect_eq(st.held_bytes, bytes, "held bytes %llu, want %llu",
                 (unsigned long long)st.held_bytes, (unsigned long long)bytes);
    cr_expect_eq(st.held_evicted, evicted);
    cr_expect_leq(st.held_bytes, cfg.hold_budget_bytes);
}

static void lookup_held(struct nm_filecache *fc, const char *path, const char *data, size_t n)
{
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, path, &f), 0);
    cr_assert_not_null(f->data, "%s held", path);
    cr_expect_eq(f->fd, -1);
    cr_expect_eq(memcmp(f->data, data, n), 0);
    expect_tag_of(f, data, n);
    nm_file_release(f);
}

Test(filecache, files_up_to_256_kib_are_held_by_default)
{
    size_t n = 256 * 1024;
    char *data = fill(n, 11);
    put("k256", data, n);
    char *more = fill(n + 1, 12);
    put("k256plus", more, n + 1);
    cfg.hash_threshold_bytes = n; /* the larger one is not read whole while racy */
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    lookup_held(fc, "/k256", data, n);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/k256plus", &f), 0);
    cr_expect_null(f->data, "above --hold-size: served from its descriptor");
    cr_expect_geq(f->fd, 0);
    expect_tag_of(f, more, n + 1);
    nm_file_release(f);
    expect_held(fc, 1, n, 0);
    nm_filecache_free(fc);
    free(data);
    free(more);
}

Test(filecache, held_bytes_are_counted_exactly_through_loads_replacements_and_evictions)
{
    cfg.hold_budget_bytes = 300000;
    char *a = fill(100000, 1), *b = fill(100000, 2), *c = fill(100000, 3), *d = fill(50000, 4);
    char *b2 = fill(120000, 5);
    put("a", a, 100000);
    put("b", b, 100000);
    put("c", c, 100000);
    put("d", d, 50000);
    put("empty", "", 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    lookup_held(fc, "/a", a, 100000);
    lookup_held(fc, "/b", b, 100000);
    expect_held(fc, 2, 200000, 0);
    lookup_held(fc, "/c", c, 100000);
    expect_held(fc, 3, 300000, 0); /* exactly the budget */
    lookup_held(fc, "/empty", "", 0);
    expect_held(fc, 3, 300000, 0); /* nothing to hold */
    lookup_held(fc, "/d", d, 50000);
    expect_held(fc, 3, 250000, 1); /* a, the coldest, went */
    put("b", b2, 120000);          /* replaced: its old bytes leave the count */
    lookup_held(fc, "/b", b2, 120000);
    expect_held(fc, 3, 270000, 1);
    lookup_held(fc, "/a", a, 100000); /* loaded again: c, now the coldest held, goes */
    expect_held(fc, 3, 270000, 2);
    cr_assert_eq(unlinkat(root_fd, "d", 0), 0);
    struct nm_file *f;
    cr_expect_eq(nm_filecache_lookup(fc, "/d", &f), -ENOENT);
    expect_held(fc, 2, 220000, 2);
    nm_filecache_free(fc);
    free(a);
    free(b);
    free(c);
    free(d);
    free(b2);
}

Test(filecache, a_body_let_go_for_room_stays_with_the_responses_still_sending_it)
{
    cfg.hold_budget_bytes = 150000;
    char *a = fill(100000, 6), *b = fill(100000, 7);
    put("a", a, 100000);
    put("b", b, 100000);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *sending;
    cr_assert_eq(nm_filecache_lookup(fc, "/a", &sending), 0);
    lookup_held(fc, "/b", b, 100000);
    expect_held(fc, 1, 100000, 1);
    cr_expect_not(sending->in_table);
    cr_assert_not_null(sending->data);
    cr_expect_eq(memcmp(sending->data, a, 100000), 0);
    expect_tag_of(sending, a, 100000);
    nm_file_release(sending);
    nm_filecache_free(fc);
    free(a);
    free(b);
}

Test(filecache, a_file_larger_than_the_whole_budget_is_served_from_its_descriptor)
{
    size_t n = 100000;
    cfg.hold_budget_bytes = n - 1;
    cfg.hash_threshold_bytes = n - 1; /* not read whole while it is racy (just written) */
    char *data = fill(n, 8);
    put("big", data, n);
    put("small", "tiny\n", 5);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    lookup_held(fc, "/small", "tiny\n", 5);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect_null(f->data);
    cr_expect_geq(f->fd, 0);
    expect_tag_of(f, data, n);
    nm_file_release(f);
    expect_held(fc, 1, 5, 0); /* nothing was let go for a body that could never fit */
    nm_filecache_free(fc);
    free(data);
}

Test(filecache, the_memo_forgets_a_version_whose_file_was_renamed_over)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 9);
    put("big", data, n);
    put("kept", data, n);
    sleep_ms(2100); /* settled: hashed inline, remembered */
    struct nm_hashing *h = pool_for_test();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *f, *k;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_assert_eq(nm_filecache_lookup(fc, "/kept", &k), 0);
    struct nm_file_version v = {(uint64_t)f->dev, (uint64_t)f->ino, f->size, f->mtime_ns,
                                f->ctime_ns};
    struct nm_file_version kv = {(uint64_t)k->dev, (uint64_t)k->ino, k->size, k->mtime_ns,
                                 k->ctime_ns};
    struct nm_hash128 got;
    cr_assert_eq(nm_hashing_find(h, -1, &v, &got), 0, "remembered");
    /* A new file renamed over it: the next lookup replaces the entry, the memo forgets. */
    put("big.new", data, n);
    char from[128], to[128];
    snprintf(from, sizeof(from), "%s/big.new", dir);
    snprintf(to, sizeof(to), "%s/big", dir);
    cr_assert_eq(rename(from, to), 0);
    struct nm_file *g;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &g), 0);
    cr_expect_neq(g->ino, f->ino);
    cr_expect_eq(nm_hashing_find(h, -1, &v, &got), -ENOENT, "forgotten");
    cr_expect_eq(nm_hashing_find(h, -1, &kv, &got), 0, "a file with its name kept stays");
    nm_file_release(g);
    nm_file_release(f);
    nm_file_release(k);
    nm_filecache_free(fc);
    nm_hashing_free(h);
    free(data);
}

Test(filecache, below_the_threshold_a_settled_file_is_hashed_inline)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 3);
    put("mid", data, n);
    sleep_ms(2100); /* past the racy window */
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.persist = false;
    o.low_priority = false;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_hashing(fc, h);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/mid", &f), 0);
    expect_tag_of(f, data, n);
    cr_expect(nm_file_is_unchanged(f));
    nm_file_release(f);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.hashed_files, 1);
    nm_filecache_free(fc);
    nm_hashing_free(h);
    free(data);
}

Test(filecache, metadata_and_version_modes_need_no_hash)
{
    put("m", "abc", 3);
    cfg.etag_mode = NM_ETAG_METADATA;
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/m", &f), 0);
    cr_assert(f->has_etag);
    cr_expect_eq(f->etag.opaque.ptr[0], '"');
    cr_expect_neq(memchr(f->etag.opaque.ptr, '-', f->etag.opaque.len), NULL);
    nm_file_release(f);
    nm_filecache_free(fc);
    cfg.etag_mode = NM_ETAG_OFF;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    cr_assert_eq(nm_filecache_lookup(fc, "/m", &f), 0);
    cr_expect_not(f->has_etag);
    nm_file_release(f);
    nm_filecache_free(fc);
}

Test(filecache, a_settled_file_renamed_over_while_open_is_still_unchanged)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 5);
    put("old", data, n);
    sleep_ms(2100); /* past the racy window */
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/old", &f), 0);
    /* A writer that kept a descriptor, to change the bytes once no path reaches them. */
    char path[128], next[128];
    snprintf(path, sizeof(path), "%s/old", dir);
    snprintf(next, sizeof(next), "%s/next", dir);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(wfd, 0);
    put("next", "new release\n", 12);
    cr_assert_eq(rename(next, path), 0); /* as a deploy renames a file into place */
    struct stat st;
    cr_assert_eq(fstat(f->fd, &st), 0);
    cr_assert_eq(st.st_nlink, 0);
    cr_expect(nm_file_is_unchanged(f), "an unlink moves the ctime, not the bytes");
    data[0] ^= 1;
    cr_assert_eq(pwrite(wfd, data, 1, 0), 1);
    close(wfd);
    cr_expect_not(nm_file_is_unchanged(f), "a write after the unlink moves the mtime");
    nm_file_release(f);
    nm_filecache_free(fc);
    free(data);
}

Test(filecache, a_racy_file_renamed_over_while_open_counts_as_changed)
{
    put("old", "version A\n", 10);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/old", &f), 0);
    char path[128], next[128];
    snprintf(path, sizeof(path), "%s/old", dir);
    snprintf(next, sizeof(next), "%s/next", dir);
    put("next", "version B\n", 10);
    cr_assert_eq(rename(next, path), 0);
    /* Written less than 2 s ago, its mtime may not have moved with a later write. */
    cr_expect_not(nm_file_is_unchanged(f));
    nm_file_release(f);
    nm_filecache_free(fc);
}

Test(filecache, a_change_after_loading_is_seen_by_the_change_check)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 4);
    put("big", data, n);
    cfg.hash_threshold_bytes = n - 1; /* not read whole while it is racy (just written) */
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect(nm_file_is_unchanged(f));
    data[n - 1] ^= 1;
    put("big", data, n);
    cr_expect_not(nm_file_is_unchanged(f));
    nm_file_release(f);
    nm_filecache_free(fc);
    free(data);
}

/* Beside the root: a symlink loop (loop-a, loop-b) and a directory only its owner (root) may
 * enter, holding a file; links in the root point at each, by relative and absolute targets. */
static char outside[64];

static void remove_outside(void)
{
    if (!outside[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", outside);
    cr_assert_eq(system(cmd), 0);
}

static void make_links_to_outside(void)
{
    snprintf(outside, sizeof(outside), "/tmp/nm_filecache_out_XXXXXX");
    cr_assert_not_null(mkdtemp(outside));
    cr_assert_eq(chmod(outside, 0755), 0);
    char a[128], b[128], link[128], target[160];
    snprintf(a, sizeof(a), "%s/loop-a", outside);
    snprintf(b, sizeof(b), "%s/loop-b", outside);
    cr_assert_eq(symlink(b, a), 0);
    cr_assert_eq(symlink(a, b), 0);
    snprintf(a, sizeof(a), "%s/private", outside);
    cr_assert_eq(mkdir(a, 0700), 0);
    snprintf(b, sizeof(b), "%s/private/x", outside);
    int fd = open(b, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    const char *links[][2] = {{"link-out-loop", "loop-a"}, {"link-out-private", "private/x"}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(link, sizeof(link), "%s/%s", dir, links[i][0]);
        snprintf(target, sizeof(target), "%s/%s", outside, links[i][1]);
        cr_assert_eq(symlink(target, link), 0);
        snprintf(link, sizeof(link), "%s/%s-relative", dir, links[i][0]);
        snprintf(target, sizeof(target), "../%s/%s", strrchr(outside, '/') + 1, links[i][1]);
        cr_assert_eq(symlink(target, link), 0);
    }
}

/* How many of the links make_links_to_outside made do not answer -ENOENT. */
static int links_to_outside_not_missing(struct nm_filecache *fc)
{
    const char *paths[] = {"/link-out-loop",    "/link-out-loop-relative",
                           "/link-out-private", "/link-out-private-relative",
                           "/link-out-loop/x",  "/link-out-private-relative/"};
    int wrong = 0;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct nm_file *f = NULL;
        int rc = nm_filecache_lookup(fc, paths[i], &f);
        if (rc != -ENOENT) {
            fprintf(stderr, "%s: %d, not -ENOENT\n", paths[i], rc);
            wrong++;
        }
        if (rc == 0)
            nm_file_release(f);
    }
    return wrong;
}

Test(filecache, a_symlink_out_of_the_root_to_a_loop_answers_as_a_missing_file,
     .fini = remove_outside)
{
    make_links_to_outside();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    cr_expect_eq(links_to_outside_not_missing(fc), 0);
    nm_filecache_free(fc);
}

Test(filecache, a_symlink_out_of_the_root_answers_as_a_missing_file)
{
    put("a.txt", "inside\n", 7);
    char link[128];
    snprintf(link, sizeof(link), "%s/link-out", dir);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    snprintf(link, sizeof(link), "%s/link-up-out", dir);
    cr_assert_eq(symlink("../../etc/passwd", link), 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_expect_eq(nm_filecache_lookup(fc, "/link-out", &f), -ENOENT);
    cr_expect_eq(nm_filecache_lookup(fc, "/link-up-out", &f), -ENOENT);
    nm_filecache_free(fc);
}

/* Everything a child checks, as the bit it clears in its exit status. */
enum {
    SECCOMP_REFUSES = 1,
    INSIDE_SERVED = 2,
    LINK_IN_SERVED = 4,
    LINK_OUT_REFUSED = 8,
    LINKS_OUT_MISSING = 16, /* to a loop and to a place nobody may enter, as nobody */
    NOBODY = 32,
};

static int lookups_in_a_child_without_openat2(void)
{
    /* A profile from before openat2: that one call refused with EPERM, every other allowed. */
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fprog = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)
        return 0xff;
    /* As nobody, for whom the directory beside the root is closed (root would enter it). */
    if (setgid(65534) != 0 || setuid(65534) != 0)
        return NOBODY;
    int failed =
        SECCOMP_REFUSES | INSIDE_SERVED | LINK_IN_SERVED | LINK_OUT_REFUSED | LINKS_OUT_MISSING;
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
    if (syscall(SYS_openat2, root_fd, "a.txt", &how, sizeof(how)) < 0 && errno == EPERM)
        failed &= ~SECCOMP_REFUSES;
    struct nm_filecache *fc;
    if (nm_filecache_new(&cfg, mime, root_fd, &fc) != 0)
        return 0xff;
    struct nm_file *f;
    if (nm_filecache_lookup(fc, "/a.txt", &f) == 0) {
        if (f->size == 7)
            failed &= ~INSIDE_SERVED;
        nm_file_release(f);
    }
    if (nm_filecache_lookup(fc, "/link-in", &f) == 0) {
        if (f->size == 7)
            failed &= ~LINK_IN_SERVED;
        nm_file_release(f);
    }
    if (nm_filecache_lookup(fc, "/link-out", &f) == -ENOENT)
        failed &= ~LINK_OUT_REFUSED;
    if (links_to_outside_not_missing(fc) == 0)
        failed &= ~LINKS_OUT_MISSING;
    nm_filecache_free(fc);
    return failed;
}

Test(filecache, openat2_refused_with_eperm_falls_back_and_still_keeps_to_the_root,
     .fini = remove_outside)
{
    put("a.txt", "inside\n", 7);
    make_links_to_outside();
    cr_assert_eq(chmod(dir, 0755), 0);
    char link[128];
    snprintf(link, sizeof(link), "%s/link-in", dir);
    cr_assert_eq(symlink("a.txt", link), 0);
    snprintf(link, sizeof(link), "%s/link-out", dir);
    cr_assert_eq(symlink("/etc/passwd", link), 0);
    /* The filter stays with the process that installs it: a child, so the runner keeps openat2. */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(lookups_in_a_child_without_openat2());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "child died: status %d", status);
    cr_expect_eq(WEXITSTATUS(status), 0, "checks failed in the child: 0x%x", WEXITSTATUS(status));
}

Test(filecache, a_file_deleted_or_renamed_over_after_loading_is_still_its_version)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 5);
    put("gone", data, n);
    put("over", data, n);
    put("new", data, 10);
    sleep_ms(2100); /* past the racy window: a settled version */
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *gone, *over;
    cr_assert_eq(nm_filecache_lookup(fc, "/gone", &gone), 0);
    cr_assert_eq(nm_filecache_lookup(fc, "/over", &over), 0);
    struct timespec pause = {0, 20 * 1000 * 1000}; /* the ctime moves on the next clock tick */
    nanosleep(&pause, NULL);
    cr_assert_eq(unlinkat(root_fd, "gone", 0), 0);
    cr_assert_eq(renameat(root_fd, "new", root_fd, "over"), 0);
    cr_expect(nm_file_is_unchanged(gone));
    cr_expect(nm_file_is_unchanged(over));
    nm_file_release(gone);
    nm_file_release(over);
    nm_filecache_free(fc);
    free(data);
}

Test(filecache, a_file_written_after_its_last_name_is_gone_is_a_change)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 6);
    put("w", data, n);
    char path[128];
    snprintf(path, sizeof(path), "%s/w", dir);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(wfd, 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/w", &f), 0);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    cr_assert_eq(unlinkat(root_fd, "w", 0), 0);
    cr_assert_eq(pwrite(wfd, "x", 1, 0), 1);
    cr_expect_not(nm_file_is_unchanged(f));
    close(wfd);
    nm_file_release(f);
    nm_filecache_free(fc);
    free(data);
}

Test(filecache, a_file_that_loses_one_of_two_names_is_a_change)
{
    size_t n = 300 * 1024;
    char *data = fill(n, 7);
    put("a", data, n);
    cr_assert_eq(linkat(root_fd, "a", root_fd, "b", 0), 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/a", &f), 0);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    /* Still reachable by a name, so a writer can still open it: the moved ctime counts. */
    cr_assert_eq(unlinkat(root_fd, "a", 0), 0);
    cr_expect_not(nm_file_is_unchanged(f));
    nm_file_release(f);
    nm_filecache_free(fc);
    free(data);
}

/* The lease signals blocked in this thread, as a worker has them. */
static void block_lease_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, nm_filecache_lease_signal());
    sigaddset(&set, SIGIO);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

static struct nm_file *lookup_big(struct nm_filecache *fc, unsigned seed)
{
    size_t n = 300 * 1024;
    cfg.hash_threshold_bytes = n - 1; /* not read whole while it is racy (just written) */
    char *data = fill(n, seed);
    put("big", data, n);
    free(data);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    return f;
}

Test(filecache, a_large_file_is_leased_by_a_thread_that_blocks_the_lease_signals)
{
    block_lease_signals();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f = lookup_big(fc, 1);
    cr_expect(f->leased);
    cr_expect(nm_file_is_leased(f));
    cr_expect_eq(fcntl(f->fd, F_GETLEASE), F_RDLCK);
    nm_file_release(f);
    put("small", "x", 1);
    cr_assert_eq(nm_filecache_lookup(fc, "/small", &f), 0);
    cr_expect_not(f->leased, "a file held in memory keeps no descriptor and no lease");
    nm_file_release(f);
    nm_filecache_free(fc);
}

Test(filecache, no_lease_is_taken_with_sendfile_off_or_the_signal_unblocked)
{
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f = lookup_big(fc, 2);
    cr_expect_not(f->leased, "an unblocked real-time signal would end the process");
    nm_file_release(f);
    nm_filecache_free(fc);
    block_lease_signals();
    cfg.sendfile = NM_SENDFILE_OFF;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    f = lookup_big(fc, 3);
    cr_expect_not(f->leased);
    cr_expect_not(nm_file_is_leased(f));
    nm_file_release(f);
    nm_filecache_free(fc);
}

Test(filecache, a_file_open_for_writing_is_refused_a_lease_and_served_by_copy)
{
    block_lease_signals();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/big", dir);
    size_t n = 300 * 1024;
    char *data = fill(n, 4);
    put("big", data, n);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert_geq(wfd, 0);
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &f), 0);
    cr_expect_not(f->leased, "the kernel refuses a read lease while a writer has the file open");
    expect_tag_of(f, data, n);
    nm_file_release(f);
    close(wfd);
    free(data);
    nm_filecache_free(fc);
}

Test(filecache, a_broken_lease_is_let_go_and_the_next_lookup_loads_the_file_again)
{
    block_lease_signals();
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    struct nm_file *f = lookup_big(fc, 5);
    cr_assert(f->leased);
    cr_expect_eq(nm_filecache_lease_broken(fc, f->fd), 0, "a lease that holds is not broken");
    char path[128];
    snprintf(path, sizeof(path), "%s/big", dir);
    /* A writer's non-blocking open fails with EWOULDBLOCK and starts the break. */
    cr_expect_lt(open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC), 0);
    cr_expect_eq(errno, EWOULDBLOCK);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, nm_filecache_lease_signal());
    siginfo_t si;
    struct timespec wait = {5, 0};
    cr_expect_eq(sigtimedwait(&set, &si, &wait), nm_filecache_lease_signal());
    cr_expect_eq(si.si_fd, f->fd, "the notice names the leased descriptor");
    cr_expect_not(nm_file_is_leased(f), "a lease being broken no longer counts");
    cr_expect_eq(fcntl(f->fd, F_GETLEASE), F_UNLCK, "held until let go");
    cr_expect_eq(nm_filecache_lease_broken(fc, f->fd), 1);
    cr_expect_not(f->leased);
    struct nm_file *g;
    cr_assert_eq(nm_filecache_lookup(fc, "/big", &g), 0);
    cr_expect_neq(f, g, "a stale entry is loaded again");
    int wfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_expect_lt(wfd, 0, "the new version took its own lease");
    nm_file_release(f);
    nm_file_release(g);
    nm_filecache_free(fc);
    cr_expect_eq(sigtimedwait(&set, &si, &wait), nm_filecache_lease_signal());
    int fd2 = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_expect_geq(fd2, 0, "every lease went with its descriptor");
    close(fd2);
}

/* ---- watching: events in place of a stat per lookup ---- */

#define SETTLE_MS 2100 /* older than NM_HASHING_RACY_NS: no longer racy */

/* A table watching through a fresh inotify descriptor (in *ifd). */
static struct nm_filecache *watched_table(int *ifd)
{
    *ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    cr_assert_geq(*ifd, 0);
    struct nm_filecache *fc;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &fc), 0);
    nm_filecache_set_watch(fc, *ifd);
    return fc;
}

/* Hands the table what inotify queued, as the worker does before answering requests. */
static void drain(struct nm_filecache *fc, int ifd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(ifd, buf, sizeof(buf))) > 0) {
        for (size_t off = 0; off < (size_t)n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            nm_filecache_note_event(fc, ev->wd, ev->mask, ev->len ? ev->name : "");
            off += sizeof(*ev) + ev->len;
        }
    }
}

static uint64_t stat_calls(const struct nm_filecache *fc)
{
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    return st.stat_calls;
}

/* Looks path up, expects rc, and says how many stats that took. */
static uint64_t stats_of_lookup(struct nm_filecache *fc, const char *path, int rc)
{
    uint64_t before = stat_calls(fc);
    struct nm_file *f = NULL;
    cr_assert_eq(nm_filecache_lookup(fc, path, &f), rc, "%s", path);
    if (rc == 0)
        nm_file_release(f);
    return stat_calls(fc) - before;
}

static void expect_lookup_tag(struct nm_filecache *fc, const char *path, const char *data)
{
    struct nm_file *f;
    cr_assert_eq(nm_filecache_lookup(fc, path, &f), 0);
    expect_tag_of(f, data, strlen(data));
    nm_file_release(f);
}

Test(filecache, a_watched_settled_file_is_found_again_without_a_stat_until_an_event_names_it)
{
    put("a.txt", "first\n", 6);
    put("b.txt", "other\n", 6);
    sleep_ms(SETTLE_MS);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 1);
    cr_expect_eq(stats_of_lookup(fc, "/b.txt", 0), 1);
    drain(fc, ifd);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 0);
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.watched_dirs, 1);

    put("a.txt", "again\n", 6); /* same size, same second: only the event tells */
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 0, "no event read yet: no stat");
    drain(fc, ifd);
    cr_expect_eq(stats_of_lookup(fc, "/b.txt", 0), 0, "an event about a.txt leaves b.txt");
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 1);
    expect_lookup_tag(fc, "/a.txt", "again\n");
    nm_filecache_free(fc);
    close(ifd);
}

Test(filecache, a_queue_overflow_marks_every_entry)
{
    put("a.txt", "first\n", 6);
    put("b.txt", "other\n", 6);
    sleep_ms(SETTLE_MS);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    stats_of_lookup(fc, "/a.txt", 0);
    stats_of_lookup(fc, "/b.txt", 0);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 0);
    nm_filecache_note_event(fc, -1, IN_Q_OVERFLOW, "");
    cr_expect_eq(stats_of_lookup(fc, "/a.txt", 0), 1);
    cr_expect_eq(stats_of_lookup(fc, "/b.txt", 0), 1);
    cr_expect_eq(stats_of_lookup(fc, "/b.txt", 0), 0, "confirmed again by that stat");
    nm_filecache_free(fc);
    close(ifd);
}

Test(filecache, what_a_watch_cannot_speak_for_is_stat_at_every_lookup)
{
    put("two.txt", "linked\n", 7);
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/two.txt", dir);
    snprintf(b, sizeof(b), "%s/other-name.txt", dir);
    cr_assert_eq(link(a, b), 0); /* a write through the other name is reported there */
    put("target.txt", "target\n", 7);
    cr_assert_eq(mkdir(strcat(strcpy(b, dir), "/sub"), 0755), 0);
    snprintf(b, sizeof(b), "%s/sub/via-link.txt", dir);
    cr_assert_eq(symlink("../target.txt", b), 0);
    sleep_ms(SETTLE_MS);
    put("racy.txt", "new\n", 4);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    const char *paths[] = {"/two.txt", "/sub/via-link.txt", "/racy.txt"};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            cr_expect_eq(stats_of_lookup(fc, paths[i], 0), 1, "%s, lookup %d", paths[i], k);
    nm_filecache_free(fc);
    close(ifd);

    struct nm_filecache *plain;
    cr_assert_eq(nm_filecache_new(&cfg, mime, root_fd, &plain), 0);
    for (int k = 0; k < 3; k++)
        cr_expect_eq(stats_of_lookup(plain, "/target.txt", 0), 1, "not watching");
    nm_filecache_free(plain);
}

Test(filecache, renaming_a_directory_marks_the_entries_beneath_it)
{
    char p[128];
    cr_assert_eq(mkdir(strcat(strcpy(p, dir), "/d"), 0755), 0);
    cr_assert_eq(mkdir(strcat(strcpy(p, dir), "/d/sub"), 0755), 0);
    put("d/sub/x.txt", "old x\n", 6);
    sleep_ms(SETTLE_MS);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    stats_of_lookup(fc, "/d/sub/x.txt", 0);
    cr_expect_eq(stats_of_lookup(fc, "/d/sub/x.txt", 0), 0);
    struct nm_filecache_stats st;
    nm_filecache_get_stats(fc, &st);
    cr_expect_eq(st.watched_dirs, 3, "the file's directory and those above it");

    char from[128], to[128];
    snprintf(from, sizeof(from), "%s/d", dir);
    snprintf(to, sizeof(to), "%s/e", dir);
    cr_assert_eq(rename(from, to), 0); /* no event in d/sub itself: only its ancestor tells */
    drain(fc, ifd);
    cr_expect_eq(stats_of_lookup(fc, "/d/sub/x.txt", -ENOENT), 1);
    expect_lookup_tag(fc, "/e/sub/x.txt", "old x\n");

    /* A new tree at the old name: its files, not the moved ones. */
    cr_assert_eq(mkdir(from, 0755), 0);
    cr_assert_eq(mkdir(strcat(strcpy(p, dir), "/d/sub"), 0755), 0);
    put("d/sub/x.txt", "new x\n", 6);
    drain(fc, ifd);
    expect_lookup_tag(fc, "/d/sub/x.txt", "new x\n");
    put("e/sub/x.txt", "e2 x\n", 5); /* the moved directory's watch no longer speaks for d */
    drain(fc, ifd);
    expect_lookup_tag(fc, "/e/sub/x.txt", "e2 x\n");
    expect_lookup_tag(fc, "/d/sub/x.txt", "new x\n");
    nm_filecache_free(fc);
    close(ifd);
}

Test(filecache, a_missing_sidecar_is_remembered_until_an_event_names_it)
{
    cfg.precompressed[0] = NM_CODING_GZIP;
    cfg.n_precompressed = 1;
    put("a.txt", "source\n", 7);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt.gz", -ENOENT), 1);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt.gz", -ENOENT), 0);
    cr_expect_eq(stats_of_lookup(fc, "/missing.txt", -ENOENT), 1, "only sidecars");
    cr_expect_eq(stats_of_lookup(fc, "/missing.txt", -ENOENT), 1);
    put("a.txt.gz", "zipped", 6);
    drain(fc, ifd);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt.gz", 0), 1);
    char p[128];
    cr_assert_eq(unlink(strcat(strcpy(p, dir), "/a.txt.gz")), 0);
    drain(fc, ifd);
    cr_expect_eq(stats_of_lookup(fc, "/a.txt.gz", -ENOENT), 1);
    nm_filecache_free(fc);
    close(ifd);
}

Test(filecache, a_watched_directory_entry_is_marked_by_a_name_added_in_it)
{
    char p[128];
    cr_assert_eq(mkdir(strcat(strcpy(p, dir), "/d"), 0755), 0);
    put("d/one", "1", 1);
    sleep_ms(SETTLE_MS);
    int ifd;
    struct nm_filecache *fc = watched_table(&ifd);
    cr_expect_eq(stats_of_lookup(fc, "/d/", 0), 1);
    cr_expect_eq(stats_of_lookup(fc, "/d/", 0), 1, "its own watch came after the first stat");
    cr_expect_eq(stats_of_lookup(fc, "/d/", 0), 0);
    cr_expect_eq(stats_of_lookup(fc, "/", 0), 1);
    cr_expect_eq(stats_of_lookup(fc, "/", 0), 0, "the root's watch was there already");
    struct nm_file *before;
    cr_assert_eq(nm_filecache_lookup(fc, "/d/", &before), 0);
    put("d/two", "2", 1);
    drain(fc, ifd);
    struct nm_file *after;
    cr_assert_eq(nm_filecache_lookup(fc, "/d/", &after), 0);
    cr_expect_neq(before, after, "a new version of the directory");
    nm_file_release(before);
    nm_file_release(after);
    nm_filecache_free(fc);
    close(ifd);
}
