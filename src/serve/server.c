/* Listening sockets, worker threads with one epoll loop each, timeouts and shutdown. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "etags/etags.h"
#include "log.h"

#define READ_CHUNK 16384
#define SENDFILE_TAIL 256       /* the last bytes of a file part: read, then checked, then sent */
#define COPY_CHUNK (256 * 1024) /* tagged bodies are copied, never spliced: see send_some */
#define TICK_MS 250
#define MAX_SPARE 256  /* closed connections kept for reuse; memory follows the peak load */
#define LINGER_MS 2000 /* how long a closing connection's unread input is drained */
#define MAX_ROUNDS 64  /* read-process-send rounds one connection gets before the others */
#define MAX_AGAIN 256
#define MAX_LISTENERS (2 * NM_CONFIG_MAX_LISTEN) /* host names expand to several addresses */
#define ABORT_NOTES 64       /* files whose aborted responses are being counted */
#define ABORT_REPORT_MS 1000 /* at most one line per file in this time */

struct listener {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *spec; /* the --listen value it comes from */
    bool from_name;   /* one of the addresses a host name resolved to */
    int *fds;         /* one socket per worker, all owned by the server; fds[0] is bound first */
    char url[80];
};

/* Aborted responses of one file, while they are counted rather than logged. */
struct abort_note {
    char path[256]; /* "" for a free note; longer paths are cut (and told apart by the hash) */
    uint64_t path_hash;
    int64_t logged_ms;
    unsigned suppressed;
};

struct sconn {
    int fd;
    struct nm_conn conn;
    int64_t head_started_ms; /* first byte of an unfinished head, 0 when none */
    int64_t last_io_ms;
    unsigned requests_seen;
    char tail[SENDFILE_TAIL];  /* the end of the current file part, read before the check */
    size_t tail_len;           /* how much of the part was read into tail; 0 when not yet */
    int64_t linger_since_ms;   /* output done and write side shut: draining until EOF, else 0 */
    struct sconn *prev, *next; /* in the worker's list of open connections, or its spares */
    bool again;                /* in the worker's list of connections to run again */
};

struct worker {
    struct nm_server *srv;
    unsigned index;
    pthread_t thread;
    int epfd;
    int wake_fd;
    int listen_fds[MAX_LISTENERS];
    bool accepting;
    int64_t accept_resume_ms;
    struct nm_site site;
    struct sconn *active; /* open connections */
    struct sconn *spare;  /* closed ones kept for reuse, at most MAX_SPARE */
    unsigned n_active;
    unsigned n_spare;
    /* Connections that stopped with work left (their round budget ran out): edge-triggered
     * epoll would not wake them again, so the loop runs them before it next waits. */
    struct sconn *again[MAX_AGAIN];
    unsigned n_again;
    char *copy_buf;       /* COPY_CHUNK bytes, allocated on first use */
    bool log_cut;         /* the last log write stopped inside a line */
    uint64_t log_dropped; /* access-log lines dropped because the log could not take them */
};

struct nm_server {
    const struct nm_config *cfg;
    int root_fd;
    struct nm_mime_table *mime;
    struct listener listeners[MAX_LISTENERS];
    size_t n_listeners;
    unsigned n_workers;
    struct worker *workers;
    int log_fd;
    atomic_bool stopping;
    int64_t stop_deadline_ms;
    struct nm_hashing *hashing; /* content ETags: memo, pool, manifest; NULL in other modes */
    pthread_mutex_t abort_lock; /* guards aborts: every worker reports into it */
    struct abort_note aborts[ABORT_NOTES];
    atomic_uint aborts_pending; /* notes with a count not logged yet */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* ---- addresses ---- */

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* Adds an address of spec, unless a listener has it already: a name listed twice in /etc/hosts,
 * or given both as a name and as a number. Port 0 asks for a port of its own, so it is only
 * the same within one spec. */
static int add_address(struct nm_server *s, const char *spec, bool from_name, const void *addr,
                       socklen_t len, char *err, size_t err_cap)
{
    struct listener l = {.addr_len = len, .spec = spec, .from_name = from_name};
    memcpy(&l.addr, addr, len);
    for (size_t i = 0; i < s->n_listeners; i++)
        if (same_address(&s->listeners[i].addr, &l.addr) &&
            (get_port(&l.addr) != 0 || s->listeners[i].spec == spec))
            return 0;
    if (s->n_listeners == MAX_LISTENERS) {
        snprintf(err, err_cap, "too many listen addresses (at most %d, host names included)",
                 MAX_LISTENERS);
        return -EINVAL;
    }
    s->listeners[s->n_listeners++] = l;
    return 0;
}

/* Adds the addresses of one --listen value, HOST:PORT or [IPv6]:PORT: a numeric host as it is,
 * an empty one as 0.0.0.0, and a host name as every address it resolves to. */
static int add_listen(struct nm_server *s, const char *spec, char *err, size_t err_cap)
{
    char host[256];
    const char *port;
    bool bracketed = spec[0] == '[';
    if (bracketed) {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
            goto invalid;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host))
            goto invalid;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535)
        goto invalid;
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)p)};
    if (!bracketed && inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &in4.sin_addr) == 1)
        return add_address(s, spec, false, &in4, sizeof(in4), err, err_cap);
    if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1)
        return add_address(s, spec, false, &in6, sizeof(in6), err, err_cap);
    if (bracketed)
        goto invalid;

    /* A host name: AI_PASSIVE is moot with a host given; AI_ADDRCONFIG is left out so that
     * "localhost" means ::1 too on a host with only loopback IPv6. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res;
    int g = getaddrinfo(host, NULL, &hints, &res);
    if (g != 0) {
        /* A name that does not exist is a bad value, like a malformed address; a resolver
         * that cannot answer now is a failure to start. */
        int sys = errno;
        snprintf(err, err_cap, "cannot resolve '%s' in listen address '%s': %s", host, spec,
                 g == EAI_SYSTEM ? strerror(sys) : gai_strerror(g));
        if (g == EAI_SYSTEM)
            return sys ? -sys : -EIO;
        return g == EAI_AGAIN    ? -EAGAIN
               : g == EAI_MEMORY ? -ENOMEM
               : g == EAI_FAIL   ? -EIO
                                 : -EINVAL;
    }
    int rc = 0;
    for (struct addrinfo *a = res; a && rc == 0; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        struct sockaddr_storage ss;
        memcpy(&ss, a->ai_addr, a->ai_addrlen);
        set_port(&ss, (uint16_t)p);
        rc = add_address(s, spec, true, &ss, a->ai_addrlen, err, err_cap);
    }
    freeaddrinfo(res);
    return rc;
invalid:
    snprintf(err, err_cap, "invalid listen address '%s' (want HOST:PORT or [IPv6]:PORT)", spec);
    return -EINVAL;
}

/* One listening socket for l. Linux lets sockets share an address and port only when every one
 * of them set SO_REUSEPORT (under the same user): that is how each worker has a socket of its
 * own, and how a second server would join the group unnoticed and take a share of the
 * connections. So the first socket binds without it, which fails when anything already holds
 * the address, whatever its options; it sets SO_REUSEPORT only once bound, before listen, so
 * that the workers' sockets can join. A lone worker never sets it. */
static int open_socket(const struct listener *l, bool first, bool shared)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    /* Binds while the connections of a previous run are in TIME_WAIT; never beside a listener. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (shared && !first)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) != 0)
        rc = -errno;
    if (rc == 0 && shared && first &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        rc = -errno;
    if (rc == 0 && listen(fd, 1024) != 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Another process of the same user can still join the group with SO_REUSEPORT of its own once
 * the first socket listens (a server that does not check, like this one before). The group's
 * program picks one of its first n sockets, the ones joined first: ours, so such a socket gets
 * no connections. Kernels without SO_ATTACH_REUSEPORT_CBPF (before 4.5) keep their own hash. */
static void keep_group_private(int fd, unsigned n)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog));
}

static void describe(struct listener *l)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (l->addr.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&l->addr)->sin_addr, host, sizeof(host));
        snprintf(l->url, sizeof(l->url), "http://%s:%u/", host, get_port(&l->addr));
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&l->addr)->sin6_addr, host, sizeof(host));
        snprintf(l->url, sizeof(l->url), "http://[%s]:%u/", host, get_port(&l->addr));
    }
}

/* Binds every socket of l, one per worker. Port 0 takes the port the kernel chose for the first
 * socket, and the first one chosen for the spec when a name gave it several addresses. */
static int bind_listener(struct nm_server *s, struct listener *l)
{
    for (const struct listener *o = s->listeners; o < l && get_port(&l->addr) == 0; o++)
        if (o->spec == l->spec)
            set_port(&l->addr, get_port(&o->addr));
    bool shared = s->n_workers > 1;
    l->fds[0] = open_socket(l, true, shared);
    if (l->fds[0] < 0)
        return l->fds[0];
    getsockname(l->fds[0], (struct sockaddr *)&l->addr, &l->addr_len);
    for (unsigned i = 1; i < s->n_workers; i++) {
        l->fds[i] = open_socket(l, false, true);
        if (l->fds[i] < 0)
            return l->fds[i];
    }
    if (shared)
        keep_group_private(l->fds[0], s->n_workers);
    return 0;
}

static void close_listener(struct nm_server *s, struct listener *l)
{
    for (unsigned i = 0; l->fds && i < s->n_workers; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l->fds);
    l->fds = NULL;
}

/* Resolves every --listen value and binds all its addresses. An address of a host name that
 * this host cannot bind (::1 without IPv6) is left out, as long as one of its others binds. */
static int open_listeners(struct nm_server *s, char *err, size_t err_cap)
{
    const struct nm_config *cfg = s->cfg;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        int rc = add_listen(s, cfg->listen[i], err, err_cap);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < s->n_listeners;) {
        struct listener *l = &s->listeners[i];
        if (!(l->fds = malloc(s->n_workers * sizeof(*l->fds))))
            return -ENOMEM;
        for (unsigned k = 0; k < s->n_workers; k++)
            l->fds[k] = -1;
        int rc = bind_listener(s, l);
        size_t siblings = 0;
        for (size_t k = 0; k < s->n_listeners; k++)
            siblings += s->listeners[k].spec == l->spec;
        if (rc < 0 && l->from_name && siblings > 1 &&
            (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)) {
            close_listener(s, l);
            memmove(l, l + 1, (s->n_listeners - i - 1) * sizeof(*l));
            s->n_listeners--;
            continue;
        }
        if (rc < 0) {
            char name[INET6_ADDRSTRLEN + 8] = "";
            describe(l);
            if (l->from_name)
                snprintf(name, sizeof(name), " (%.*s)", (int)strlen(l->url) - 8, l->url + 7);
            snprintf(err, err_cap, "cannot listen on %s%s: %s", l->spec, name,
                     rc == -EADDRINUSE ? "address already in use" : strerror(-rc));
            return rc;
        }
        describe(l);
        i++;
    }
    return 0;
}

/* ---- setup ---- */

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
    int rc = nm_hashing_new(&o, &s->hashing);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot start the hashing threads: %s", strerror(-rc));
        return rc;
    }
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

int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap)
{
    struct nm_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->log_fd = -1;
    pthread_mutex_init(&s->abort_lock, NULL);
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
    if (cfg->access_log) {
        s->log_fd = open_log(cfg);
        if (s->log_fd < 0) {
            rc = -errno;
            snprintf(err, err_cap, "cannot open access log %s: %s", cfg->access_log,
                     strerror(errno));
            goto fail;
        }
    }
    /* Descriptors are connections and open files: take all the kernel allows us. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = cfg->workers ? cfg->workers : (unsigned)(cpus > 0 ? cpus : 1);
    /* Every worker's socket is bound here, so that a port in use fails the start. */
    rc = open_listeners(s, err, err_cap);
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
    return i < s->n_listeners ? s->listeners[i].url : NULL;
}

void nm_server_free(struct nm_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_listeners; i++)
        close_listener(s, &s->listeners[i]);
    pthread_mutex_destroy(&s->abort_lock);
    if (s->log_fd > STDERR_FILENO)
        close(s->log_fd);
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
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* ---- aborted responses ---- */

static uint64_t hash_path(const char *p)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

/* Called with abort_lock held. */
static void log_suppressed(struct nm_server *s, struct abort_note *n)
{
    nm_log_error("%s: %u more responses aborted: the file changed while being sent", n->path,
                 n->suppressed);
    n->suppressed = 0;
    atomic_fetch_sub(&s->aborts_pending, 1);
}

/* A file rewritten in place while it is busy aborts every response sending it, and would fill
 * the log with one line each. One line per file per ABORT_REPORT_MS; the aborts in between are
 * counted, and the count logged by the tick once that time is over. */
static void report_abort(struct nm_server *s, const char *path, const char *what)
{
    int64_t t = now_ms();
    uint64_t h = hash_path(path);
    struct abort_note *n = NULL, *spare = NULL; /* spare: a free note, else the oldest */
    pthread_mutex_lock(&s->abort_lock);
    for (size_t i = 0; i < ABORT_NOTES && !n; i++) {
        struct abort_note *a = &s->aborts[i];
        if (a->path[0] && a->path_hash == h && strncmp(a->path, path, sizeof(a->path) - 1) == 0)
            n = a;
        else if (!spare || (spare->path[0] && (!a->path[0] || a->logged_ms < spare->logged_ms)))
            spare = a;
    }
    if (n && t - n->logged_ms < ABORT_REPORT_MS) {
        if (n->suppressed++ == 0)
            atomic_fetch_add(&s->aborts_pending, 1);
        pthread_mutex_unlock(&s->abort_lock);
        return;
    }
    if (!n) {
        n = spare;
        if (n->suppressed)
            log_suppressed(s, n);
        snprintf(n->path, sizeof(n->path), "%s", path);
        n->path_hash = h;
    } else if (n->suppressed) {
        log_suppressed(s, n);
    }
    n->logged_ms = t;
    pthread_mutex_unlock(&s->abort_lock);
    nm_log_error("%s %s while being sent; response aborted", path, what);
}

/* Logs the counts whose time is over, or all of them (at shutdown). */
static void flush_aborts(struct nm_server *s, int64_t t, bool all)
{
    if (atomic_load(&s->aborts_pending) == 0)
        return;
    pthread_mutex_lock(&s->abort_lock);
    for (size_t i = 0; i < ABORT_NOTES; i++) {
        struct abort_note *n = &s->aborts[i];
        if (n->suppressed && (all || t - n->logged_ms >= ABORT_REPORT_MS)) {
            log_suppressed(s, n);
            n->logged_ms = t;
        }
    }
    pthread_mutex_unlock(&s->abort_lock);
}

/* ---- one worker ---- */

/* epoll data: listeners and the wake fd are tagged small integers, connections are pointers. */
#define TAG_WAKE ((uint64_t)1)
#define TAG_LISTEN_BASE ((uint64_t)16)

static void flush_log(struct worker *w)
{
    struct nm_buf *b = &w->site.log;
    if (b->len == 0)
        return;
    int fd = w->srv->log_fd;
    size_t off = 0;
    if (w->log_cut && fd >= 0 && write(fd, "\n", 1) == 1)
        w->log_cut = false; /* end the line a stall cut short */
    while (fd >= 0 && off < b->len && !w->log_cut) {
        ssize_t n = write(fd, b->ptr + off, b->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a log that cannot be written never stalls serving */
        off += (size_t)n;
    }
    if (off < b->len) {
        w->log_cut = off > 0 && b->ptr[off - 1] != '\n';
        for (size_t i = off; i < b->len; i++)
            w->log_dropped += b->ptr[i] == '\n';
    }
    b->len = 0;
}

static struct sconn *open_conn(struct worker *w, int fd)
{
    struct sconn *sc = w->spare;
    if (sc) {
        w->spare = sc->next;
        w->n_spare--;
    } else if (!(sc = malloc(sizeof(*sc)))) {
        return NULL;
    }
    sc->fd = fd;
    sc->prev = NULL;
    sc->next = w->active;
    if (w->active)
        w->active->prev = sc;
    w->active = sc;
    w->n_active++;
    return sc;
}

static void close_conn(struct worker *w, struct sconn *sc)
{
    if (sc->again) {
        for (unsigned i = 0; i < w->n_again; i++)
            if (w->again[i] == sc)
                w->again[i] = w->again[--w->n_again];
        sc->again = false;
    }
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, sc->fd, NULL);
    close(sc->fd);
    nm_conn_cleanup(&sc->conn);
    sc->fd = -1;
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        w->active = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    w->n_active--;
    if (w->n_spare == MAX_SPARE) {
        free(sc);
        return;
    }
    sc->next = w->spare;
    w->spare = sc;
    w->n_spare++;
}

static void set_accepting(struct worker *w, bool on)
{
    if (w->accepting == on)
        return;
    for (size_t i = 0; i < w->srv->n_listeners; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN_BASE + i};
        epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->listen_fds[i], &ev);
    }
    w->accepting = on;
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "-");
}

static void accept_all(struct worker *w, int lfd)
{
    for (;;) {
        if (w->n_active >= w->srv->cfg->max_conns) {
            set_accepting(w, false);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of spinning. */
                nm_log_error("accept: %s; pausing accepts", strerror(errno));
                set_accepting(w, false);
                w->accept_resume_ms = now_ms() + 500;
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sconn *sc = open_conn(w, fd);
        if (!sc) {
            close(fd);
            set_accepting(w, false);
            w->accept_resume_ms = now_ms() + 500;
            return;
        }
        char peer[INET6_ADDRSTRLEN];
        format_peer(&ss, peer, sizeof(peer));
        nm_conn_init(&sc->conn, &w->site, peer);
        sc->head_started_ms = 0;
        sc->last_io_ms = now_ms();
        sc->requests_seen = 0;
        sc->tail_len = 0;
        sc->linger_since_ms = 0;
        sc->again = false;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = sc};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            close_conn(w, sc);
    }
}

/* Sends queued output until it is gone or the socket is full. Returns 1 when progress was made,
 * 0 when blocked or empty, -1 when the connection must be dropped. */
static int send_some(struct worker *w, struct sconn *sc)
{
    struct nm_conn *c = &sc->conn;
    int progress = 0;
    struct nm_conn_seg *s;
    while ((s = nm_conn_front(c)) != NULL) {
        if (s->mem_len || (s->data && s->len)) {
            /* Heads and bodies held in memory, of as many queued responses as there are, leave
             * in one sendmsg, up to the first part that must be read from a file. */
            struct iovec iov[2 * NM_CONN_MAX_SEGS];
            size_t n_iov = 0, pos = c->out_sent;
            bool file_follows = false;
            for (unsigned i = 0; i < c->n_segs; i++) {
                const struct nm_conn_seg *g = &c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS];
                if (g->mem_len) {
                    iov[n_iov++] = (struct iovec){c->out.ptr + pos, g->mem_len};
                    pos += g->mem_len;
                }
                if (g->len && !g->data) {
                    file_follows = true;
                    break;
                }
                if (g->len)
                    iov[n_iov++] = (struct iovec){(void *)(g->data + g->off), (size_t)g->len};
            }
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n_iov};
            ssize_t n = sendmsg(sc->fd, &msg, MSG_NOSIGNAL | (file_follows ? MSG_MORE : 0));
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? progress : -1;
            nm_conn_advance(c, (uint64_t)n);
            progress = 1;
            continue;
        }
        /* The invariant of the ETag: the end of a file part is read into memory, then the file
         * is checked to still be the version the headers described, and only then does that
         * end leave. A tagged body is copied into the socket (pread, then send) rather than
         * spliced by sendfile, whose socket buffers keep referring to the page cache until the
         * peer has the bytes, so a later write could still change bytes already "sent". Every
         * byte sent is thus copied before the check: a change made before the check is seen, one
         * made after cannot reach the client. A change aborts the response: the client sees a
         * short transfer and caches nothing. Untagged bodies go by sendfile. */
        if (s->len > SENDFILE_TAIL && !sc->tail_len && s->file->has_etag) {
            if (!w->copy_buf && !(w->copy_buf = aligned_alloc(4096, COPY_CHUNK)))
                return -1;
            uint64_t want = s->len - SENDFILE_TAIL;
            ssize_t r = pread(s->file->fd, w->copy_buf, want > COPY_CHUNK ? COPY_CHUNK : want,
                              (off_t)s->off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                report_abort(w->srv, s->file->path, "shrank");
                return -1;
            }
            ssize_t n = send(sc->fd, w->copy_buf, (size_t)r, MSG_NOSIGNAL);
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? progress : -1;
            nm_conn_advance(c, (uint64_t)n);
            progress = 1;
            continue;
        }
        if (s->len > SENDFILE_TAIL && !sc->tail_len) {
            uint64_t want = s->len - SENDFILE_TAIL;
            off_t off = (off_t)s->off;
            ssize_t n = sendfile(sc->fd, s->file->fd, &off, want > (1u << 30) ? (1u << 30) : want);
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? progress : -1;
            if (n == 0) {
                report_abort(w->srv, s->file->path, "shrank");
                return -1;
            }
            nm_conn_advance(c, (uint64_t)n);
            progress = 1;
            continue;
        }
        if (!sc->tail_len) {
            size_t got = 0, len = (size_t)s->len;
            while (got < len) {
                ssize_t r = pread(s->file->fd, sc->tail + got, len - got, (off_t)(s->off + got));
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    report_abort(w->srv, s->file->path, "shrank");
                    return -1;
                }
                got += (size_t)r;
            }
            if (!nm_file_is_unchanged(s->file)) {
                report_abort(w->srv, s->file->path, "changed");
                return -1;
            }
            sc->tail_len = len;
        }
        size_t left = (size_t)s->len;
        ssize_t n = send(sc->fd, sc->tail + (sc->tail_len - left), left, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? progress : -1;
        if ((size_t)n == left)
            sc->tail_len = 0;
        nm_conn_advance(c, (uint64_t)n);
        progress = 1;
    }
    return progress;
}

/* Reads, processes and sends until nothing moves. Returns false when the connection is closed. */
/* Reads and drops what a closing client still sends. Closing with unread input would make the
 * kernel answer with a reset, which can destroy the error response before the client reads it. */
static bool linger(struct worker *w, struct sconn *sc)
{
    char sink[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(sc->fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        break;
    }
    close_conn(w, sc);
    return false;
}

static bool run_conn(struct worker *w, struct sconn *sc)
{
    struct nm_conn *c = &sc->conn;
    int64_t t = now_ms();
    if (sc->linger_since_ms)
        return linger(w, sc);
    for (int rounds = 0;; rounds++) {
        if (rounds == MAX_ROUNDS) {
            if (!sc->again && w->n_again < MAX_AGAIN) {
                sc->again = true;
                w->again[w->n_again++] = sc;
            }
            break;
        }
        bool moved = false;
        /* Read while there is room; a full buffer waits for the responses ahead of it. */
        while (c->state != NM_CONN_CLOSING && c->in.max_cap - c->in.len > 0) {
            size_t room = c->in.max_cap - c->in.len;
            if (nm_buf_reserve(&c->in, room < READ_CHUNK ? room : READ_CHUNK) < 0)
                break;
            ssize_t n = recv(sc->fd, c->in.ptr + c->in.len, c->in.cap - c->in.len, 0);
            if (n == 0) {
                /* The peer finished sending: answer what it asked, then close. */
                if (nm_conn_process(c) < 0 || nm_conn_front(c) == NULL) {
                    close_conn(w, sc);
                    return false;
                }
                c->state = NM_CONN_CLOSING;
                break;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                close_conn(w, sc);
                return false;
            }
            if (c->in.len == 0 && sc->head_started_ms == 0)
                sc->head_started_ms = t;
            c->in.len += (size_t)n;
            sc->last_io_ms = t;
            moved = true;
        }
        if (nm_conn_process(c) < 0) {
            close_conn(w, sc);
            return false;
        }
        if (c->requests != sc->requests_seen) {
            sc->requests_seen = c->requests;
            sc->head_started_ms = c->in.len > 0 ? t : 0;
        }
        int sent = send_some(w, sc);
        if (sent < 0) {
            close_conn(w, sc);
            return false;
        }
        if (sent > 0) {
            sc->last_io_ms = t;
            moved = true;
        }
        if (nm_conn_is_done(c)) {
            shutdown(sc->fd, SHUT_WR);
            sc->linger_since_ms = t;
            return linger(w, sc);
        }
        if (!moved)
            break;
    }
    return true;
}

static void sweep(struct worker *w, int64_t t, bool stopping)
{
    const struct nm_config *cfg = w->srv->cfg;
    for (struct sconn *sc = w->active, *next; sc; sc = next) {
        next = sc->next; /* sc may be closed below */
        struct nm_conn *c = &sc->conn;
        if (sc->linger_since_ms) {
            if (stopping || t - sc->linger_since_ms > LINGER_MS)
                close_conn(w, sc);
            continue;
        }
        bool sending = nm_conn_front(c) != NULL;
        if (sending) {
            if (t - sc->last_io_ms > cfg->send_timeout_ms)
                close_conn(w, sc);
            continue;
        }
        if (c->state == NM_CONN_HEAD && c->in.len > 0 && sc->head_started_ms &&
            t - sc->head_started_ms > cfg->header_timeout_ms) {
            /* A head that does not complete in time: say so, then close. */
            nm_conn_fail(c, 408, "request head not received in time");
            run_conn(w, sc);
            continue;
        }
        if (nm_conn_is_mid_request(c)) {
            if (t - sc->last_io_ms > cfg->header_timeout_ms)
                close_conn(w, sc);
            continue;
        }
        if (stopping || t - sc->last_io_ms > cfg->idle_timeout_ms)
            close_conn(w, sc);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct nm_server *srv = w->srv;
    struct epoll_event events[256];
    int64_t next_tick = now_ms() + TICK_MS;
    bool stopping = false;

    set_accepting(w, true);
    for (;;) {
        int64_t t = now_ms();
        int timeout = next_tick > t && w->n_again == 0 ? (int)(next_tick - t) : 0;
        int n = epoll_wait(w->epfd, events, 256, timeout);
        nm_site_set_time(&w->site, wall_seconds());
        for (int i = 0; i < n; i++) {
            uint64_t tag = events[i].data.u64;
            if (tag == TAG_WAKE) {
                uint64_t v;
                ssize_t r = read(w->wake_fd, &v, sizeof(v));
                (void)r;
            } else if (tag >= TAG_LISTEN_BASE && tag < TAG_LISTEN_BASE + MAX_LISTENERS) {
                if (!stopping)
                    accept_all(w, w->listen_fds[tag - TAG_LISTEN_BASE]);
            } else {
                run_conn(w, events[i].data.ptr);
            }
        }
        for (unsigned k = w->n_again; k > 0 && w->n_again > 0; k--) {
            struct sconn *sc = w->again[--w->n_again];
            sc->again = false;
            run_conn(w, sc);
        }
        flush_log(w);
        t = now_ms();
        if (atomic_load(&srv->stopping) && !stopping) {
            /* Stop accepting; idle connections go now, busy ones when their response is sent. */
            stopping = true;
            set_accepting(w, false);
            /* New connections are refused from now on. The sockets belong to the server, which
             * closes them at the end, so they only stop listening here. */
            for (size_t i = 0; i < srv->n_listeners; i++)
                if (w->listen_fds[i] >= 0)
                    shutdown(w->listen_fds[i], SHUT_RD);
            for (struct sconn *sc = w->active; sc; sc = sc->next)
                sc->conn.state = NM_CONN_CLOSING;
            next_tick = t;
        }
        if (t >= next_tick) {
            next_tick = t + TICK_MS;
            sweep(w, t, stopping);
            if (w->index == 0)
                flush_aborts(srv, t, false);
            if (!stopping && !w->accepting && w->n_active < srv->cfg->max_conns &&
                t >= w->accept_resume_ms)
                set_accepting(w, true);
            flush_log(w);
        }
        if (stopping && (w->n_active == 0 || t >= srv->stop_deadline_ms))
            break;
    }
    while (w->active)
        close_conn(w, w->active);
    flush_log(w);
    if (w->log_dropped)
        nm_log_error("access log: %llu lines dropped by worker %u: the log could not keep up",
                     (unsigned long long)w->log_dropped, w->index);
    return NULL;
}

static int worker_init(struct nm_server *srv, struct worker *w, unsigned index)
{
    const struct nm_config *cfg = srv->cfg;
    w->srv = srv;
    w->index = index;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    for (size_t i = 0; i < MAX_LISTENERS; i++)
        w->listen_fds[i] = -1;
    if (w->epfd < 0 || w->wake_fd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev);
    for (size_t i = 0; i < srv->n_listeners; i++)
        w->listen_fds[i] = srv->listeners[i].fds[index];
    int rc = nm_site_init(&w->site, cfg, srv->mime, srv->root_fd);
    if (rc == 0)
        nm_site_set_time(&w->site, wall_seconds());
    return rc;
}

static void worker_cleanup(struct worker *w)
{
    nm_site_cleanup(&w->site);
    while (w->spare) {
        struct sconn *sc = w->spare;
        w->spare = sc->next;
        free(sc);
    }
    free(w->copy_buf);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
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

int nm_server_run(struct nm_server *s)
{
    s->workers = calloc(s->n_workers, sizeof(*s->workers));
    if (!s->workers)
        return -ENOMEM;
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < s->n_workers; i++) {
        s->workers[i].epfd = s->workers[i].wake_fd = -1;
        rc = worker_init(s, &s->workers[i], i);
        if (rc < 0) {
            nm_log_error("worker %u: %s", i, strerror(-rc));
            break;
        }
        if (s->hashing)
            nm_site_set_hashing(&s->workers[i].site, s->hashing);
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            rc = -EAGAIN;
            break;
        }
        started++;
    }
    if (rc < 0)
        atomic_store(&s->stopping, true);
    if (rc == 0 && s->hashing && s->cfg->prehash) {
        int prc =
            nm_hashing_prehash(s->hashing, s->root_fd, s->cfg->allow_dotfiles, prehash_done, s);
        if (prc < 0)
            nm_log_error("prehash not started: %s", strerror(-prc));
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    while (rc == 0) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reopen_log(s);
            continue;
        }
        break;
    }
    s->stop_deadline_ms = now_ms() + s->cfg->shutdown_timeout_ms;
    atomic_store(&s->stopping, true);
    for (unsigned i = 0; i < started; i++) {
        uint64_t one = 1;
        ssize_t w = write(s->workers[i].wake_fd, &one, sizeof(one));
        (void)w;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
    for (unsigned i = 0; i < s->n_workers; i++)
        if (s->workers[i].srv)
            worker_cleanup(&s->workers[i]);
    free(s->workers);
    s->workers = NULL;
    flush_aborts(s, now_ms(), true);
    if (s->hashing)
        log_hashing(s, "at shutdown");
    return rc;
}
