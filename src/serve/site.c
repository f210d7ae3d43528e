/* The site a worker serves: its file table, the root it follows, its clock. */
#include "site.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "listing.h"
#include "notmod/date.h"

#define LOG_MAX_BYTES (1u << 20)
#define LISTINGS_MAX_BYTES (16u << 20) /* listing pages a worker keeps */

int nm_site_init(struct nm_site *site, const struct nm_config *cfg,
                 const struct nm_mime_table *mime, int root_fd)
{
    memset(site, 0, sizeof(*site));
    site->cfg = cfg;
    site->mime = mime;
    site->root_fd = root_fd;
    site->own_root_fd = -1;
    struct stat st;
    if (fstat(root_fd, &st) != 0)
        return -errno;
    site->root_dev = st.st_dev;
    site->root_ino = st.st_ino;
    site->log_enabled = cfg->access_log != NULL;
    nm_buf_init(&site->log, LOG_MAX_BYTES);
    if (getrandom(&site->boundary_key, sizeof(site->boundary_key), 0) !=
        (ssize_t)sizeof(site->boundary_key))
        site->boundary_key = (uint64_t)(uintptr_t)site ^ (uint64_t)time(NULL);
    nm_site_set_time(site, 0);
    site->listing_renders_left = UINT_MAX;
    if (nm_listing_cache_new(LISTINGS_MAX_BYTES, &site->listings) < 0)
        site->listings = NULL; /* listings are then rendered for every request, as they can */
    return nm_filecache_new(cfg, mime, root_fd, &site->files);
}

void nm_site_cleanup(struct nm_site *site)
{
    nm_filecache_free(site->files);
    nm_listing_cache_free(site->listings);
    site->listings = NULL;
    nm_buf_cleanup(&site->log);
    site->files = NULL;
    if (site->own_root_fd >= 0)
        close(site->own_root_fd);
    site->own_root_fd = -1;
}

void nm_site_set_hashing(struct nm_site *site, struct nm_hashing *h)
{
    site->hashing = h;
    nm_filecache_set_hashing(site->files, h);
}

void nm_site_follow_root(struct nm_site *site)
{
    struct stat st;
    if (!site->cfg->root || stat(site->cfg->root, &st) != 0 || !S_ISDIR(st.st_mode) ||
        (st.st_dev == site->root_dev && st.st_ino == site->root_ino))
        return;
    int fd = open(site->cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The directory opened is the one to remember: the path may have moved again since stat. */
    struct nm_filecache *files;
    if (fstat(fd, &st) != 0 || nm_filecache_new(site->cfg, site->mime, fd, &files) != 0) {
        close(fd);
        return;
    }
    if (site->hashing)
        nm_filecache_set_hashing(files, site->hashing);
    nm_filecache_free(site->files);
    if (site->own_root_fd >= 0)
        close(site->own_root_fd);
    site->files = files;
    site->root_fd = site->own_root_fd = fd;
    site->root_dev = st.st_dev;
    site->root_ino = st.st_ino;
    site->root_swaps++;
}

int nm_site_set_config(struct nm_site *site, const struct nm_config *cfg)
{
    struct nm_filecache *files;
    int rc = nm_filecache_new(cfg, site->mime, site->root_fd, &files);
    if (rc < 0)
        return rc;
    if (site->hashing)
        nm_filecache_set_hashing(files, site->hashing);
    nm_filecache_free(site->files);
    site->files = files;
    site->cfg = cfg;
    site->log_enabled = cfg->access_log != NULL;
    return 0;
}

void nm_site_set_time(struct nm_site *site, int64_t now)
{
    if (now == site->now && site->date_line_len)
        return;
    site->now = now;
    char d[NM_DATE_LEN + 1];
    nm_date_format(now, d);
    site->date_line_len =
        (size_t)snprintf(site->date_line, sizeof(site->date_line), "Date: %s\r\n", d);
}
