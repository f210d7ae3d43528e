/* The site: what a worker shares between its connections and the handler they call: settings,
 * the file table of the served tree (following a root that a deploy moved), the clock and its
 * Date line, the access-log buffer, the hashing pool, the multipart boundary key. */
#ifndef NOTMOD_SITE_H
#define NOTMOD_SITE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/base.h"
#include "config.h"
#include "filecache.h"
#include "metrics.h"
#include "mime.h"
#include "notmod/http1.h"

struct nm_listing_cache;

struct nm_site {
    const struct nm_config *cfg;
    /* Moves at every nm_site_set_config: a version's pre-rendered head fields (nm_file.head)
     * made under another value are rendered again, never served. */
    uint64_t config_serial;
    const struct nm_mime_table *mime;
    struct nm_filecache *files;    /* the file table of the tree root_fd names */
    struct nm_hashing *hashing;    /* given to every file table; NULL without a pool */
    struct nm_variants_cache *fly; /* process-wide variants made on the fly; NULL when off */
    int root_fd;
    int own_root_fd; /* root_fd when the site opened it after a swap, else -1 */
    dev_t root_dev;  /* the directory root_fd names: a new one at cfg->root is a swap */
    ino_t root_ino;
    uint64_t root_swaps; /* times the site moved to a new directory at cfg->root */
    /* Watching (cfg->watch at init): one inotify descriptor for the file tables and the root.
     * root_wd watch the directories holding cfg->root's name and, when it is a symlink, its
     * target's name; while root_watched, cfg->root is stat'ed only after an event about them
     * (root_dirty). */
    int watch_fd;
    int root_wd[2];
    char root_name[2][256];
    bool root_watched;
    bool root_dirty;
    int64_t now;                               /* seconds; set by nm_site_set_time */
    char date_line[sizeof("Date: \r\n") + 29]; /* "Date: <IMF-fixdate>\r\n" for `now` */
    size_t date_line_len;
    struct nm_buf log; /* access-log lines not yet written; NULL ptr when logging is off */
    bool log_enabled;
    uint64_t log_dropped; /* lines that did not fit in `log`; the worker reports them */
    /* The HTTP/1.1 head being handled: one at a time per worker, so the connections of a worker
     * share it rather than each holding one. */
    struct nm_http1_request scratch;
    uint64_t boundary_key; /* keys multipart boundaries; random at init, tests may fix it */
    struct nm_metrics_worker *metrics; /* this worker's --metrics counters; NULL when off */
    /* Listing pages made once per directory version (listing.h); NULL when they cannot be kept.
     * A listing rendered (not found there) takes one of listing_renders_left, and a connection
     * handles no further request while it is 0: the worker sets it to 1 before it runs a
     * connection, so one render is what a connection gets per pass of the loop. UINT_MAX (no
     * bound) after nm_site_init. */
    struct nm_listing_cache *listings;
    unsigned listing_renders_left;
};

/* Sets up a site over an open root directory (not taken: the caller closes it after
 * nm_site_cleanup); the config and mime table must outlive it. Returns 0, -ENOMEM or -errno. */
int nm_site_init(struct nm_site *site, const struct nm_config *cfg,
                 const struct nm_mime_table *mime, int root_fd);
void nm_site_cleanup(struct nm_site *site);

/* Content hashes through h (which must outlive the site), for this and every later file table. */
void nm_site_set_hashing(struct nm_site *site, struct nm_hashing *h);

/* A deploy that points a `current` symlink at a new release, or exchanges two directories, changes
 * which directory cfg->root names. Each request calls this before it resolves a path (it stats
 * cfg->root only when watching is off or cannot speak for the root's name, or after an event
 * about it): when
 * cfg->root now names another directory, the site opens it and starts a new, empty file table;
 * the old table's entries live on only in the responses that hold them, so no response mixes two
 * trees. A root that cannot be resolved for a moment (mid-rename) keeps the current one. */
void nm_site_follow_root(struct nm_site *site);

/* A reload: the site serves with cfg from the next request on (cfg must outlive that use), in a
 * new, empty file table over the current root, since entries keep per-path settings (their
 * Cache-Control), and moves config_serial. Responses in flight keep the entries they hold.
 * Returns 0, or -ENOMEM with the site unchanged. */
int nm_site_set_config(struct nm_site *site, const struct nm_config *cfg);

/* Reads what inotify queued on watch_fd (the worker calls it when the descriptor is readable,
 * before it answers requests of the same wake-up) and marks what changed: entries of the file
 * table, the root's name. A no-op when not watching. */
void nm_site_read_changes(struct nm_site *site);

/* Closes watch_fd: from then on every lookup stats, as with cfg->watch off. For a caller that
 * cannot have watch_fd read (its epoll refused it); call before the first request. */
void nm_site_stop_watching(struct nm_site *site);

/* Moves the site's clock; the Date line is rendered only when the second changes. */
void nm_site_set_time(struct nm_site *site, int64_t now);

#endif
