/* Directory listings: an HTML index of a directory's entries, safe to show whatever bytes the
 * names hold (HTML 5 text escaping, RFC 3986 relative references). */
#ifndef NOTMOD_LISTING_H
#define NOTMOD_LISTING_H

#include <stdbool.h>

#include "base/base.h"

/* Appends to `out` the HTML index of the directory dir_fd names (an O_PATH descriptor will do;
 * it is only read through, never moved or closed), titled with its URL path `path` ("/", or a
 * path ending in '/'). Entries are sorted by name in byte order; names starting with '.' are left
 * out unless allow_dotfiles; each entry shows its size (files) and modification time, except a
 * symlink that leaves the directory (nothing outside is stat-ed), and is a link when a request
 * for that link reaches it. Returns 0, the negative errno of reading the
 * directory (-EACCES when it may not be read), -ENOMEM, or -EMSGSIZE past out's cap (out then
 * holds part of the page). */
int nm_listing_render(int dir_fd, const char *path, bool allow_dotfiles, struct nm_buf *out);

#endif
