/* notmod cache list|clear: looks after notmod get's cache directory. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "cliutil.h"
#include "commands.h"
#include "notmod/cachectl.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: notmod cache list [--cache-dir DIR]\n"
                 "       notmod cache clear [--cache-dir DIR] [URL...]\n\n"
                 "list   one line per stored response: fresh or stale (RFC 9111 §4.2, with the\n"
                 "       heuristic), current age, body size, ETag, URL\n"
                 "clear  delete the given URLs' entries, or every entry and left-over\n"
                 "       temporary file\n\n"
                 "options:\n"
                 "      --cache-dir DIR  cache directory (default $XDG_CACHE_HOME/notmod or\n"
                 "                       ~/.cache/notmod)\n"
                 "  -h, --help           this text\n\n"
                 "exit status: 0 done, 1 cache unreadable or a URL not in the cache, 2 usage\n");
}

struct listing {
    int64_t now;
    size_t entries;
    size_t corrupt;
};

static int list_one(void *ctx, const struct nm_store_entry *e, int err, const char *name)
{
    struct listing *l = ctx;
    if (err < 0) {
        printf("%-7s %8s %9s  %-24s %s\n", "corrupt", "-", "-", "-", name);
        l->corrupt++;
        return 0;
    }
    /* The freshness notmod get would see, heuristic allowed. */
    struct nm_policy p = {.heuristic = true};
    struct nm_freshness fr;
    nm_policy_freshness(&p, e, l->now, &fr);
    char age[32], size[32];
    nm__cli_duration(fr.current_age_s, age, sizeof(age));
    nm__cli_size(e->body_len, size, sizeof(size));
    struct nm_slice el[1];
    struct nm_field etag = nm_cachectl_field(e->headers, e->n_headers, "ETag", el, 1);
    int tag_len = etag.n_lines ? (int)etag.lines[0].len : 1;
    const char *tag = etag.n_lines ? etag.lines[0].ptr : "-";
    if (tag_len > 24)
        tag_len = 24;
    printf("%-7s %8s %9s  %-24.*s %.*s\n", fr.fresh ? "fresh" : "stale", age, size, tag_len, tag,
           (int)e->url.len, e->url.ptr);
    l->entries++;
    return 0;
}

int nm_cmd_cache(int argc, char **argv)
{
    static const struct option longs[] = {
        {"cache-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cache_dir = NULL;
    optind = 1;
    int c;
    while ((c = nm__cli_getopt("cache", argc, argv, "h", longs)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return NM_EXIT_OK;
        }
        if (c == 'd') {
            cache_dir = optarg;
            continue;
        }
        return NM_EXIT_USAGE; /* named by nm__cli_getopt */
    }
    if (optind >= argc) {
        usage(stderr);
        return NM_EXIT_USAGE;
    }
    const char *verb = argv[optind++];
    bool list = strcmp(verb, "list") == 0;
    if (!list && strcmp(verb, "clear") != 0) {
        fprintf(stderr, "notmod cache: unknown action '%s' (list or clear)\n", verb);
        return NM_EXIT_USAGE;
    }
    if (list && optind < argc) {
        fprintf(stderr, "notmod cache list: takes no arguments\n");
        return NM_EXIT_USAGE;
    }
    char dir[PATH_MAX];
    struct nm_store store;
    int rc = nm__cli_cache_dir(cache_dir, dir, sizeof(dir));
    if (rc == 0)
        rc = nm_store_open(&store, dir);
    if (rc < 0) {
        fprintf(stderr, "notmod cache: cannot use cache directory %s: %s\n", dir, strerror(-rc));
        return NM_EXIT_FAILURE;
    }
    int status = NM_EXIT_OK;
    if (list) {
        struct listing l = {.now = time(NULL)};
        printf("%-7s %8s %9s  %-24s %s\n", "STATE", "AGE", "SIZE", "ETAG", "URL");
        rc = nm_store_foreach(&store, list_one, &l);
        if (rc < 0) {
            fprintf(stderr, "notmod cache: cannot read %s: %s\n", dir, strerror(-rc));
            status = NM_EXIT_FAILURE;
        }
    } else if (optind == argc) {
        size_t removed = 0;
        rc = nm_store_clear(&store, &removed);
        if (rc < 0) {
            fprintf(stderr, "notmod cache: cannot clear %s: %s\n", dir, strerror(-rc));
            status = NM_EXIT_FAILURE;
        } else {
            printf("removed %zu entr%s from %s\n", removed, removed == 1 ? "y" : "ies", dir);
        }
    } else {
        nm_client_global_init();
        for (; optind < argc; optind++) {
            char url[NM_CLIENT_URL_MAX];
            if (nm_client_url_normalize(argv[optind], url, sizeof(url)) != 0) {
                fprintf(stderr, "notmod cache: '%s' is not a valid http(s) URL\n", argv[optind]);
                status = NM_EXIT_USAGE;
                continue;
            }
            rc = nm_store_remove(&store, url);
            if (rc < 0) {
                fprintf(stderr, "notmod cache: %s: %s\n", url,
                        rc == -ENOENT ? "not in the cache" : strerror(-rc));
                if (status == NM_EXIT_OK)
                    status = NM_EXIT_FAILURE;
            } else {
                printf("removed %s\n", url);
            }
        }
        nm_client_global_cleanup();
    }
    nm_store_cleanup(&store);
    return status;
}
