/* notmod get URL: a download through a private RFC 9111 cache. The options, the progress bar,
 * what is said to people, and the output, written only when a complete, verified body is in
 * hand; the fetch policy itself (reuse, revalidation, 304s, storing) is src/client/policy.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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
#include "notmod/token.h"

#define MAX_REQ_HEADERS NM_STORE_MAX_REQUEST /* the request lines an entry keeps */

struct opts {
    const char *url;
    const char *output;
    const char *cache_dir;
    /* ints: getopt_long sets them (struct option's flag) */
    int no_heuristic;
    int revalidate;
    int reload;
    int no_store;
    int stale_if_error;
    int if_changed;
    int progress; /* -1 auto, 0 off, 1 on */
    bool follow;
    bool verbose;
    bool quiet;
    long timeout_s;
    long connect_timeout_s;
    uint64_t max_size; /* 0: no limit */
    struct nm_http1_field req[MAX_REQ_HEADERS];
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
        "      --max-size BYTES  abandon a body larger than BYTES (announced or received):\n"
        "                        nothing is stored or written, exit 5\n"
        "  -L, --location        follow redirects (at most 10)\n"
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
        "  5  HTTP error: a status other than 200 or 304, an unusable response, or a body\n"
        "     over --max-size\n"
        "  130  interrupted\n");
}

static int parse_seconds(const char *s, long *out)
{
    uint64_t v;
    if (nm_parse_u64(s, 86400, &v) != 0 || v == 0)
        return -EINVAL;
    *out = (long)v;
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    uint64_t v;
    if (nm_parse_u64(s, UINT64_MAX, &v) != 0 || v == 0)
        return -EINVAL;
    *out = v;
    return 0;
}

static int add_header_opt(struct opts *o, const char *arg)
{
    if (o->n_req == MAX_REQ_HEADERS) {
        fprintf(stderr, "notmod get: at most %d -H options\n", MAX_REQ_HEADERS);
        return -EINVAL;
    }
    int rc = nm_client_parse_header_option(arg, &o->req[o->n_req]);
    if (rc == -EPERM) {
        fprintf(stderr,
                "notmod get: -H '%s': conditional and Range headers are sent by notmod get "
                "itself\n",
                arg);
        return -EINVAL;
    }
    if (rc < 0) {
        fprintf(stderr, "notmod get: -H '%s' is not 'Name: value'\n", arg);
        return -EINVAL;
    }
    o->n_req++;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    enum { OPT_CACHE_DIR = 256, OPT_TIMEOUT, OPT_CONNECT_TIMEOUT, OPT_MAX_SIZE };
    *o = (struct opts){.progress = -1, .timeout_s = 30, .connect_timeout_s = 10};
    /* The flags getopt_long sets itself: it returns 0 for them. */
    const struct option longs[] = {
        {"output", required_argument, NULL, 'o'},
        {"header", required_argument, NULL, 'H'},
        {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
        {"no-heuristic", no_argument, &o->no_heuristic, 1},
        {"revalidate", no_argument, &o->revalidate, 1},
        {"reload", no_argument, &o->reload, 1},
        {"no-store", no_argument, &o->no_store, 1},
        {"stale-if-error", no_argument, &o->stale_if_error, 1},
        {"if-changed", no_argument, &o->if_changed, 1},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
        {"progress", no_argument, &o->progress, 1},
        {"no-progress", no_argument, &o->progress, 0},
        {"location", no_argument, NULL, 'L'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = nm__cli_getopt("get", argc, argv, "o:H:Lvqh", longs)) != -1) {
        switch (c) {
        case 0:
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'H':
            if (add_header_opt(o, optarg) < 0)
                return -EINVAL;
            break;
        case OPT_CACHE_DIR:
            o->cache_dir = optarg;
            break;
        case OPT_TIMEOUT:
        case OPT_CONNECT_TIMEOUT:
            if (parse_seconds(optarg, c == OPT_TIMEOUT ? &o->timeout_s : &o->connect_timeout_s)) {
                fprintf(stderr, "notmod get: '%s' is not a number of seconds (1-86400)\n", optarg);
                return -EINVAL;
            }
            break;
        case OPT_MAX_SIZE:
            if (parse_bytes(optarg, &o->max_size)) {
                fprintf(stderr, "notmod get: --max-size '%s' is not a number of bytes\n", optarg);
                return -EINVAL;
            }
            break;
        case 'L':
            o->follow = true;
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
    bool eta; /* stderr is a terminal */
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
    char a[32], b[32], r[32], eta[48] = "";
    double secs = since(&p->start);
    if (p->eta && total > got && got > 0 && secs > 0) {
        /* From the average rate since the exchange began. */
        char d[32];
        nm__cli_duration((int64_t)((double)(total - got) * secs / (double)got), d, sizeof(d));
        snprintf(eta, sizeof(eta), ", ETA %s", d);
    }
    nm__cli_size(got, a, sizeof(a));
    nm__cli_size(secs > 0 ? (uint64_t)((double)got / secs) : 0, r, sizeof(r));
    if (total > 0 && got <= total) {
        int width = 30, fill = (int)((double)got / (double)total * width);
        char bar[31];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[width] = '\0';
        nm__cli_size(total, b, sizeof(b));
        fprintf(stderr, "\r%3d%% [%s] %s of %s, %s/s%s\033[K",
                (int)((double)got * 100.0 / (double)total), bar, a, b, r, eta);
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

/* Everything one run works with; released by nm_cmd_get. */
struct run {
    struct opts o;
    struct nm_fetch fetch;
    char url[NM_CLIENT_URL_MAX];
    char dir[PATH_MAX];
    struct nm_store store;
    bool store_open;
    struct nm_client client;
    bool client_open;
    struct progress progress;
    char out_tmp[PATH_MAX];
    int out_fd;
    bool changed;
    bool too_big; /* the transfer was abandoned for --max-size */
};

static int on_progress(void *ctx, uint64_t got, uint64_t total)
{
    struct run *r = ctx;
    if (interrupted)
        return -ECANCELED;
    if (r->o.max_size && (got > r->o.max_size || total > r->o.max_size)) {
        r->too_big = true;
        return -EFBIG;
    }
    struct progress *p = &r->progress;
    if (!p->enabled || got == 0 || since(&p->start) < 0.5 || since(&p->last) < 0.1)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    progress_draw(p, got, total);
    return 0;
}

/* One exchange with the timeouts of the options, under the progress bar. */
static int perform(void *ctx, struct nm_client_request *req, struct nm_client_response *resp)
{
    struct run *r = ctx;
    req->connect_timeout_ms = r->o.connect_timeout_s * 1000;
    req->stall_timeout_s = r->o.timeout_s;
    clock_gettime(CLOCK_MONOTONIC, &r->progress.start);
    r->progress.last = r->progress.start;
    int rc = nm_client_perform(&r->client, req, resp);
    progress_end(&r->progress);
    return rc;
}

/* Messages carry reason phrases, Location and ETag values from the server: escaped whole. */
__attribute__((format(printf, 1, 0))) static void vnote(const char *fmt, va_list ap)
{
    char msg[8192];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    fprintf(stderr, "notmod get: ");
    nm__cli_put_escaped(stderr, msg);
    fprintf(stderr, "\n");
}

/* What happened, with -v. */
static void say(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const struct run *r, const char *fmt, ...)
{
    if (!r->o.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
}

/* What went wrong, unless -q. */
static void warn(const struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(const struct run *r, const char *fmt, ...)
{
    if (r->o.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
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

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int copy_fd(int from, int to)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(from, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        int rc = n < 0 ? -errno : write_all(to, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
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

/* True when -o FILE already holds len bytes with this hash; writes its mode to *mode when it is a
 * regular file (else leaves it). */
static bool output_is_same(const struct run *r, uint64_t len, const char *hash, mode_t *mode)
{
    int old = open(r->o.output, O_RDONLY | O_CLOEXEC);
    if (old < 0)
        return false;
    struct stat st;
    char old_hash[NM_STORE_HASH_LEN + 1];
    uint64_t old_len;
    bool same = false;
    if (fstat(old, &st) == 0 && S_ISREG(st.st_mode)) {
        *mode = st.st_mode & 07777;
        same = (uint64_t)st.st_size == len && nm_store_hash_fd(old, old_hash, &old_len) == 0 &&
               old_len == len && strcmp(old_hash, hash) == 0;
    }
    close(old);
    return same;
}

/* Writes the body in fd (len bytes, hash) to stdout or -o FILE, and notes whether the content
 * changed. Returns 0, or a negative errno once it has said why. */
static int deliver(void *ctx, int fd, uint64_t len, const char *hash)
{
    struct run *r = ctx;
    const char *prev = r->fetch.prev_hash;
    char sz[32];
    nm__cli_size(len, sz, sizeof(sz));
    if (!r->o.output) {
        r->changed = !prev[0] || strcmp(prev, hash) != 0;
        int rc = copy_fd(fd, STDOUT_FILENO);
        if (rc < 0)
            warn(r, "cannot write to standard output: %s", strerror(-rc));
        return rc;
    }
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = 0666 & ~mask;
    if (output_is_same(r, len, hash, &mode)) {
        drop_output_tmp(r);
        r->changed = false;
        say(r, "%s unchanged (%s), left untouched", r->o.output, sz);
        return 0;
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
        return rc;
    }
    r->out_tmp[0] = '\0';
    r->changed = true;
    say(r, "wrote %s (%s)", r->o.output, sz);
    return 0;
}

/* What a 200 was and what became of it. */
static void say_200(const struct run *r, const struct nm_fetch_note *n)
{
    static const char *const why_not[] = {
        [NM_POLICY_STORE_UNWANTED] = "--no-store",
        [NM_POLICY_STORE_NO_STORE] = "Cache-Control: no-store",
        [NM_POLICY_STORE_VARY_ANY] = "Vary: *",
    };
    const struct nm_client_response *resp = n->resp;
    char sz[32];
    nm__cli_size(n->body_len, sz, sizeof(sz));
    /* Room for the longest line below: an int, the whole reason phrase, the size and the
     * longest fixed text, so the line is never cut. */
    char what[sizeof(resp->reason) + sizeof(sz) + 128];
    if (!n->replaced)
        snprintf(what, sizeof(what), "%d %s, %s downloaded", resp->status, resp->reason, sz);
    else if (n->same)
        snprintf(what, sizeof(what), "%d %s, %s downloaded although unchanged%s", resp->status,
                 resp->reason, sz,
                 n->conditional ? " (the server did not honour the conditional request)" : "");
    else
        snprintf(what, sizeof(what), "%d %s, content changed: %s downloaded", resp->status,
                 resp->reason, sz);
    if (n->event == NM_FETCH_EVENT_NOT_STORED) {
        say(r, "%s, not stored (%s)", what, why_not[n->store]);
        return;
    }
    char fdesc[128];
    describe_freshness(n->freshness, fdesc, sizeof(fdesc));
    say(r, "%s, %s; %s", what, n->replaced ? "replaced the cached copy" : "stored in the cache",
        fdesc);
}

/* §4.3.4: a 304 for another representation, before the fetch without conditions. */
static void say_mismatch(const struct run *r, const struct nm_fetch_note *n)
{
    struct nm_slice l[2];
    struct nm_field got = nm_cachectl_field(n->resp->headers, n->resp->n_headers, "ETag", l, 1);
    struct nm_field had =
        nm_cachectl_field(n->entry->headers, n->entry->n_headers, "ETag", l + 1, 1);
    struct nm_slice none = NM_SLICE_LIT("(none)");
    struct nm_slice g = got.n_lines ? got.lines[0] : none, h = had.n_lines ? had.lines[0] : none;
    say(r,
        "the 304 names ETag %.*s but the cached copy has %.*s; not used, fetching again "
        "without conditions",
        (int)g.len, g.ptr, (int)h.len, h.ptr);
}

static void say_http_error(const struct run *r, const struct nm_client_response *resp)
{
    struct nm_slice l[1];
    struct nm_field loc = nm_cachectl_field(resp->headers, resp->n_headers, "Location", l, 1);
    if (resp->status >= 300 && resp->status < 400 && nm_field_is_present(loc))
        warn(r, "%s: HTTP %d %s, Location: %.*s (redirects are followed with -L)",
             r->fetch.final_url, resp->status, resp->reason, (int)loc.lines[0].len,
             loc.lines[0].ptr);
    else
        warn(r, "%s: HTTP %d %s", r->fetch.final_url, resp->status, resp->reason);
}

static void say_redirect(const struct run *r, const struct nm_fetch_note *n)
{
    static const char *const stored[] = {
        [NM_POLICY_STORE] = "stored",
        [NM_POLICY_STORE_UNWANTED] = "not stored: --no-store",
        [NM_POLICY_STORE_NO_STORE] = "not stored: Cache-Control: no-store",
        [NM_POLICY_STORE_VARY_ANY] = "not stored: Vary: *",
        [NM_POLICY_STORE_NO_FRESHNESS] = "not stored: no explicit freshness",
    };
    if (!n->resp)
        say(r, "redirect (%d) fresh in cache, no request sent; following to %s", n->entry->status,
            n->location);
    else
        say(r, "%d %s (%s); following to %s", n->resp->status, n->resp->reason, stored[n->store],
            n->location);
}

static void say_resumed(const struct run *r, const struct nm_fetch_note *n)
{
    char sz[32], from[32], fdesc[128];
    nm__cli_size(n->body_len, sz, sizeof(sz));
    nm__cli_size(n->resumed_from, from, sizeof(from));
    describe_freshness(n->freshness, fdesc, sizeof(fdesc));
    say(r, "%d %s, resumed after %s: %s in all, stored in the cache; %s", n->resp->status,
        n->resp->reason, from, sz, fdesc);
}

/* Says what the fetch reports: what happened with -v, what went wrong unless -q. */
static void note(void *ctx, const struct nm_fetch_note *n)
{
    const struct run *r = ctx;
    char sz[32], age[32], fdesc[128];
    switch (n->event) {
    case NM_FETCH_EVENT_CORRUPT:
        warn(r, "the cached copy of %s is corrupt; fetching it again", r->url);
        break;
    case NM_FETCH_EVENT_UNREADABLE:
        warn(r, "cannot read the cached copy of %s (%s); fetching it again", r->url,
             strerror(-n->err));
        break;
    case NM_FETCH_EVENT_VARIES:
        say(r, "the cached copy varies on request headers that differ now (Vary); not used");
        break;
    case NM_FETCH_EVENT_FRESH:
        nm__cli_size(n->entry->body_len, sz, sizeof(sz));
        nm__cli_duration(n->freshness->current_age_s, age, sizeof(age));
        describe_freshness(n->freshness, fdesc, sizeof(fdesc));
        say(r, "fresh in cache: %s, age %s, %s; no request sent", sz, age, fdesc);
        break;
    case NM_FETCH_EVENT_MISMATCH:
        say_mismatch(r, n);
        break;
    case NM_FETCH_EVENT_STORED:
    case NM_FETCH_EVENT_NOT_STORED:
        say_200(r, n);
        break;
    case NM_FETCH_EVENT_STORE_FAILED:
        warn(r, "could not store the response: %s", strerror(-n->err));
        break;
    case NM_FETCH_EVENT_FRESHENED:
        nm__cli_size(n->entry->body_len, sz, sizeof(sz));
        nm__cli_duration(n->resident_s, age, sizeof(age));
        describe_freshness(n->freshness, fdesc, sizeof(fdesc));
        say(r, "304 Not Modified, %s not downloaded, revalidated after %s; %s", sz, age, fdesc);
        break;
    case NM_FETCH_EVENT_MERGE_TOO_BIG:
        warn(r, "the 304 has too many header lines to merge; the cached copy was not updated");
        break;
    case NM_FETCH_EVENT_UPDATE_FAILED:
        warn(r, "could not update the cache entry: %s", strerror(-n->err));
        break;
    case NM_FETCH_EVENT_STALE:
        nm__cli_duration(n->freshness->current_age_s, age, sizeof(age));
        warn(r, "%s: %s; using the stale cached copy (age %s)", r->url, n->resp->error, age);
        break;
    case NM_FETCH_EVENT_SPOOL_FAILED:
        warn(r, "cannot write to the cache directory %s: %s", r->dir, strerror(-n->err));
        break;
    case NM_FETCH_EVENT_CACHE_WRITE:
        warn(r, "cannot write to the cache directory: %s", strerror(-n->err));
        break;
    case NM_FETCH_EVENT_BODY_LOST:
        warn(r, "cannot read the downloaded body: %s", strerror(-n->err));
        break;
    case NM_FETCH_EVENT_DAMAGED:
        warn(r, "the cache entry was damaged while in use: %s", strerror(-n->err));
        break;
    case NM_FETCH_EVENT_INTERRUPTED:
        warn(r, "interrupted; the cache and the output were left as they were");
        break;
    case NM_FETCH_EVENT_BAD_URL:
    case NM_FETCH_EVENT_NETWORK:
        if (r->too_big)
            warn(r,
                 "%s: the body is larger than --max-size %" PRIu64 " bytes; abandoned, nothing "
                 "stored",
                 r->url, r->o.max_size);
        else
            warn(r, "%s: %s", r->url, n->resp->error);
        break;
    case NM_FETCH_EVENT_HTTP:
        say_http_error(r, n->resp);
        break;
    case NM_FETCH_EVENT_STRAY_304:
        warn(r, "%s: the server answered 304 Not Modified to a request without conditions", r->url);
        break;
    case NM_FETCH_EVENT_TOO_MANY_REDIRECTS:
        warn(r, "%s: more than %d redirects", r->url, NM_POLICY_MAX_REDIRECTS);
        break;
    case NM_FETCH_EVENT_BAD_LOCATION:
        warn(r, "%s: a redirect without a usable Location", r->fetch.final_url);
        break;
    case NM_FETCH_EVENT_REDIRECT:
        say_redirect(r, n);
        break;
    case NM_FETCH_EVENT_PARTIAL_KEPT:
        nm__cli_size(n->body_len, sz, sizeof(sz));
        warn(r, "kept the %s received in the cache; the next run resumes from there", sz);
        break;
    case NM_FETCH_EVENT_RESUMING:
        nm__cli_size(n->resumed_from, sz, sizeof(sz));
        say(r, "resuming after the %s kept from an interrupted download", sz);
        break;
    case NM_FETCH_EVENT_RESUME_REFUSED:
        say(r, "%d %s does not continue the kept partial download; discarded, starting from 0",
            n->resp->status, n->resp->reason);
        break;
    case NM_FETCH_EVENT_RESUMED:
        say_resumed(r, n);
        break;
    }
}

/* Checks the URL and opens the cache directory, the output and the HTTP client, before the
 * fetch. Returns 0, or the exit status of a failure (never 0). */
static int open_run(struct run *r)
{
    const struct opts *o = &r->o;
    int rc = nm_client_url_normalize(o->url, r->url, sizeof(r->url));
    if (rc == -EPROTONOSUPPORT) {
        fprintf(stderr, "notmod get: '%s': only http and https URLs are supported\n", o->url);
        return NM_EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "notmod get: '%s' is not a valid URL\n", o->url);
        return NM_EXIT_USAGE;
    }
    rc = nm__cli_cache_dir(o->cache_dir, r->dir, sizeof(r->dir));
    if (rc == 0 && nm__cli_refuse_shared_dir("get", "cache directory", r->dir) == -EPERM)
        return NM_EXIT_FAILURE;
    if (rc == 0)
        rc = nm_store_open(&r->store, r->dir);
    if (rc < 0) {
        fprintf(stderr, "notmod get: cannot use cache directory %s: %s\n",
                rc == -ENOENT && !o->cache_dir ? "(set HOME or --cache-dir)" : r->dir,
                strerror(-rc));
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
    r->progress.eta = isatty(2);
    r->progress.enabled = o->progress == 1 || (o->progress == -1 && !o->quiet && r->progress.eta);
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
    return 0;
}

static int run_get(struct run *r)
{
    static const int exit_of[] = {
        [NM_FETCH_DELIVERED] = NM_EXIT_OK,     [NM_FETCH_FAILED_LOCAL] = NM_EXIT_FAILURE,
        [NM_FETCH_FAILED_URL] = NM_EXIT_USAGE, [NM_FETCH_FAILED_NETWORK] = NM_EXIT_NETWORK,
        [NM_FETCH_FAILED_HTTP] = NM_EXIT_HTTP, [NM_FETCH_INTERRUPTED] = NM_EXIT_INTERRUPTED,
    };
    static const struct nm_fetch_hooks hooks = {
        .perform = perform,
        .progress = on_progress,
        .note = note,
        .deliver = deliver,
    };
    int status = open_run(r);
    if (status != 0)
        return status;
    const struct opts *o = &r->o;
    struct nm_fetch_hooks h = hooks;
    h.ctx = r;
    r->fetch = (struct nm_fetch){
        .policy =
            {
                .heuristic = !o->no_heuristic,
                .revalidate = o->revalidate,
                .reload = o->reload,
                .no_store = o->no_store,
                .stale_if_error = o->stale_if_error,
                .follow = o->follow,
            },
        .accept_encoding = nm_client_accept_encoding(),
        .url = r->url,
        .req = o->req,
        .n_req = o->n_req,
        .store = &r->store,
        .hooks = &h,
    };
    enum nm_fetch_result result = nm_fetch_run(&r->fetch);
    if (o->follow && strcmp(r->fetch.final_url, r->url) != 0)
        say(r, "final URL: %s", r->fetch.final_url);
    status = exit_of[result];
    if (r->too_big && result == NM_FETCH_FAILED_NETWORK)
        status = NM_EXIT_HTTP;
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
    if (r->client_open) {
        nm_client_cleanup(&r->client);
        nm_client_global_cleanup();
    }
    if (r->store_open)
        nm_store_cleanup(&r->store);
    free(r);
    return status;
}
