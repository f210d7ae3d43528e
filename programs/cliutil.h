/* Shared by the subcommands: option parsing (all of them), and for the client ones (get, check,
 * cache) exit statuses, the cache directory, and sizes and durations written for people. */
#ifndef NOTMOD_PROGRAMS_CLIUTIL_H
#define NOTMOD_PROGRAMS_CLIUTIL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of get, check and cache, beyond NM_EXIT_OK (0), NM_EXIT_FAILURE (1: a local
 * problem, or a FAIL finding for check) and NM_EXIT_USAGE (2). */
#define NM_EXIT_UNCHANGED 3 /* get --if-changed: the content did not change */
#define NM_EXIT_NETWORK 4   /* no usable exchange: DNS, connect, timeout, cut-off transfer */
#define NM_EXIT_HTTP 5      /* the server answered with an error or an unusable response */
#define NM_EXIT_INTERRUPTED 130

/* getopt_long taking long options by their exact names only: glibc's also takes any unambiguous
 * prefix, so "--max 5" would silently mean "--max-age 5". Returns what getopt_long returns for
 * an option it accepts, and -1 at the end. An unknown or abbreviated option, a missing value or
 * a value given to a flag is reported on stderr as "notmod CMD: ..." naming the option, followed
 * by "Try 'notmod CMD --help'.", and returned as '?'. The caller sets optind = 1 before the first
 * call; shortopts is as for getopt_long (a leading ':' is optional). */
int nm__cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                   const struct option *longopts);

/* The cache directory: `opt` when given, else $XDG_CACHE_HOME/notmod, else
 * $HOME/.cache/notmod. Returns 0 or -ENOENT (no HOME) / -ENAMETOOLONG. */
int nm__cli_cache_dir(const char *opt, char *out, size_t cap);

/* The directory of the ETag store `notmod serve` uses by default: $CACHE_DIRECTORY (the first
 * one systemd's CacheDirectory= names), else /var/cache/notmod for root, else
 * nm__cli_cache_dir's. Returns 0 or -ENOENT (no HOME) / -ENAMETOOLONG. */
int nm__cli_etag_store_dir(char *out, size_t cap);

/* A private directory (a cache) that another user owns or can write lets that user plant what
 * this one would trust: refused, like ssh refuses such a ~/.ssh. A missing dir is fine (it is
 * made with mode 0700). Prints "notmod CMD: refusing WHAT DIR: ..." and returns -EPERM when
 * refused; returns 0, or another -errno of stat. */
int nm__cli_refuse_shared_dir(const char *cmd, const char *what, const char *dir);

/* Writes s to out with every control character (below 0x20, 0x7f, C1 controls), every byte
 * outside well-formed UTF-8 and every backslash shown as a visible escape (\x1b, \\), so that
 * bytes a server chose (reason phrases, field values) cannot drive the terminal. Used for all
 * text-mode output carrying such bytes. */
void nm__cli_put_escaped(FILE *out, const char *s);

/* "812 B", "12.3 kB", "2.1 MB" (decimal units). */
void nm__cli_size(uint64_t bytes, char *out, size_t cap);

/* "45 s", "12 min", "3 h", "2 d". */
void nm__cli_duration(int64_t seconds, char *out, size_t cap);

#endif
