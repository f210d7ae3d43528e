/* notmod compress: writes the precompressed sidecars (x.css.br, x.css.zst, x.css.gz) of a tree
 * ahead of time, each with the record of the source it was made from (docs/usage.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cliutil.h"
#include "commands.h"
#include "notmod/coding.h"
#include "notmod/slice.h"
#include "variants/variants.h"

static const char usage_text[] =
    "usage: notmod compress [OPTIONS] DIR...\n"
    "\n"
    "Writes x.br, x.zst and x.gz beside each compressible file under DIR (text, JavaScript,\n"
    "JSON, SVG, XML, wasm, ttf/otf fonts), by temporary file and rename, each recording the\n"
    "source it was made from; a sidecar already made from the current source is left alone.\n"
    "\n"
    "  --codings LIST      comma-separated codings to write: br, zstd, gzip (default all)\n"
    "  --level N           compression level, clamped per coding: gzip 1-9, zstd 1-22,\n"
    "                      brotli 0-11 (default: gzip 9, zstd 19, brotli 11)\n"
    "  --min-saving PCT    write a sidecar only if it is at least PCT% smaller (0-99, default 5)\n"
    "  --min-size BYTES    leave files smaller than BYTES alone (default 256)\n"
    "  -q, --quiet         no progress line and no summary\n"
    "  -h, --help          this text\n";

enum {
    OPT_CODINGS = 256,
    OPT_LEVEL,
    OPT_MIN_SAVING,
    OPT_MIN_SIZE,
};

static const struct option options[] = {
    {"codings", required_argument, NULL, OPT_CODINGS},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"min-saving", required_argument, NULL, OPT_MIN_SAVING},
    {"min-size", required_argument, NULL, OPT_MIN_SIZE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct run {
    bool progress; /* stderr is a terminal and not -q */
    bool line_open;
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("notmod compress: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'notmod compress --help'.\n", stderr);
    return NM_EXIT_USAGE;
}

/* A decimal number in [min, max]. */
static bool parse_number(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || s[0] == ' ' ||
        v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "br,zstd,gzip" into a mask of NM_CODING_BIT; identity and repeats are refused. */
static bool parse_codings(const char *s, unsigned *out)
{
    unsigned mask = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        enum nm_coding c;
        if (nm_coding_parse(nm_slice_make(p, len), &c) != 0 || c == NM_CODING_IDENTITY ||
            (mask & NM_CODING_BIT(c)))
            return false;
        mask |= NM_CODING_BIT(c);
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = mask;
    return true;
}

static void end_progress(struct run *r)
{
    if (r->line_open) {
        fputs("\r\033[K", stderr);
        r->line_open = false;
    }
}

static void on_error(void *arg, const char *path, int err)
{
    struct run *r = arg;
    end_progress(r);
    fprintf(stderr, "notmod compress: %s: %s\n", path,
            err == -EAGAIN ? "changed while it was read; try again" : strerror(-err));
}

static void on_file(void *arg, const char *path, const struct nm_variants_compress_counts *c)
{
    struct run *r = arg;
    if (!r->progress)
        return;
    fprintf(stderr, "\r\033[K%" PRIu64 " files, %" PRIu64 " written: %.60s", c->files_seen,
            c->written, path);
    r->line_open = true;
}

int nm_cmd_compress(int argc, char **argv)
{
    struct nm_variants_compress_options o = {
        .codings = NM_CODING_BIT(NM_CODING_BR) | NM_CODING_BIT(NM_CODING_ZSTD) |
                   NM_CODING_BIT(NM_CODING_GZIP),
        .level = NM_VARIANTS_LEVEL_DEFAULT,
        .min_saving_pct = NM_VARIANTS_MIN_SAVING_DEFAULT,
        .min_size_bytes = NM_VARIANTS_MIN_SIZE_DEFAULT,
        .on_error = on_error,
        .on_file = on_file,
    };
    bool quiet = false;
    long long v;
    int opt;
    optind = 1;
    while ((opt = nm__cli_getopt("compress", argc, argv, "qh", options)) != -1) {
        switch (opt) {
        case OPT_CODINGS:
            if (!parse_codings(optarg, &o.codings))
                return usage_error("--codings: '%s' is not a list of br, zstd, gzip", optarg);
            break;
        case OPT_LEVEL:
            if (!parse_number(optarg, 0, 22, &v))
                return usage_error("--level: '%s' is not a level from 0 to 22", optarg);
            o.level = (int)v;
            break;
        case OPT_MIN_SAVING:
            if (!parse_number(optarg, 0, 99, &v))
                return usage_error("--min-saving: '%s' is not a percentage from 0 to 99", optarg);
            o.min_saving_pct = (unsigned)v;
            break;
        case OPT_MIN_SIZE:
            if (!parse_number(optarg, 0, LLONG_MAX, &v))
                return usage_error("--min-size: '%s' is not a number of bytes", optarg);
            o.min_size_bytes = (uint64_t)v;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return NM_EXIT_OK;
        default:
            return NM_EXIT_USAGE; /* named by nm__cli_getopt */
        }
    }
    if (optind == argc)
        return usage_error("no DIR given");
    struct run r = {.progress = !quiet && isatty(STDERR_FILENO)};
    o.arg = &r;
    struct nm_variants_compress_counts c = {0};
    bool failed = false;
    for (int i = optind; i < argc; i++)
        failed |= nm_variants_compress_tree(argv[i], &o, &c) < 0;
    end_progress(&r);
    if (!quiet) {
        char before[32], after[32];
        nm__cli_size(c.bytes_before, before, sizeof(before));
        nm__cli_size(c.bytes_after, after, sizeof(after));
        fprintf(stderr,
                "notmod compress: %" PRIu64 " files, %" PRIu64 " sidecars written, %" PRIu64
                " up to date, %" PRIu64 " removed; skipped: %" PRIu64 " by type, %" PRIu64
                " by size, %" PRIu64 " by saving; %s -> %s; %" PRIu64 " failed\n",
                c.files_seen, c.written, c.up_to_date, c.removed, c.skipped_type, c.skipped_size,
                c.skipped_saving, before, after, c.failed);
    }
    return failed ? NM_EXIT_FAILURE : NM_EXIT_OK;
}
