/* MIME table: built-in defaults, charset rules, mime.types overrides and junk, lookup rules. */
#include "serve/mime.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct mime_case {
    const char *name;
    const char *type;
};

static struct nm_mime_table *new_table(const char *path)
{
    struct nm_mime_table *t = NULL;
    cr_assert_eq(nm_mime_table_new(path, &t), 0);
    cr_assert_not_null(t);
    return t;
}

static void expect_cases(const struct nm_mime_table *t, const struct mime_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(nm_mime_lookup(t, cases[i].name), cases[i].type, "%s", cases[i].name);
}

/* A scratch directory holding one mime.types file, removed by drop_file. */
struct scratch {
    char dir[64];
    char path[96];
};

static void write_file(struct scratch *s, const char *data, size_t len)
{
    strcpy(s->dir, "/tmp/nm-mime-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof(s->path), "%s/mime.types", s->dir);
    FILE *f = fopen(s->path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void drop_file(struct scratch *s)
{
    unlink(s->path);
    rmdir(s->dir);
}

static const struct mime_case default_cases[] = {
    {"index.html", "text/html; charset=utf-8"},
    {"old.htm", "text/html; charset=utf-8"},
    {"app.css", "text/css; charset=utf-8"},
    {"app.js", "text/javascript; charset=utf-8"},
    {"mod.mjs", "text/javascript; charset=utf-8"},
    {"data.json", "application/json; charset=utf-8"},
    {"app.js.map", "application/json; charset=utf-8"},
    {"notes.txt", "text/plain; charset=utf-8"},
    {"feed.xml", "application/xml"},
    {"logo.svg", "image/svg+xml"},
    {"a.png", "image/png"},
    {"a.jpg", "image/jpeg"},
    {"a.jpeg", "image/jpeg"},
    {"a.gif", "image/gif"},
    {"a.webp", "image/webp"},
    {"a.avif", "image/avif"},
    {"favicon.ico", "image/vnd.microsoft.icon"},
    {"f.woff", "font/woff"},
    {"f.woff2", "font/woff2"},
    {"f.ttf", "font/ttf"},
    {"f.otf", "font/otf"},
    {"m.wasm", "application/wasm"},
    {"doc.pdf", "application/pdf"},
    {"a.zip", "application/zip"},
    {"a.gz", "application/gzip"},
    {"a.br", "application/x-brotli"},
    {"a.zst", "application/zstd"},
    {"v.mp4", "video/mp4"},
    {"v.webm", "video/webm"},
    {"s.mp3", "audio/mpeg"},
    {"s.ogg", "audio/ogg"},
    {"s.wav", "audio/wav"},
    {"t.csv", "text/csv; charset=utf-8"},
    {"README.md", "text/markdown; charset=utf-8"},
    {"site.webmanifest", "application/manifest+json; charset=utf-8"},
    {"subs.vtt", "text/vtt; charset=utf-8"},
};

Test(mime, defaults_cover_the_common_web_formats)
{
    struct nm_mime_table *t = new_table(NULL);
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);
}

Test(mime, looks_up_the_last_extension_case_insensitively)
{
    static const struct mime_case cases[] = {
        {"archive.tar.gz", "application/gzip"},
        {"INDEX.HTML", "text/html; charset=utf-8"},
        {"App.Js", "text/javascript; charset=utf-8"},
        {"photo.JpEg", "image/jpeg"},
        {"/srv/www/a.b/c.css", "text/css; charset=utf-8"},
        {"dir.d/README", "application/octet-stream"},
        {"/a.html/", "application/octet-stream"},
        {"Makefile", "application/octet-stream"},
        {".bashrc", "application/octet-stream"},
        {"/home/u/.profile", "application/octet-stream"},
        {".config.json", "application/json; charset=utf-8"},
        {"trailing.", "application/octet-stream"},
        {"", "application/octet-stream"},
        {"x.unknownextension", "application/octet-stream"},
        {"x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "application/octet-stream"},
    };
    struct nm_mime_table *t = new_table(NULL);
    expect_cases(t, cases, N_OF(cases));
    nm_mime_table_free(t);
}

Test(mime, null_table_or_name_is_octet_stream_and_free_null_is_a_no_op)
{
    struct nm_mime_table *t = new_table(NULL);
    cr_expect_str_eq(nm_mime_lookup(NULL, "a.html"), "application/octet-stream");
    cr_expect_str_eq(nm_mime_lookup(t, NULL), "application/octet-stream");
    nm_mime_table_free(t);
    nm_mime_table_free(NULL);
}

Test(mime, a_missing_file_leaves_the_defaults)
{
    struct nm_mime_table *t = new_table("/nonexistent/notmod/mime.types");
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);
}

Test(mime, a_directory_in_place_of_the_file_leaves_the_defaults)
{
    struct nm_mime_table *t = new_table("/");
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);
}

Test(mime, a_file_overrides_defaults_but_not_javascript)
{
    static const char file[] = "# a comment line\n"
                               "\n"
                               "   \t \n"
                               "image/x-portable-png\tpng\n"
                               "text/x-custom  foo BAR\n"
                               "application/javascript\t\tjs mjs\n"
                               "text/plain css\n"
                               "application/x-first dup\n"
                               "application/x-second dup\n"
                               "text/x-comment  aaa # bbb\n"
                               "text/x-crlf crl\r\n"
                               "TEXT/X-UPPER upp\n"
                               "application/ld+json jsonld\n"
                               "application/x-dotted a.b\n"
                               "application/x-last last";
    struct scratch s;
    write_file(&s, file, sizeof(file) - 1);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);

    static const struct mime_case cases[] = {
        {"a.png", "image/x-portable-png"},
        {"a.foo", "text/x-custom; charset=utf-8"},
        {"a.bar", "text/x-custom; charset=utf-8"},
        {"a.BAR", "text/x-custom; charset=utf-8"},
        {"a.js", "text/javascript; charset=utf-8"},
        {"a.mjs", "text/javascript; charset=utf-8"},
        {"a.css", "text/plain; charset=utf-8"},
        {"a.dup", "application/x-second"},
        {"a.aaa", "text/x-comment; charset=utf-8"},
        {"a.bbb", "application/octet-stream"},
        {"a.crl", "text/x-crlf; charset=utf-8"},
        {"a.upp", "TEXT/X-UPPER; charset=utf-8"},
        {"a.jsonld", "application/ld+json"},
        {"a.b", "application/octet-stream"},
        {"a.last", "application/x-last"},
        {"a.html", "text/html; charset=utf-8"},
        {"a.webmanifest", "application/manifest+json; charset=utf-8"},
    };
    expect_cases(t, cases, N_OF(cases));
    nm_mime_table_free(t);
}

/* mime.h: nm_mime_source_of tells a built-in type from a mime.types one by the value's address. */
Test(mime, source_tells_a_built_in_type_from_a_file_type_and_from_no_entry)
{
    static const char file[] = "text/plain css\n"
                               "application/javascript js\n"
                               "text/html html\n"
                               "application/x-custom foo\n";
    struct scratch s;
    write_file(&s, file, sizeof(file) - 1);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);
    struct nm_mime_table *builtin = new_table(NULL);

    static const struct {
        const char *name;
        enum nm_mime_source with_file, without;
    } cases[] = {
        {"a.png", NM_MIME_SOURCE_BUILTIN, NM_MIME_SOURCE_BUILTIN},
        {"a.css", NM_MIME_SOURCE_FILE, NM_MIME_SOURCE_BUILTIN},
        /* The file says text/html too: the same text, but the file's entry. */
        {"a.html", NM_MIME_SOURCE_FILE, NM_MIME_SOURCE_BUILTIN},
        /* Pinned: the file's line loses. */
        {"a.js", NM_MIME_SOURCE_BUILTIN, NM_MIME_SOURCE_BUILTIN},
        {"a.foo", NM_MIME_SOURCE_FILE, NM_MIME_SOURCE_NONE},
        {"a.unknown", NM_MIME_SOURCE_NONE, NM_MIME_SOURCE_NONE},
        {"noext", NM_MIME_SOURCE_NONE, NM_MIME_SOURCE_NONE},
        {".bashrc", NM_MIME_SOURCE_NONE, NM_MIME_SOURCE_NONE},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        cr_expect_eq(nm_mime_source_of(t, nm_mime_lookup(t, cases[i].name)), cases[i].with_file,
                     "%s with the file", cases[i].name);
        cr_expect_eq(nm_mime_source_of(builtin, nm_mime_lookup(builtin, cases[i].name)),
                     cases[i].without, "%s without a file", cases[i].name);
    }

    /* Only the table's own value counts: not a copy, not another table's, not NULL. */
    const char *png = nm_mime_lookup(builtin, "a.png");
    char *copy = strdup(png);
    cr_assert_not_null(copy);
    cr_expect_eq(nm_mime_source_of(builtin, copy), NM_MIME_SOURCE_NONE);
    cr_expect_eq(nm_mime_source_of(t, png), NM_MIME_SOURCE_NONE);
    cr_expect_eq(nm_mime_source_of(builtin, "image/png"), NM_MIME_SOURCE_NONE);
    cr_expect_eq(nm_mime_source_of(builtin, NULL), NM_MIME_SOURCE_NONE);
    cr_expect_eq(nm_mime_source_of(NULL, png), NM_MIME_SOURCE_NONE);
    free(copy);
    nm_mime_table_free(builtin);
    nm_mime_table_free(t);
}

Test(mime, charset_is_added_once_and_only_to_text_js_and_json)
{
    static const char file[] = "text/x-a ta\n"
                               "application/json jsn\n"
                               "application/manifest+json mfst\n"
                               "application/javascript ajs\n"
                               "image/svg+xml svgz\n"
                               "application/xml xsl\n"
                               "application/octet-stream bin\n"
                               "application/text ntx\n";
    struct scratch s;
    write_file(&s, file, sizeof(file) - 1);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);

    static const struct mime_case cases[] = {
        {"a.ta", "text/x-a; charset=utf-8"},
        {"a.jsn", "application/json; charset=utf-8"},
        {"a.mfst", "application/manifest+json; charset=utf-8"},
        {"a.ajs", "application/javascript; charset=utf-8"},
        {"a.svgz", "image/svg+xml"},
        {"a.xsl", "application/xml"},
        {"a.bin", "application/octet-stream"},
        {"a.ntx", "application/text"},
    };
    expect_cases(t, cases, N_OF(cases));
    for (size_t i = 0; i < N_OF(default_cases); i++) {
        const char *v = nm_mime_lookup(t, default_cases[i].name);
        const char *first = strstr(v, "charset=");
        cr_expect(first == NULL || strstr(first + 1, "charset=") == NULL, "%s", v);
    }
    nm_mime_table_free(t);
}

Test(mime, a_type_with_parameters_in_the_file_is_skipped)
{
    static const char file[] = "text/html; charset=iso-8859-1 html htm\n"
                               "text/x-p;q=1 pq\n";
    struct scratch s;
    write_file(&s, file, sizeof(file) - 1);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);
    cr_expect_str_eq(nm_mime_lookup(t, "a.html"), "text/html; charset=utf-8");
    cr_expect_str_eq(nm_mime_lookup(t, "a.pq"), "application/octet-stream");
    cr_expect_str_eq(nm_mime_lookup(t, "a.iso-8859-1"), "application/octet-stream");
    nm_mime_table_free(t);
}

Test(mime, lines_longer_than_any_buffer_are_skipped_token_by_token)
{
    size_t big = 100000;
    size_t cap = 4 * big + 256;
    char *data = malloc(cap);
    cr_assert_not_null(data);
    size_t n = 0;
    /* An overlong type spoils its line. */
    n += (size_t)sprintf(data + n, "text/");
    memset(data + n, 'a', big);
    n += big;
    n += (size_t)sprintf(data + n, " qqq\n");
    /* An overlong extension is skipped; the rest of its line still counts. */
    n += (size_t)sprintf(data + n, "text/x-after ");
    memset(data + n, 'y', big);
    n += big;
    n += (size_t)sprintf(data + n, " zzz\n");
    /* An overlong comment line. */
    data[n++] = '#';
    memset(data + n, 'c', big);
    n += big;
    n += (size_t)sprintf(data + n, " text/x-in-comment cmt\n");
    /* A line of nothing but spaces. */
    memset(data + n, ' ', big);
    n += big;
    n += (size_t)sprintf(data + n, "\nimage/x-end end\n");
    cr_assert_lt(n, cap);

    struct scratch s;
    write_file(&s, data, n);
    free(data);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);
    cr_expect_str_eq(nm_mime_lookup(t, "a.qqq"), "application/octet-stream");
    cr_expect_str_eq(nm_mime_lookup(t, "a.zzz"), "text/x-after; charset=utf-8");
    cr_expect_str_eq(nm_mime_lookup(t, "a.cmt"), "application/octet-stream");
    cr_expect_str_eq(nm_mime_lookup(t, "a.end"), "image/x-end");
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);
}

Test(mime, a_junk_file_never_fails_and_keeps_the_defaults)
{
    static const char junk[] = "\0\0\0\xff\xfe/\x01/\n"
                               "/ nothing\n"
                               "text/ half\n"
                               "/plain slash\n"
                               "a/b/c twoslash\n"
                               "noslash word\n"
                               "image/\xc3\xa9 utf8\n"
                               "text/x-ok good b\xc3\xa9 \x01x html/js\n"
                               "\t\t\r\n"
                               "text/x-nul nu\0l\n"
                               "#\n"
                               "##### text/x-hash hsh\n"
                               "\n\n\n"
                               "text/x-eof";
    struct scratch s;
    write_file(&s, junk, sizeof(junk) - 1);
    struct nm_mime_table *t = new_table(s.path);
    drop_file(&s);
    static const struct mime_case cases[] = {
        {"a.nothing", "application/octet-stream"}, {"a.half", "application/octet-stream"},
        {"a.slash", "application/octet-stream"},   {"a.twoslash", "application/octet-stream"},
        {"a.word", "application/octet-stream"},    {"a.utf8", "application/octet-stream"},
        {"a.good", "text/x-ok; charset=utf-8"},    {"a.hsh", "application/octet-stream"},
        {"a.nu", "application/octet-stream"},
    };
    expect_cases(t, cases, N_OF(cases));
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);

    /* 64 KiB of pseudo-random bytes, the same on every run. */
    char *noise = malloc(1 << 16);
    cr_assert_not_null(noise);
    unsigned x = 12345;
    for (size_t i = 0; i < (1 << 16); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (char)(x >> 16);
    }
    write_file(&s, noise, 1 << 16);
    free(noise);
    t = new_table(s.path);
    drop_file(&s);
    expect_cases(t, default_cases, N_OF(default_cases));
    nm_mime_table_free(t);
}

Test(mime, the_system_file_keeps_javascript_as_text_javascript)
{
    if (access("/etc/mime.types", R_OK) != 0)
        cr_skip_test("no /etc/mime.types");
    struct nm_mime_table *t = new_table("/etc/mime.types");
    cr_expect_str_eq(nm_mime_lookup(t, "app.js"), "text/javascript; charset=utf-8");
    cr_expect_str_eq(nm_mime_lookup(t, "app.mjs"), "text/javascript; charset=utf-8");
    cr_expect_str_eq(nm_mime_lookup(t, "index.html"), "text/html; charset=utf-8");
    cr_expect_str_eq(nm_mime_lookup(t, "a.png"), "image/png");
    cr_expect_str_eq(nm_mime_lookup(t, "archive.tar.gz"), "application/gzip");
    cr_expect_str_eq(nm_mime_lookup(t, ".bashrc"), "application/octet-stream");
    nm_mime_table_free(t);
}
