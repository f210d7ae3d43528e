/* Shared by the client subcommands (get, check, cache): exit statuses, the cache directory, and
 * sizes and durations written for people. */
#ifndef NOTMOD_PROGRAMS_CLIUTIL_H
#define NOTMOD_PROGRAMS_CLIUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Exit statuses of get, check and cache, beyond NM_EXIT_OK (0), NM_EXIT_FAILURE (1: a local
 * problem, or a FAIL finding for check) and NM_EXIT_USAGE (2). */
#define NM_EXIT_UNCHANGED 3 /* get --if-changed: the content did not change */
#define NM_EXIT_NETWORK 4   /* no usable exchange: DNS, connect, timeout, cut-off transfer */
#define NM_EXIT_HTTP 5      /* the server answered with an error or an unusable response */
#define NM_EXIT_INTERRUPTED 130

/* The cache directory: `opt` when given, else $XDG_CACHE_HOME/notmod, else
 * $HOME/.cache/notmod. Returns 0 or -ENOENT (no HOME) / -ENAMETOOLONG. */
int nm__cli_cache_dir(const char *opt, char *out, size_t cap);

/* "812 B", "12.3 kB", "2.1 MB" (decimal units). */
void nm__cli_size(uint64_t bytes, char *out, size_t cap);

/* "45 s", "12 min", "3 h", "2 d". */
void nm__cli_duration(int64_t seconds, char *out, size_t cap);

#endif
