/* Helpers of the subcommands: exact option names, cache directory, sizes and durations. */
#include "cliutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The long option argv names (without "--" and "=VALUE"), or NULL when it names none. */
static const struct option *long_named(const struct option *longopts, const char *arg, size_t len)
{
    for (const struct option *o = longopts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, arg, len) == 0)
            return o;
    return NULL;
}

__attribute__((format(printf, 2, 3))) static int refuse(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "notmod %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'notmod %s --help'.\n", cmd);
    va_end(ap);
    return '?';
}

int nm__cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
                   const struct option *longopts)
{
    /* A leading ':' makes a missing value ':' rather than '?', so the two can be told apart. */
    char spec[64];
    snprintf(spec, sizeof(spec), "%s%s", shortopts[0] == ':' ? "" : ":", shortopts);
    opterr = 0;
    int index = -1, before = optind;
    int c = getopt_long(argc, argv, spec, longopts, &index);
    if (c == -1)
        return c;
    /* The element just taken: getopt_long permutes argv only at its next call, so it is still
     * the last one, or the one before when its value was the next element. */
    const char *arg = argv[optind - 1];
    if (index >= 0 && optarg && optarg == argv[optind - 1] && optind >= 2)
        arg = argv[optind - 2];
    bool is_long = strncmp(arg, "--", 2) == 0 && arg[2];
    size_t len = is_long ? strcspn(arg + 2, "=") : 0;
    const struct option *named = is_long ? long_named(longopts, arg + 2, len) : NULL;
    if (c != '?' && c != ':') {
        if (index >= 0 && named != &longopts[index])
            return refuse(cmd, "unknown option '--%.*s'", (int)len, arg + 2);
        return c;
    }
    /* A long option always takes its element, so a failed one is the element just taken; a
     * short one may fail inside a cluster that is not taken yet, after a long option. */
    if (is_long && optind > before) {
        if (!named)
            return refuse(cmd, "unknown option '--%.*s'", (int)len, arg + 2);
        if (c == ':')
            return refuse(cmd, "option '--%s' needs a value", named->name);
        return refuse(cmd, "option '--%s' takes no value", named->name);
    }
    if (c == ':')
        return refuse(cmd, "option '-%c' needs a value", optopt);
    return refuse(cmd, "unknown option '-%c'", optopt);
}

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

int nm__cli_etag_store_dir(char *out, size_t cap)
{
    const char *systemd = getenv("CACHE_DIRECTORY");
    int n;
    if (systemd && systemd[0] == '/')
        n = snprintf(out, cap, "%.*s", (int)strcspn(systemd, ":"), systemd);
    else if (geteuid() == 0)
        n = snprintf(out, cap, "/var/cache/notmod");
    else
        return nm__cli_cache_dir(NULL, out, cap);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int nm__cli_refuse_shared_dir(const char *cmd, const char *what, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (st.st_uid != geteuid()) {
        fprintf(stderr, "notmod %s: refusing %s %s: owned by uid %u, not by you\n", cmd, what, dir,
                (unsigned)st.st_uid);
        return -EPERM;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
        fprintf(stderr, "notmod %s: refusing %s %s: writable by other users (mode %04o)\n", cmd,
                what, dir, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
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

/* The length of the well-formed UTF-8 sequence at p, other than a C1 control (U+0080-U+009F,
 * which 8-bit terminals act on), or 0. */
static size_t utf8_printable_len(const unsigned char *p)
{
    size_t n = *p >= 0xc2 && *p <= 0xdf   ? 2
               : *p >= 0xe0 && *p <= 0xef ? 3
               : *p >= 0xf0 && *p <= 0xf4 ? 4
                                          : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
        return 0;
    return n;
}

void nm__cli_put_escaped(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p >= 0x80 ? utf8_printable_len(p) : 1;
        if (*p == '\\') {
            fputs("\\\\", out);
        } else if (*p < 0x20 || *p == 0x7f || n == 0) {
            fprintf(out, "\\x%02x", *p);
            n = 1;
        } else {
            fwrite(p, 1, n, out);
        }
        p += n;
    }
}
