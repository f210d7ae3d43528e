/* The on-disk cache: round trips, atomic replacement, corruption detection, clearing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/store.h"

static char dir[256];
static struct nm_store store;
static struct nm_store_entry *entry;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nm-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    cr_assert_eq(nm_store_open(&store, sub), 0);
    entry = malloc(sizeof(*entry));
    nm_store_entry_init(entry);
}

static void teardown(void)
{
    size_t n;
    nm_store_clear(&store, &n);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    nm_store_cleanup(&store);
    nm_store_entry_cleanup(entry);
    free(entry);
}

TestSuite(store, .init = setup, .fini = teardown);

#define URL "http://example.test/a.css"

static void put(const char *url, const char *body, const char *etag)
{
    struct nm_store_spool sp;
    cr_assert_eq(nm_store_spool_begin(&store, &sp), 0);
    cr_assert_eq(nm_store_spool_write(&sp, body, strlen(body)), 0);
    cr_assert_eq(nm_store_spool_finish(&sp), 0);
    struct nm_store_entry *e = malloc(sizeof(*e));
    nm_store_entry_init(e);
    e->url = nm_slice_from_cstr(url);
    e->status = 200;
    e->request_time = 100;
    e->response_time = 101;
    e->headers[0] = (struct nm_http1_field){NM_SLICE_LIT("ETag"), nm_slice_from_cstr(etag)};
    e->headers[1] = (struct nm_http1_field){NM_SLICE_LIT("Vary"), NM_SLICE_LIT("Accept-Language")};
    e->n_headers = 2;
    e->request[0] = (struct nm_http1_field){NM_SLICE_LIT("Accept-Language"), NM_SLICE_LIT("fr")};
    e->n_request = 1;
    cr_assert_eq(nm_store_commit(&store, e, &sp), 0);
    cr_assert_eq(e->body_len, strlen(body));
    nm_store_spool_discard(&store, &sp);
    nm_store_entry_cleanup(e);
    free(e);
}

static size_t count_files(const char *suffix)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls '%s/a/b' | grep -c '%s$'", dir, suffix);
    FILE *p = popen(cmd, "r");
    int n = 0;
    cr_assert_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return (size_t)n;
}

static void read_body(char *out, size_t cap)
{
    int fd = nm_store_body_open(&store, entry);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, out, cap - 1);
    cr_assert_geq(n, 0);
    out[n] = '\0';
    close(fd);
}

Test(store, a_committed_entry_loads_back_with_headers_times_and_vary_values)
{
    put(URL, "body one", "\"v1\"");
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    cr_assert_eq(entry->status, 200);
    cr_assert_eq(entry->request_time, 100);
    cr_assert_eq(entry->response_time, 101);
    cr_assert_eq(entry->n_headers, 2);
    cr_assert(nm_slice_eq(entry->headers[0].value, NM_SLICE_LIT("\"v1\"")));
    cr_assert_eq(entry->n_request, 1);
    cr_assert(nm_slice_eq(entry->request[0].value, NM_SLICE_LIT("fr")));
    char body[64];
    read_body(body, sizeof(body));
    cr_assert_str_eq(body, "body one");
}

Test(store, a_missing_entry_is_enoent)
{
    cr_assert_eq(nm_store_load(&store, URL, entry), -ENOENT);
}

Test(store, replacing_an_entry_removes_the_old_body)
{
    put(URL, "body one", "\"v1\"");
    put(URL, "body two, longer", "\"v2\"");
    cr_assert_eq(count_files(".body"), 1);
    cr_assert_eq(count_files(".tmp"), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    char body[64];
    read_body(body, sizeof(body));
    cr_assert_str_eq(body, "body two, longer");
}

Test(store, a_discarded_spool_leaves_the_entry_and_no_temporary_file)
{
    put(URL, "body one", "\"v1\"");
    struct nm_store_spool sp;
    cr_assert_eq(nm_store_spool_begin(&store, &sp), 0);
    cr_assert_eq(nm_store_spool_write(&sp, "partial", 7), 0);
    nm_store_spool_discard(&store, &sp);
    nm_store_spool_discard(&store, &sp);
    cr_assert_eq(count_files(".tmp"), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    char body[64];
    read_body(body, sizeof(body));
    cr_assert_str_eq(body, "body one");
}

Test(store, saving_metadata_keeps_the_body)
{
    put(URL, "body one", "\"v1\"");
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    entry->response_time = 5000;
    entry->headers[entry->n_headers++] =
        (struct nm_http1_field){NM_SLICE_LIT("Cache-Control"), NM_SLICE_LIT("max-age=60")};
    cr_assert_eq(nm_store_save(&store, entry), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    cr_assert_eq(entry->response_time, 5000);
    cr_assert_eq(entry->n_headers, 3);
    char body[64];
    read_body(body, sizeof(body));
    cr_assert_str_eq(body, "body one");
}

static void meta_path(char *out, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls '%s/a/b'/*.meta", dir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(fgets(out, (int)cap, p));
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

Test(store, truncated_metadata_is_reported_as_corrupt)
{
    put(URL, "body one", "\"v1\"");
    char path[512];
    meta_path(path, sizeof(path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 5), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), -EBADMSG);
}

Test(store, garbage_metadata_is_reported_as_corrupt)
{
    put(URL, "body one", "\"v1\"");
    char path[512];
    meta_path(path, sizeof(path));
    FILE *f = fopen(path, "w");
    fputs("notmod-cache 1\nurl " URL "\nbody ../../etc/passwd 5 x\nend\n", f);
    fclose(f);
    cr_assert_eq(nm_store_load(&store, URL, entry), -EBADMSG);
}

Test(store, a_body_of_the_wrong_size_is_reported_as_corrupt)
{
    put(URL, "body one", "\"v1\"");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "for f in '%s/a/b'/*.body; do printf x >> \"$f\"; done", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), -EBADMSG);
}

Test(store, header_values_with_line_breaks_are_refused)
{
    struct nm_store_spool sp;
    cr_assert_eq(nm_store_spool_begin(&store, &sp), 0);
    cr_assert_eq(nm_store_spool_finish(&sp), 0);
    struct nm_store_entry *e = malloc(sizeof(*e));
    nm_store_entry_init(e);
    e->url = NM_SLICE_LIT(URL);
    e->status = 200;
    e->headers[0] = (struct nm_http1_field){NM_SLICE_LIT("X"), NM_SLICE_LIT("a\nheader Evil: 1")};
    e->n_headers = 1;
    cr_assert_eq(nm_store_commit(&store, e, &sp), -EINVAL);
    nm_store_spool_discard(&store, &sp);
    free(e);
    cr_assert_eq(count_files(".body"), 0);
    cr_assert_eq(nm_store_load(&store, URL, entry), -ENOENT);
}

Test(store, hashing_a_descriptor_gives_length_and_a_stable_hash)
{
    put(URL, "body one", "\"v1\"");
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    int fd = nm_store_body_open(&store, entry);
    char hash[NM_STORE_HASH_LEN + 1];
    uint64_t len;
    cr_assert_eq(nm_store_hash_fd(fd, hash, &len), 0);
    close(fd);
    cr_assert_eq(len, 8);
    cr_assert_str_eq(hash, entry->body_hash);
}

static int count_cb(void *ctx, const struct nm_store_entry *e, int err, const char *name)
{
    (void)name;
    int *n = ctx;
    if (err == 0 && e)
        n[0]++;
    else
        n[1]++;
    return 0;
}

Test(store, foreach_lists_entries_and_clear_removes_everything)
{
    put(URL, "one", "\"1\"");
    put("http://example.test/b", "two", "\"2\"");
    int n[2] = {0, 0};
    cr_assert_eq(nm_store_foreach(&store, count_cb, n), 0);
    cr_assert_eq(n[0], 2);
    cr_assert_eq(n[1], 0);
    size_t removed = 0;
    cr_assert_eq(nm_store_clear(&store, &removed), 0);
    cr_assert_eq(removed, 2);
    cr_assert_eq(count_files(".body"), 0);
}

Test(store, remove_deletes_one_entry)
{
    put(URL, "one", "\"1\"");
    cr_assert_eq(nm_store_remove(&store, URL), 0);
    cr_assert_eq(nm_store_remove(&store, URL), -ENOENT);
    cr_assert_eq(count_files(".body"), 0);
}

Test(store, opening_a_file_as_the_directory_fails_cleanly)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/file", dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    struct nm_store s2;
    cr_assert_eq(nm_store_open(&s2, path), -ENOTDIR);
}

/* A file in the cache directory, its mtime age_s seconds ago. */
static void leave(const char *name, int age_s)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/a/b/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "left", 4), 4);
    close(fd);
    struct timespec ts[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool exists(const char *name)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/a/b/%s", dir, name);
    return access(path, F_OK) == 0;
}

Test(store, a_commit_removes_what_killed_runs_left_untouched_for_ten_minutes)
{
    put(URL, "body one", "\"v1\"");
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    char key[NM_STORE_HASH_LEN + 1], orphan[NM_STORE_NAME_MAX], fresh[NM_STORE_NAME_MAX];
    snprintf(key, sizeof(key), "%.*s", NM_STORE_HASH_LEN, entry->body_name);
    snprintf(orphan, sizeof(orphan), "%s-00000000000000aa.body", key);
    snprintf(fresh, sizeof(fresh), "%s-00000000000000bb.body", key);
    leave("spool-old123.tmp", 3600);
    leave("meta-old123.tmp", 3600);
    leave(orphan, 3600);
    leave("spool-new123.tmp", 5); /* a download in progress */
    leave(fresh, 5);              /* about to get its metadata */
    leave("0123456789abcdef0123456789abcdef-00000000000000cc.body", 3600); /* another URL's */
    leave("notes.txt", 3600);
    put(URL, "body two", "\"v2\"");
    cr_expect_not(exists("spool-old123.tmp"));
    cr_expect_not(exists("meta-old123.tmp"));
    cr_expect_not(exists(orphan));
    cr_expect(exists("spool-new123.tmp"));
    cr_expect(exists(fresh));
    cr_expect(exists("0123456789abcdef0123456789abcdef-00000000000000cc.body"));
    cr_expect(exists("notes.txt"));
    nm_store_entry_cleanup(entry);
    cr_assert_eq(nm_store_load(&store, URL, entry), 0);
    char body[64];
    read_body(body, sizeof(body));
    cr_assert_str_eq(body, "body two");
}

Test(store, metadata_text_rendered_from_an_entry_parses_back_to_an_equal_entry)
{
    static struct nm_store_entry e, back;
    nm_store_entry_init(&e);
    nm_store_entry_init(&back);
    e.url = nm_slice_from_cstr("http://h/a b");
    e.status = 203;
    e.request_time = 5;
    e.response_time = 999999999999999999;
    e.body_len = UINT64_MAX;
    snprintf(e.body_hash, sizeof(e.body_hash), "%s", "0123456789abcdef0123456789abcdef");
    snprintf(e.body_name, sizeof(e.body_name), "%s", "x.body");
    e.headers[0] = (struct nm_http1_field){NM_SLICE_LIT("ETag"), NM_SLICE_LIT(" \"a\"")};
    e.n_headers = 1;
    e.request[0] = (struct nm_http1_field){NM_SLICE_LIT("Accept"), NM_SLICE_LIT("")};
    e.n_request = 1;
    cr_assert_eq(nm_store_meta_render(&e, &back.text), 0);
    cr_assert_eq(nm_store_meta_parse(&back), 0);
    cr_assert(nm_slice_eq(back.url, e.url));
    cr_assert_eq(back.status, 203);
    cr_assert_eq(back.response_time, e.response_time);
    cr_assert_eq(back.body_len, UINT64_MAX);
    cr_assert(nm_slice_eq(back.headers[0].value, NM_SLICE_LIT(" \"a\"")));
    cr_assert_eq(back.n_request, 1);
    nm_store_entry_cleanup(&back);
    nm_store_entry_cleanup(&e);
}

Test(store, an_entry_the_metadata_text_cannot_hold_is_refused_with_einval)
{
    static struct nm_store_entry e;
    nm_store_entry_init(&e);
    e.url = nm_slice_from_cstr("http://h/");
    snprintf(e.body_name, sizeof(e.body_name), "%s", "x.body");
    e.status = 200;
    snprintf(e.body_hash, sizeof(e.body_hash), "%s", "0123456789ABCDEF0123456789abcdef");
    cr_assert_eq(nm_store_meta_render(&e, &e.text), -EINVAL, "not lowercase hex");
    snprintf(e.body_hash, sizeof(e.body_hash), "%s", "0123456789abcdef0123456789abcdef");
    e.request_time = -1;
    cr_assert_eq(nm_store_meta_render(&e, &e.text), -EINVAL, "a negative time");
    e.request_time = 0;
    e.status = 1000;
    cr_assert_eq(nm_store_meta_render(&e, &e.text), -EINVAL, "a status of four digits");
    e.status = 200;
    cr_assert_eq(nm_store_meta_render(&e, &e.text), 0);
    nm_store_entry_cleanup(&e);
}
