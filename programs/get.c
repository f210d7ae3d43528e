/* notmod get URL: a download through a private RFC 9111 cache. Reuses a fresh copy, revalidates
 * a stale one with If-None-Match and If-Modified-Since, freshens it on 304 (§4.3.4), and writes
 * the output only when a complete, verified body is in hand. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "cliutil.h"
#include "commands.h"
#include "notmod/cachectl.h"
#include "notmod/date.h"
#include "notmod/etag.h"

#define MAX_REQ_HEADERS 32
#define HEURISTIC_MAX_S 86400

struct opts {
    const char *url;
    const char *output;
    const char *cache_dir;
    bool heuristic;
    bool if_changed;
    bool verbose;
    bool quiet;
    bool revalidate;
    bool reload;
    bool no_store;
    bool stale_if_error;
    int progress; /* -1 auto, 0 off, 1 on */
    long timeout_s;
    long connect_timeout_s;
    struct nm_header req[MAX_REQ_HEADERS];
    size_t n_req;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: notmod get [OPTIONS] URL\n\n"
        "Downloads URL through a private HTTP cache (RFC 9111). A fresh cached copy is used\n"
        "without a request; a stale one is revalidated with If-None-Match and\n"
        "If-Modified-Since, and a 304 costs no body. Output is written only once a complete\n"
        "body is in hand; a failed transfer leaves the cache and the output file as they were.\n\n"
        "options:\n"
        "  -o, --output FILE     write to FILE (atomically; left untouched, mtime included,\n"
        "                        when the content did not change) instead of stdout\n"
        "  -H, --header 'N: V'   add a request header (the cache honours Vary on it);\n"
        "                        conditional and Range headers are managed by notmod\n"
        "      --cache-dir DIR   cache directory (default $XDG_CACHE_HOME/notmod or\n"
        "                        ~/.cache/notmod)\n"
        "      --no-heuristic    no heuristic freshness (RFC 9111 §4.2.2): without max-age or\n"
        "                        Expires a stored copy is always revalidated\n"
        "      --revalidate      ask the server even when the cached copy is fresh\n"
        "      --reload          ignore the cached copy: fetch without conditions\n"
        "      --no-store        do not write the cache\n"
        "      --stale-if-error  on a network error, output a stale cached copy (unless\n"
        "                        no-cache or must-revalidate forbids it) with a warning\n"
        "      --if-changed      exit 0 only when the content changed (new or different),\n"
        "                        3 when it is the same as before\n"
        "      --timeout SECS    give up when no byte arrives for SECS (default 30)\n"
        "      --connect-timeout SECS  (default 10)\n"
        "      --progress / --no-progress  progress bar on stderr (default: when stderr is a\n"
        "                        terminal and the download takes over half a second)\n"
        "  -v, --verbose         say what happened (cache hit, 304, bytes saved)\n"
        "  -q, --quiet           no warnings\n"
        "  -h, --help            this text\n\n"
        "exit status:\n"
        "  0  success (with --if-changed: the content changed)\n"
        "  1  local failure: output file or cache directory not writable\n"
        "  2  usage: bad option or malformed URL\n"
        "  3  with --if-changed: the content did not change\n"
        "  4  network error: name resolution, connection, timeout, transfer cut short\n"
        "  5  HTTP error: a status other than 200 or 304, or an unusable response\n"
        "  130  interrupted\n");
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse_header_opt(const char *arg, struct nm_header *h)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        return -EINVAL;
    for (const char *p = arg; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            return -EINVAL;
    for (const char *p = colon + 1; *p; p++)
        if (*p == '\r' || *p == '\n')
            return -EINVAL;
    h->name = nm_slice_make(arg, (size_t)(colon - arg));
    h->value = nm_slice_trim_ows(nm_slice_from_cstr(colon + 1));
    static const char *const managed[] = {"If-None-Match",       "If-Modified-Since", "If-Match",
                                          "If-Unmodified-Since", "If-Range",          "Range"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (nm_slice_case_eq(h->name, nm_slice_from_cstr(managed[i])))
            return -EPERM;
    return 0;
}

static int parse_seconds(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 86400)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum {
        OPT_CACHE_DIR = 256,
        OPT_NO_HEURISTIC,
        OPT_REVALIDATE,
        OPT_RELOAD,
        OPT_NO_STORE,
        OPT_STALE_IF_ERROR,
        OPT_IF_CHANGED,
        OPT_TIMEOUT,
        OPT_CONNECT_TIMEOUT,
        OPT_PROGRESS,
        OPT_NO_PROGRESS,
    };
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'},
        {"header", required_argument, NULL, 'H'},
        {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
        {"no-heuristic", no_argument, NULL, OPT_NO_HEURISTIC},
        {"revalidate", no_argument, NULL, OPT_REVALIDATE},
        {"reload", no_argument, NULL, OPT_RELOAD},
        {"no-store", no_argument, NULL, OPT_NO_STORE},
        {"stale-if-error", no_argument, NULL, OPT_STALE_IF_ERROR},
        {"if-changed", no_argument, NULL, OPT_IF_CHANGED},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.heuristic = true, .progress = -1, .timeout_s = 30, .connect_timeout_s = 10};
    optind = 1;
    int c;
    while ((c = nm__cli_getopt("get", argc, argv, "o:H:vqh", longs)) != -1) {
        switch (c) {
        case 'o':
            o->output = optarg;
            break;
        case 'H': {
            if (o->n_req == MAX_REQ_HEADERS) {
                fprintf(stderr, "notmod get: at most %d -H options\n", MAX_REQ_HEADERS);
                return -EINVAL;
            }
            int rc = parse_header_opt(optarg, &o->req[o->n_req]);
            if (rc == -EPERM) {
                fprintf(stderr,
                        "notmod get: -H '%s': conditional and Range headers are sent by "
                        "notmod get itself\n",
                        optarg);
                return -EINVAL;
            }
            if (rc < 0) {
                fprintf(stderr, "notmod get: -H '%s' is not 'Name: value'\n", optarg);
                return -EINVAL;
            }
            o->n_req++;
            break;
        }
        case OPT_CACHE_DIR:
            o->cache_dir = optarg;
            break;
        case OPT_NO_HEURISTIC:
            o->heuristic = false;
            break;
        case OPT_REVALIDATE:
            o->revalidate = true;
            break;
        case OPT_RELOAD:
            o->reload = true;
            break;
        case OPT_NO_STORE:
            o->no_store = true;
            break;
        case OPT_STALE_IF_ERROR:
            o->stale_if_error = true;
            break;
        case OPT_IF_CHANGED:
            o->if_changed = true;
            break;
        case OPT_TIMEOUT:
        case OPT_CONNECT_TIMEOUT:
            if (parse_seconds(optarg, c == OPT_TIMEOUT ? &o->timeout_s : &o->connect_timeout_s)) {
                fprintf(stderr, "notmod get: '%s' is not a number of seconds (1-86400)\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_PROGRESS:
            o->progress = 1;
            break;
        case OPT_NO_PROGRESS:
            o->progress = 0;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default: /* named by nm__cli_getopt */
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "notmod get: expected exactly one URL (see notmod get --help)\n");
        return -EINVAL;
    }
    o->url = argv[optind];
    return 0;
}

/* The progress bar: drawn on stderr once a download has run for half a second. */
struct progress {
    bool enabled;
    bool drawn;
    struct timespec start;
    struct timespec last;
};

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress_draw(struct progress *p, uint64_t got, uint64_t total)
{
    char a[32], b[32], r[32];
    double secs = since(&p->start);
    nm__cli_size(got, a, sizeof(a));
    nm__cli_size(secs > 0 ? (uint64_t)((double)got / secs) : 0, r, sizeof(r));
    if (total > 0 && got <= total) {
        int width = 30, fill = (int)((double)got / (double)total * width);
        char bar[31];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[width] = '\0';
        nm__cli_size(total, b, sizeof(b));
        fprintf(stderr, "\r%3d%% [%s] %s of %s, %s/s\033[K",
                (int)((double)got * 100.0 / (double)total), bar, a, b, r);
    } else {
        fprintf(stderr, "\r%s, %s/s\033[K", a, r);
    }
    p->drawn = true;
}

static void progress_end(struct progress *p)
{
    if (p->drawn)
        fprintf(stderr, "\r\033[K");
    p->drawn = false;
}

struct transfer {
    struct nm_store_spool *spool;
    struct progress *progress;
};

static int on_body(void *ctx, const void *data, size_t len)
{
    struct transfer *t = ctx;
    return nm_store_spool_write(t->spool, data, len);
}

static int on_progress(void *ctx, uint64_t got, uint64_t total)
{
    struct transfer *t = ctx;
    if (interrupted)
        return -ECANCELED;
    struct progress *p = t->progress;
    if (!p->enabled || got == 0 || since(&p->start) < 0.5 || since(&p->last) < 0.1)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    progress_draw(p, got, total);
    return 0;
}

/* Everything one run works with; released by run_cleanup. */
struct run {
    struct opts o;
    char url[NM_CLIENT_URL_MAX];
    struct nm_store store;
    bool store_open;
    struct nm_client client;
    bool client_open;
    struct nm_store_entry *entry; /* the stored response, when `have_entry` */
    bool have_entry;
    bool entry_usable; /* Vary matched: it may answer this request */
    char prev_hash[NM_STORE_HASH_LEN + 1];
    struct nm_store_spool spool;
    bool spool_open;
    struct progress progress;
    char out_tmp[PATH_MAX];
    int out_fd;
    bool changed;
};

static void say(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const struct run *r, const char *fmt, ...)
{
    if (!r->o.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "notmod get: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void warn(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(const struct run *r, const char *fmt, ...)
{
    if (r->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "notmod get: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static struct nm_cachectl_policy policy(const struct run *r)
{
    return (struct nm_cachectl_policy){
        .heuristic = r->o.heuristic, .heuristic_max_s = HEURISTIC_MAX_S, .heuristic_percent = 10};
}

static void freshness_of(const struct run *r, const struct nm_header *h, size_t n, int status,
                         int64_t req_t, int64_t resp_t, int64_t now, struct nm_freshness *fr)
{
    struct nm_slice l[5][NM_CACHECTL_MAX_LINES];
    struct nm_cachectl_response cr = {
        .status = status,
        .cache_control = nm_cachectl_field(h, n, "Cache-Control", l[0], NM_CACHECTL_MAX_LINES),
        .expires = nm_cachectl_field(h, n, "Expires", l[1], NM_CACHECTL_MAX_LINES),
        .date = nm_cachectl_field(h, n, "Date", l[2], NM_CACHECTL_MAX_LINES),
        .last_modified = nm_cachectl_field(h, n, "Last-Modified", l[3], NM_CACHECTL_MAX_LINES),
        .age = nm_cachectl_field(h, n, "Age", l[4], NM_CACHECTL_MAX_LINES),
        .request_time = req_t,
        .response_time = resp_t,
    };
    struct nm_cachectl_policy p = policy(r);
    nm_cachectl_evaluate(&cr, &p, now, fr);
}

/* "fresh for 1 h (max-age)" and the like. */
static void describe_freshness(const struct nm_freshness *fr, char *out, size_t cap)
{
    static const char *const sources[] = {
        [NM_CACHECTL_SOURCE_NONE] = "no max-age or Expires, no heuristic",
        [NM_CACHECTL_SOURCE_MAX_AGE] = "max-age",
        [NM_CACHECTL_SOURCE_EXPIRES] = "Expires",
        [NM_CACHECTL_SOURCE_HEURISTIC] = "heuristic: 10% of the time since Last-Modified",
        [NM_CACHECTL_SOURCE_INVALID] = "invalid freshness information",
    };
    char d[32];
    if (fr->cc_flags & NM_CACHECTL_NO_CACHE) {
        snprintf(out, cap, "revalidated on every use (no-cache)");
    } else if (fr->fresh) {
        nm__cli_duration(fr->lifetime_s - fr->current_age_s, d, sizeof(d));
        snprintf(out, cap, "fresh for %s more (%s)", d, sources[fr->source]);
    } else {
        snprintf(out, cap, "stale, revalidated on next use (%s)", sources[fr->source]);
    }
}

static int copy_fd(int from, int to)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(from, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return 0;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            off += w;
        }
    }
}

/* Creates the temporary file beside -o FILE up front, so an unwritable path fails before any
 * network traffic. */
static int prepare_output(struct run *r)
{
    const char *path = r->o.output;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return -EISDIR;
    const char *slash = strrchr(path, '/');
    int n;
    if (slash)
        n = snprintf(r->out_tmp, sizeof(r->out_tmp), "%.*s/.%s.XXXXXX", (int)(slash - path), path,
                     slash + 1);
    else
        n = snprintf(r->out_tmp, sizeof(r->out_tmp), ".%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(r->out_tmp))
        return -ENAMETOOLONG;
    int fd = mkostemp(r->out_tmp, O_CLOEXEC);
    if (fd < 0) {
        r->out_tmp[0] = '\0';
        return -errno;
    }
    r->out_fd = fd;
    return 0;
}

static void drop_output_tmp(struct run *r)
{
    if (r->out_fd >= 0)
        close(r->out_fd);
    r->out_fd = -1;
    if (r->out_tmp[0])
        unlink(r->out_tmp);
    r->out_tmp[0] = '\0';
}

/* Writes the body in fd (len bytes, hash) to the output. Returns an exit status. */
static int deliver(struct run *r, int fd, uint64_t len, const char *hash)
{
    char sz[32];
    nm__cli_size(len, sz, sizeof(sz));
    if (!r->o.output) {
        r->changed = !r->prev_hash[0] || strcmp(r->prev_hash, hash) != 0;
        int rc = copy_fd(fd, STDOUT_FILENO);
        if (rc < 0) {
            warn(r, "cannot write to standard output: %s", strerror(-rc));
            return NM_EXIT_FAILURE;
        }
        return NM_EXIT_OK;
    }
    int old = open(r->o.output, O_RDONLY | O_CLOEXEC);
    mode_t mode = 0;
    bool have_mode = false;
    if (old >= 0) {
        struct stat st;
        char old_hash[NM_STORE_HASH_LEN + 1];
        uint64_t old_len;
        if (fstat(old, &st) == 0 && S_ISREG(st.st_mode)) {
            mode = st.st_mode & 07777;
            have_mode = true;
            if ((uint64_t)st.st_size == len && nm_store_hash_fd(old, old_hash, &old_len) == 0 &&
                old_len == len && strcmp(old_hash, hash) == 0) {
                close(old);
                drop_output_tmp(r);
                r->changed = false;
                say(r, "%s unchanged (%s), left untouched", r->o.output, sz);
                return NM_EXIT_OK;
            }
        }
        close(old);
    }
    if (!have_mode) {
        mode_t mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
    }
    int rc = copy_fd(fd, r->out_fd);
    if (rc == 0 && fchmod(r->out_fd, mode) != 0)
        rc = -errno;
    if (rc == 0 && fsync(r->out_fd) != 0)
        rc = -errno;
    if (rc == 0 && close(r->out_fd) != 0)
        rc = -errno;
    r->out_fd = -1;
    if (rc == 0 && rename(r->out_tmp, r->o.output) != 0)
        rc = -errno;
    if (rc < 0) {
        warn(r, "cannot write %s: %s", r->o.output, strerror(-rc));
        drop_output_tmp(r);
        return NM_EXIT_FAILURE;
    }
    r->out_tmp[0] = '\0';
    r->changed = true;
    say(r, "wrote %s (%s)", r->o.output, sz);
    return NM_EXIT_OK;
}

/* Delivers the stored entry's body. */
static int deliver_entry(struct run *r, const struct nm_store_entry *e)
{
    int fd = nm_store_body_open(&r->store, e);
    char hash[NM_STORE_HASH_LEN + 1];
    uint64_t len;
    int rc = fd < 0 ? fd : nm_store_hash_fd(fd, hash, &len);
    if (rc == 0 && (len != e->body_len || strcmp(hash, e->body_hash) != 0))
        rc = -EBADMSG;
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    lseek(fd, 0, SEEK_SET);
    int status = deliver(r, fd, e->body_len, e->body_hash);
    close(fd);
    return status;
}

/* Adds If-None-Match and If-Modified-Since from the stored validators, sent exactly as they
 * were received. Returns how many were added. */
static size_t conditional_headers(const struct nm_store_entry *e, struct nm_header *out)
{
    size_t n = 0;
    struct nm_slice l[NM_CACHECTL_MAX_LINES];
    struct nm_field etag = nm_cachectl_field(e->headers, e->n_headers, "ETag", l, 2);
    struct nm_etag t;
    if (etag.n_lines == 1 && nm_etag_parse(etag.lines[0], &t) == 0)
        out[n++] = (struct nm_header){NM_SLICE_LIT("If-None-Match"), etag.lines[0]};
    struct nm_field lm = nm_cachectl_field(e->headers, e->n_headers, "Last-Modified", l, 2);
    int64_t when;
    if (nm_cachectl_date(lm, time(NULL), &when) == 0)
        out[n++] = (struct nm_header){NM_SLICE_LIT("If-Modified-Since"), lm.lines[0]};
    return n;
}

static int begin_spool(struct run *r)
{
    int rc = nm_store_spool_begin(&r->store, &r->spool);
    if (rc == 0)
        r->spool_open = true;
    return rc;
}

static void end_spool(struct run *r)
{
    if (r->spool_open)
        nm_store_spool_discard(&r->store, &r->spool);
    r->spool_open = false;
}

/* One GET; extra conditional headers in cond. Returns perform's result. */
static int fetch(struct run *r, const struct nm_header *cond, size_t n_cond,
                 struct nm_client_response *resp)
{
    struct nm_header hdrs[MAX_REQ_HEADERS + 2];
    size_t n = 0;
    for (size_t i = 0; i < r->o.n_req; i++)
        hdrs[n++] = r->o.req[i];
    for (size_t i = 0; i < n_cond; i++)
        hdrs[n++] = cond[i];
    struct transfer t = {.spool = &r->spool, .progress = &r->progress};
    struct nm_client_request req = {
        .method = "GET",
        .url = r->url,
        .headers = hdrs,
        .n_headers = n,
        .connect_timeout_ms = r->o.connect_timeout_s * 1000,
        .stall_timeout_s = r->o.timeout_s,
        .on_body = on_body,
        .on_progress = on_progress,
        .ctx = &t,
    };
    clock_gettime(CLOCK_MONOTONIC, &r->progress.start);
    r->progress.last = r->progress.start;
    int rc = nm_client_perform(&r->client, &req, resp);
    progress_end(&r->progress);
    return rc;
}

static int network_failure(struct run *r, int rc, const struct nm_client_response *resp,
                           const struct nm_freshness *fr)
{
    if (rc == -ECANCELED && interrupted) {
        warn(r, "interrupted; the cache and the output were left as they were");
        return NM_EXIT_INTERRUPTED;
    }
    if (resp->local_error) {
        warn(r, "cannot write to the cache directory: %s", resp->error);
        return NM_EXIT_FAILURE;
    }
    if (rc == -EINVAL || rc == -EPROTONOSUPPORT) {
        warn(r, "%s: %s", r->url, resp->error);
        return NM_EXIT_USAGE;
    }
    if (r->entry_usable && r->o.stale_if_error && fr && fr->may_serve_stale) {
        char age[32];
        nm__cli_duration(fr->current_age_s, age, sizeof(age));
        warn(r, "%s: %s; using the stale cached copy (age %s)", r->url, resp->error, age);
        int status = deliver_entry(r, r->entry);
        if (status >= 0)
            return status;
    }
    warn(r, "%s: %s", r->url, resp->error);
    return NM_EXIT_NETWORK;
}

static int http_failure(struct run *r, const struct nm_client_response *resp)
{
    struct nm_slice l[1];
    struct nm_field loc = nm_cachectl_field(resp->headers, resp->n_headers, "Location", l, 1);
    if (resp->status >= 300 && resp->status < 400 && nm_field_is_present(loc))
        warn(r, "%s: HTTP %d %s, Location: %.*s (redirects are not followed)", r->url, resp->status,
             resp->reason, (int)loc.lines[0].len, loc.lines[0].ptr);
    else
        warn(r, "%s: HTTP %d %s", r->url, resp->status, resp->reason);
    return NM_EXIT_HTTP;
}

/* Stores (or not) and delivers a complete 200. */
static int handle_200(struct run *r, struct nm_client_response *resp, bool was_conditional)
{
    int rc = nm_store_spool_finish(&r->spool);
    if (rc < 0) {
        warn(r, "cannot write to the cache directory: %s", strerror(-rc));
        return NM_EXIT_FAILURE;
    }
    char sz[32];
    nm__cli_size(r->spool.len, sz, sizeof(sz));
    bool same = r->prev_hash[0] && strcmp(r->prev_hash, r->spool.hash) == 0;

    struct nm_slice l[2][NM_CACHECTL_MAX_LINES];
    struct nm_field cc_f = nm_cachectl_field(resp->headers, resp->n_headers, "Cache-Control", l[0],
                                             NM_CACHECTL_MAX_LINES);
    struct nm_field vary =
        nm_cachectl_field(resp->headers, resp->n_headers, "Vary", l[1], NM_CACHECTL_MAX_LINES);
    struct nm_cachectl cc;
    nm_cachectl_parse(cc_f, &cc);
    const char *why_not = NULL;
    if (r->o.no_store)
        why_not = "--no-store";
    else if (cc.flags & NM_CACHECTL_NO_STORE)
        why_not = "Cache-Control: no-store";
    else if (nm_cachectl_vary_is_any(vary))
        why_not = "Vary: *";

    /* Room for the longest line below: an int, the whole reason phrase, the size and the
     * longest fixed text, so the line is never cut. */
    char what[sizeof(resp->reason) + sizeof(sz) + 128];
    if (!r->have_entry)
        snprintf(what, sizeof(what), "%d %s, %s downloaded", resp->status, resp->reason, sz);
    else if (same)
        snprintf(what, sizeof(what), "%d %s, %s downloaded although unchanged%s", resp->status,
                 resp->reason, sz,
                 was_conditional ? " (the server did not honour the conditional request)" : "");
    else
        snprintf(what, sizeof(what), "%d %s, content changed: %s downloaded", resp->status,
                 resp->reason, sz);

    if (!why_not) {
        struct nm_store_entry *e = malloc(sizeof(*e));
        if (!e)
            return NM_EXIT_FAILURE;
        nm_store_entry_init(e);
        e->url = nm_slice_from_cstr(r->url);
        e->status = resp->status;
        e->request_time = resp->request_time;
        e->response_time = resp->response_time;
        struct nm_slice cl[NM_CACHECTL_MAX_LINES];
        struct nm_field conn = nm_cachectl_field(resp->headers, resp->n_headers, "Connection", cl,
                                                 NM_CACHECTL_MAX_LINES);
        for (size_t i = 0; i < resp->n_headers && e->n_headers < NM_STORE_MAX_HEADERS; i++)
            if (!nm_cachectl_is_unstorable(resp->headers[i].name, conn))
                e->headers[e->n_headers++] = resp->headers[i];
        /* §4.1: keep the request's values of the fields the response varies on. */
        struct nm_cachectl_token_iter it;
        struct nm_slice name;
        nm_cachectl_token_iter_init(&it, vary);
        while (nm_cachectl_token_iter_next(&it, &name))
            for (size_t i = 0; i < r->o.n_req && e->n_request < NM_STORE_MAX_REQUEST; i++)
                if (nm_slice_case_eq(r->o.req[i].name, name))
                    e->request[e->n_request++] = r->o.req[i];
        rc = nm_store_commit(&r->store, e, &r->spool);
        if (rc == 0) {
            r->spool_open = false;
            struct nm_freshness fr;
            freshness_of(r, e->headers, e->n_headers, e->status, e->request_time, e->response_time,
                         time(NULL), &fr);
            char fdesc[128];
            describe_freshness(&fr, fdesc, sizeof(fdesc));
            say(r, "%s, %s; %s", what,
                r->have_entry ? "replaced the cached copy" : "stored in the cache", fdesc);
            int status = deliver_entry(r, e);
            nm_store_entry_cleanup(e);
            free(e);
            if (status < 0) {
                warn(r, "the cache entry was damaged while in use: %s", strerror(-status));
                return NM_EXIT_FAILURE;
            }
            return status;
        }
        warn(r, "could not store the response: %s", strerror(-rc));
        nm_store_entry_cleanup(e);
        free(e);
    } else {
        say(r, "%s, not stored (%s)", what, why_not);
        if (r->have_entry && !r->o.no_store)
            nm_store_remove(&r->store, r->url);
    }
    int fd = nm_store_spool_open(&r->store, &r->spool);
    if (fd < 0) {
        warn(r, "cannot read the downloaded body: %s", strerror(-fd));
        return NM_EXIT_FAILURE;
    }
    int status = deliver(r, fd, r->spool.len, r->spool.hash);
    close(fd);
    return status;
}

/* Freshens the stored entry with a 304 (§4.3.4) and delivers the stored body. */
static int handle_304(struct run *r, struct nm_client_response *resp, int64_t resident_s)
{
    struct nm_store_entry *old = r->entry;
    struct nm_store_entry *e = malloc(sizeof(*e));
    if (!e)
        return NM_EXIT_FAILURE;
    nm_store_entry_init(e);
    e->url = old->url;
    e->status = old->status;
    e->request_time = resp->request_time;
    e->response_time = resp->response_time;
    e->body_len = old->body_len;
    memcpy(e->body_hash, old->body_hash, sizeof(e->body_hash));
    memcpy(e->body_name, old->body_name, sizeof(e->body_name));
    memcpy(e->request, old->request, old->n_request * sizeof(old->request[0]));
    e->n_request = old->n_request;
    int n = nm_cachectl_freshen(old->headers, old->n_headers, resp->headers, resp->n_headers,
                                e->headers, NM_STORE_MAX_HEADERS);
    char sz[32], ago[32], fdesc[128];
    nm__cli_size(old->body_len, sz, sizeof(sz));
    nm__cli_duration(resident_s, ago, sizeof(ago));
    if (n < 0) {
        warn(r, "the 304 has too many header lines to merge; the cached copy was not updated");
        e->n_headers = 0;
    } else {
        e->n_headers = (size_t)n;
        struct nm_slice l[NM_CACHECTL_MAX_LINES];
        struct nm_cachectl cc;
        nm_cachectl_parse(
            nm_cachectl_field(e->headers, e->n_headers, "Cache-Control", l, NM_CACHECTL_MAX_LINES),
            &cc);
        int rc;
        if ((cc.flags & NM_CACHECTL_NO_STORE) || r->o.no_store)
            rc = r->o.no_store ? 0 : nm_store_remove(&r->store, r->url);
        else
            rc = nm_store_save(&r->store, e);
        if (rc < 0 && rc != -ENOENT)
            warn(r, "could not update the cache entry: %s", strerror(-rc));
        struct nm_freshness fr;
        freshness_of(r, e->headers, e->n_headers, e->status, e->request_time, e->response_time,
                     time(NULL), &fr);
        describe_freshness(&fr, fdesc, sizeof(fdesc));
        say(r, "304 Not Modified, %s not downloaded, revalidated after %s; %s", sz, ago, fdesc);
    }
    int status = deliver_entry(r, old);
    nm_store_entry_cleanup(e);
    free(e);
    if (status < 0) {
        warn(r, "the cache entry was damaged while in use: %s", strerror(-status));
        return NM_EXIT_FAILURE;
    }
    return status;
}

static int run_get(struct run *r)
{
    struct opts *o = &r->o;
    int rc = nm_client_url_normalize(o->url, r->url, sizeof(r->url));
    if (rc == -EPROTONOSUPPORT) {
        fprintf(stderr, "notmod get: '%s': only http and https URLs are supported\n", o->url);
        return NM_EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "notmod get: '%s' is not a valid URL\n", o->url);
        return NM_EXIT_USAGE;
    }
    char dir[PATH_MAX];
    rc = nm__cli_cache_dir(o->cache_dir, dir, sizeof(dir));
    if (rc == 0)
        rc = nm_store_open(&r->store, dir);
    if (rc < 0) {
        fprintf(stderr, "notmod get: cannot use cache directory %s: %s\n",
                rc == -ENOENT && !o->cache_dir ? "(set HOME or --cache-dir)" : dir, strerror(-rc));
        return NM_EXIT_FAILURE;
    }
    r->store_open = true;
    if (o->output) {
        rc = prepare_output(r);
        if (rc < 0) {
            fprintf(stderr, "notmod get: cannot write %s: %s\n", o->output, strerror(-rc));
            return NM_EXIT_FAILURE;
        }
    }
    r->progress.enabled = o->progress == 1 || (o->progress == -1 && !o->quiet && isatty(2));

    r->entry = malloc(sizeof(*r->entry));
    if (!r->entry)
        return NM_EXIT_FAILURE;
    nm_store_entry_init(r->entry);
    rc = nm_store_load(&r->store, r->url, r->entry);
    if (rc == 0) {
        r->have_entry = true;
        memcpy(r->prev_hash, r->entry->body_hash, sizeof(r->prev_hash));
    } else if (rc == -EBADMSG) {
        warn(r, "the cached copy of %s is corrupt; fetching it again", r->url);
    } else if (rc != -ENOENT) {
        warn(r, "cannot read the cached copy of %s (%s); fetching it again", r->url, strerror(-rc));
    }

    int64_t now = time(NULL);
    struct nm_freshness fr = {0};
    if (r->have_entry && !o->reload) {
        const struct nm_store_entry *e = r->entry;
        struct nm_slice l[NM_CACHECTL_MAX_LINES];
        struct nm_field vary =
            nm_cachectl_field(e->headers, e->n_headers, "Vary", l, NM_CACHECTL_MAX_LINES);
        r->entry_usable =
            nm_cachectl_vary_matches(vary, e->request, e->n_request, o->req, o->n_req);
        if (!r->entry_usable)
            say(r, "the cached copy varies on request headers that differ now (Vary); not used");
        freshness_of(r, e->headers, e->n_headers, e->status, e->request_time, e->response_time, now,
                     &fr);
        if (r->entry_usable && fr.fresh && !o->revalidate) {
            char sz[32], age[32], fdesc[128];
            nm__cli_size(e->body_len, sz, sizeof(sz));
            nm__cli_duration(fr.current_age_s, age, sizeof(age));
            describe_freshness(&fr, fdesc, sizeof(fdesc));
            say(r, "fresh in cache: %s, age %s, %s; no request sent", sz, age, fdesc);
            int status = deliver_entry(r, e);
            if (status >= 0)
                return status;
            warn(r, "the cached copy of %s is corrupt; fetching it again", r->url);
            r->have_entry = r->entry_usable = false;
            r->prev_hash[0] = '\0';
        }
    }

    struct nm_header cond[2];
    size_t n_cond = r->entry_usable ? conditional_headers(r->entry, cond) : 0;
    rc = nm_client_global_init();
    if (rc == 0) {
        rc = nm_client_init(&r->client);
        if (rc < 0)
            nm_client_global_cleanup();
    }
    if (rc < 0) {
        fprintf(stderr, "notmod get: cannot start the HTTP client\n");
        return NM_EXIT_FAILURE;
    }
    r->client_open = true;

    struct nm_client_response *resp = malloc(sizeof(*resp));
    if (!resp)
        return NM_EXIT_FAILURE;
    nm_client_response_init(resp);
    int status;
    for (;;) {
        rc = begin_spool(r);
        if (rc < 0) {
            warn(r, "cannot write to the cache directory %s: %s", dir, strerror(-rc));
            status = NM_EXIT_FAILURE;
            break;
        }
        rc = fetch(r, cond, n_cond, resp);
        if (rc < 0) {
            status = network_failure(r, rc, resp, r->entry_usable ? &fr : NULL);
            break;
        }
        if (resp->status == 200) {
            status = handle_200(r, resp, n_cond > 0);
            break;
        }
        if (resp->status != 304) {
            status = http_failure(r, resp);
            break;
        }
        if (n_cond == 0) {
            warn(r, "%s: the server answered 304 Not Modified to a request without conditions",
                 r->url);
            status = NM_EXIT_HTTP;
            break;
        }
        enum nm_cachectl_select sel = nm_cachectl_select_304(
            r->entry->headers, r->entry->n_headers, resp->headers, resp->n_headers, time(NULL));
        if (sel != NM_CACHECTL_SELECT_MISMATCH) {
            status = handle_304(r, resp, (int64_t)time(NULL) - r->entry->response_time);
            break;
        }
        /* §4.3.4: a 304 for another representation must not freshen the stored one. */
        struct nm_slice l[2];
        struct nm_field got = nm_cachectl_field(resp->headers, resp->n_headers, "ETag", l, 1);
        struct nm_field had =
            nm_cachectl_field(r->entry->headers, r->entry->n_headers, "ETag", l + 1, 1);
        struct nm_slice none = NM_SLICE_LIT("(none)");
        struct nm_slice g = got.n_lines ? got.lines[0] : none,
                        h = had.n_lines ? had.lines[0] : none;
        say(r,
            "the 304 names ETag %.*s but the cached copy has %.*s; not used, fetching again "
            "without conditions",
            (int)g.len, g.ptr, (int)h.len, h.ptr);
        end_spool(r);
        n_cond = 0;
        r->entry_usable = false;
    }
    end_spool(r);
    nm_client_response_cleanup(resp);
    free(resp);
    if (status == NM_EXIT_OK && o->if_changed && !r->changed)
        status = NM_EXIT_UNCHANGED;
    return status;
}

int nm_cmd_get(int argc, char **argv)
{
    struct run *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "notmod get: out of memory\n");
        return NM_EXIT_FAILURE;
    }
    r->out_fd = -1;
    int rc = parse_opts(argc, argv, &r->o);
    if (rc != 0) {
        free(r);
        return rc > 0 ? NM_EXIT_OK : NM_EXIT_USAGE;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = run_get(r);

    drop_output_tmp(r);
    end_spool(r);
    if (r->entry) {
        nm_store_entry_cleanup(r->entry);
        nm_buf_cleanup(&r->entry->text);
        free(r->entry);
    }
    if (r->client_open) {
        nm_client_cleanup(&r->client);
        nm_client_global_cleanup();
    }
    if (r->store_open)
        nm_store_cleanup(&r->store);
    free(r);
    return status;
}
