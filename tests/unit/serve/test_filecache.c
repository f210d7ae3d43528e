/* The file table's content ETags: from the bytes held in memory, from the pool for larger files
 * (served without an ETag until then), synchronously without a pool, and always new for new
 * bytes and old for old bytes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
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
enum { SECCOMP_REFUSES = 1, INSIDE_SERVED = 2, LINK_IN_SERVED = 4, LINK_OUT_REFUSED = 8 };

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
    int failed = SECCOMP_REFUSES | INSIDE_SERVED | LINK_IN_SERVED | LINK_OUT_REFUSED;
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
    nm_filecache_free(fc);
    return failed;
}

Test(filecache, openat2_refused_with_eperm_falls_back_and_still_keeps_to_the_root)
{
    put("a.txt", "inside\n", 7);
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
