/* Helpers of the client subcommands. */
#include "cliutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int nm__cli_cache_dir(const char *opt, char *out, size_t cap)
{
    int n;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (opt && *opt)
        n = snprintf(out, cap, "%s", opt);
    else if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/notmod", xdg);
    else if (home && *home)
        n = snprintf(out, cap, "%s/.cache/notmod", home);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void nm__cli_size(uint64_t bytes, char *out, size_t cap)
{
    static const char *const units[] = {"kB", "MB", "GB", "TB", "PB"};
    if (bytes < 1000) {
        snprintf(out, cap, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1000.0;
    size_t u = 0;
    while (v >= 999.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

void nm__cli_duration(int64_t s, char *out, size_t cap)
{
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, cap, "%" PRId64 " s", s);
    else if (s < 2 * 3600)
        snprintf(out, cap, "%" PRId64 " min", s / 60);
    else if (s < 2 * 86400)
        snprintf(out, cap, "%" PRId64 " h", s / 3600);
    else
        snprintf(out, cap, "%" PRId64 " d", s / 86400);
}
