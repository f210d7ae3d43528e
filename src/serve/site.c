/* The site a worker serves: its file table, the root it follows, its clock. */
#include "site.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "listing.h"
#include "notmod/date.h"

#define LOG_MAX_BYTES (1u << 20)
#define LISTINGS_MAX_BYTES (16u << 20) /* listing pages a worker keeps */
#define READS_MAX 64                   /* reads of queued events per call, then all is marked */

/* What can make a name of a directory name another directory. */
#define ROOT_MASK                                                                                  \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |         \
     IN_ONLYDIR)

/* The absolute form of dir as written, when it involves no symlink, no dot segment and no
 * doubled slash (realpath gives it back): then a watch on it speaks for that path. */
static bool canonical_dir(const char *dir, char out[PATH_MAX])
{
    char real[PATH_MAX], cwd[PATH_MAX];
    if (!realpath(dir, real))
        return false;
    int n;
    if (dir[0] == '/')
        n = snprintf(out, PATH_MAX, "%s", dir);
    else if (!getcwd(cwd, sizeof(cwd)))
        return false;
    else if (strcmp(dir, ".") == 0)
        n = snprintf(out, PATH_MAX, "%s", cwd);
    else
        n = snprintf(out, PATH_MAX, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir);
    return n > 0 && n < PATH_MAX && strcmp(real, out) == 0;
}

/* Watches the directory holding the last name of path, for that name (slot i). True when the
 * watch speaks for it; *parent gets that directory's absolute path. */
static bool watch_name(struct nm_site *site, int i, const char *path, char parent[PATH_MAX])
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    const char *name = slash ? slash + 1 : buf;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strlen(name) >= sizeof(site->root_name[i]))
        return false;
    if (!slash)
        snprintf(parent, PATH_MAX, ".");
    else if (slash == buf)
        snprintf(parent, PATH_MAX, "/");
    else
        snprintf(parent, PATH_MAX, "%.*s", (int)(slash - buf), buf);
    char abs[PATH_MAX];
    if (!canonical_dir(parent, abs) || !nm_filecache_is_watchable_fs(abs))
        return false;
    int wd = inotify_add_watch(site->watch_fd, abs, ROOT_MASK);
    if (wd < 0)
        return false;
    site->root_wd[i] = wd;
    memcpy(site->root_name[i], name, strlen(name) + 1); /* its length was checked above */
    memcpy(parent, abs, PATH_MAX);
    return true;
}

/* Sets the watches that tell when cfg->root may name another directory: its name in its
 * directory and, for a symlink, its target's name in the target's directory (a link whose text
 * is not its target's canonical path, a chain, keeps the stat per request). The next request
 * stats once, under them. */
static void watch_root(struct nm_site *site)
{
    for (int i = 0; i < 2; i++) {
        if (site->root_wd[i] >= 0)
            inotify_rm_watch(site->watch_fd, site->root_wd[i]);
        site->root_wd[i] = -1;
    }
    site->root_watched = false;
    site->root_dirty = true;
    const char *root = site->cfg->root;
    if (site->watch_fd < 0 || !root)
        return;
    if (strcmp(root, ".") == 0) {
        site->root_watched = true; /* the working directory: no rename makes it another one */
        return;
    }
    char parent[PATH_MAX], text[PATH_MAX], target[PATH_MAX], joined[2 * PATH_MAX];
    struct stat st;
    if (!watch_name(site, 0, root, parent) || lstat(root, &st) != 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(root, text, sizeof(text) - 1);
        if (n <= 0 || !realpath(root, target))
            return;
        text[n] = '\0';
        snprintf(joined, sizeof(joined), "%s%s%s", text[0] == '/' ? "" : parent,
                 text[0] == '/' || strcmp(parent, "/") == 0 ? "" : "/", text);
        if (strcmp(joined, target) != 0 || !watch_name(site, 1, target, parent))
            return;
    }
    site->root_watched = true;
}

static void note_root_event(struct nm_site *site, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        site->root_dirty = true;
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (site->root_wd[i] < 0 || ev->wd != site->root_wd[i])
            continue;
        /* The directory itself moved or went: its watch no longer speaks for the path. */
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
            site->root_watched = false;
        if (!ev->len || strcmp(ev->name, site->root_name[i]) == 0)
            site->root_dirty = true;
    }
}

void nm_site_read_changes(struct nm_site *site)
{
    if (site->watch_fd < 0)
        return;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (int reads = 0; reads < READS_MAX; reads++) {
        ssize_t n = read(site->watch_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (size_t off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            note_root_event(site, ev);
            nm_filecache_note_event(site->files, ev->wd, ev->mask, ev->len ? ev->name : "");
            off += sizeof(*ev) + ev->len;
        }
    }
    /* Events still queued after so many reads: treated as lost, as an overflow would be. */
    site->root_dirty = true;
    nm_filecache_note_event(site->files, -1, IN_Q_OVERFLOW, "");
}

void nm_site_stop_watching(struct nm_site *site)
{
    if (site->watch_fd < 0)
        return;
    nm_filecache_set_watch(site->files, -1);
    close(site->watch_fd);
    site->watch_fd = site->root_wd[0] = site->root_wd[1] = -1;
    site->root_watched = false;
}

static int new_files(struct nm_site *site, const struct nm_config *cfg, int root_fd,
                     struct nm_filecache **out)
{
    int rc = nm_filecache_new(cfg, site->mime, root_fd, out);
    if (rc < 0)
        return rc;
    if (site->hashing)
        nm_filecache_set_hashing(*out, site->hashing);
    nm_filecache_set_watch(*out, cfg->watch ? site->watch_fd : -1);
    return 0;
}

int nm_site_init(struct nm_site *site, const struct nm_config *cfg,
                 const struct nm_mime_table *mime, int root_fd)
{
    memset(site, 0, sizeof(*site));
    site->cfg = cfg;
    site->mime = mime;
    site->root_fd = root_fd;
    site->own_root_fd = -1;
    site->watch_fd = cfg->watch ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
    site->root_wd[0] = site->root_wd[1] = -1;
    watch_root(site);
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
    return new_files(site, cfg, root_fd, &site->files);
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
    if (site->watch_fd >= 0)
        close(site->watch_fd);
    site->watch_fd = -1;
}

void nm_site_set_hashing(struct nm_site *site, struct nm_hashing *h)
{
    site->hashing = h;
    nm_filecache_set_hashing(site->files, h);
}

void nm_site_follow_root(struct nm_site *site)
{
    if (site->cfg->watch && site->root_watched && !site->root_dirty)
        return;
    site->root_dirty = false; /* an event from now on is about a later state than this stat */
    struct stat st;
    if (!site->cfg->root || stat(site->cfg->root, &st) != 0 || !S_ISDIR(st.st_mode) ||
        (st.st_dev == site->root_dev && st.st_ino == site->root_ino))
        return;
    int fd = open(site->cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* The directory opened is the one to remember: the path may have moved again since stat. */
    struct nm_filecache *files;
    if (fstat(fd, &st) != 0 || new_files(site, site->cfg, fd, &files) != 0) {
        close(fd);
        return;
    }
    nm_filecache_free(site->files);
    if (site->own_root_fd >= 0)
        close(site->own_root_fd);
    site->files = files;
    site->root_fd = site->own_root_fd = fd;
    site->root_dev = st.st_dev;
    site->root_ino = st.st_ino;
    site->root_swaps++;
    watch_root(site); /* a symlink's new target lies in its own directory */
}

int nm_site_set_config(struct nm_site *site, const struct nm_config *cfg)
{
    struct nm_filecache *files;
    int rc = new_files(site, cfg, site->root_fd, &files);
    if (rc < 0)
        return rc;
    nm_filecache_free(site->files);
    site->files = files;
    site->cfg = cfg;
    site->config_serial++;
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
