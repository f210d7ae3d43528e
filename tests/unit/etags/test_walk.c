/* The startup walk: every regular file over small_file_bytes in the tree gets its hash, hidden
 * names only with dotfiles (but /.well-known always), symlinks not followed, `done` called once
 * the jobs it queued have finished. New files wait out their 2 s racy window first. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>

#include "fixture.h"

TestSuite(walk, .init = make_dir, .fini = remove_dir, .timeout = 60);

#define BIG 2048

static const char *const served[] = {"big", "sub/big", ".well-known/big"};
static const char *const hidden[] = {".hidden", "sub/.hidden", "sub/.dir/big"};

static void make_tree(void)
{
    char path[128];
    const char *dirs[] = {"sub", ".well-known", "sub/.dir"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
        cr_assert_eq(mkdir(path, 0755), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        char *data = fill(BIG, (unsigned)i);
        close(write_file(served[i], data, BIG));
        close(write_file(hidden[i], data, BIG));
        free(data);
    }
    close(write_file("small", "small", 5));
    snprintf(path, sizeof(path), "%s/link", dir);
    cr_assert_eq(symlink("big", path), 0);
}

static void on_done(struct nm_hashing *h, void *arg)
{
    (void)h;
    atomic_store((atomic_bool *)arg, true);
}

static bool hash_known(struct nm_hashing *h, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    struct nm_file_version v;
    version_of_fd(fd, &v);
    close(fd);
    struct nm_hash128 got;
    return nm_hashing_find(h, -1, &v, &got) == 0;
}

/* Walks the tree with a fresh memo and waits for `done`; returns the files it looked at. */
static struct nm_hashing *prehash(bool dotfiles)
{
    struct nm_hashing *h = pool(false);
    int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    atomic_bool done = false;
    cr_assert_eq(nm_hashing_prehash(h, root, dotfiles, on_done, &done), 0);
    close(root);
    for (int i = 0; i < 1500 && !atomic_load(&done); i++)
        sleep_ms(10);
    cr_assert(atomic_load(&done), "the walk never finished");
    return h;
}

Test(walk, served_files_over_the_small_size_get_their_hash)
{
    make_tree();
    struct nm_hashing *h = prehash(false);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect(st.prehash_done);
    cr_expect_eq(st.prehash_files, 3);
    cr_expect_eq(st.hashed_files, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect(hash_known(h, served[i]), "%s", served[i]);
        cr_expect_not(hash_known(h, hidden[i]), "%s", hidden[i]);
    }
    cr_expect_not(hash_known(h, "small"));
    cr_expect_eq(nm_hashing_prehash(h, AT_FDCWD, false, NULL, NULL), -EALREADY);
    nm_hashing_free(h);
}

Test(walk, dotfiles_bring_the_hidden_names_in)
{
    make_tree();
    struct nm_hashing *h = prehash(true);
    struct nm_hashing_stats st;
    nm_hashing_get_stats(h, &st);
    cr_expect_eq(st.prehash_files, 6);
    for (size_t i = 0; i < 3; i++)
        cr_expect(hash_known(h, hidden[i]), "%s", hidden[i]);
    nm_hashing_free(h);
}
