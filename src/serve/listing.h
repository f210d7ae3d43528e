/* Directory listings: an HTML index of a directory's entries, safe to show whatever bytes the
 * names hold (HTML 5 text escaping, RFC 3986 relative references). */
#ifndef NOTMOD_LISTING_H
#define NOTMOD_LISTING_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "filecache.h"

/* Appends to `out` the HTML index of the directory dir_fd names (an O_PATH descriptor will do;
 * it is only read through, never moved or closed), titled with its URL path `path` ("/", or a
 * path ending in '/'). Entries are sorted by name in byte order; names starting with '.' are left
 * out unless allow_dotfiles; each entry shows its size (files) and modification time, except a
 * symlink that leaves the directory (nothing outside is stat-ed), and is a link when a request
 * for that link reaches it. Returns 0, the negative errno of reading the
 * directory (-EACCES when it may not be read), -ENOMEM, or -EMSGSIZE past out's cap (out then
 * holds part of the page). */
int nm_listing_render(int dir_fd, const char *path, bool allow_dotfiles, struct nm_buf *out);

/* A worker's pages of listings, so that a listing is rendered once per directory version and
 * second rather than once per request (a HEAD or a 304 costs what a GET does: read, stat, sort,
 * render, hash). A page is a struct nm_file held in memory (fd -1, data the HTML), shared by
 * reference with every response that sends it, so a client that does not read holds a reference,
 * not a copy. A page is found again for the same URL path and the same directory version
 * (dev, ino, mtime_ns, ctime_ns) within the second it was made in: a listed file's size and
 * mtime, which change without the directory, lag by at most that second. The cache holds at
 * most max_bytes of pages and NM_LISTING_CACHE_MAX of them, least recently used going first;
 * a page larger than max_bytes is not kept. */
#define NM_LISTING_CACHE_MAX 32

struct nm_listing_cache;

/* Returns 0 or -ENOMEM. */
int nm_listing_cache_new(size_t max_bytes, struct nm_listing_cache **out);

/* Releases the cache's references; pages still sent live until their responses release them.
 * NULL is a no-op. */
void nm_listing_cache_free(struct nm_listing_cache *lc);

/* The page kept for path and the version of `dir` made in second `now`, with a new reference,
 * or NULL. */
struct nm_file *nm_listing_cache_find(struct nm_listing_cache *lc, const struct nm_file *dir,
                                      const char *path, int64_t now);

/* Keeps `page` (the cache takes a reference of its own) for path and dir's version, made in
 * second `now`, replacing one kept for the same path. */
void nm_listing_cache_put(struct nm_listing_cache *lc, const struct nm_file *dir, const char *path,
                          struct nm_file *page, int64_t now);

/* Bytes of pages kept, for tests. */
size_t nm_listing_cache_bytes(const struct nm_listing_cache *lc);

#endif
