/* The listing's contract (listing.h): sorted entries, dot files by the setting, sizes and dates,
 * names escaped as HTML text and links that stay relative paths in the directory. */
#include "serve/listing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MTIME 1700000000LL /* Tue, 14 Nov 2023 22:13:20 GMT */

static struct {
    char dir[64];
    int dir_fd;
    struct nm_buf out;
} fx;

static const char *const names[] = {
    "b.txt",     "a.txt",       ".hidden", "<b>&\"q\".txt", "javascript:alert(1)",
    "new\nline", "bad\xff.txt", "sub"};

static void make(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
    if (strcmp(name, "sub") == 0) {
        cr_assert_eq(mkdir(path, 0755), 0);
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "12345", strcmp(name, "a.txt") == 0 ? 5 : 1),
                     strcmp(name, "a.txt") == 0 ? 5 : 1);
        close(fd);
    }
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-listing-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        make(names[i]);
    fx.dir_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.dir_fd, 0);
    nm_buf_init(&fx.out, 1u << 20);
}

static void teardown(void)
{
    nm_buf_cleanup(&fx.out);
    close(fx.dir_fd);
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fx.dir, names[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
    rmdir(fx.dir);
}

TestSuite(listing, .init = setup, .fini = teardown);

static const char *render(const char *path, bool dotfiles)
{
    fx.out.len = 0;
    cr_assert_eq(nm_listing_render(fx.dir_fd, path, dotfiles, &fx.out), 0);
    cr_assert_eq(nm_buf_append(&fx.out, "", 1), 0);
    return fx.out.ptr;
}

Test(listing, entries_are_sorted_with_sizes_dates_and_a_slash_for_directories)
{
    const char *html = render("/files/", false);
    const char *a = strstr(html, "<tr><td><a href=\"./a.txt\">a.txt</a></td><td>5</td>"
                                 "<td>Tue, 14 Nov 2023 22:13:20 GMT</td></tr>\n");
    const char *b = strstr(html, "<a href=\"./b.txt\">b.txt</a></td><td>1</td>");
    const char *sub = strstr(html, "<a href=\"./sub/\">sub/</a></td><td>-</td>");
    cr_assert(a && b && sub);
    cr_assert(a < b && b < sub, "byte order");
    cr_assert_not_null(strstr(html, "<title>Index of /files/</title>"));
    cr_assert_not_null(strstr(html, "<a href=\"../\">../</a>"));
    cr_assert_not_null(strstr(html, "</table>\n</body></html>\n"));
}

Test(listing, the_root_has_no_parent_link)
{
    cr_assert_null(strstr(render("/", false), "href=\"../\""));
}

Test(listing, dot_files_are_listed_only_when_allowed)
{
    cr_assert_null(strstr(render("/", false), ".hidden"));
    cr_assert_not_null(strstr(render("/", true), "<a href=\"./.hidden\">.hidden</a>"));
}

Test(listing, names_are_escaped_as_text_and_encoded_as_links)
{
    const char *html = render("/", false);
    cr_assert_not_null(
        strstr(html, "<a href=\"./%3Cb%3E&amp;%22q%22.txt\">&lt;b&gt;&amp;&quot;q&quot;.txt</a>"));
    cr_assert_not_null(strstr(html, "<a href=\"./javascript:alert(1)\">javascript:alert(1)</a>"),
                       "a scheme-like name stays a relative path");
    cr_assert_not_null(strstr(html, "bad\xef\xbf\xbd.txt"), "a byte that is not UTF-8 is U+FFFD");
}

Test(listing, a_name_no_request_can_reach_is_shown_but_not_linked)
{
    const char *html = render("/", false);
    cr_assert_not_null(strstr(html, "<tr><td>new\xe2\x90\x8aline</td>"),
                       "the newline as its control picture, no link");
}

Test(listing, a_page_past_the_buffer_cap_is_an_error)
{
    struct nm_buf small;
    nm_buf_init(&small, 200);
    cr_assert_eq(nm_listing_render(fx.dir_fd, "/", false, &small), -EMSGSIZE);
    nm_buf_cleanup(&small);
}

Test(listing, a_directory_that_cannot_be_read_is_its_errno)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/a.txt", fx.dir);
    int fd = open(path, O_PATH | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(nm_listing_render(fd, "/a.txt/", false, &fx.out), -ENOTDIR);
    close(fd);
}

Test(listing, a_symlink_out_of_the_directory_is_a_plain_name_without_size_or_date)
{
    char in[96], out[96];
    snprintf(in, sizeof(in), "%s/link-in", fx.dir);
    snprintf(out, sizeof(out), "%s/link-out", fx.dir);
    cr_assert_eq(symlink("a.txt", in), 0);
    cr_assert_eq(symlink("/etc/passwd", out), 0);
    const char *html = render("/", false);
    cr_expect_not_null(strstr(html, "<a href=\"./link-in\">link-in</a></td><td>5</td>"
                                    "<td>Tue, 14 Nov 2023 22:13:20 GMT</td></tr>\n"),
                       "a link inside shows what it names");
    cr_expect_not_null(strstr(html, "<a href=\"./link-out\">link-out</a></td><td></td><td></td>"
                                    "</tr>\n"),
                       "nothing about the file outside");
    unlink(in);
    unlink(out);
}

/* A page as the handler makes one: held in memory, one reference, size bytes. */
static struct nm_file *page_of(size_t size)
{
    struct nm_file *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    p->refs = 1;
    p->fd = -1;
    p->size = size;
    p->data = calloc(1, size ? size : 1);
    return p;
}

Test(listing_cache, a_page_is_found_for_its_path_version_and_second_only)
{
    struct nm_listing_cache *lc;
    cr_assert_eq(nm_listing_cache_new(1 << 20, &lc), 0);
    struct nm_file dir = {.dev = 1, .ino = 2, .mtime_ns = 3, .ctime_ns = 4};
    struct nm_file *page = page_of(100);
    nm_listing_cache_put(lc, &dir, "/d/", page, 50);
    struct nm_file *got = nm_listing_cache_find(lc, &dir, "/d/", 50);
    cr_expect_eq(got, page);
    nm_file_release(got);
    cr_expect_null(nm_listing_cache_find(lc, &dir, "/other/", 50));
    struct nm_file moved = dir;
    moved.mtime_ns = 5;
    cr_expect_null(nm_listing_cache_find(lc, &moved, "/d/", 50), "a new directory version");
    nm_listing_cache_put(lc, &dir, "/d/", page, 50);
    cr_expect_null(nm_listing_cache_find(lc, &dir, "/d/", 51), "a later second");
    cr_expect_eq(nm_listing_cache_bytes(lc), 0);
    cr_expect_eq(page->refs, 1, "the cache let its references go");
    nm_file_release(page);
    nm_listing_cache_free(lc);
}

Test(listing_cache, pages_stay_within_the_byte_budget_least_recently_used_first)
{
    struct nm_listing_cache *lc;
    cr_assert_eq(nm_listing_cache_new(1000, &lc), 0);
    struct nm_file dir = {.dev = 1, .ino = 2};
    const char *paths[] = {"/a/", "/b/", "/c/"};
    struct nm_file *pages[3];
    for (int i = 0; i < 3; i++) {
        pages[i] = page_of(400);
        if (i == 2)
            nm_file_release(nm_listing_cache_find(lc, &dir, "/a/", 7)); /* /a/ used last */
        nm_listing_cache_put(lc, &dir, paths[i], pages[i], 7);
        cr_expect_leq(nm_listing_cache_bytes(lc), 1000);
    }
    struct nm_file *a = nm_listing_cache_find(lc, &dir, "/a/", 7);
    cr_expect_eq(a, pages[0]);
    cr_expect_null(nm_listing_cache_find(lc, &dir, "/b/", 7), "/b/ went first");
    nm_file_release(a);
    struct nm_file *huge = page_of(2000);
    nm_listing_cache_put(lc, &dir, "/huge/", huge, 7);
    cr_expect_null(nm_listing_cache_find(lc, &dir, "/huge/", 7), "larger than the budget");
    cr_expect_eq(huge->refs, 1);
    nm_listing_cache_free(lc);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(pages[i]->refs, 1, "a page outlives the cache while it is held");
        nm_file_release(pages[i]);
    }
    nm_file_release(huge);
}
