/* The server's lifecycle: the root, the MIME table, content hashing and the manifest, the access
 * log, the listeners, the workers; signals (stop, log reopening) and a graceful stop. */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etags/etags.h"
#include "listen.h"
#include "log.h"
#include "privs.h"
#include "scrape.h"
#include "send.h"
#include "systemd.h"
#include "tls.h"
#include "worker.h"

struct nm_server {
    const struct nm_config *cfg;
    int root_fd;
    struct nm_mime_table *mime;
    struct nm_listeners listeners;
    unsigned n_workers;
    int log_fd;
    struct nm_hashing *hashing;    /* content ETags: memo, pool, manifest; NULL in other modes */
    struct nm_variants_cache *fly; /* variants made on the fly; NULL when off */
    struct nm_send_aborts aborts;
    struct nm_tls *tls;             /* NULL without a TLS listener */
    struct nm_worker_shared shared; /* what the workers read, set up by nm_server_run */
    nm_server_reload_fn *reload;    /* NULL: SIGHUP only reopens the log */
    void *reload_arg;
    struct nm_confgen_slot config; /* the current settings, from nm_server_run on */
    bool has_config;
    struct nm_metrics *metrics; /* --metrics: the workers' counters; NULL when off */
    struct nm_scrape *scrape;   /* and their listener */
};

/* The access log never blocks a worker: its descriptor is non-blocking, and lines that a stalled
 * reader (a full pipe) cannot take are dropped and counted. Standard output is reopened through
 * /proc so that the flag does not change the description the parent shares. */
static int open_log(const struct nm_config *cfg)
{
    if (!cfg->access_log)
        return -1;
    const char *path = strcmp(cfg->access_log, "-") == 0 ? "/proc/self/fd/1" : cfg->access_log;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0 && path[0] == '/' && strcmp(cfg->access_log, "-") == 0)
        return STDOUT_FILENO; /* no /proc: stdout as it is */
    return fd;
}

static void warn_manifest(void *arg, const char *path, const char *why)
{
    (void)arg;
    nm_log_error("manifest entry %s ignored: %s", path, why);
}

/* Content ETags: the hashing pool, and the manifest checked against the tree before serving. */
static int setup_hashing(struct nm_server *s, char *err, size_t err_cap)
{
    const struct nm_config *cfg = s->cfg;
    if (cfg->etag_mode != NM_ETAG_CONTENT)
        return 0;
    struct nm_hashing_options o;
    nm_hashing_options_init(&o);
    o.small_file_bytes = cfg->small_file_bytes;
    o.warn = nm_log_error;
    /* The served tree is written only when the operator asks for attributes. */
    o.persist = cfg->etag_store == NM_ETAG_STORE_XATTR;
    struct stat root_st;
    if (cfg->etag_store == NM_ETAG_STORE_DIR && cfg->etag_store_dir &&
        fstat(s->root_fd, &root_st) == 0) {
        o.store_dir = cfg->etag_store_dir;
        o.root_dev = (uint64_t)root_st.st_dev;
        o.root_ino = (uint64_t)root_st.st_ino;
    }
    int rc = nm_hashing_new(&o, &s->hashing);
    if (rc < 0 && o.store_dir)
        snprintf(err, err_cap, "cannot open the ETag store in %s: %s", o.store_dir, strerror(-rc));
    else if (rc < 0)
        snprintf(err, err_cap, "cannot start the hashing threads: %s", strerror(-rc));
    if (rc < 0)
        return rc;
    if (!cfg->etag_manifest)
        return 0;
    FILE *f = fopen(cfg->etag_manifest, "rb");
    struct nm_buf text;
    nm_buf_init(&text, (size_t)1 << 30);
    rc = f ? 0 : -errno;
    while (rc == 0) {
        rc = nm_buf_reserve(&text, 1 << 16);
        if (rc < 0)
            break;
        size_t n = fread(text.ptr + text.len, 1, text.cap - text.len, f);
        text.len += n;
        if (n == 0) {
            rc = ferror(f) ? -EIO : 1;
            break;
        }
    }
    if (f)
        fclose(f);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot read manifest %s: %s", cfg->etag_manifest, strerror(-rc));
        nm_buf_cleanup(&text);
        return rc;
    }
    struct nm_manifest *m;
    size_t line = 0;
    const char *what = NULL;
    rc = nm_manifest_parse(text.ptr ? text.ptr : "", text.len, &m, &line, &what);
    nm_buf_cleanup(&text);
    if (rc < 0) {
        snprintf(err, err_cap, "manifest %s, line %zu: %s", cfg->etag_manifest, line,
                 what ? what : strerror(-rc));
        return rc == -EINVAL ? -EBADMSG : rc; /* a bad file, not a bad option */
    }
    size_t total = nm_manifest_count(m);
    rc = nm_hashing_use_manifest(s->hashing, s->root_fd, m, warn_manifest, NULL);
    if (rc < 0) {
        snprintf(err, err_cap, "manifest %s: %s", cfg->etag_manifest, strerror(-rc));
        return rc;
    }
    nm_log_error("manifest %s: %d of %zu entries match the tree", cfg->etag_manifest, rc, total);
    return 0;
}

/* The counters are diagnostics, which -q silences like the startup line. */
/* Variants made on the fly are keyed by content hashes: content ETags only. */
static int setup_fly(struct nm_server *s, char *err, size_t err_cap)
{
    const struct nm_config *cfg = s->cfg;
    if (!cfg->compress || cfg->etag_mode != NM_ETAG_CONTENT)
        return 0;
    struct nm_variants_cache_options o;
    nm_variants_cache_options_init(&o);
    o.budget_bytes = cfg->compress_cache_bytes;
    int rc = nm_variants_cache_new(&o, &s->fly);
    if (rc < 0)
        snprintf(err, err_cap, "cannot start the compression thread: %s", strerror(-rc));
    return rc;
}

static void log_hashing(const struct nm_server *s, const char *when)
{
    struct nm_hashing *h = s->hashing;
    struct nm_hashing_stats st;
    char line[512];
    if (s->cfg->quiet)
        return;
    nm_hashing_get_stats(h, &st);
    if (nm_hashing_format_stats(&st, line, sizeof(line)) > 0)
        nm_log_error("hashing %s: %s", when, line);
}

static void prehash_done(struct nm_hashing *h, void *arg)
{
    (void)h;
    log_hashing(arg, "after prehash");
}

/* Descriptors are connections and open files: take all the kernel allows us, and say when that
 * is fewer than --max-connections needs (one each, and some for files and the server). */
static void raise_file_limit(const struct nm_config *cfg)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            getrlimit(RLIMIT_NOFILE, &lim);
    }
    if (lim.rlim_cur != RLIM_INFINITY && (rlim_t)cfg->max_conns + 256 > lim.rlim_cur)
        nm_log_error("--max-connections %u is more than the open file limit (%llu) allows: "
                     "connections past it wait (raise the hard limit: ulimit -Hn, LimitNOFILE=)",
                     cfg->max_conns, (unsigned long long)lim.rlim_cur);
}

int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap)
{
    struct nm_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->log_fd = -1;
    nm_send_aborts_init(&s->aborts);
    int rc;
    s->root_fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        rc = -errno;
        snprintf(err, err_cap, "cannot serve %s: %s", cfg->root, strerror(errno));
        goto fail;
    }
    rc = nm_mime_table_new("/etc/mime.types", &s->mime);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot build the MIME table: %s", strerror(-rc));
        goto fail;
    }
    rc = setup_hashing(s, err, err_cap);
    if (rc < 0)
        goto fail;
    rc = setup_fly(s, err, err_cap);
    if (rc < 0)
        goto fail;
    if (cfg->access_log) {
        s->log_fd = open_log(cfg);
        if (s->log_fd < 0) {
            rc = -errno;
            snprintf(err, err_cap, "cannot open access log %s: %s", cfg->access_log,
                     strerror(errno));
            goto fail;
        }
    }
    raise_file_limit(cfg);
    rc = nm_tls_new(cfg, &s->tls, err, err_cap);
    if (rc < 0)
        goto fail;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = cfg->workers ? cfg->workers : (unsigned)(cpus > 0 ? cpus : 1);
    /* Every worker's socket is bound here, so that a port in use fails the start. */
    rc = nm_listen_init(&s->listeners, cfg, s->n_workers, err, err_cap);
    if (rc < 0)
        goto fail;
    if (cfg->metrics_listen) {
        rc = nm_metrics_new(s->n_workers, &s->metrics);
        if (rc == 0)
            rc = nm_scrape_bind(cfg->metrics_listen, &s->scrape, err, err_cap);
        if (rc < 0)
            goto fail;
    }
    /* Bound (port 80 needs root or a capability): root is given up before anything is served. */
    rc = nm_privs_drop(cfg->run_user, cfg->run_group, err, err_cap);
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    nm_server_free(s);
    return rc;
}

const char *nm_server_address(const struct nm_server *s, size_t i)
{
    return i < s->listeners.n ? s->listeners.l[i].url : NULL;
}

void nm_server_free(struct nm_server *s)
{
    if (!s)
        return;
    nm_scrape_free(s->scrape); /* its thread reads the counters and the gauges below */
    nm_metrics_free(s->metrics);
    nm_listen_cleanup(&s->listeners);
    nm_tls_free(s->tls);
    nm_send_aborts_cleanup(&s->aborts);
    if (s->log_fd > STDERR_FILENO)
        close(s->log_fd);
    nm_variants_cache_free(s->fly);
    nm_hashing_free(s->hashing);
    if (s->root_fd >= 0)
        close(s->root_fd);
    nm_mime_table_free(s->mime);
    free(s);
}

void nm_server_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    /* Lease break notices are read by each worker from a signalfd (filecache.h). */
    sigaddset(&set, nm_filecache_lease_signal());
    sigaddset(&set, SIGIO);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void reopen_log(struct nm_server *s)
{
    if (s->log_fd <= STDERR_FILENO)
        return;
    int fd = open_log(s->cfg);
    if (fd < 0) {
        nm_log_error("cannot reopen %s: %s", s->cfg->access_log, strerror(errno));
        return;
    }
    /* dup2 swaps the file under the same number, so workers never see a closed descriptor. */
    dup2(fd, s->log_fd);
    close(fd);
}

void nm_server_set_reload(struct nm_server *s, nm_server_reload_fn *fn, void *arg)
{
    s->reload = fn;
    s->reload_arg = arg;
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* What the running server was built with and cannot change without a restart: the threads, the
 * hashing and compression machinery, the log descriptor. NULL when nothing is. */
static const char *restart_only_change(const struct nm_config *a, const struct nm_config *b)
{
    if (a->workers != b->workers)
        return "workers";
    if (a->etag_mode != b->etag_mode || strcmp(a->etag_version, b->etag_version) != 0)
        return "etag";
    if (!same_string(a->etag_manifest, b->etag_manifest))
        return "etag_manifest";
    if (a->compress != b->compress || a->compress_cache_bytes != b->compress_cache_bytes)
        return "compress";
    if (!same_string(a->access_log, b->access_log) || a->quiet != b->quiet)
        return "access_log";
    /* The TLS contexts are made at start for the listeners then (a SIGHUP re-reads their files). */
    bool tls = a->n_tls_names || b->n_tls_names;
    for (size_t i = 0; i < NM_CONFIG_MAX_LISTEN; i++) {
        tls = tls || a->tls_cert[i] || b->tls_cert[i];
        if (!same_string(a->tls_cert[i], b->tls_cert[i]) ||
            !same_string(a->tls_key[i], b->tls_key[i]))
            return "tls";
    }
    if (a->n_tls_names != b->n_tls_names)
        return "tls";
    if (a->h2c != b->h2c)
        return "h2c";
    if (tls && a->n_listen != b->n_listen)
        return "listen (beside TLS listeners)";
    for (size_t i = 0; tls && i < a->n_listen; i++)
        if (strcmp(a->listen[i], b->listen[i]) != 0)
            return "listen (beside TLS listeners)";
    /* Privileges are given up once; the metrics listener is bound at start. */
    if (!same_string(a->run_user, b->run_user) || !same_string(a->run_group, b->run_group))
        return "user";
    if (!same_string(a->metrics_listen, b->metrics_listen))
        return "metrics";
    return NULL;
}

/* The addresses a reload added (in next, not moved from prev) and removed (left in prev). */
static void log_listeners(const struct nm_listeners *next, const struct nm_listeners *prev)
{
    for (size_t i = 0; i < next->n; i++) {
        bool kept = false;
        for (size_t k = 0; k < prev->n && !kept; k++)
            kept = !prev->l[k].fds && strcmp(prev->l[k].url, next->l[i].url) == 0;
        if (!kept)
            nm_log_error("listening on %s", next->l[i].url);
    }
    for (size_t k = 0; k < prev->n; k++)
        if (prev->l[k].fds)
            nm_log_error("no longer listening on %s", prev->l[k].url);
}

/* SIGHUP: the settings again, swapped in when they can be. The listening sockets of addresses
 * the new settings keep move to the new generation; new addresses are bound here, in the main
 * thread, before any worker sees them; removed ones are closed with the old generation, once
 * every worker has taken them out of its epoll set. */
static void reload_config(struct nm_server *s, struct nm_worker **workers, unsigned started)
{
    struct nm_config *cfg;
    if (!s->reload || !s->has_config || s->reload(s->reload_arg, &cfg) < 0) {
        if (s->reload)
            nm_log_error("reload refused: the settings in use stay");
        return;
    }
    struct nm_confgen *cur = s->config.current;
    const char *what = restart_only_change(cur->cfg, cfg);
    char err[512] = "out of memory";
    struct nm_confgen *g = what ? NULL : nm_confgen_new(cfg, true);
    struct nm_listeners *ls = g ? calloc(1, sizeof(*ls)) : NULL;
    int rc = ls ? nm_listen_reload(ls, cur->listeners, cfg, err, sizeof(err)) : -ENOMEM;
    if (rc < 0) {
        if (what)
            snprintf(err, sizeof(err), "%s changes only with a restart", what);
        nm_log_error("reload refused: %s; the settings in use stay", err);
        free(ls);
        if (g) {
            nm_confgen_release(g); /* frees cfg with it */
        } else {
            nm_config_cleanup(cfg);
            free(cfg);
        }
        return;
    }
    log_listeners(ls, cur->listeners);
    g->listeners = ls;
    g->owns_listeners = true;
    nm_confgen_slot_publish(&s->config, g);
    for (unsigned i = 0; i < started; i++)
        nm_worker_wake(workers[i]);
    nm_log_error("reloaded %s (generation %llu)", cfg->config_file ? cfg->config_file : "settings",
                 (unsigned long long)g->seq);
}

/* Descriptors open now: the entries of /proc/self/fd but the one listing them, or, without
 * /proc, the lowest free number (a lower bound). */
static unsigned count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return 3;
        close(fd);
        return (unsigned)fd;
    }
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

/* How many connections all workers may hold together: what RLIMIT_NOFILE leaves once the
 * descriptors open now and each worker's own two (epoll, wake) are counted, less a reserve for
 * the files requests open, the logs, the hashing pool and the compressor (1/16 of the limit,
 * at least 16, at most 1024). Accepting every descriptor the limit allows would leave none to
 * open a file with: the connections already open would get 503s. At least one connection. */
static unsigned conn_budget(unsigned n_workers)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
        return 0;
    uint64_t limit = lim.rlim_cur;
    uint64_t reserve = limit / 16 < 16 ? 16 : limit / 16 > 1024 ? 1024 : limit / 16;
    uint64_t used = count_open_fds() + 2ull * n_workers + reserve;
    if (limit <= used)
        return 1;
    return limit - used > UINT_MAX ? UINT_MAX : (unsigned)(limit - used);
}

/* Sets up and starts every worker; *started counts those whose thread runs. Returns 0 or the
 * first failure (logged). */
static int start_workers(struct nm_server *s, struct nm_worker **workers, unsigned *started)
{
    s->shared = (struct nm_worker_shared){
        .cfg = s->cfg,
        .mime = s->mime,
        .root_fd = s->root_fd,
        .hashing = s->hashing,
        .fly = s->fly,
        .listeners = &s->listeners,
        .tls = s->tls,
        .log_fd = s->log_fd,
        .aborts = &s->aborts,
        .config = s->has_config ? &s->config : NULL,
        .metrics = s->metrics,
        .max_open_conns = conn_budget(s->n_workers),
    };
    atomic_init(&s->shared.stopping, false);
    atomic_init(&s->shared.n_conns, 0);
    for (unsigned i = 0; i < s->n_workers; i++) {
        int rc = nm_worker_new(&s->shared, i, &workers[i]);
        if (rc < 0) {
            nm_log_error("worker %u: %s", i, strerror(-rc));
            return rc;
        }
        rc = nm_worker_start(workers[i]);
        if (rc < 0)
            return rc;
        (*started)++;
    }
    return 0;
}

/* What a scrape reads outside the workers' counters (on the scrape thread). */
static void gauges_of(void *arg, struct nm_metrics_gauges *g)
{
    struct nm_server *s = arg;
    g->open_connections = atomic_load(&s->shared.n_conns);
    g->aborted_bodies = atomic_load_explicit(&s->aborts.total, memory_order_relaxed);
    if (s->hashing) {
        struct nm_hashing_stats st;
        nm_hashing_get_stats(s->hashing, &st);
        g->has_hashing = true;
        g->hashed_files = st.hashed_files;
        g->hashed_bytes = st.hashed_bytes;
        g->small_files = st.small_files;
        g->small_bytes = st.small_bytes;
        g->from_memo = st.from_memo;
        g->from_store = st.from_store;
        g->hashing_queued = st.queued;
        g->from_xattr = st.from_xattr;
        g->from_manifest = st.from_manifest;
    }
}

/* Waits for SIGTERM or SIGINT; SIGHUP reloads the settings, reopens the access log and re-reads
 * the TLS certificates meanwhile. The service manager is told RELOADING=1 then READY=1 around a
 * reload, and STOPPING=1 at the stop. */
static void wait_for_stop(struct nm_server *s, struct nm_worker **workers, unsigned started)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            nm_systemd_notify("RELOADING=1");
            reload_config(s, workers, started);
            reopen_log(s);
            if (s->tls)
                nm_tls_reload(s->tls);
            nm_systemd_notify("READY=1");
            continue;
        }
        nm_systemd_notify("STOPPING=1");
        return;
    }
}

int nm_server_run(struct nm_server *s)
{
    struct nm_worker **workers = calloc(s->n_workers, sizeof(*workers));
    if (!workers)
        return -ENOMEM;
    unsigned started = 0;
    /* The caller's config is generation 1; it stays the caller's (not freed here). */
    struct nm_confgen *first = nm_confgen_new((struct nm_config *)s->cfg, false);
    if (!first) {
        free(workers);
        return -ENOMEM;
    }
    /* The server's sockets: those a reload removes are closed with this generation, the rest by
     * nm_server_free. */
    first->listeners = &s->listeners;
    nm_confgen_slot_init(&s->config, first);
    s->has_config = true;
    int rc = start_workers(s, workers, &started);
    if (rc < 0)
        atomic_store(&s->shared.stopping, true);
    if (rc == 0 && s->hashing && s->cfg->prehash) {
        int prc =
            nm_hashing_prehash(s->hashing, s->root_fd, s->cfg->allow_dotfiles, prehash_done, s);
        if (prc < 0)
            nm_log_error("prehash not started: %s", strerror(-prc));
    }
    if (rc == 0 && s->scrape) {
        rc = nm_scrape_start(s->scrape, s->metrics, gauges_of, s);
        if (rc < 0)
            nm_log_error("metrics: %s", strerror(-rc));
        else
            nm_log_error("metrics on %smetrics, status page on %sstatus", nm_scrape_url(s->scrape),
                         nm_scrape_url(s->scrape));
        rc = 0;
    }
    if (rc == 0) {
        /* Type=notify: listening and serving now. */
        nm_systemd_notify("READY=1");
        wait_for_stop(s, workers, started);
    }
    s->shared.stop_deadline_ms = nm_worker_clock_ms() + s->config.current->cfg->shutdown_timeout_ms;
    atomic_store(&s->shared.stopping, true);
    for (unsigned i = 0; i < started; i++)
        nm_worker_wake(workers[i]);
    for (unsigned i = 0; i < started; i++)
        nm_worker_join(workers[i]);
    for (unsigned i = 0; i < s->n_workers; i++)
        nm_worker_free(workers[i]);
    free(workers);
    nm_confgen_slot_cleanup(&s->config);
    s->has_config = false;
    nm_send_aborts_flush(&s->aborts, nm_worker_clock_ms(), true);
    if (s->hashing)
        log_hashing(s, "at shutdown");
    return rc;
}
