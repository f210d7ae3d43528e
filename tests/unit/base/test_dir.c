/* Directory listings: sorted names without "." and "..", types, the entry cap, O_PATH
 * descriptors left to the caller, errors leave the output untouched. */
#include "base/dir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void make_tree(void)
{
    strcpy(root, "/tmp/nm-dir-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    const char *files[] = {"b", "a.txt", ".hidden", "Z", "a"};
    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        int f = openat(fd, files[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
        cr_assert_geq(f, 0);
        close(f);
    }
    cr_assert_eq(mkdirat(fd, "sub", 0755), 0);
    cr_assert_eq(symlinkat("a", fd, "link"), 0);
    close(fd);
}

static void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(dir, .init = make_tree, .fini = remove_tree);

Test(dir, names_come_sorted_by_byte_without_dot_and_dot_dot)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    struct nm_dir d;
    cr_assert_eq(nm_dir_read(fd, 100, &d), 7);
    const char *want[] = {".hidden", "Z", "a", "a.txt", "b", "link", "sub"};
    cr_assert_eq(d.count, 7);
    for (size_t i = 0; i < d.count; i++)
        cr_assert_str_eq(d.entries[i].name, want[i]);
    nm_dir_free(&d);
    cr_assert_null(d.entries);
    cr_assert_eq(d.count, 0);
    close(fd);
}

Test(dir, entries_carry_the_type_readdir_reports)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    struct nm_dir d;
    cr_assert_eq(nm_dir_read(fd, 100, &d), 7);
    for (size_t i = 0; i < d.count; i++) {
        unsigned char want = strcmp(d.entries[i].name, "sub") == 0    ? DT_DIR
                             : strcmp(d.entries[i].name, "link") == 0 ? DT_LNK
                                                                      : DT_REG;
        /* A file system may not report types; then every entry says DT_UNKNOWN. */
        cr_assert(d.entries[i].type == want || d.entries[i].type == DT_UNKNOWN, "%s: %d",
                  d.entries[i].name, d.entries[i].type);
    }
    nm_dir_free(&d);
    close(fd);
}

Test(dir, an_o_path_descriptor_is_read_and_stays_the_callers)
{
    int fd = open(root, O_PATH | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    struct nm_dir d;
    cr_assert_eq(nm_dir_read(fd, 100, &d), 7);
    nm_dir_free(&d);
    struct stat st;
    cr_assert_eq(fstatat(fd, "sub", &st, 0), 0);
    cr_assert(S_ISDIR(st.st_mode));
    close(fd);
}

Test(dir, more_entries_than_the_cap_fail_and_leave_out_untouched)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    struct nm_dir d = {.count = 42};
    cr_assert_eq(nm_dir_read(fd, 6, &d), -EMSGSIZE);
    cr_assert_eq(d.count, 42);
    cr_assert_eq(nm_dir_read(fd, 7, &d), 7);
    nm_dir_free(&d);
    close(fd);
}

Test(dir, an_empty_directory_gives_no_entries)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    struct nm_dir d;
    cr_assert_eq(nm_dir_read(fd, 0, &d), -EMSGSIZE);
    int sub = openat(fd, "sub", O_RDONLY | O_DIRECTORY);
    cr_assert_eq(nm_dir_read(sub, 0, &d), 0);
    cr_assert_eq(d.count, 0);
    nm_dir_free(&d);
    close(sub);
    close(fd);
}

Test(dir, a_file_or_a_bad_descriptor_is_an_error)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    int file = openat(fd, "a", O_RDONLY);
    struct nm_dir d = {.count = 42};
    cr_assert_eq(nm_dir_read(file, 100, &d), -ENOTDIR);
    cr_assert_eq(nm_dir_read(-1, 100, &d), -EBADF);
    cr_assert_eq(d.count, 42);
    close(file);
    close(fd);
}

Test(dir, freeing_a_zeroed_listing_is_a_no_op)
{
    struct nm_dir d = {0};
    nm_dir_free(&d);
    cr_assert_eq(d.count, 0);
}
