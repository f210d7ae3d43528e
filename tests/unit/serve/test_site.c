/* The site's contract (site.h): the Date line follows the clock, and a root that a deploy moved
 * is followed with a new file table while an unchanged or missing one is kept; watched, the root
 * is stat'ed again only after an event about its name. */
#include "serve/site.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
    char dir[64];
    char releases[2][96];
    char current[96];
    struct nm_config cfg;
    struct nm_mime_table *mime;
    int root_fd;
    struct nm_site site;
} fx;

/* <dir>/r1 and <dir>/r2, each with version.txt, and <dir>/current -> r1. */
static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-test-site-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    for (int i = 0; i < 2; i++) {
        snprintf(fx.releases[i], sizeof(fx.releases[i]), "%s/r%d", fx.dir, i + 1);
        cr_assert_eq(mkdir(fx.releases[i], 0755), 0);
    }
    snprintf(fx.current, sizeof(fx.current), "%s/current", fx.dir);
    cr_assert_eq(symlink("r1", fx.current), 0);
    nm_config_init(&fx.cfg);
    fx.cfg.root = strdup(fx.current);
    cr_assert_eq(nm_mime_table_new(NULL, &fx.mime), 0);
    fx.root_fd = open(fx.current, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fx.root_fd, 0);
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
}

static void teardown(void)
{
    nm_site_cleanup(&fx.site);
    close(fx.root_fd);
    nm_mime_table_free(fx.mime);
    nm_config_cleanup(&fx.cfg);
    unlink(fx.current);
    for (int i = 0; i < 2; i++)
        rmdir(fx.releases[i]);
    rmdir(fx.dir);
}

TestSuite(site, .init = setup, .fini = teardown);

Test(site, site_set_time_renders_the_date_line)
{
    nm_site_set_time(&fx.site, 784111777);
    cr_assert_str_eq(fx.site.date_line, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    cr_assert_eq(fx.site.date_line_len, strlen(fx.site.date_line));
    cr_assert_eq(fx.site.now, 784111777);
}

Test(site, an_unchanged_root_keeps_its_file_table)
{
    struct nm_filecache *files = fx.site.files;
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.files, files);
    cr_assert_eq(fx.site.root_fd, fx.root_fd);
    cr_assert_eq(fx.site.root_swaps, 0);
}

Test(site, a_moved_root_gets_a_new_file_table_on_the_new_directory)
{
    struct nm_filecache *files = fx.site.files;
    char tmp[112];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fx.current);
    cr_assert_eq(symlink("r2", tmp), 0);
    cr_assert_eq(rename(tmp, fx.current), 0);
    nm_site_follow_root(&fx.site);
    struct stat st;
    cr_assert_eq(stat(fx.releases[1], &st), 0);
    cr_assert_neq(fx.site.files, files);
    cr_assert_neq(fx.site.root_fd, fx.root_fd);
    cr_assert_eq(fx.site.own_root_fd, fx.site.root_fd);
    cr_assert_eq(fx.site.root_ino, st.st_ino);
    cr_assert_eq(fx.site.root_swaps, 1);
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.root_swaps, 1, "followed once");
}

Test(site, a_root_that_cannot_be_resolved_for_a_moment_is_kept)
{
    struct nm_filecache *files = fx.site.files;
    cr_assert_eq(unlink(fx.current), 0);
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.files, files);
    cr_assert_eq(fx.site.root_swaps, 0);
    cr_assert_eq(symlink("r1", fx.current), 0);
}

Test(site, a_new_config_gets_a_new_file_table_over_the_same_root)
{
    struct nm_filecache *files = fx.site.files;
    struct nm_config next;
    nm_config_init(&next);
    next.root = strdup(fx.current);
    next.access_log = strdup("-");
    cr_assert_eq(nm_site_set_config(&fx.site, &next), 0);
    cr_expect_neq(fx.site.files, files);
    cr_expect_eq(fx.site.cfg, &next);
    cr_expect_eq(fx.site.root_fd, fx.root_fd);
    cr_expect(fx.site.log_enabled);
    cr_assert_eq(nm_site_set_config(&fx.site, &fx.cfg), 0); /* back, before next goes */
    nm_config_cleanup(&next);
}

static void swap_current_to(const char *release)
{
    char tmp[112];
    snprintf(tmp, sizeof(tmp), "%s.tmp", fx.current);
    cr_assert_eq(symlink(release, tmp), 0);
    cr_assert_eq(rename(tmp, fx.current), 0);
}

Test(site, a_watched_root_is_looked_at_again_only_after_an_event_about_its_name)
{
    cr_assert_geq(fx.site.watch_fd, 0);
    nm_site_follow_root(&fx.site); /* the one stat under the new watches */
    cr_assert(fx.site.root_watched);
    cr_assert_not(fx.site.root_dirty);
    swap_current_to("r2");
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.root_swaps, 0, "no event read yet: no stat of the root");
    nm_site_read_changes(&fx.site);
    cr_assert(fx.site.root_dirty);
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.root_swaps, 1);
    nm_site_read_changes(&fx.site);
    nm_site_follow_root(&fx.site);
    swap_current_to("r1"); /* the new target's name is watched too */
    nm_site_read_changes(&fx.site);
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.root_swaps, 2);
}

Test(site, without_watching_the_root_is_stat_at_every_request)
{
    nm_site_cleanup(&fx.site);
    fx.cfg.watch = false;
    cr_assert_eq(nm_site_init(&fx.site, &fx.cfg, fx.mime, fx.root_fd), 0);
    cr_assert_lt(fx.site.watch_fd, 0);
    nm_site_follow_root(&fx.site);
    swap_current_to("r2");
    nm_site_follow_root(&fx.site);
    cr_assert_eq(fx.site.root_swaps, 1);
}
