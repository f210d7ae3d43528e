/* The memo and the pool: one job per version whoever asks, discarded when the file changes,
 * persisted and recognised as our own change, found again after a restart; no pool, no jobs.
 * Pool tests wait out the 2 s racy window of new files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>

#include "fixture.h"

TestSuite(pool, .init = make_dir, .fini = remove_dir, .timeout = 60);

struct asker {
    struct nm_hashing *h;
    int fd;
    struct nm_file_version v;
};

static void *ask_many_times(void *arg)
{
    struct asker *a = arg;
    for (int i = 0; i < 200; i++)
        nm_hashing_request(a->h, a->fd, &a->v);
    return NULL;
}

Test(pool, one_version_is_hashed_once_whoever_asks_and_persisted)
{
    size_t n = 2u << 20;
    char *data = fill(n, 2);
    int fd = write_file("big", data, n);
    bool xattrs = xattrs_work(fd);
    struct nm_hashing *h = pool(true);
    struct asker a = {h, fd, {0}};
    version_of_fd(fd, &a.v);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, ask_many_times, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct nm_hash128 got, want = nm_hashing_hash_bytes(data, n);
    cr_assert(wait_for_hash(h, &a.v, &got), "no hash within 15 s");
    cr_expect(got.hi == want.hi && got.lo == want.lo);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.hashed_files, 1);
    cr_expect_eq(st.hashed_bytes, n);
    cr_expect_eq(st.waited_racy, 1, "a new file waits out its racy window");
    if (xattrs) {
        /* The attribute write moved ctime; the change check knows it was ours. */
        for (int i = 0; i < 100 && (nm_hashing_get_stats(h, &st), st.persisted == 0); i++)
            sleep_ms(10);
        cr_expect_eq(st.persisted, 1);
        struct nm_file_version now;
        version_of_fd(fd, &now);
        cr_expect_neq(now.ctime_ns, a.v.ctime_ns);
        cr_expect(nm_hashing_is_own_change(h, &a.v, &now));
        cr_expect_eq(nm_hashing_find(h, -1, &now, &got), 0);
        struct nm_file_version written = now;
        written.mtime_ns++;
        cr_expect_not(nm_hashing_is_own_change(h, &a.v, &written));
    }
    nm_hashing_free(h);

    if (xattrs) {
        /* A restart: the attribute answers, nothing is hashed again. */
        h = pool(true);
        struct nm_file_version now;
        version_of_fd(fd, &now);
        cr_expect_eq(nm_hashing_find(h, fd, &now, &got), 0);
        cr_expect(got.hi == want.hi && got.lo == want.lo);
        nm_hashing_get_stats(h, &st);
        cr_expect_eq(st.hashed_files, 0);
        cr_expect_eq(st.from_xattr, 1);
        nm_hashing_free(h);
    }
    close(fd);
    free(data);
}

Test(pool, a_file_that_changes_before_its_job_runs_gets_no_hash)
{
    size_t n = 1u << 20;
    char *data = fill(n, 3);
    int fd = write_file("f", data, n);
    struct nm_hashing *h = pool(false);
    struct nm_file_version v1, v2;
    version_of_fd(fd, &v1);
    cr_assert_eq(nm_hashing_request(h, fd, &v1), 0);
    sleep_ms(20);
    data[0] ^= 1;
    cr_assert_eq(pwrite(fd, data, 1, 0), 1);
    version_of_fd(fd, &v2);
    cr_assert(!nm_hashing_version_equal(&v1, &v2));
    /* The job wakes after the racy window, sees another version and drops out. */
    unsigned g = nm_hashing_generation(h);
    for (int i = 0; i < 1500 && nm_hashing_generation(h) == g; i++)
        sleep_ms(10);
    cr_assert_neq(nm_hashing_generation(h), g, "the job never ended");
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, -1, &v1, &got), -ENOENT);
    cr_expect_eq(nm_hashing_find(h, -1, &v2, &got), -ENOENT);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.hashed_files, 0);
    cr_expect_eq(st.discarded, 1);
    /* Asking for the new version hashes the new bytes. */
    cr_assert_eq(nm_hashing_request(h, fd, &v2), 0);
    cr_assert(wait_for_hash(h, &v2, &got));
    struct nm_hash128 want = nm_hashing_hash_bytes(data, n);
    cr_expect(got.hi == want.hi && got.lo == want.lo);
    nm_hashing_free(h);
    close(fd);
    free(data);
}

Test(pool, same_bytes_give_the_same_tag_after_a_rollback)
{
    size_t n = 1u << 20;
    char *a = fill(n, 4), *b = fill(n, 5);
    struct nm_hashing *h = pool(false);
    struct nm_hash128 got[3];
    const char *contents[3] = {a, b, a};
    int fd = -1;
    for (int i = 0; i < 3; i++) {
        if (fd >= 0)
            close(fd);
        fd = write_file("f", contents[i], n);
        struct nm_file_version v;
        version_of_fd(fd, &v);
        cr_assert_eq(nm_hashing_request(h, fd, &v), 0);
        cr_assert(wait_for_hash(h, &v, &got[i]));
    }
    cr_expect(got[0].hi == got[2].hi && got[0].lo == got[2].lo);
    cr_expect(got[0].hi != got[1].hi || got[0].lo != got[1].lo);
    nm_hashing_free(h);
    close(fd);
    free(a);
    free(b);
}

Test(pool, a_pool_of_none_refuses_jobs)
{
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.threads = 0;
    struct nm_hashing *h;
    cr_assert_eq(nm_hashing_new(&o, &h), 0);
    int fd = write_file("f", "x", 1);
    struct nm_file_version v;
    version_of_fd(fd, &v);
    cr_expect_eq(nm_hashing_request(h, fd, &v), -ENOTSUP);
    cr_expect_eq(nm_hashing_prehash(h, AT_FDCWD, false, NULL, NULL), -ENOTSUP);
    nm_hashing_free(h);
    close(fd);
}

Test(pool, a_job_that_cannot_be_queued_leaves_no_answer_behind)
{
    struct nm_hashing *h = pool(false);
    struct nm_file_version v = {.dev = 1, .ino = 2, .size = 3, .mtime_ns = 4, .ctime_ns = 5};
    cr_expect_eq(nm_hashing_request(h, -1, &v), -EBADF);
    struct nm_hash128 got;
    cr_expect_eq(nm_hashing_find(h, -1, &v, &got), -ENOENT);
    struct nm_file_version later = v;
    later.mtime_ns++;
    cr_expect_not(nm_hashing_is_own_change(h, &v, &later));
    nm_hashing_free(h);
}
