/* The handler's contract (handler.h), without HTTP/1.1: the same decisions as the golden
 * exchanges, read from the response description (status, fields in order, content pieces), and
 * no framing in it (no status line, Date or Connection). */
#include "serve/handler.h"

#include "notmod/path.h"
#include "variants/variants.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1700000000LL /* Tue, 14 Nov 2023 22:13:20 GMT */
#define BIG_BYTES 200000u

static struct {
    char dir[64];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
    struct nm_response resp;
    struct nm_slice lines[8];
} fx;

static const char hello[] = "Hello, world!\n";

static void make_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fx.dir, name);
}

static void write_site_file(const char *name, const char *data, size_t len)
{
    char path[128];
    make_path(path, sizeof(path), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    struct timespec ts[2] = {{NOW - 3600, 0}, {NOW - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-handler-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    write_site_file("hello.txt", hello, sizeof(hello) - 1);
    write_site_file(".secret", "s\n", 2);
    char *big = malloc(BIG_BYTES);
    cr_assert_not_null(big);
    for (size_t i = 0; i < BIG_BYTES; i++)
        big[i] = (char)('a' + i % 26);
    write_site_file("big.txt", big, BIG_BYTES);
    free(big);
    char path[128];
    make_path(path, sizeof(path), "docs");
    cr_assert_eq(mkdir(path, 0755), 0);
    write_site_file("docs/a.txt", "a\n", 2);

    nm_config_init(&fx.cfg);
    fx.cfg.small_file_bytes = 64 * 1024; /* big.txt is above it: not held in memory */
    fx.cfg.root = strdup(fx.dir);
    fx.cfg.index_name = strdup("index.html");
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    nm_site_set_time(&fx.site, NOW);
    nm_response_init(&fx.resp);
}

static void teardown(void)
{
    nm_response_cleanup(&fx.resp);
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    static const char *const made[] = {"hello.txt", ".secret", "big.txt", "docs/a.txt"};
    char path[128];
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
        make_path(path, sizeof(path), made[i]);
        unlink(path);
    }
    make_path(path, sizeof(path), "docs");
    rmdir(path);
    rmdir(fx.dir);
}

TestSuite(handler, .init = setup, .fini = teardown);

static struct nm_handler_request request(enum nm_method method, const char *target)
{
    return (struct nm_handler_request){.method = method, .target = nm_slice_from_cstr(target)};
}

/* A field of one line with value v. */
static struct nm_field line(size_t slot, const char *v)
{
    fx.lines[slot] = nm_slice_from_cstr(v);
    return (struct nm_field){&fx.lines[slot], 1};
}

static void respond(const struct nm_handler_request *req)
{
    nm_response_cleanup(&fx.resp);
    cr_assert_eq(nm_handler_respond(&fx.site, req, &fx.resp), 0);
}

/* The value of the field named `name`, NUL-terminated in a static buffer, or NULL. */
static const char *field(const char *name)
{
    static char v[NM_RESPONSE_TEXT_BYTES];
    for (size_t i = 0; i < fx.resp.n_fields; i++) {
        const struct nm_response_field *f = &fx.resp.fields[i];
        if (nm_slice_eq(f->name, nm_slice_from_cstr(name))) {
            memcpy(v, f->value.ptr, f->value.len);
            v[f->value.len] = '\0';
            return v;
        }
    }
    return NULL;
}

/* The names of the fields in order, each followed by '|'. */
static const char *field_names(void)
{
    static char names[512];
    size_t n = 0;
    for (size_t i = 0; i < fx.resp.n_fields; i++) {
        const struct nm_slice s = fx.resp.fields[i].name;
        cr_assert_lt(n + s.len + 1, sizeof(names));
        memcpy(names + n, s.ptr, s.len);
        n += s.len;
        names[n++] = '|';
    }
    names[n] = '\0';
    return names;
}

/* Every content byte, pieces in order (file parts read with pread), NUL-terminated. */
static char *content(void)
{
    static char buf[BIG_BYTES + 4096];
    size_t n = 0;
    for (size_t i = 0; i < fx.resp.n_pieces; i++) {
        const struct nm_response_piece *p = &fx.resp.pieces[i];
        cr_assert_lt(n + p->len, sizeof(buf));
        if (!p->file)
            memcpy(buf + n, p->bytes, (size_t)p->len);
        else if (p->file->data)
            memcpy(buf + n, p->file->data + p->off, (size_t)p->len);
        else
            cr_assert_eq(pread(p->file->fd, buf + n, (size_t)p->len, (off_t)p->off),
                         (ssize_t)p->len);
        n += (size_t)p->len;
    }
    cr_assert_eq(n, fx.resp.content_bytes);
    buf[n] = '\0';
    return buf;
}

/* ---- files ---------------------------------------------------------------------------------- */

Test(handler, get_of_a_small_file_is_200_with_validators_and_its_own_bytes)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field_names(), "ETag|Last-Modified|Cache-Control|Content-Type|Content-Length|"
                                    "Accept-Ranges|X-Content-Type-Options|");
    cr_assert_str_eq(field("ETag"), "\"wwgjNdnmRKAywbFqXtmP-w\"");
    cr_assert_str_eq(field("Last-Modified"), "Tue, 14 Nov 2023 21:13:20 GMT");
    cr_assert_str_eq(field("Content-Length"), "14");
    cr_assert_eq(fx.resp.n_pieces, 1);
    const struct nm_response_piece *p = &fx.resp.pieces[0];
    cr_assert_not_null(p->file, "the file's own bytes, by reference");
    cr_assert_not_null(p->file->data);
    cr_assert_str_eq(content(), hello);
    cr_assert(nm_slice_eq(fx.resp.etag, nm_slice_from_cstr("\"wwgjNdnmRKAywbFqXtmP-w\"")));
}

/* ---- pre-rendered heads (response.h use_block, nm_file.head) -------------------------------- */

/* Waits until the site's files are no longer racy (written within NM_HASHING_RACY_NS): a racy
 * version is loaded again at every lookup, and keeps no head. */
static void settle(void)
{
    usleep((useconds_t)(NM_HASHING_RACY_NS / 1000 + 100000));
}

/* Answers req with use_block set; returns the head's fields as "Name: value\r\n" lines: the block,
 * then the fields. */
static const char *respond_block(const struct nm_handler_request *req)
{
    static char lines[4096];
    nm_response_cleanup(&fx.resp);
    fx.resp.use_block = true;
    cr_assert_eq(nm_handler_respond(&fx.site, req, &fx.resp), 0);
    size_t n = fx.resp.block.len + nm_response_fields_len(&fx.resp, 0);
    cr_assert_lt(n, sizeof(lines));
    memcpy(lines, fx.resp.block.ptr, fx.resp.block.len);
    nm_response_put_fields(&fx.resp, 0, lines + fx.resp.block.len);
    lines[n] = '\0';
    return lines;
}

Test(handler, a_second_200_and_304_copy_the_fields_rendered_once_for_the_version)
{
    settle();
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    char first[4096];
    snprintf(first, sizeof(first), "%s", respond_block(&req));
    cr_assert_eq(fx.resp.block.len, 0, "the first response builds its fields");
    cr_assert_str_eq(respond_block(&req), first);
    cr_assert_gt(fx.resp.block.len, 0, "the second copies them whole");
    cr_assert_eq(fx.resp.n_fields, 0);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(content(), hello);
    cr_assert(nm_slice_eq(fx.resp.etag, nm_slice_from_cstr("\"wwgjNdnmRKAywbFqXtmP-w\"")));

    struct nm_handler_request head = request(NM_METHOD_HEAD, "/hello.txt");
    cr_assert_str_eq(respond_block(&head), first);
    cr_assert_eq(fx.resp.n_pieces, 0);

    req.if_none_match = line(0, "\"wwgjNdnmRKAywbFqXtmP-w\"");
    snprintf(first, sizeof(first), "%s", respond_block(&req));
    cr_assert_str_eq(first, "ETag: \"wwgjNdnmRKAywbFqXtmP-w\"\r\nCache-Control: no-cache\r\n");
    cr_assert_str_eq(respond_block(&req), first);
    cr_assert_gt(fx.resp.block.len, 0);
    cr_assert_eq(fx.resp.status, 304);
    cr_assert_eq(fx.resp.unsent_bytes, sizeof(hello) - 1);
    cr_assert(nm_slice_eq(fx.resp.etag, nm_slice_from_cstr("\"wwgjNdnmRKAywbFqXtmP-w\"")));
}

Test(handler, without_use_block_every_response_is_fields_as_http2_renders_them)
{
    settle();
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond_block(&req);
    respond_block(&req);
    cr_assert_gt(fx.resp.block.len, 0);
    respond(&req);
    cr_assert_eq(fx.resp.block.len, 0);
    cr_assert_str_eq(field_names(), "ETag|Last-Modified|Cache-Control|Content-Type|Content-Length|"
                                    "Accept-Ranges|X-Content-Type-Options|");
}

Test(handler, fields_that_move_with_the_clock_are_never_copied_from_a_rendered_head)
{
    fx.cfg.expires = true;
    fx.cfg.max_age = 60;
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    settle();
    respond_block(&req);
    respond_block(&req);
    nm_site_set_time(&fx.site, NOW + 10);
    const char *lines = respond_block(&req);
    cr_assert_eq(fx.resp.block.len, 0, "Expires is now + max-age");
    cr_assert_not_null(strstr(lines, "Expires: Tue, 14 Nov 2023 22:14:30 GMT\r\n"), "%s", lines);
}

Test(handler, a_head_rendered_under_the_previous_configuration_is_not_served_after_a_reload)
{
    settle();
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond_block(&req);
    respond_block(&req);
    cr_assert_gt(fx.resp.block.len, 0);
    struct nm_file *held = nm_file_acquire(fx.resp.block_file);
    struct nm_config next = fx.cfg;
    next.max_age = 600;
    uint64_t serial = fx.site.config_serial;
    cr_assert_eq(nm_site_set_config(&fx.site, &next), 0);
    cr_assert_neq(fx.site.config_serial, serial);
    const char *lines = respond_block(&req);
    cr_assert_not_null(strstr(lines, "Cache-Control: max-age=600\r\n"), "%s", lines);
    cr_assert_eq(fx.resp.block.len, 0, "a new version's first response builds its fields");
    cr_assert_null(held->head->config_serial == fx.site.config_serial ? held : NULL,
                   "the old version's head stays under the old serial");
    nm_file_release(held);
    nm_response_cleanup(&fx.resp);
    cr_assert_eq(nm_site_set_config(&fx.site, &fx.cfg), 0); /* back, before next goes */
}

Test(handler, a_response_description_has_no_framing)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond(&req);
    cr_assert_null(field("Date"), "Date is the renderer's");
    cr_assert_null(field("Connection"));
    cr_assert_null(field("Transfer-Encoding"));
}

Test(handler, head_has_the_fields_of_get_and_no_content)
{
    struct nm_handler_request req = request(NM_METHOD_HEAD, "/hello.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field("Content-Length"), "14");
    cr_assert_eq(fx.resp.n_pieces, 0);
    cr_assert_eq(fx.resp.content_bytes, 0);
}

Test(handler, a_large_file_is_a_file_part_read_from_its_descriptor)
{
    fx.cfg.hash_threshold_bytes = BIG_BYTES - 1; /* not read whole while racy (just written) */
    struct nm_handler_request req = request(NM_METHOD_GET, "/big.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_eq(fx.resp.n_pieces, 1);
    cr_assert_null(fx.resp.pieces[0].file->data);
    cr_assert_eq(fx.resp.pieces[0].off, 0);
    cr_assert_eq(fx.resp.pieces[0].len, BIG_BYTES);
}

Test(handler, if_none_match_with_the_current_tag_is_304_with_validators_only)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    req.if_none_match = line(0, "\"wwgjNdnmRKAywbFqXtmP-w\"");
    respond(&req);
    cr_assert_eq(fx.resp.status, 304);
    /* RFC 9110 §15.4.5: no Last-Modified beside an ETag, nothing about content. */
    cr_assert_str_eq(field_names(), "ETag|Cache-Control|");
    cr_assert_eq(fx.resp.n_pieces, 0);
}

Test(handler, if_match_without_a_match_is_412)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    req.if_match = line(0, "\"other\"");
    respond(&req);
    cr_assert_eq(fx.resp.status, 412);
    cr_assert_str_eq(content(), "412 Precondition Failed\n");
    cr_assert_null(field("ETag"));
}

/* ---- ranges --------------------------------------------------------------------------------- */

Test(handler, one_range_is_206_with_a_part_of_the_file)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/big.txt");
    req.range = line(0, "bytes=5-9");
    respond(&req);
    cr_assert_eq(fx.resp.status, 206);
    cr_assert_str_eq(field("Content-Range"), "bytes 5-9/200000");
    cr_assert_str_eq(field("Content-Length"), "5");
    cr_assert_eq(fx.resp.n_pieces, 1);
    cr_assert_eq(fx.resp.pieces[0].off, 5);
    cr_assert_str_eq(content(), "fghij");
}

Test(handler, several_ranges_are_multipart_parts_in_order)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/big.txt");
    req.range = line(0, "bytes=0-2,26-28,-3");
    respond(&req);
    cr_assert_eq(fx.resp.status, 206);
    cr_assert_eq(strncmp(field("Content-Type"), "multipart/byteranges; boundary=notmod-", 38), 0);
    cr_assert_eq(fx.resp.n_pieces, 7, "a head and a part per range, then the closing delimiter");
    for (size_t i = 0; i < 7; i++)
        cr_assert_eq(fx.resp.pieces[i].file != NULL, i % 2 == 1);
    char length[32];
    snprintf(length, sizeof(length), "%llu", (unsigned long long)fx.resp.content_bytes);
    cr_assert_str_eq(field("Content-Length"), length);
    const char *body = content();
    cr_assert_not_null(strstr(body, "Content-Range: bytes 199997-199999/200000\r\n\r\nfgh\r\n"));
}

Test(handler, an_unsatisfiable_range_is_416_with_the_length)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    req.range = line(0, "bytes=100-");
    respond(&req);
    cr_assert_eq(fx.resp.status, 416);
    cr_assert_str_eq(field_names(), "Content-Type|Content-Length|Content-Range|");
    cr_assert_str_eq(field("Content-Range"), "bytes */14");
}

/* ---- methods and targets -------------------------------------------------------------------- */

Test(handler, options_is_204_with_allow_and_no_content_length)
{
    struct nm_handler_request req = request(NM_METHOD_OPTIONS, "*");
    respond(&req);
    cr_assert_eq(fx.resp.status, 204);
    cr_assert_str_eq(field_names(), "Allow|");
    cr_assert_str_eq(field("Allow"), "GET, HEAD, OPTIONS");
}

Test(handler, a_known_method_other_than_get_head_options_is_405_with_allow)
{
    struct nm_handler_request req = request(NM_METHOD_POST, "/hello.txt");
    req.if_none_match = line(0, "*");
    respond(&req);
    cr_assert_eq(fx.resp.status, 405);
    cr_assert_str_eq(field_names(), "Content-Type|Content-Length|Allow|");
    cr_assert_str_eq(content(), "405 Method Not Allowed\n");
}

Test(handler, an_unknown_method_is_501)
{
    struct nm_handler_request req = request(NM_METHOD_OTHER, "/hello.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 501);
    cr_assert_str_eq(content(), "501 Not Implemented: unknown method\n");
}

Test(handler, targets_that_make_no_path_are_400_or_414)
{
    static const struct {
        const char *target;
        int status;
    } cases[] = {
        {"*", 400},
        {"http://user@example.test/hello.txt", 400},
        {"/a%00b", 400},
        {"/a%2Fb", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nm_handler_request req = request(NM_METHOD_GET, cases[i].target);
        respond(&req);
        cr_expect_eq(fx.resp.status, cases[i].status, "%s", cases[i].target);
    }
    char *long_target = malloc(NM_PATH_MAX + 16);
    cr_assert_not_null(long_target);
    long_target[0] = '/';
    memset(long_target + 1, 'a', NM_PATH_MAX + 8);
    long_target[NM_PATH_MAX + 9] = '\0';
    struct nm_handler_request req = request(NM_METHOD_GET, long_target);
    respond(&req);
    cr_expect_eq(fx.resp.status, 414);
    free(long_target);
}

Test(handler, an_absolute_form_target_is_served_by_its_path)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "http://example.test/hello.txt?x=1");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(content(), hello);
}

Test(handler, dot_files_and_missing_files_are_404)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/.secret");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404);
    req = request(NM_METHOD_GET, "/missing.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404);
    req = request(NM_METHOD_GET, "/hello.txt/");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404, "a file named with a trailing slash");
    fx.cfg.allow_dotfiles = true;
    req = request(NM_METHOD_GET, "/.secret");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
}

/* ---- directories ---------------------------------------------------------------------------- */

Test(handler, a_directory_without_its_slash_redirects_keeping_the_query)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs?lang=en&v=2");
    req.if_none_match = line(0, "*");
    respond(&req);
    cr_assert_eq(fx.resp.status, 301);
    cr_assert_str_eq(field_names(), "Content-Type|Content-Length|Location|");
    cr_assert_str_eq(field("Location"), "/docs/?lang=en&v=2");
    cr_assert_str_eq(content(), "301 Moved Permanently\n");
}

Test(handler, a_directory_without_index_is_404_unless_listed)
{
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404);
    fx.cfg.list_dirs = true;
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field_names(), "ETag|Cache-Control|Content-Type|Content-Length|"
                                    "X-Content-Type-Options|");
    cr_assert_str_eq(field("Cache-Control"), "no-cache");
    cr_assert_str_eq(field("Content-Type"), "text/html; charset=utf-8");
    cr_assert_eq(fx.resp.n_pieces, 1);
    const struct nm_file *page = fx.resp.pieces[0].file;
    cr_assert_not_null(page, "the listing's page, shared by reference, not copied");
    cr_assert_eq(page->fd, -1);
    cr_assert_not_null(page->data);
    cr_assert_not_null(strstr(content(), "<a href=\"./a.txt\">a.txt</a>"));
}

Test(handler, a_listing_is_rendered_once_per_directory_version_and_second)
{
    fx.cfg.list_dirs = true;
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    const struct nm_file *first = fx.resp.pieces[0].file;
    cr_assert_not_null(first);
    struct nm_handler_request head = request(NM_METHOD_HEAD, "/docs/");
    respond(&head);
    cr_assert_eq(fx.resp.status, 200);
    respond(&req);
    cr_assert_eq(fx.resp.pieces[0].file, first, "the same page, not a new render");
    cr_assert_eq(fx.site.listing_renders_left, UINT_MAX - 1, "one render counted");
}

Test(handler, a_listing_revalidates_by_its_tag)
{
    fx.cfg.list_dirs = true;
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/");
    respond(&req);
    char tag[NM_ETAG_MAX + 1];
    snprintf(tag, sizeof(tag), "%s", field("ETag"));
    req.if_none_match = line(0, tag);
    respond(&req);
    cr_assert_eq(fx.resp.status, 304);
    cr_assert_eq(fx.resp.n_pieces, 0);
}

Test(handler, the_index_file_answers_for_its_directory)
{
    write_site_file("docs/index.html", "<p>docs</p>\n", 12);
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field("Content-Type"), "text/html; charset=utf-8");
    cr_assert_str_eq(content(), "<p>docs</p>\n");
    char path[128];
    make_path(path, sizeof(path), "docs/index.html");
    unlink(path);
}

/* ---- errors --------------------------------------------------------------------------------- */

Test(handler, an_error_is_a_short_text_and_none_for_head)
{
    cr_assert_eq(nm_handler_respond_error(&fx.resp, 408, "too slow", false), 0);
    cr_assert_eq(fx.resp.status, 408);
    cr_assert_str_eq(field_names(), "Content-Type|Content-Length|");
    cr_assert_str_eq(content(), "408 Request Timeout: too slow\n");
    nm_response_cleanup(&fx.resp);
    cr_assert_eq(nm_handler_respond_error(&fx.resp, 400, NULL, true), 0);
    cr_assert_str_eq(field("Content-Length"), "16");
    cr_assert_eq(fx.resp.n_pieces, 0);
}

Test(handler, a_moved_root_is_followed_before_the_path_resolves)
{
    char new_root[80], link_path[96];
    snprintf(new_root, sizeof(new_root), "%s.new", fx.dir);
    cr_assert_eq(mkdir(new_root, 0755), 0);
    snprintf(link_path, sizeof(link_path), "%s/only-new.txt", new_root);
    int fd = open(link_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "new\n", 4), 4);
    close(fd);
    char *root = fx.cfg.root;
    fx.cfg.root = new_root;
    struct nm_handler_request req = request(NM_METHOD_GET, "/only-new.txt");
    respond(&req);
    cr_expect_eq(fx.resp.status, 200);
    cr_expect_eq(fx.site.root_swaps, 1);
    nm_response_cleanup(&fx.resp);
    fx.cfg.root = root;
    unlink(link_path);
    rmdir(new_root);
}

/* ---- precompressed variants ----------------------------------------------------------------- */

Test(handler, a_selected_variant_has_content_encoding_and_vary_as_its_last_field)
{
    write_site_file("v.txt", hello, sizeof(hello) - 1);
    write_site_file("v.txt.gz", "GZ-BYTES", 8);
    struct nm_handler_request req = request(NM_METHOD_GET, "/v.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field_names(), "ETag|Last-Modified|Cache-Control|Content-Type|"
                                    "Content-Encoding|Content-Length|Accept-Ranges|"
                                    "X-Content-Type-Options|Vary|");
    cr_assert_str_eq(field("Content-Encoding"), "gzip");
    cr_assert_str_eq(field("Content-Type"), "text/plain; charset=utf-8");
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
    cr_assert_str_eq(content(), "GZ-BYTES");
}

Test(handler, a_multipart_206_of_a_variant_names_the_coding_in_each_part)
{
    write_site_file("m.txt", hello, sizeof(hello) - 1);
    write_site_file("m.txt.gz", "0123456789", 10);
    struct nm_handler_request req = request(NM_METHOD_GET, "/m.txt");
    req.accept_encoding = line(0, "gzip");
    req.range = line(1, "bytes=0-1,5-6");
    respond(&req);
    cr_assert_eq(fx.resp.status, 206);
    cr_assert_null(field("Content-Encoding"), "the multipart body itself is not coded");
    cr_assert_not_null(strstr(content(), "Content-Encoding: gzip\r\nContent-Range: bytes 5-6/10"));
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
}

Test(handler, precompressed_off_ignores_sidecars)
{
    write_site_file("o.txt", hello, sizeof(hello) - 1);
    write_site_file("o.txt.gz", "GZ-BYTES", 8);
    fx.cfg.n_precompressed = 0;
    struct nm_handler_request req = request(NM_METHOD_GET, "/o.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_null(field("Content-Encoding"));
    cr_assert_null(field("Vary"));
    cr_assert_str_eq(content(), hello);
}

/* ---- variants compressed on the fly --------------------------------------------------------- */

static struct nm_variants_cache *use_fly_cache(void)
{
    struct nm_variants_cache_options o;
    nm_variants_cache_options_init(&o);
    struct nm_variants_cache *c = NULL;
    cr_assert_eq(nm_variants_cache_new(&o, &c), 0);
    fx.site.fly = c;
    return c;
}

/* Releases the response's and the file table's references before the cache goes. */
static void drop_fly_cache(struct nm_variants_cache *c)
{
    nm_response_cleanup(&fx.resp);
    nm_site_cleanup(&fx.site);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    nm_variants_cache_free(c);
}

Test(handler, a_compressible_file_varies_from_its_first_response_then_gets_its_own_gzip_variant)
{
    struct nm_variants_cache *c = use_fly_cache();
    struct nm_handler_request req = request(NM_METHOD_GET, "/big.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_null(field("Content-Encoding"), "not ready: identity, without waiting");
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
    char identity_tag[64];
    snprintf(identity_tag, sizeof(identity_tag), "%s", field("ETag"));

    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_str_eq(field_names(), "ETag|Last-Modified|Cache-Control|Content-Type|"
                                    "Content-Encoding|Content-Length|Accept-Ranges|"
                                    "X-Content-Type-Options|Vary|");
    cr_assert_str_eq(field("Content-Encoding"), "gzip");
    cr_assert_str_eq(field("Content-Type"), "text/plain; charset=utf-8");
    cr_assert_eq(fx.resp.n_pieces, 1);
    const struct nm_response_piece *p = &fx.resp.pieces[0];
    cr_assert_not_null(p->file);
    cr_assert_not_null(p->file->data, "the cached bytes, by reference");
    size_t len = (size_t)fx.resp.content_bytes;
    cr_assert_lt(len, BIG_BYTES);
    char want_len[24];
    snprintf(want_len, sizeof(want_len), "%zu", len);
    cr_assert_str_eq(field("Content-Length"), want_len);
    struct nm_hash128 h = nm_hash_bytes(p->file->data, len);
    char tag[64];
    cr_assert_gt(nm_etag_make_hash128(h.hi, h.lo, tag, sizeof(tag)), 0);
    cr_assert_str_eq(field("ETag"), tag, "the hash of the coded bytes");
    cr_assert_str_neq(tag, identity_tag);
    void *plain = NULL;
    size_t plain_len = 0;
    cr_assert_eq(nm_variants_codec_decompress(NM_CODING_GZIP, p->file->data, len, BIG_BYTES, &plain,
                                              &plain_len),
                 0);
    cr_assert_eq(plain_len, BIG_BYTES);
    for (size_t i = 0; i < BIG_BYTES; i++)
        cr_assert_eq(((char *)plain)[i], (char)('a' + i % 26));
    free(plain);

    /* Its own tag revalidates it, and only it. */
    req.if_none_match = line(1, tag);
    respond(&req);
    cr_assert_eq(fx.resp.status, 304);
    cr_assert_str_eq(field("ETag"), tag);
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
    struct nm_handler_request plain_req = request(NM_METHOD_GET, "/big.txt");
    plain_req.if_none_match = line(2, tag);
    respond(&plain_req);
    cr_assert_eq(fx.resp.status, 200);
    cr_assert_null(field("Content-Encoding"));
    cr_assert_str_eq(field("ETag"), identity_tag);
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
    plain_req.if_none_match = line(2, identity_tag);
    respond(&plain_req);
    cr_assert_eq(fx.resp.status, 304);
    cr_assert_str_eq(field("Vary"), "Accept-Encoding");
    drop_fly_cache(c);
}

Test(handler, a_range_of_a_variant_made_on_the_fly_is_a_range_of_the_coded_bytes)
{
    struct nm_variants_cache *c = use_fly_cache();
    struct nm_handler_request req = request(NM_METHOD_GET, "/big.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    req.range = line(1, "bytes=0-1");
    respond(&req);
    cr_assert_eq(fx.resp.status, 206);
    cr_assert_str_eq(field("Content-Encoding"), "gzip");
    cr_assert_eq(fx.resp.content_bytes, 2);
    cr_assert_eq(memcmp(content(), "\x1f\x8b", 2), 0, "the gzip magic");
    drop_fly_cache(c);
}

Test(handler, a_current_sidecar_wins_over_bytes_made_on_the_fly)
{
    char text[512];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 3);
    write_site_file("s.txt", text, sizeof(text));
    write_site_file("s.txt.gz", "GZ-BYTES", 8);
    struct nm_variants_cache *c = use_fly_cache();
    struct nm_handler_request req = request(NM_METHOD_GET, "/s.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    respond(&req);
    cr_assert_str_eq(content(), "GZ-BYTES");
    struct nm_variants_cache_stats st;
    nm_variants_cache_get_stats(c, &st);
    cr_assert_eq(st.compressed, 0, "nothing asked of the cache for a sidecar's coding");
    drop_fly_cache(c);
}

Test(handler, small_files_and_no_compress_get_no_vary)
{
    struct nm_variants_cache *c = use_fly_cache();
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_null(field("Vary"), "under 256 bytes");
    fx.cfg.compress = false;
    req = request(NM_METHOD_GET, "/big.txt");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_assert_null(field("Vary"));
    cr_assert_eq(nm_variants_cache_drain(c, 10000), 0);
    respond(&req);
    cr_assert_null(field("Content-Encoding"));
    fx.cfg.compress = true;
    fx.cfg.compress_max_bytes = BIG_BYTES - 1;
    respond(&req);
    cr_assert_null(field("Vary"), "over the size limit");
    drop_fly_cache(c);
}

/* ---- the config file's path rules ---------------------------------------------------------- */

/* Adds a path rule to fx.cfg and returns it (freed by nm_config_cleanup). */
static struct nm_path_rule *add_path_rule(const char *match, bool is_prefix)
{
    struct nm_path_rule *all =
        realloc(fx.cfg.path_rules, (fx.cfg.n_path_rules + 1) * sizeof(*fx.cfg.path_rules));
    cr_assert_not_null(all);
    fx.cfg.path_rules = all;
    struct nm_path_rule *r = &all[fx.cfg.n_path_rules++];
    *r = (struct nm_path_rule){
        .match = strdup(match), .is_prefix = is_prefix, .variants = -1, .listing = -1};
    return r;
}

static void add_header(struct nm_path_rule *r, const char *name, const char *value)
{
    r->headers[r->n_headers++] = (struct nm_header_field){strdup(name), strdup(value)};
}

Test(handler, rule_fields_go_on_200_304_and_404_and_the_304_keeps_its_shape)
{
    struct nm_path_rule *r = add_path_rule("/*", false);
    add_header(r, "Content-Security-Policy", "default-src 'self'");
    add_header(r, "X-Release", "7");
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_expect_str_eq(field("Content-Security-Policy"), "default-src 'self'");
    cr_expect_str_eq(field("X-Release"), "7");
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", field("ETag"));
    req.if_none_match = line(0, etag);
    respond(&req);
    cr_assert_eq(fx.resp.status, 304);
    cr_expect_str_eq(field_names(), "ETag|Cache-Control|Content-Security-Policy|X-Release|");
    req = request(NM_METHOD_GET, "/missing.txt");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404);
    cr_expect_str_eq(field("X-Release"), "7");
}

Test(handler, the_first_rule_to_set_a_field_wins_and_rules_that_do_not_match_add_nothing)
{
    add_header(add_path_rule("/docs/", true), "X-Who", "docs");
    add_header(add_path_rule("*.txt", false), "X-Who", "text");
    add_header(add_path_rule("/other/", true), "X-Other", "1");
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/a.txt");
    respond(&req);
    cr_expect_str_eq(field("X-Who"), "docs");
    cr_expect_null(field("X-Other"));
    req = request(NM_METHOD_GET, "/hello.txt");
    respond(&req);
    cr_expect_str_eq(field("X-Who"), "text");
}

Test(handler, a_cors_preflight_is_204_with_the_rules_fields_and_a_plain_options_gets_allow)
{
    struct nm_path_rule *r = add_path_rule("/docs/", true);
    add_header(r, "Access-Control-Allow-Origin", "*");
    add_header(r, "Access-Control-Allow-Methods", "GET, HEAD");
    struct nm_handler_request req = request(NM_METHOD_OPTIONS, "/docs/a.txt");
    req.origin = line(0, "https://example.com");
    req.access_control_request_method = line(1, "GET");
    respond(&req);
    cr_assert_eq(fx.resp.status, 204);
    cr_expect_str_eq(field_names(), "Access-Control-Allow-Origin|Access-Control-Allow-Methods|");
    req.access_control_request_method = (struct nm_field){0};
    respond(&req);
    cr_expect_str_eq(field_names(), "Allow|");
    req = request(NM_METHOD_OPTIONS, "/hello.txt"); /* no rule with CORS fields there */
    req.origin = line(0, "https://example.com");
    req.access_control_request_method = line(1, "GET");
    respond(&req);
    cr_expect_str_eq(field_names(), "Allow|");
}

Test(handler, try_files_answers_a_missing_path_as_the_fallback_with_its_validators)
{
    struct nm_path_rule *r = add_path_rule("/app/", true);
    r->try_files[r->n_try_files++] = strdup("$uri.txt");
    r->try_files[r->n_try_files++] = strdup("/hello.txt");
    struct nm_handler_request req = request(NM_METHOD_GET, "/hello.txt");
    respond(&req);
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", field("ETag"));
    req = request(NM_METHOD_GET, "/app/some/route");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_expect_str_eq(content(), hello);
    cr_expect_str_eq(field("ETag"), etag);
    req.if_none_match = line(0, etag);
    respond(&req);
    cr_expect_eq(fx.resp.status, 304);
    /* $uri: the path itself with the suffix, before the next candidate. */
    struct nm_path_rule *clean = add_path_rule("/docs/", true);
    clean->try_files[clean->n_try_files++] = strdup("$uri.txt");
    req = request(NM_METHOD_GET, "/docs/a");
    respond(&req);
    cr_assert_eq(fx.resp.status, 200);
    cr_expect_str_eq(content(), "a\n");
    req = request(NM_METHOD_GET, "/docs/none");
    respond(&req);
    cr_expect_eq(fx.resp.status, 404);
}

Test(handler, an_error_page_keeps_the_status_and_carries_no_validators)
{
    fx.cfg.error_pages[0] = (struct nm_error_page){404, strdup("/docs/a.txt")};
    fx.cfg.n_error_pages = 1;
    struct nm_handler_request req = request(NM_METHOD_GET, "/missing");
    req.if_none_match = line(0, "*");
    respond(&req);
    cr_assert_eq(fx.resp.status, 404);
    cr_expect_str_eq(content(), "a\n");
    cr_expect_str_eq(field_names(), "Content-Type|Cache-Control|Content-Length|");
    req = request(NM_METHOD_HEAD, "/missing");
    respond(&req);
    cr_expect_eq(fx.resp.status, 404);
    cr_expect_eq(fx.resp.content_bytes, 0);
    /* A rule's own page comes first; a page that is missing leaves the plain text. */
    struct nm_path_rule *r = add_path_rule("/x/", true);
    r->error_pages[r->n_error_pages++] = (struct nm_error_page){404, strdup("/gone.html")};
    req = request(NM_METHOD_GET, "/x/y");
    respond(&req);
    cr_expect_eq(fx.resp.status, 404);
    cr_expect_str_eq(content(), "404 Not Found\n");
}

Test(handler, a_rule_turns_variants_off_and_listings_on)
{
    write_site_file("docs/page.html", "<p>x</p>\n", 9);
    write_site_file("docs/page.html.gz", "not really gzip", 15);
    struct nm_path_rule *r = add_path_rule("/docs/*", false);
    r->variants = 0;
    r->listing = 1;
    struct nm_handler_request req = request(NM_METHOD_GET, "/docs/page.html");
    req.accept_encoding = line(0, "gzip");
    respond(&req);
    cr_expect_eq(fx.resp.status, 200);
    cr_expect_null(field("Content-Encoding"));
    cr_expect_null(field("Vary"));
    req = request(NM_METHOD_GET, "/docs/");
    respond(&req);
    cr_expect_eq(fx.resp.status, 200);
    cr_expect(strstr(content(), "page.html") != NULL);
    char path[128];
    make_path(path, sizeof(path), "docs/page.html");
    unlink(path);
    make_path(path, sizeof(path), "docs/page.html.gz");
    unlink(path);
}
