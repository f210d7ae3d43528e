/* Listening sockets, worker threads with one epoll loop each, timeouts and shutdown. */
#include "notmod/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include "notmod/conn.h"
#include "notmod/hashing.h"
#include "notmod/log.h"
#include "notmod/manifest.h"

#define READ_CHUNK 16384
#define SENDFILE_TAIL 256       /* the last bytes of a file part: read, then checked, then sent */
#define COPY_CHUNK (256 * 1024) /* tagged bodies are copied, never spliced: see send_some */
#define TICK_MS 250
#define MAX_SPARE 256  /* closed connections kept for reuse; memory follows the peak load */
#define LINGER_MS 2000 /* how long a closing connection's unread input is drained */
#define MAX_ROUNDS 64  /* read-process-send rounds one connection gets before the others */
#define MAX_AGAIN 256

struct listener {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int fd; /* the first socket, bound by the main thread; worker 0 uses it */
    char url[80];
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
    int listen_fds[NM_CONFIG_MAX_LISTEN];
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
    struct listener listeners[NM_CONFIG_MAX_LISTEN];
    size_t n_listeners;
    unsigned n_workers;
    struct worker *workers;
    int log_fd;
    atomic_bool stopping;
    int64_t stop_deadline_ms;
    struct nm_hashing *hashing; /* content ETags: memo, pool, manifest; NULL in other modes */
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

static int parse_listen(const char *spec, struct listener *l)
{
    char host[128];
    const char *port;
    memset(l, 0, sizeof(*l));
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535)
        return -EINVAL;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        l->addr_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        l->addr_len = sizeof(*in6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static int open_listener(const struct listener *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) != 0 || listen(fd, 1024) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static void describe(struct listener *l)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (l->addr.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
        port = ntohs(in4->sin_port);
        snprintf(l->url, sizeof(l->url), "http://%s:%u/", host, port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(l->url, sizeof(l->url), "http://[%s]:%u/", host, port);
    }
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

static void log_hashing(struct nm_hashing *h, const char *when)
{
    struct nm_hashing_stats st;
    char line[512];
    nm_hashing_get_stats(h, &st);
    if (nm_hashing_format_stats(&st, line, sizeof(line)) > 0)
        nm_log_error("hashing %s: %s", when, line);
}

static void prehash_done(struct nm_hashing *h, void *arg)
{
    (void)arg;
    log_hashing(h, "after prehash");
}

int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap)
{
    struct nm_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->log_fd = -1;
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
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct listener *l = &s->listeners[i];
        l->fd = -1;
        rc = parse_listen(cfg->listen[i], l);
        if (rc < 0) {
            snprintf(err, err_cap, "invalid listen address '%s' (want HOST:PORT or [IPv6]:PORT)",
                     cfg->listen[i]);
            goto fail;
        }
        s->n_listeners++;
        l->fd = open_listener(l);
        if (l->fd < 0) {
            rc = l->fd;
            snprintf(err, err_cap, "cannot listen on %s: %s", cfg->listen[i], strerror(-rc));
            goto fail;
        }
        /* Port 0: every worker's socket must bind the port the kernel chose for the first. */
        getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addr_len);
        describe(l);
    }
    /* Descriptors are connections and open files: take all the kernel allows us. */
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = cfg->workers ? cfg->workers : (unsigned)(cpus > 0 ? cpus : 1);
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
        if (s->listeners[i].fd >= 0)
            close(s->listeners[i].fd);
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
                nm_log_error("%s shrank while being sent; response aborted", s->file->path);
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
                nm_log_error("%s shrank while being sent; response aborted", s->file->path);
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
                    nm_log_error("%s shrank while being sent; response aborted", s->file->path);
                    return -1;
                }
                got += (size_t)r;
            }
            if (!nm_file_is_unchanged(s->file)) {
                nm_log_error("%s changed while being sent; response aborted", s->file->path);
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
            } else if (tag >= TAG_LISTEN_BASE && tag < TAG_LISTEN_BASE + NM_CONFIG_MAX_LISTEN) {
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
            /* New connections are refused from now on. Worker 0's sockets belong to the server,
             * which closes them at the end, so they only stop listening here; the others are
             * closed once, and forgotten so that cleanup does not close a reused number. */
            for (size_t i = 0; i < srv->n_listeners; i++) {
                if (w->listen_fds[i] < 0)
                    continue;
                if (w->index == 0) {
                    shutdown(w->listen_fds[i], SHUT_RD);
                } else {
                    close(w->listen_fds[i]);
                    w->listen_fds[i] = -1;
                }
            }
            for (struct sconn *sc = w->active; sc; sc = sc->next)
                sc->conn.state = NM_CONN_CLOSING;
            next_tick = t;
        }
        if (t >= next_tick) {
            next_tick = t + TICK_MS;
            sweep(w, t, stopping);
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
    for (size_t i = 0; i < NM_CONFIG_MAX_LISTEN; i++)
        w->listen_fds[i] = -1;
    if (w->epfd < 0 || w->wake_fd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        w->listen_fds[i] = index == 0 ? srv->listeners[i].fd : open_listener(&srv->listeners[i]);
        if (w->listen_fds[i] < 0)
            return w->listen_fds[i];
    }
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
    for (size_t i = 0; i < w->srv->n_listeners; i++)
        if (w->listen_fds[i] >= 0 && w->index != 0)
            close(w->listen_fds[i]);
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
            nm_filecache_set_hashing(s->workers[i].site.files, s->hashing);
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
            nm_hashing_prehash(s->hashing, s->root_fd, s->cfg->allow_dotfiles, prehash_done, NULL);
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
    if (s->hashing)
        log_hashing(s->hashing, "at shutdown");
    return rc;
}
