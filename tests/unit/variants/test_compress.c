/* The notmod compress walk: sidecars only for compressible types that save enough, written
 * atomically with their record, left alone on a second run, rewritten or removed when stale. */
#include "variants/variants.h"

#include <dirent.h>
#include <errno.h>
#include <utime.h>

#include "fixture.h"

TestSuite(compress, .init = make_dir, .fini = remove_dir, .timeout = 60);

static const unsigned all_codings =
    NM_CODING_BIT(NM_CODING_BR) | NM_CODING_BIT(NM_CODING_ZSTD) | NM_CODING_BIT(NM_CODING_GZIP);

static struct nm_variants_compress_options options(void)
{
    return (struct nm_variants_compress_options){
        .codings = all_codings,
        .level = NM_VARIANTS_LEVEL_DEFAULT,
        .min_saving_pct = NM_VARIANTS_MIN_SAVING_DEFAULT,
        .min_size_bytes = NM_VARIANTS_MIN_SIZE_DEFAULT,
    };
}

static char *text(size_t n, char seed)
{
    char *p = malloc(n);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = "p { margin: 0; padding: 1em; }\n"[i % 31] + (i % 500 == 0 ? seed : 0);
    return p;
}

/* Bytes no coding can shrink. */
static char *noise(size_t n)
{
    char *p = malloc(n);
    cr_assert_not_null(p);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (char)(x >> 32);
    }
    return p;
}

static void put_text(const char *rel, size_t n, char seed)
{
    char *t = text(n, seed);
    put_file(rel, t, n);
    free(t);
}

static void need_xattrs(void)
{
    int fd = write_file(".probe", "", 0);
    bool ok = xattrs_work(fd);
    close(fd);
    unlink(path_of(".probe"));
    if (!ok)
        cr_skip_test("no user xattrs on %s", dir);
}

static struct nm_variants_compress_counts run(const struct nm_variants_compress_options *o)
{
    struct nm_variants_compress_counts c = {0};
    cr_assert_eq(nm_variants_compress_tree(dir, o, &c), 0);
    return c;
}

/* Reads a whole file into a new buffer. */
static void *slurp(const char *rel, size_t *len)
{
    FILE *f = fopen(path_of(rel), "rb");
    cr_assert_not_null(f, "%s", rel);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void expect_decodes_to_source(const char *source, enum nm_coding coding)
{
    char sidecar[256];
    snprintf(sidecar, sizeof(sidecar), "%s%s", source, nm_coding_suffix(coding));
    size_t sn, zn, bn;
    void *s = slurp(source, &sn), *z = slurp(sidecar, &zn), *back;
    cr_assert_eq(nm_variants_codec_decompress(coding, z, zn, 1 << 20, &back, &bn), 0, "%s",
                 sidecar);
    cr_expect(bn == sn && memcmp(back, s, sn) == 0, "%s decodes to %s", sidecar, source);
    int fd = open(path_of(sidecar), O_RDONLY);
    struct nm_variants_record r;
    struct nm_hash128 want = nm_hash_bytes(s, sn), own = nm_hash_bytes(z, zn);
    cr_expect_eq(nm_variants_record_read(fd, coding, &r), 0);
    cr_expect(r.source.hi == want.hi && r.source.lo == want.lo, "%s records its source", sidecar);
    cr_expect(r.has_own && r.own.hi == own.hi && r.own.lo == own.lo, "%s records its own bytes",
              sidecar);
    close(fd);
    free(back);
    free(s);
    free(z);
}

static int count_temporary_files(const char *rel)
{
    DIR *d = opendir(path_of(rel));
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

Test(compress, sidecars_are_written_only_for_compressible_types_that_save_enough)
{
    need_xattrs();
    cr_assert_eq(mkdir(path_of("css"), 0755), 0);
    put_text("index.html", 5000, 1);
    put_text("css/site.css", 3000, 2);
    put_text("photo.jpg", 5000, 3); /* not a compressible type */
    put_text("tiny.js", 100, 4);    /* under --min-size */
    char *n = noise(4000);
    put_file("data.json", n, 4000); /* compressible type, incompressible bytes */
    free(n);
    put_text(".hidden.css", 3000, 5);
    cr_assert_eq(symlink("index.html", path_of("link.html")), 0);
    struct nm_variants_compress_options o = options();
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.files_seen, 5);
    cr_expect_eq(c.written, 6);
    cr_expect_eq(c.skipped_type, 1);
    cr_expect_eq(c.skipped_size, 1);
    cr_expect_eq(c.skipped_saving, 3);
    cr_expect_eq(c.failed, 0);
    cr_expect_eq(c.bytes_before, 5000 + 3000 + 4000);
    cr_expect_lt(c.bytes_after, 4000 + 1000);
    for (enum nm_coding k = NM_CODING_BR; k < NM_CODING_COUNT; k++) {
        expect_decodes_to_source("index.html", k);
        expect_decodes_to_source("css/site.css", k);
    }
    cr_expect_not(exists("photo.jpg.gz"));
    cr_expect_not(exists("tiny.js.br"));
    cr_expect_not(exists("data.json.zst"));
    cr_expect_not(exists(".hidden.css.gz"));
    cr_expect_not(exists("link.html.gz"), "symlinks are not followed");
    cr_expect_not(exists("index.html.gz.gz"), "sidecars are no sources");
    cr_expect_eq(count_temporary_files("."), 0, "no temporary file is left");
    cr_expect_eq(count_temporary_files("css"), 0);
}

Test(compress, a_second_run_writes_nothing)
{
    need_xattrs();
    put_text("app.js", 4000, 1);
    put_text("style.css", 4000, 2);
    struct nm_variants_compress_options o = options();
    cr_expect_eq(run(&o).written, 6);
    struct stat before, after;
    cr_assert_eq(stat(path_of("app.js.br"), &before), 0);
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.written, 0);
    cr_expect_eq(c.up_to_date, 6);
    cr_expect_eq(c.removed, 0);
    cr_assert_eq(stat(path_of("app.js.br"), &after), 0);
    cr_expect_eq(before.st_ino, after.st_ino, "the sidecar was not replaced");
}

Test(compress, a_sidecar_is_rewritten_after_its_source_changes)
{
    need_xattrs();
    put_text("app.js", 4000, 1);
    struct nm_variants_compress_options o = options();
    o.codings = NM_CODING_BIT(NM_CODING_GZIP);
    cr_expect_eq(run(&o).written, 1);
    /* Same size, same mtime: only the record tells the versions apart. */
    struct stat st;
    cr_assert_eq(stat(path_of("app.js"), &st), 0);
    put_text("app.js", 4000, 7);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, path_of("app.js"), times, 0), 0);
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.written, 1);
    cr_expect_eq(c.up_to_date, 0);
    expect_decodes_to_source("app.js", NM_CODING_GZIP);
}

Test(compress, a_sidecar_whose_bytes_changed_under_its_record_is_rewritten)
{
    need_xattrs();
    put_text("app.js", 4000, 1);
    struct nm_variants_compress_options o = options();
    o.codings = NM_CODING_BIT(NM_CODING_GZIP);
    cr_expect_eq(run(&o).written, 1);
    /* Written over in place: the record (an attribute) stays, the bytes are not its own. */
    int fd = open(path_of("app.js.gz"), O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "xx", 2, 10), 2);
    close(fd);
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.written, 1);
    cr_expect_eq(c.up_to_date, 0);
    expect_decodes_to_source("app.js", NM_CODING_GZIP);
}

Test(compress, a_stale_sidecar_that_no_longer_saves_enough_is_removed)
{
    need_xattrs();
    put_text("data.json", 4000, 1);
    struct nm_variants_compress_options o = options();
    o.codings = NM_CODING_BIT(NM_CODING_ZSTD);
    cr_expect_eq(run(&o).written, 1);
    char *n = noise(4000);
    put_file("data.json", n, 4000);
    free(n);
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.written, 0);
    cr_expect_eq(c.removed, 1);
    cr_expect_eq(c.skipped_saving, 1);
    cr_expect_not(exists("data.json.zst"));
}

Test(compress, a_current_sidecar_made_by_another_tool_is_left_alone)
{
    put_text("a.css", 4000, 1);
    put_file("a.css.gz", "not really gzip", 15); /* newer than its source, no record */
    struct timespec old[2] = {{1000000, 0}, {1000000, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path_of("a.css"), old, 0), 0);
    struct nm_variants_compress_options o = options();
    o.codings = NM_CODING_BIT(NM_CODING_GZIP);
    struct nm_variants_compress_counts c = run(&o);
    cr_expect_eq(c.up_to_date, 1);
    cr_expect_eq(c.written, 0);
    size_t len;
    void *b = slurp("a.css.gz", &len);
    cr_expect(len == 15 && memcmp(b, "not really gzip", 15) == 0);
    free(b);
}

Test(compress, names_of_compressible_types_and_of_sidecars)
{
    static const char *const yes[] = {"a.html",        "A.CSS", "x.min.js", "m.mjs", "d.json",
                                      "i.svg",         "f.xml", "w.wasm",   "f.ttf", "f.otf",
                                      "s.webmanifest", "r.txt", "s.js.map"};
    static const char *const no[] = {"a.png",    "a.woff2", "a.woff", "a.gz",     "a.br",
                                     "Makefile", ".css",    "a.jpg",  "a.css.zst"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_expect(nm_variants_compress_is_compressible_name(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_expect_not(nm_variants_compress_is_compressible_name(no[i]), "%s", no[i]);
    cr_expect(nm_variants_compress_is_sidecar_name("a.css.br"));
    cr_expect(nm_variants_compress_is_sidecar_name("a.css.zst"));
    cr_expect(nm_variants_compress_is_sidecar_name("a.css.gz"));
    cr_expect_not(nm_variants_compress_is_sidecar_name("a.css"));
    cr_expect_not(nm_variants_compress_is_sidecar_name(".gz"));
}

Test(compress, a_missing_tree_is_reported_and_returned)
{
    struct nm_variants_compress_options o = options();
    struct nm_variants_compress_counts c = {0};
    cr_expect_eq(nm_variants_compress_tree(path_of("nope"), &o, &c), -ENOENT);
}
