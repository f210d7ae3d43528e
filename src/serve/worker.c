/* One worker thread: an edge-triggered epoll loop over its listening sockets and connections. */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "site.h"

#define READ_CHUNK 16384
#define TICK_MS 250
#define MAX_SPARE 256  /* closed connections kept for reuse; memory follows the peak load */
#define LINGER_MS 2000 /* how long a closing connection's unread input is drained */
#define MAX_ROUNDS 64  /* read-process-send rounds one connection gets before the others */
#define MAX_AGAIN 256
#define ACCEPT_PAUSE_MS 500  /* out of descriptors or memory: accepting waits this long */
#define LOG_REPORT_MS 10000  /* lost access-log lines are reported at most this often */
#define BUDGET_WARN_MS 60000 /* the descriptor bound is reported at most this often */

/* epoll data: listeners and the wake fd are tagged small integers, connections are pointers. */
#define TAG_WAKE ((uint64_t)1)
#define TAG_LISTEN_BASE ((uint64_t)16)

struct sconn {
    int fd;
    struct nm_conn conn;
    int64_t request_started_ms; /* first byte of the unfinished request, 0 when none */
    int64_t last_io_ms;
    unsigned requests_seen;
    struct nm_send_tail tail;  /* the end of the current file part, read before the check */
    int64_t linger_since_ms;   /* output done and write side shut: draining until EOF, else 0 */
    struct sconn *prev, *next; /* in the worker's list of open connections, or its spares */
    bool again;                /* in the worker's list of connections to run again */
};

struct nm_worker {
    struct nm_worker_shared *sh;
    unsigned index;
    pthread_t thread;
    int epfd;
    int wake_fd;
    int listen_fds[NM_LISTEN_MAX];
    bool accepting;
    int64_t accept_resume_ms;
    int64_t budget_warned_ms; /* when the descriptor bound was last reported */
    struct nm_site site;
    bool has_site;
    struct nm_send send;
    struct sconn *active; /* open connections */
    struct sconn *spare;  /* closed ones kept for reuse, at most MAX_SPARE */
    unsigned n_active;
    unsigned n_spare;
    /* Connections that stopped with work left (their round budget ran out): edge-triggered
     * epoll would not wake them again, so the loop runs them before it next waits. */
    struct sconn *again[MAX_AGAIN];
    unsigned n_again;
    bool log_cut;            /* the last log write stopped inside a line */
    uint64_t log_dropped;    /* access-log lines dropped because the log could not take them */
    uint64_t log_reported;   /* of those and the site's, how many the error log has told */
    int64_t log_reported_ms; /* when it last told */
};

int64_t nm_worker_clock_ms(void)
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

static void flush_log(struct nm_worker *w)
{
    struct nm_buf *b = &w->site.log;
    if (b->len == 0)
        return;
    int fd = w->sh->log_fd;
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

/* Tells the error log how many access-log lines were lost since it last did (a stalled log, or
 * a buffer that could not take a line), at most every LOG_REPORT_MS, and at the end. */
static void report_log_drops(struct nm_worker *w, int64_t t, bool final)
{
    uint64_t total = w->log_dropped + w->site.log_dropped;
    if (total == w->log_reported || (!final && t - w->log_reported_ms < LOG_REPORT_MS))
        return;
    nm_log_error("access log: %llu lines dropped by worker %u (%llu since it started): the log "
                 "could not keep up",
                 (unsigned long long)(total - w->log_reported), w->index,
                 (unsigned long long)total);
    w->log_reported = total;
    w->log_reported_ms = t;
}

/* ---- connections ---- */

static struct sconn *open_conn(struct nm_worker *w, int fd)
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
    atomic_fetch_add(&w->sh->open_conns, 1);
    return sc;
}

static void close_conn(struct nm_worker *w, struct sconn *sc)
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
    atomic_fetch_sub(&w->sh->open_conns, 1);
    if (w->n_spare == MAX_SPARE) {
        free(sc);
        return;
    }
    sc->next = w->spare;
    w->spare = sc;
    w->n_spare++;
}

static void set_accepting(struct nm_worker *w, bool on)
{
    if (w->accepting == on)
        return;
    for (size_t i = 0; i < w->sh->listeners->n; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN_BASE + i};
        epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->listen_fds[i], &ev);
    }
    w->accepting = on;
}

static void pause_accepting(struct nm_worker *w)
{
    set_accepting(w, false);
    w->accept_resume_ms = nm_worker_clock_ms() + ACCEPT_PAUSE_MS;
}

/* Whether one more connection fits: this worker's cap, and the descriptors all workers'
 * connections may take, so that a file can still be opened for the connections already open. */
static bool has_room_for_conn(struct nm_worker *w)
{
    const struct nm_worker_shared *sh = w->sh;
    return w->n_active < sh->cfg->max_conns &&
           (!sh->max_open_conns || atomic_load(&sh->open_conns) < sh->max_open_conns);
}

/* Stops accepting at the descriptor bound: new connections wait in the listen backlog, and the
 * tick resumes once one has closed (no accept is tried meanwhile, so nothing spins). */
static void pause_at_budget(struct nm_worker *w)
{
    set_accepting(w, false);
    int64_t t = nm_worker_clock_ms();
    if (t - w->budget_warned_ms >= BUDGET_WARN_MS) {
        w->budget_warned_ms = t;
        nm_log_error("%u connections hold the descriptors RLIMIT_NOFILE leaves for them: new "
                     "ones wait until some close",
                     w->sh->max_open_conns);
    }
}

static void accept_all(struct nm_worker *w, int lfd)
{
    for (;;) {
        if (!has_room_for_conn(w)) {
            if (w->n_active >= w->sh->cfg->max_conns)
                set_accepting(w, false);
            else
                pause_at_budget(w);
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
                pause_accepting(w);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sconn *sc = open_conn(w, fd);
        if (!sc) {
            close(fd);
            pause_accepting(w);
            return;
        }
        char peer[INET6_ADDRSTRLEN];
        nm_listen_format_host(&ss, peer, sizeof(peer));
        nm_conn_init(&sc->conn, &w->site, peer);
        sc->request_started_ms = 0;
        sc->last_io_ms = nm_worker_clock_ms();
        sc->requests_seen = 0;
        sc->tail.len = 0;
        sc->linger_since_ms = 0;
        sc->again = false;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = sc};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            close_conn(w, sc);
    }
}

/* Reads and drops what a closing client still sends. Closing with unread input would make the
 * kernel answer with a reset, which can destroy the error response before the client reads it. */
static bool linger(struct nm_worker *w, struct sconn *sc)
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

/* What reading did. */
enum input {
    INPUT_NONE,   /* nothing new */
    INPUT_MOVED,  /* bytes came in */
    INPUT_CLOSED, /* the connection is gone */
};

/* Reads while the connection has room; a full buffer waits for the responses ahead of it. */
static enum input read_input(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    struct nm_conn *c = &sc->conn;
    enum input got = INPUT_NONE;
    char *at;
    int room;
    while ((room = nm_conn_reserve_input(c, READ_CHUNK, &at)) > 0) {
        ssize_t n = recv(sc->fd, at, (size_t)room, 0);
        if (n == 0) {
            /* The peer finished sending: answer every request it sent (the output queue may
             * hold only some of the answers now), then close. */
            nm_conn_end_input(c);
            if (nm_conn_process(c) < 0 || nm_conn_is_done(c)) {
                close_conn(w, sc);
                return INPUT_CLOSED;
            }
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            close_conn(w, sc);
            return INPUT_CLOSED;
        }
        if (!nm_conn_is_mid_request(c))
            sc->request_started_ms = t;
        nm_conn_commit_input(c, (size_t)n);
        sc->last_io_ms = t;
        got = INPUT_MOVED;
    }
    if (room < 0) {
        /* No memory for the input buffer: the request could never be read, so the connection
         * closes now rather than waiting for its timeout (the client may try again). */
        close_conn(w, sc);
        return INPUT_CLOSED;
    }
    return got;
}

/* Puts sc on the list of connections run again before the loop next waits. */
static void run_again(struct nm_worker *w, struct sconn *sc)
{
    if (!sc->again && w->n_again < MAX_AGAIN) {
        sc->again = true;
        w->again[w->n_again++] = sc;
    }
}

/* Reads, processes and sends until nothing moves. Returns false when the connection is closed. */
static bool run_conn(struct nm_worker *w, struct sconn *sc)
{
    struct nm_conn *c = &sc->conn;
    int64_t t = nm_worker_clock_ms();
    if (sc->linger_since_ms)
        return linger(w, sc);
    w->site.listing_renders_left = 1;
    for (int rounds = 0;; rounds++) {
        if (rounds == MAX_ROUNDS) {
            run_again(w, sc);
            break;
        }
        enum input in = read_input(w, sc, t);
        if (in == INPUT_CLOSED)
            return false;
        bool moved = in == INPUT_MOVED;
        if (nm_conn_process(c) < 0) {
            close_conn(w, sc);
            return false;
        }
        if (w->site.log.len > w->site.log.max_cap / 2)
            flush_log(w); /* many requests in one pass: write before the buffer is full */
        /* Each request's deadline runs from its own first byte: a request answered ends it, and
         * the bytes of the next that came with it start the next one now. */
        if (nm_conn_count_requests(c) != sc->requests_seen) {
            sc->requests_seen = nm_conn_count_requests(c);
            sc->request_started_ms = nm_conn_is_mid_request(c) ? t : 0;
        } else if (!nm_conn_is_mid_request(c)) {
            sc->request_started_ms = 0;
        }
        int sent = nm_send_some(&w->send, sc->fd, c, &sc->tail, nm_worker_clock_ms());
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
        if (w->site.listing_renders_left == 0) {
            run_again(w, sc); /* it rendered a listing: its next requests wait for the others */
            break;
        }
        if (!moved)
            break;
    }
    return true;
}

static void sweep(struct nm_worker *w, int64_t t, bool stopping)
{
    const struct nm_config *cfg = w->sh->cfg;
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
        if (nm_conn_is_mid_request(c) && sc->request_started_ms &&
            t - sc->request_started_ms > cfg->header_timeout_ms) {
            /* A request (head and content) that does not complete in time, however steadily its
             * bytes trickle in: say so, then close. */
            nm_conn_fail(c, 408, "request not received in time");
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

/* ---- the loop ---- */

/* Stops accepting; idle connections go at the next sweep, busy ones when their response is sent. */
static void begin_stop(struct nm_worker *w)
{
    set_accepting(w, false);
    /* New connections are refused from now on. The sockets belong to the server, which closes
     * them at the end, so they only stop listening here. */
    for (size_t i = 0; i < w->sh->listeners->n; i++)
        if (w->listen_fds[i] >= 0)
            shutdown(w->listen_fds[i], SHUT_RD);
    for (struct sconn *sc = w->active; sc; sc = sc->next)
        nm_conn_stop_reading(&sc->conn);
}

static void dispatch(struct nm_worker *w, const struct epoll_event *events, int n, bool stopping)
{
    for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        if (tag == TAG_WAKE) {
            uint64_t v;
            ssize_t r = read(w->wake_fd, &v, sizeof(v));
            (void)r;
        } else if (tag >= TAG_LISTEN_BASE && tag < TAG_LISTEN_BASE + NM_LISTEN_MAX) {
            if (!stopping)
                accept_all(w, w->listen_fds[tag - TAG_LISTEN_BASE]);
        } else {
            run_conn(w, events[i].data.ptr);
        }
    }
    /* The connections waiting at the start of this round each run once, in order: one that
     * stops again waits for the next round rather than running ahead of the others. */
    struct sconn *waiting[MAX_AGAIN];
    unsigned n_waiting = w->n_again;
    memcpy(waiting, w->again, n_waiting * sizeof(waiting[0]));
    w->n_again = 0;
    for (unsigned k = 0; k < n_waiting; k++) {
        struct sconn *sc = waiting[k]; /* a run closes only its own connection */
        sc->again = false;
        run_conn(w, sc);
    }
}

static void *worker_main(void *arg)
{
    struct nm_worker *w = arg;
    struct nm_worker_shared *sh = w->sh;
    struct epoll_event events[256];
    int64_t next_tick = nm_worker_clock_ms() + TICK_MS;
    bool stopping = false;

    set_accepting(w, true);
    for (;;) {
        int64_t t = nm_worker_clock_ms();
        int timeout = next_tick > t && w->n_again == 0 ? (int)(next_tick - t) : 0;
        int n = epoll_wait(w->epfd, events, 256, timeout);
        nm_site_set_time(&w->site, wall_seconds());
        dispatch(w, events, n, stopping);
        flush_log(w);
        t = nm_worker_clock_ms();
        if (atomic_load(&sh->stopping) && !stopping) {
            stopping = true;
            begin_stop(w);
            next_tick = t;
        }
        if (t >= next_tick) {
            next_tick = t + TICK_MS;
            sweep(w, t, stopping);
            if (w->index == 0)
                nm_send_aborts_flush(sh->aborts, t, false);
            report_log_drops(w, t, false);
            if (!stopping && !w->accepting && has_room_for_conn(w) && t >= w->accept_resume_ms)
                set_accepting(w, true);
            flush_log(w);
        }
        if (stopping && (w->n_active == 0 || t >= sh->stop_deadline_ms))
            break;
    }
    while (w->active)
        close_conn(w, w->active);
    flush_log(w);
    report_log_drops(w, nm_worker_clock_ms(), true);
    return NULL;
}

/* ---- lifecycle ---- */

int nm_worker_new(struct nm_worker_shared *sh, unsigned index, struct nm_worker **out)
{
    struct nm_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->sh = sh;
    w->index = index;
    nm_send_init(&w->send, sh->aborts);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    for (size_t i = 0; i < NM_LISTEN_MAX; i++)
        w->listen_fds[i] = -1;
    int rc = 0;
    if (w->epfd < 0 || w->wake_fd < 0) {
        rc = -errno;
        goto fail_free;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev);
    for (size_t i = 0; i < sh->listeners->n; i++)
        w->listen_fds[i] = sh->listeners->l[i].fds[index];
    rc = nm_site_init(&w->site, sh->cfg, sh->mime, sh->root_fd);
    w->has_site = true;
    if (rc < 0)
        goto fail_free;
    nm_site_set_time(&w->site, wall_seconds());
    if (sh->hashing)
        nm_site_set_hashing(&w->site, sh->hashing);
    w->site.fly = sh->fly;
    *out = w;
    return 0;

fail_free:
    nm_worker_free(w);
    return rc;
}

int nm_worker_start(struct nm_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -EAGAIN;
}

void nm_worker_wake(struct nm_worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof(one));
    (void)n;
}

void nm_worker_join(struct nm_worker *w)
{
    pthread_join(w->thread, NULL);
}

void nm_worker_free(struct nm_worker *w)
{
    if (!w)
        return;
    if (w->has_site)
        nm_site_cleanup(&w->site);
    while (w->spare) {
        struct sconn *sc = w->spare;
        w->spare = sc->next;
        free(sc);
    }
    nm_send_cleanup(&w->send);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    free(w);
}
