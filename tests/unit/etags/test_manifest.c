/* ETag manifests: the canonical text, its strict parser, lookups, and the check of each entry
 * against the served tree at startup. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "etags/attr.h"
#include "etags/manifest.h"
#include "fixture.h"

#define ZERO_TAG "\"AAAAAAAAAAAAAAAAAAAAAA\""
#define DATE_1994 "Sun, 06 Nov 1994 08:49:37 GMT"
#define T_1994 784111777

static struct nm_manifest *parse_ok(const char *text)
{
    struct nm_manifest *m = NULL;
    size_t line = 0;
    const char *what = NULL;
    int rc = nm_manifest_parse(text, strlen(text), &m, &line, &what);
    cr_assert_eq(rc, 0, "line %zu: %s", line, what ? what : "?");
    return m;
}

static size_t parse_fails_at(const char *text)
{
    struct nm_manifest *m = NULL;
    size_t line = 0;
    const char *what = NULL;
    cr_assert_eq(nm_manifest_parse(text, strlen(text), &m, &line, &what), -EINVAL, "%s", text);
    cr_assert_not_null(what);
    return line;
}

static void format_to(const struct nm_manifest *m, struct nm_buf *b)
{
    nm_buf_init(b, 1 << 20);
    cr_assert_eq(nm_manifest_format(m, b), 0);
    cr_assert_eq(nm_buf_append(b, "", 1), 0);
}

Test(manifest, built_entries_format_sorted_and_encoded)
{
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/z.js", 7, 0, 0, T_1994), 0);
    cr_assert_eq(nm_manifest_add(m, "/a b/é.css", 1, UINT64_MAX, UINT64_MAX, 0), 0);
    cr_assert_eq(nm_manifest_sort(m), 0);
    struct nm_buf b;
    format_to(m, &b);
    cr_assert_str_eq(b.ptr, "notmod-manifest 1\n"
                            "/a%20b/%C3%A9.css 1 \"_____________________w\" "
                            "Thu, 01 Jan 1970 00:00:00 GMT\n"
                            "/z.js 7 " ZERO_TAG " " DATE_1994 "\n");
    nm_buf_cleanup(&b);
    nm_manifest_free(m);
}

Test(manifest, parse_then_format_gives_the_same_bytes)
{
    const char *text = "notmod-manifest 1\n"
                       "/a%20b/%C3%A9.css 1 \"_____________________w\" "
                       "Thu, 01 Jan 1970 00:00:00 GMT\n"
                       "/z.js 7 " ZERO_TAG " " DATE_1994 "\n";
    struct nm_manifest *m = parse_ok(text);
    cr_assert_eq(nm_manifest_count(m), 2);
    const struct nm_manifest_entry *e = nm_manifest_at(m, 0);
    cr_assert_str_eq(e->path, "/a b/é.css");
    cr_assert_eq(e->size, 1);
    cr_assert_eq(e->hash_hi, UINT64_MAX);
    cr_assert_eq(e->hash_lo, UINT64_MAX);
    cr_assert_eq(e->last_modified, 0);
    cr_assert_eq(nm_manifest_at(m, 1)->last_modified, T_1994);
    struct nm_buf b;
    format_to(m, &b);
    cr_assert_str_eq(b.ptr, text);
    nm_buf_cleanup(&b);
    nm_manifest_free(m);
}

Test(manifest, find_returns_the_entry_for_a_decoded_path)
{
    struct nm_manifest *m = parse_ok("notmod-manifest 1\n"
                                     "/a 1 " ZERO_TAG " " DATE_1994 "\n"
                                     "/b/c 2 " ZERO_TAG " " DATE_1994 "\n"
                                     "/d%20e 3 " ZERO_TAG " " DATE_1994 "\n");
    cr_assert_eq(nm_manifest_find(m, "/b/c")->size, 2);
    cr_assert_eq(nm_manifest_find(m, "/d e")->size, 3);
    cr_assert_null(nm_manifest_find(m, "/d%20e"));
    cr_assert_null(nm_manifest_find(m, "/b"));
    cr_assert_null(nm_manifest_find(m, "/"));
    nm_manifest_free(m);
}

Test(manifest, an_empty_manifest_is_only_the_magic_line)
{
    struct nm_manifest *m = parse_ok("notmod-manifest 1\n");
    cr_assert_eq(nm_manifest_count(m), 0);
    cr_assert_null(nm_manifest_find(m, "/a"));
    nm_manifest_free(m);
}

Test(manifest, every_non_canonical_line_is_refused_with_its_number)
{
    static const char *const bad_lines[] = {
        "/b 1 " ZERO_TAG " " DATE_1994 "\n/a 1 " ZERO_TAG " " DATE_1994, /* out of order */
        "/a 1 " ZERO_TAG " " DATE_1994 "\n/a 1 " ZERO_TAG " " DATE_1994, /* duplicate */
        "/a 01 " ZERO_TAG " " DATE_1994,
        "/a 18446744073709551616 " ZERO_TAG " " DATE_1994,
        "/a -1 " ZERO_TAG " " DATE_1994,
        "/a 1 \"AAAAAAAAAAAAAAAAAAAAAB\" " DATE_1994, /* padding bits set */
        "/a 1 W/" ZERO_TAG " " DATE_1994,
        "/a 1 \"AAAAAAAAAAAAAAAAAAAAA\" " DATE_1994,
        "/a 1 " ZERO_TAG " Sunday, 06-Nov-94 08:49:37 GMT",
        "/a 1 " ZERO_TAG " Sun Nov  6 08:49:37 1994",
        "/a 1 " ZERO_TAG " Mon, 06 Nov 1994 08:49:37 GMT", /* wrong weekday */
        "/a 1 " ZERO_TAG "  " DATE_1994,
        "/a 1 " ZERO_TAG " " DATE_1994 " ",
        "a 1 " ZERO_TAG " " DATE_1994,
        "/a/../b 1 " ZERO_TAG " " DATE_1994,
        "//a 1 " ZERO_TAG " " DATE_1994,
        "/dir/ 1 " ZERO_TAG " " DATE_1994,
        "/a%2fb 1 " ZERO_TAG " " DATE_1994,
        "/%7e 1 " ZERO_TAG " " DATE_1994,
        "/a%20 1 " ZERO_TAG,
        "",
    };
    char text[512];
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        snprintf(text, sizeof(text), "notmod-manifest 1\n%s\n", bad_lines[i]);
        size_t want = strchr(bad_lines[i], '\n') ? 3 : 2;
        cr_expect_eq(parse_fails_at(text), want, "case %zu: %s", i, bad_lines[i]);
    }
}

Test(manifest, framing_errors_are_refused)
{
    cr_expect_eq(parse_fails_at(""), 1);
    cr_expect_eq(parse_fails_at("notmod-manifest 2\n"), 1);
    cr_expect_eq(parse_fails_at("notmod-manifest 1\r\n"), 1);
    cr_expect_eq(parse_fails_at("notmod-manifest 1\n/a 1 " ZERO_TAG " " DATE_1994), 2);
    cr_expect_eq(parse_fails_at("notmod-manifest 1\n/a 1 " ZERO_TAG " " DATE_1994 "\r\n"), 2);
    struct nm_manifest *m;
    size_t line;
    const char *what;
    static const char nul[] = "notmod-manifest 1\n/a\0 1 " ZERO_TAG " " DATE_1994 "\n";
    cr_expect_eq(nm_manifest_parse(nul, sizeof(nul) - 1, &m, &line, &what), -EINVAL);
}

Test(manifest, add_refuses_paths_a_request_cannot_name)
{
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_expect_eq(nm_manifest_add(m, "a", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a/", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a/./b", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a//b", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a\nb", 1, 0, 0, 0), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a", 1, 0, 0, -1), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a", 1, 0, 0, 253402300800LL), -EINVAL);
    cr_expect_eq(nm_manifest_add(m, "/a?b#c%", 1, 0, 0, 0), 0);
    cr_expect_eq(nm_manifest_count(m), 1);
    nm_manifest_free(m);
}

Test(manifest, sort_reports_two_entries_with_one_path)
{
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/x", 1, 0, 0, 0), 0);
    cr_assert_eq(nm_manifest_add(m, "/x", 2, 0, 0, 0), 0);
    cr_expect_eq(nm_manifest_sort(m), -EEXIST);
    nm_manifest_free(m);
}

/* ---- the check against the served tree ---- */

TestSuite(manifest_check, .init = make_dir, .fini = remove_dir, .timeout = 60);

static int warnings;
static char last_warning[256];

static void on_warn(void *arg, const char *path, const char *why)
{
    (void)arg;
    warnings++;
    snprintf(last_warning, sizeof(last_warning), "%s: %s", path, why);
}

Test(manifest_check, manifest_entries_are_checked_against_the_tree)
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

Test(manifest_check, a_large_file_is_never_taken_at_the_manifests_word)
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
    cr_assert_eq(nm_attr_write(fd, &v, other), 0);
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

Test(manifest_check, entries_that_are_not_regular_files_beneath_the_root_are_never_opened)
{
    char path[128], outside[] = "/tmp/nm_manifest_out_XXXXXX";
    int ofd = mkstemp(outside);
    cr_assert_geq(ofd, 0);
    cr_assert_eq(write(ofd, "hello", 5), 5);
    close(ofd);
    snprintf(path, sizeof(path), "%s/fifo", dir);
    cr_assert_eq(mkfifo(path, 0644), 0);
    snprintf(path, sizeof(path), "%s/zero", dir);
    cr_assert_eq(symlink("/dev/zero", path), 0);
    snprintf(path, sizeof(path), "%s/out", dir);
    cr_assert_eq(symlink(outside, path), 0);
    /* A writer waits in open() until some reader opens the FIFO: it must still wait after. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    pid_t writer = fork();
    cr_assert_geq(writer, 0);
    if (writer == 0) {
        alarm(20);
        int fd = open(path, O_WRONLY);
        _exit(fd >= 0 ? 0 : 1);
    }
    sleep_ms(100);
    struct nm_hash128 hs = nm_hashing_hash_bytes("hello", 5);
    struct nm_manifest *m;
    cr_assert_eq(nm_manifest_new(&m), 0);
    cr_assert_eq(nm_manifest_add(m, "/fifo", 0, 0, 0, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/zero", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_add(m, "/out", 5, hs.hi, hs.lo, 1000), 0);
    cr_assert_eq(nm_manifest_sort(m), 0);
    struct nm_hashing *h = pool(false);
    int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    warnings = 0;
    cr_expect_eq(nm_hashing_use_manifest(h, root, m, on_warn, NULL), 0);
    cr_expect_eq(warnings, 3, "last: %s", last_warning);
    int status;
    cr_expect_eq(waitpid(writer, &status, WNOHANG), 0, "the FIFO was opened for reading");
    kill(writer, SIGKILL);
    waitpid(writer, &status, 0);
    nm_hashing_free(h);
    close(root);
    unlink(outside);
}
