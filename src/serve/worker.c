/* One worker thread: an edge-triggered epoll loop over its listening sockets and connections. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "connpool.h"
#include "h2.h"
#include "log.h"
#include "ring.h"
#include "site.h"
#include "tls.h"

#define READ_CHUNK 16384
#define TICK_MS 250
#define MAX_SPARE 256        /* closed connections kept for reuse; memory follows the peak load */
#define MAX_SPARE_STATES 256 /* drained connection states kept, within the recent peak */
#define TRIM_MS 5000         /* how often spare states above the recent peak are freed */
#define MALLOC_TRIM_MS 10000 /* how often freed heap memory is handed back to the system */
#define LINGER_MS 2000       /* how long a closing connection's unread input is drained */
#define MAX_ROUNDS 64        /* read-process-send rounds one connection gets before the others */
#define MAX_AGAIN 256
#define MAX_EVENTS 256       /* epoll events taken per wake-up */
#define ACCEPT_PAUSE_MS 500  /* out of descriptors or memory: accepting waits this long */
#define LOG_REPORT_MS 10000  /* lost access-log lines are reported at most this often */
#define BUDGET_WARN_MS 60000 /* the descriptor bound is reported at most this often */
#define H2_READS 4           /* reads of READ_CHUNK an HTTP/2 connection gets per round */
#define H2_WRITES 64         /* writes an HTTP/2 connection gets per round */
#define H2_TRIM_IDLE_MS 1000 /* an HTTP/2 connection idle this long frees its kept streams */
#define RING_ROUNDS 4        /* batches one pass submits; connections then send for themselves */

/* epoll data: listeners and the wake fd are tagged small integers, connections are pointers. */
#define TAG_WAKE ((uint64_t)1)
#define TAG_LEASE ((uint64_t)2)
#define TAG_WATCH ((uint64_t)3)
#define TAG_LISTEN_BASE ((uint64_t)16)

/* What a connection is doing before it carries requests. */
enum phase {
    PHASE_HTTP = 0,  /* HTTP/1.1 in `conn`, or HTTP/2 in `h2` */
    PHASE_HANDSHAKE, /* the TLS handshake */
    PHASE_SNIFF,     /* cleartext with --h2c: the first bytes tell HTTP/2's preface from HTTP/1.1 */
};

/* What every open connection keeps, idle or not: a hundred-odd bytes. Its HTTP/1.1 machine and
 * buffers (`st`) come from the worker's pool while it has work, and go back once it is drained. */
struct sconn {
    int fd;
    uint8_t phase;          /* enum phase */
    bool h2_input_over;     /* HTTP/2: the peer stopped sending or broke the protocol */
    bool h2_output_blocked; /* HTTP/2: the socket took less than there was to send */
    bool again;             /* in the worker's list of connections to run again */
    bool idle;              /* in the worker's idle list (else in its busy list) */
    bool rx_drained;        /* a short read emptied the socket: no recv until its next edge */
    bool rx_hup;            /* the peer's end was seen (EPOLLRDHUP): read on to the EOF */
    bool in_ring;           /* its send waits in the worker's ring: nothing runs it until then */
    unsigned requests_seen;
    struct nm_tls_conn *tls;      /* NULL on a cleartext connection */
    struct nm_h2 *h2;             /* the HTTP/2 machine, else NULL (HTTP/1.1 in `st`) */
    struct nm_connpool_state *st; /* HTTP/1.1 with work: the machine and its buffers */
    struct nm_send_splice splice; /* the file it last spliced, and where its peer is */
    int64_t request_started_ms;   /* first byte of the unfinished request, 0 when none */
    int64_t last_io_ms;
    int64_t linger_since_ms;   /* output done and write side shut: draining until EOF, else 0 */
    struct sconn *prev, *next; /* in the worker's idle or busy list, or its spares */
    struct nm_conn_peer peer;
};

/* A list of connections; the idle one is kept in last-activity order, oldest first. */
struct sconn_list {
    struct sconn *head, *tail;
};

struct nm_worker {
    struct nm_worker_shared *sh;
    unsigned index;
    pthread_t thread;
    int epfd;
    int wake_fd;
    int lease_fd; /* signalfd: the breaks of the leases this thread's file table took */
    int listen_fds[NM_LISTEN_MAX];
    size_t n_listen;                      /* of the generation the worker serves with */
    const struct nm_listeners *listeners; /* that generation's */
    bool accepting;
    int64_t accept_resume_ms;
    int64_t trim_at_ms;
    int64_t budget_warned_ms; /* when the descriptor bound was last reported */
    struct nm_site site;
    bool has_site;
    bool has_pool;
    int64_t refused_logged_ms; /* when a 503 for want of memory was last logged */
    struct nm_send send;
    struct nm_ring *ring; /* this pass's batched reads and sends; NULL: a system call each */
    unsigned ring_rounds; /* batches submitted in this pass */
    /* This pass's first reads, made together before the connections run (ring_receive): for
     * the connection of event i, the state it read into (NULL: no read made for it) and the
     * result; while a connection runs with its read made, that result is handed to read_some. */
    struct nm_connpool_state *rx_st[MAX_EVENTS];
    int rx_res[MAX_EVENTS];
    int rx_n;                /* events with reads made, while the pass has not run them all */
    struct sconn *rx_sc;     /* the connection running with its read made, else NULL */
    int rx_now;              /* its result */
    struct nm_connpool pool; /* states of HTTP/1.1 connections with work */
    int64_t trimmed_ms;      /* when the pool last gave back spares above its peak */
    bool stopping;
    /* Open connections: idle HTTP/1.1 ones (no state, nothing in or out; only the idle timeout
     * applies, so the sweep stops at the first that has not expired), and every other. */
    struct sconn_list idle;
    struct sconn_list busy;
    struct sconn *spare; /* closed ones kept for reuse, at most MAX_SPARE */
    unsigned n_active;
    unsigned n_spare;
    /* Connections that stopped with work left (their round budget ran out): edge-triggered
     * epoll would not wake them again, so the loop runs them before it next waits. */
    struct sconn *again[MAX_AGAIN];
    unsigned n_again;
    struct nm_confgen *gen; /* the settings the site serves with; NULL without sh->config */
    /* What HTTP/2 connections read, handed to their machine at once, and what an idle HTTP/1.1
     * connection reads first: it takes a state only when something came. */
    char rbuf[READ_CHUNK];
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

static void list_remove(struct sconn_list *l, struct sconn *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        l->head = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    else
        l->tail = sc->prev;
}

/* Inserts sc after `after` (NULL: at the head). */
static void list_insert(struct sconn_list *l, struct sconn *after, struct sconn *sc)
{
    sc->prev = after;
    sc->next = after ? after->next : l->head;
    if (sc->next)
        sc->next->prev = sc;
    else
        l->tail = sc;
    if (after)
        after->next = sc;
    else
        l->head = sc;
}

static void unlist(struct nm_worker *w, struct sconn *sc)
{
    list_remove(sc->idle ? &w->idle : &w->busy, sc);
    sc->idle = false;
}

/* Into the busy list, from wherever it is. */
static void make_busy(struct nm_worker *w, struct sconn *sc)
{
    if (!sc->idle)
        return;
    unlist(w, sc);
    list_insert(&w->busy, NULL, sc);
}

/* Into the idle list, in last-activity order: nearly always at the tail, since last_io_ms is
 * the time of the run that drained it. */
static void make_idle(struct nm_worker *w, struct sconn *sc)
{
    if (sc->idle)
        return;
    list_remove(&w->busy, sc);
    struct sconn *after = w->idle.tail;
    while (after && after->last_io_ms > sc->last_io_ms)
        after = after->prev;
    list_insert(&w->idle, after, sc);
    sc->idle = true;
}

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
    sc->st = NULL;
    sc->h2 = NULL;
    sc->tls = NULL;
    sc->idle = false;
    sc->in_ring = false;
    list_insert(&w->busy, NULL, sc);
    w->n_active++;
    return sc;
}

/* Gives the connection's state back to the pool (what it still held is dropped). */
static void release_state(struct nm_worker *w, struct sconn *sc)
{
    if (sc->st) {
        nm_connpool_give(&w->pool, sc->st);
        sc->st = NULL;
    }
}

static void close_conn(struct nm_worker *w, struct sconn *sc)
{
    if (sc->again) {
        for (unsigned i = 0; i < w->n_again; i++)
            if (w->again[i] == sc)
                w->again[i] = w->again[--w->n_again];
        sc->again = false;
    }
    if (sc->in_ring) {
        /* Its iovecs point into the state that goes back to the pool below. */
        nm_ring_cancel(w->ring, sc);
        sc->in_ring = false;
    }
    for (int i = 0; sc->st && i < w->rx_n; i++)
        if (w->rx_st[i] == sc->st)
            w->rx_st[i] = NULL; /* closed before it ran: its read goes with its state */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, sc->fd, NULL);
    close(sc->fd);
    if (sc->h2)
        nm_h2_free(sc->h2);
    release_state(w, sc);
    nm_tls_conn_free(sc->tls);
    nm_send_splice_reset(&sc->splice);
    sc->h2 = NULL;
    sc->tls = NULL;
    sc->fd = -1;
    unlist(w, sc);
    w->n_active--;
    atomic_fetch_sub(&w->sh->n_conns, 1);
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
    for (size_t i = 0; i < w->n_listen; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        /* A socket every worker shares (socket activation) wakes one of them per connection. */
        uint32_t events = EPOLLIN | (w->listeners->l[i].inherited ? EPOLLEXCLUSIVE : 0);
        struct epoll_event ev = {.events = events, .data.u64 = TAG_LISTEN_BASE + i};
        epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->listen_fds[i], &ev);
    }
    w->accepting = on;
}

static void pause_accepting(struct nm_worker *w)
{
    set_accepting(w, false);
    w->accept_resume_ms = nm_worker_clock_ms() + ACCEPT_PAUSE_MS;
}

/* How many connections all workers may hold together: cfg->max_conns, and no more than the
 * descriptors RLIMIT_NOFILE leaves for them, so that a file can still be opened for the
 * connections already open. */
static unsigned conn_cap(const struct nm_worker *w)
{
    unsigned cap = w->site.cfg->max_conns, fds = w->sh->max_open_conns;
    return fds && fds < cap ? fds : cap;
}

/* Takes one of the connection slots all workers share, or returns false. */
static bool take_slot(struct nm_worker *w)
{
    if (atomic_fetch_add(&w->sh->n_conns, 1) < conn_cap(w))
        return true;
    atomic_fetch_sub(&w->sh->n_conns, 1);
    return false;
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

/* A new connection on listener li starts with the TLS handshake on a TLS listener, with a look at
 * its first bytes on a cleartext one with --h2c, and as HTTP/1.1 otherwise. Both beginnings are
 * bound by the header timeout from the accept. */
static bool begin_conn(struct nm_worker *w, struct sconn *sc, size_t li, int64_t t)
{
    size_t index = w->listeners->l[li].index;
    sc->phase = PHASE_HTTP;
    sc->h2_input_over = false;
    sc->h2_output_blocked = false;
    sc->rx_drained = false;
    sc->rx_hup = false;
    if (nm_tls_listens(w->sh->tls, index)) {
        if (nm_tls_conn_new(w->sh->tls, index, sc->fd, &sc->rx_drained, &sc->rx_hup, &sc->tls) < 0)
            return false;
        sc->phase = PHASE_HANDSHAKE;
        sc->request_started_ms = t;
    } else if (w->site.cfg->h2c) {
        sc->phase = PHASE_SNIFF;
        sc->request_started_ms = t;
    }
    return true;
}

static void accept_all(struct nm_worker *w, size_t li)
{
    int lfd = w->listen_fds[li];
    for (;;) {
        if (!take_slot(w)) {
            if (conn_cap(w) < w->site.cfg->max_conns)
                pause_at_budget(w);
            else
                set_accepting(w, false);
            return;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            atomic_fetch_sub(&w->sh->n_conns, 1); /* the slot goes back */
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
            atomic_fetch_sub(&w->sh->n_conns, 1);
            close(fd);
            pause_accepting(w);
            return;
        }
        nm_conn_peer_set(&sc->peer, &ss);
        sc->request_started_ms = 0;
        sc->last_io_ms = nm_worker_clock_ms();
        sc->requests_seen = 0;
        nm_send_splice_init(&sc->splice);
        sc->linger_since_ms = 0;
        sc->again = false;
        if (!begin_conn(w, sc, li, sc->last_io_ms)) {
            close_conn(w, sc);
            pause_accepting(w);
            return;
        }
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

/* One read of at most n bytes. A short read empties the socket: with edge-triggered epoll, more
 * bytes raise a new edge, and the peer's end raises EPOLLRDHUP, after which reads go on to the
 * EOF. Over TLS, the TLS connection reads the socket and keeps the same mark (nm_tls_conn_new). */
static ssize_t read_some(struct nm_worker *w, struct sconn *sc, char *at, size_t n)
{
    if (sc->tls)
        return nm_tls_read(sc->tls, at, n);
    ssize_t got;
    if (w->rx_sc == sc) {
        /* Made already, into this very room (ring_receive): its result is this read's. */
        w->rx_sc = NULL;
        got = w->rx_now;
        if (got < 0) {
            errno = (int)-got;
            got = -1;
        }
    } else if (sc->rx_drained && !sc->rx_hup) {
        errno = EAGAIN;
        return -1;
    } else {
        got = recv(sc->fd, at, n, 0);
    }
    if ((got > 0 && (size_t)got < n) || (got < 0 && errno == EAGAIN))
        sc->rx_drained = true;
    return got;
}

/* The 503 for a connection no state can be found for: sent as it is (one small write into an
 * idle socket), then the connection closes. */
static void refuse_conn(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 29\r\n"
                               "Retry-After: 1\r\n"
                               "Connection: close\r\n\r\n"
                               "503 server short of memory\r\n\r\n";
    ssize_t n = sc->tls ? nm_tls_write(sc->tls, busy, sizeof(busy) - 1)
                        : send(sc->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
    (void)n; /* a client that cannot take it now gets the close */
    if (t - w->refused_logged_ms >= LOG_REPORT_MS) {
        w->refused_logged_ms = t;
        nm_log_error("no memory for a connection's buffers: answered 503");
    }
}

/* An idle connection reads into the worker's buffer first, and takes a state from the pool only
 * when something came: a wake-up with nothing to read (or only the peer's end) costs no buffer. */
static enum input read_idle(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    size_t cap = nm_conn_max_input(&w->site);
    size_t want = cap < sizeof(w->rbuf) ? cap : sizeof(w->rbuf);
    ssize_t n = read_some(w, sc, w->rbuf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return INPUT_NONE;
    if (n <= 0) {
        close_conn(w, sc); /* the peer left between requests, or the socket failed */
        return INPUT_CLOSED;
    }
    if (nm_connpool_take(&w->pool, &sc->peer, &sc->st) < 0) {
        sc->st = NULL;
        refuse_conn(w, sc, t);
        close_conn(w, sc);
        return INPUT_CLOSED;
    }
    make_busy(w, sc);
    sc->requests_seen = 0;
    char *at;
    int room = nm_conn_reserve_input(&sc->st->conn, (size_t)n, &at);
    if (room < n) {
        close_conn(w, sc); /* no memory for the input buffer */
        return INPUT_CLOSED;
    }
    memcpy(at, w->rbuf, (size_t)n);
    nm_conn_commit_input(&sc->st->conn, (size_t)n);
    sc->request_started_ms = t;
    sc->last_io_ms = t;
    return INPUT_MOVED;
}

/* Reads while the connection has room; a full buffer waits for the responses ahead of it. */
static enum input read_input(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    enum input got = INPUT_NONE;
    if (!sc->st) {
        got = read_idle(w, sc, t);
        if (got != INPUT_MOVED)
            return got;
    }
    struct nm_conn *c = &sc->st->conn;
    char *at;
    int room;
    while ((room = nm_conn_reserve_input(c, READ_CHUNK, &at)) > 0) {
        ssize_t n = read_some(w, sc, at, (size_t)room);
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

/* Output done: close_notify over TLS, the write side shut, then lingering. */
static bool finish_conn(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    if (sc->tls)
        nm_tls_close(sc->tls);
    shutdown(sc->fd, SHUT_WR);
    sc->linger_since_ms = t;
    release_state(w, sc); /* lingering reads into a sink */
    make_busy(w, sc);
    return linger(w, sc);
}

/* The connection speaks HTTP/2 from now on: its HTTP/1.1 machine, still empty, gives way. */
static bool start_h2(struct nm_worker *w, struct sconn *sc)
{
    char peer[INET6_ADDRSTRLEN];
    nm_conn_peer_format(&sc->peer, peer, sizeof(peer));
    if (nm_h2_new(&w->site, peer, &sc->h2) < 0) {
        sc->h2 = NULL;
        close_conn(w, sc);
        return false;
    }
    sc->phase = PHASE_HTTP;
    sc->request_started_ms = 0;
    return true;
}

/* What a beginning connection did. */
enum begun {
    BEGUN_WAIT,   /* waits for the socket */
    BEGUN_READY,  /* carries requests now */
    BEGUN_CLOSED, /* gone */
};

/* The TLS handshake (non-blocking: each call goes as far as the socket lets it), or the look at a
 * cleartext connection's first bytes with --h2c (RFC 9113 §3.3: prior knowledge; a peek, so that
 * HTTP/1.1 reads them as usual). */
static enum begun begin_http(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    if (sc->phase == PHASE_HANDSHAKE) {
        int rc = nm_tls_handshake(sc->tls);
        if (rc == 0)
            return BEGUN_WAIT;
        if (rc < 0) {
            close_conn(w, sc);
            return BEGUN_CLOSED;
        }
        sc->last_io_ms = t;
        if (nm_tls_is_h2(sc->tls))
            return start_h2(w, sc) ? BEGUN_READY : BEGUN_CLOSED;
        sc->phase = PHASE_HTTP;
        sc->request_started_ms = 0;
        return BEGUN_READY;
    }
    char first[NM_H2_PREFACE_LEN];
    ssize_t n = recv(sc->fd, first, sizeof(first), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return BEGUN_WAIT;
    if (n > 0 && nm_h2_may_be_preface(first, (size_t)n)) {
        if (n < NM_H2_PREFACE_LEN)
            return BEGUN_WAIT; /* the rest of the preface wakes the connection again */
        return start_h2(w, sc) ? BEGUN_READY : BEGUN_CLOSED;
    }
    sc->phase = PHASE_HTTP; /* HTTP/1.1, or an end or error its reading meets */
    sc->request_started_ms = 0;
    return BEGUN_READY;
}

/* Reads what the peer sent into the HTTP/2 machine, a few chunks a round. Returns 1 when bytes
 * came in, 0 when none, -1 when the connection is closed. */
static int read_h2(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    int got = 0;
    for (int k = 0; k < H2_READS && !sc->h2_input_over; k++) {
        ssize_t n = sc->tls ? nm_tls_read(sc->tls, w->rbuf, sizeof(w->rbuf))
                            : recv(sc->fd, w->rbuf, sizeof(w->rbuf), 0);
        if (n == 0) {
            /* The peer sends no more: the streams it opened are still answered. */
            sc->h2_input_over = true;
            nm_h2_stop(sc->h2);
            return 1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            close_conn(w, sc);
            return -1;
        }
        sc->last_io_ms = t;
        got = 1;
        if (nm_h2_receive(sc->h2, w->rbuf, (size_t)n) < 0)
            sc->h2_input_over = true; /* a GOAWAY is queued: send it, then close */
    }
    return got;
}

/* Sends what the HTTP/2 machine has. Returns 1 when bytes left, 0 when none, -1 to drop. */
static int send_h2(struct sconn *sc)
{
    int progress = 0;
    sc->h2_output_blocked = false;
    for (int k = 0; k < H2_WRITES; k++) {
        const char *data;
        size_t len;
        if (nm_h2_output(sc->h2, &data, &len) < 0)
            return -1;
        if (len == 0)
            break;
        ssize_t n =
            sc->tls ? nm_tls_write(sc->tls, data, len) : send(sc->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -1;
            sc->h2_output_blocked = true;
            break;
        }
        nm_h2_advance(sc->h2, (size_t)n);
        progress = 1;
    }
    return progress;
}

static bool run_h2(struct nm_worker *w, struct sconn *sc, int64_t t)
{
    /* One listing render per pass, as over HTTP/1.1 (site.h): streams after it wait their turn. */
    w->site.listing_renders_left = 1;
    if (nm_h2_answer_waiting(sc->h2) < 0) {
        close_conn(w, sc);
        return false;
    }
    for (int rounds = 0;; rounds++) {
        if (rounds == MAX_ROUNDS) {
            run_again(w, sc);
            break;
        }
        int in = read_h2(w, sc, t);
        if (in < 0)
            return false;
        int out = send_h2(sc);
        if (out < 0) {
            close_conn(w, sc);
            return false;
        }
        if (out > 0)
            sc->last_io_ms = t;
        if (nm_h2_is_done(sc->h2))
            return finish_conn(w, sc, t);
        if (nm_h2_has_waiting(sc->h2)) {
            run_again(w, sc);
            break;
        }
        /* Decrypted bytes left inside TLS raise no epoll edge: read them now. */
        bool pending = sc->tls && !sc->h2_input_over && nm_tls_has_pending(sc->tls);
        if (!in && !out && !pending)
            break;
    }
    return true;
}

/* Makes what the ring holds, reporting each result to done. A ring the kernel stops taking is given
 * up: each operation is reported with the error (its connection closes), and the worker reads
 * and sends with one system call each from then on. */
static void submit_ring(struct nm_worker *w, void (*done)(void *, void *, int))
{
    int rc = nm_ring_submit(w->ring, done, w);
    if (rc < 0) {
        nm_log_error("worker %u: io_uring failed (%s): one system call per read and send from "
                     "now on",
                     w->index, strerror(-rc));
        nm_ring_free(w->ring);
        w->ring = NULL;
    }
}

/* Queues the send of a plain HTTP/1.1 connection's memory front (heads, bodies held in memory)
 * in the worker's ring, to be made with the other connections' before the loop next waits. A
 * file part first, TLS, a connection that rendered a listing (its turn is over), a full batch or
 * a pass that submitted enough batches: the connection sends for itself. */
static bool ring_send(struct nm_worker *w, struct sconn *sc)
{
    struct nm_conn *c = &sc->st->conn;
    if (!w->ring || sc->tls || w->ring_rounds >= RING_ROUNDS || w->site.listing_renders_left == 0 ||
        !nm_send_is_memory_next(c))
        return false;
    struct nm_ring_op *op = nm_ring_reserve(w->ring);
    if (!op)
        return false;
    int flags;
    size_t n = nm_send_gather(c, op->iov, NM_RING_MAX_IOV, &flags);
    nm_ring_queue_send(w->ring, op, sc->fd, n, flags, sc);
    sc->in_ring = true;
    return true;
}

/* A drained HTTP/1.1 connection gives its state back and waits in the idle list. */
static void settle(struct nm_worker *w, struct sconn *sc)
{
    if (sc->st && nm_conn_is_drained(&sc->st->conn)) {
        release_state(w, sc);
        sc->request_started_ms = 0;
    }
    if (!sc->st)
        make_idle(w, sc);
}

/* Reads, processes and sends until nothing moves. Returns false when the connection is closed. */
static bool run_conn(struct nm_worker *w, struct sconn *sc)
{
    int64_t t = nm_worker_clock_ms();
    if (sc->in_ring)
        return true; /* run again by ring_sent */
    if (sc->linger_since_ms)
        return linger(w, sc);
    if (sc->phase != PHASE_HTTP) {
        enum begun b = begin_http(w, sc, t);
        if (b != BEGUN_READY)
            return b == BEGUN_WAIT;
    }
    if (sc->h2)
        return run_h2(w, sc, t);
    if (!sc->st && w->stopping)
        return finish_conn(w, sc, t); /* between requests when the stop came: no more */
    w->site.listing_renders_left = 1;
    for (int rounds = 0;; rounds++) {
        if (rounds == MAX_ROUNDS) {
            run_again(w, sc);
            break;
        }
        enum input in = read_input(w, sc, t);
        if (in == INPUT_CLOSED)
            return false;
        if (!sc->st)
            break; /* idle, and nothing came */
        struct nm_conn *c = &sc->st->conn;
        bool moved = in == INPUT_MOVED;
        /* Bytes read after this pass looked at the inotify queue may have been sent after a
         * change it did not see yet: look again before answering (docs/etags.md, "Watching"). */
        if (moved && rounds > 0)
            nm_site_read_changes(&w->site);
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
        if (ring_send(w, sc))
            return true; /* the rest of this run is ring_sent's, once the send is made */
        int sent = nm_send_some(&w->send, sc->fd, sc->tls, c, &sc->st->tail, &sc->splice,
                                nm_worker_clock_ms());
        if (sent < 0) {
            close_conn(w, sc);
            return false;
        }
        if (sent > 0) {
            sc->last_io_ms = t;
            moved = true;
        }
        if (nm_conn_is_done(c))
            return finish_conn(w, sc, t);
        if (w->site.listing_renders_left == 0) {
            run_again(w, sc); /* it rendered a listing: its next requests wait for the others */
            break;
        }
        if (!moved)
            break;
        /* All that came was answered and sent, and the socket (and TLS) is empty: no round is
         * left. */
        if (sc->rx_drained && !sc->rx_hup && nm_conn_is_drained(c) &&
            !(sc->tls && nm_tls_has_pending(sc->tls)))
            break;
    }
    settle(w, sc);
    return true;
}

/* The send ring_send queued was made: what run_conn does after its own send, from its result
 * (res: bytes, or a negative errno). A full socket (-EAGAIN) waits for its EPOLLOUT edge; a
 * connection that sent runs on (what its send left, the file part after it, pipelined requests,
 * unread input: a socket that took only part finds itself full at its next send) unless it is
 * drained and its socket empty. */
static void ring_sent(void *arg, void *tag, int res)
{
    struct nm_worker *w = arg;
    struct sconn *sc = tag;
    int64_t t = nm_worker_clock_ms();
    sc->in_ring = false;
    struct nm_conn *c = &sc->st->conn;
    int sent = nm_send_apply(c, res);
    if (sent < 0) {
        close_conn(w, sc);
        return;
    }
    if (sent > 0)
        sc->last_io_ms = t;
    if (nm_conn_is_done(c)) {
        finish_conn(w, sc, t);
        return;
    }
    if (sent == 0 || (sc->rx_drained && !sc->rx_hup && nm_conn_is_drained(c)))
        settle(w, sc);
    else
        run_conn(w, sc);
}

/* Makes this pass's queued sends, and those the connections they let run on queue in turn. A ring
 * the kernel stops taking is given up: the connections it held were closed, the rest send with
 * one system call each from now on. */
static void flush_ring(struct nm_worker *w)
{
    for (w->ring_rounds = 0; w->ring && nm_ring_count_queued(w->ring) > 0; w->ring_rounds++)
        submit_ring(w, ring_sent);
    w->ring_rounds = 0;
}

/* The idle list is in last-activity order and only the idle timeout applies to it: the sweep
 * stops at the first connection that has not expired, so a tick costs the busy connections and
 * the expired ones, not every open one. */
static void sweep_idle(struct nm_worker *w, int64_t t, bool stopping)
{
    const struct nm_config *cfg = w->site.cfg;
    while (w->idle.head && (stopping || t - w->idle.head->last_io_ms > cfg->idle_timeout_ms))
        close_conn(w, w->idle.head);
}

static void sweep(struct nm_worker *w, int64_t t, bool stopping)
{
    const struct nm_config *cfg = w->site.cfg;
    sweep_idle(w, t, stopping);
    for (struct sconn *sc = w->busy.head, *next; sc; sc = next) {
        next = sc->next; /* sc may be closed, or go idle, below */
        if (sc->linger_since_ms) {
            if (stopping || t - sc->linger_since_ms > LINGER_MS)
                close_conn(w, sc);
            continue;
        }
        if (sc->phase != PHASE_HTTP) {
            /* A handshake, or a first line, however slow, within the header timeout. */
            if (stopping || t - sc->request_started_ms > cfg->header_timeout_ms)
                close_conn(w, sc);
            continue;
        }
        if (sc->h2) {
            /* Open streams: the peer owes a request, or reads a response, within its timeout. */
            bool busy = nm_h2_is_busy(sc->h2);
            unsigned limit = !busy                   ? cfg->idle_timeout_ms
                             : sc->h2_output_blocked ? cfg->send_timeout_ms
                                                     : cfg->header_timeout_ms;
            if ((stopping && !busy) || t - sc->last_io_ms > limit)
                close_conn(w, sc);
            else if (!busy && t - sc->last_io_ms > H2_TRIM_IDLE_MS)
                nm_h2_trim(sc->h2); /* idle: keep the session, not buffers for the next streams */
            continue;
        }
        if (!sc->st) {
            /* Accepted, and not run yet: idle. */
            if (stopping || t - sc->last_io_ms > cfg->idle_timeout_ms)
                close_conn(w, sc);
            continue;
        }
        struct nm_conn *c = &sc->st->conn;
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
     * them at the end, so they only stop listening here; a socket the service manager passed
     * stays listening: it is the manager's, and connections waiting in it are for the next
     * instance. */
    for (size_t i = 0; i < w->n_listen; i++)
        if (w->listen_fds[i] >= 0 && !w->listeners->l[i].inherited)
            shutdown(w->listen_fds[i], SHUT_RD);
    w->stopping = true;
    for (struct sconn *sc = w->busy.head, *next; sc; sc = next) {
        next = sc->next; /* sc may be closed below */
        if (sc->h2) {
            /* A GOAWAY (RFC 9113 §6.8), sent now: the sweep that follows closes the idle. */
            nm_h2_stop(sc->h2);
            if (!sc->linger_since_ms)
                run_conn(w, sc);
        } else if (sc->st) {
            nm_conn_stop_reading(&sc->st->conn);
        }
    }
}

/* A lease broke on file descriptor fd (-1: notices were lost): a writer waits in open(2). Every
 * response that sent bytes of that file by sendfile that may still be read from the page cache is
 * cut with a reset, which drops what its socket holds (the client sees fewer bytes than its
 * Content-Length); only then does the lease go, so the writer goes on, and the file is loaded
 * again at its next request. */
/* Connections idle or busy may hold spliced bytes of the file in their sockets. */
static void lease_broken(struct nm_worker *w, int fd)
{
    if (fd >= 0 && fcntl(fd, F_GETLEASE) == F_RDLCK)
        return; /* a notice for a descriptor closed since, its number now leased again */
    int64_t t = nm_worker_clock_ms();
    struct sconn *lists[2] = {w->busy.head, w->idle.head};
    for (int k = 0; k < 2; k++)
        for (struct sconn *sc = lists[k], *next; sc; sc = next) {
            next = sc->next; /* sc may be closed below */
            if (!sc->h2 && nm_send_is_exposed(&w->send, sc->fd, sc->st ? &sc->st->conn : NULL,
                                              &sc->splice, fd, t)) {
                struct linger reset = {.l_onoff = 1, .l_linger = 0};
                setsockopt(sc->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
                close_conn(w, sc);
            }
        }
    struct sconn *left[2] = {w->busy.head, w->idle.head};
    for (int k = 0; k < 2; k++)
        for (struct sconn *sc = left[k]; sc; sc = sc->next)
            if (!sc->h2)
                nm_send_unlease(sc->st ? &sc->st->conn : NULL, &sc->splice, fd);
    nm_filecache_lease_broken(w->site.files, fd);
}

static void read_lease_notices(struct nm_worker *w)
{
    struct signalfd_siginfo si[16];
    for (int k = 0; k < 64; k++) {
        ssize_t r = read(w->lease_fd, si, sizeof(si));
        if (r < (ssize_t)sizeof(si[0]))
            return;
        for (size_t i = 0; i < (size_t)r / sizeof(si[0]); i++)
            lease_broken(w, si[i].ssi_signo == SIGIO ? -1 : si[i].ssi_fd);
    }
}

/* The connection an epoll event is for, or NULL for the listeners and the worker's own fds. */
static struct sconn *conn_of(const struct epoll_event *ev)
{
    uint64_t tag = ev->data.u64;
    if (tag == TAG_WATCH || tag == TAG_WAKE || tag == TAG_LEASE ||
        (tag >= TAG_LISTEN_BASE && tag < TAG_LISTEN_BASE + NM_LISTEN_MAX))
        return NULL;
    return ev->data.ptr;
}

/* Whether a connection woken by an event reads first thing in its run by recv(2): plain
 * HTTP/1.1, not lingering, its socket not known to be empty. */
static bool reads_by_recv(const struct sconn *sc)
{
    return !sc->tls && !sc->h2 && sc->phase == PHASE_HTTP && !sc->linger_since_ms &&
           !(sc->rx_drained && !sc->rx_hup);
}

static void ring_received(void *arg, void *tag, int res)
{
    (void)arg;
    *(int *)tag = res;
}

/* The first read of every plain HTTP/1.1 connection this wake-up found readable, made together
 * with one io_uring_enter before any of them runs, each into the room its own run would read
 * into; read_some then hands the result over instead of calling recv. An idle connection takes
 * its state first (read_idle reads into the worker's buffer instead); one that finds nothing gives
 * it back when it settles, and one the pool has no state for reads for itself (and gets its 503
 * there). With fewer than two such connections there is nothing to share. */
static void ring_receive(struct nm_worker *w, const struct epoll_event *events, int n,
                         bool stopping)
{
    w->rx_n = 0;
    if (!w->ring || stopping)
        return;
    int candidates = 0;
    for (int i = 0; i < n && candidates < 2; i++) {
        struct sconn *sc = conn_of(&events[i]);
        candidates += sc && reads_by_recv(sc);
    }
    if (candidates < 2)
        return;
    for (int i = 0; i < n; i++) {
        struct sconn *sc = conn_of(&events[i]);
        w->rx_st[i] = NULL;
        if (!sc || !reads_by_recv(sc))
            continue;
        if (!sc->st) {
            if (nm_connpool_take(&w->pool, &sc->peer, &sc->st) < 0) {
                sc->st = NULL;
                continue;
            }
            make_busy(w, sc);
            sc->requests_seen = 0;
        }
        char *at;
        int room = nm_conn_reserve_input(&sc->st->conn, READ_CHUNK, &at);
        struct nm_ring_op *op = room > 0 ? nm_ring_reserve(w->ring) : NULL;
        if (!op)
            continue;
        nm_ring_queue_recv(w->ring, op, sc->fd, at, (size_t)room, &w->rx_res[i]);
        w->rx_st[i] = sc->st;
    }
    w->rx_n = n;
    submit_ring(w, ring_received);
}

static void dispatch(struct nm_worker *w, const struct epoll_event *events, int n, bool stopping)
{
    /* File changes before any request of this wake-up is answered (docs/etags.md, "Watching");
     * with every slot filled, the watch may be among the events epoll did not return. */
    bool changes = n == MAX_EVENTS;
    for (int i = 0; i < n && !changes; i++)
        changes = events[i].data.u64 == TAG_WATCH;
    if (changes)
        nm_site_read_changes(&w->site);
    for (int i = 0; i < n; i++) {
        struct sconn *sc = conn_of(&events[i]);
        if (!sc)
            continue;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            sc->rx_drained = false; /* a new edge: bytes, or the peer's end */
        if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            sc->rx_hup = true;
    }
    ring_receive(w, events, n, stopping);
    for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        struct sconn *sc = conn_of(&events[i]);
        if (sc) {
            if (i < w->rx_n && w->rx_st[i] && w->rx_st[i] == sc->st) {
                w->rx_sc = sc;
                w->rx_now = w->rx_res[i];
            }
            run_conn(w, sc);
            w->rx_sc = NULL; /* closed or gone before reading: its read went with its state */
        } else if (tag == TAG_WATCH) {
            continue;
        } else if (tag == TAG_WAKE) {
            uint64_t v;
            ssize_t r = read(w->wake_fd, &v, sizeof(v));
            (void)r;
        } else if (tag == TAG_LEASE) {
            read_lease_notices(w);
        } else if (!stopping) {
            accept_all(w, (size_t)(tag - TAG_LISTEN_BASE));
        }
    }
    w->rx_n = 0;
    /* The connections waiting at the start of this round each run once, in order: one that
     * stops again waits for the next round rather than running ahead of the others. */
    struct sconn *waiting[MAX_AGAIN];
    unsigned n_waiting = w->n_again;
    memcpy(waiting, w->again, n_waiting * sizeof(waiting[0]));
    w->n_again = 0;
    if (n_waiting > 0)
        nm_site_read_changes(&w->site); /* they read after the look above */
    for (unsigned k = 0; k < n_waiting; k++) {
        struct sconn *sc = waiting[k]; /* a run closes only its own connection */
        sc->again = false;
        run_conn(w, sc);
    }
    flush_ring(w);
}

/* This worker's sockets of a listener set. */
static void take_listeners(struct nm_worker *w, const struct nm_listeners *ls)
{
    w->listeners = ls;
    w->n_listen = ls->n;
    for (size_t i = 0; i < ls->n; i++)
        w->listen_fds[i] = ls->l[i].fds[w->index];
}

/* A reload: move to the newest settings between requests. The responses already queued were
 * rendered under the old ones and hold nothing of them (field values are copied into the head),
 * so the old generation goes as soon as this worker lets it go. */
static void follow_config(struct nm_worker *w)
{
    struct nm_confgen_slot *slot = w->sh->config;
    if (!slot || !w->gen || !nm_confgen_slot_is_newer(slot, w->gen->seq))
        return;
    struct nm_confgen *g = nm_confgen_slot_take(slot);
    if (nm_site_set_config(&w->site, g->cfg) < 0) {
        nm_confgen_release(g); /* no memory for a file table: try again at the next pass */
        return;
    }
    if (g->listeners && g->listeners != w->gen->listeners) {
        /* Out of the epoll set before the old generation can close a removed socket; a kept
         * socket is the same descriptor, and what waits in its backlog is accepted after. */
        bool accepting = w->accepting;
        set_accepting(w, false);
        take_listeners(w, g->listeners);
        set_accepting(w, accepting);
    }
    nm_confgen_release(w->gen);
    w->gen = g;
}

/* The drain's deadline passed with these responses unfinished: say what each client lost. */
static void log_cut(struct nm_worker *w)
{
    for (struct sconn *sc = w->busy.head; sc; sc = sc->next) {
        if (!sc->st || !nm_conn_front(&sc->st->conn) || sc->linger_since_ms)
            continue;
        struct nm_conn *c = &sc->st->conn;
        uint64_t left = nm_conn_count_queued_content(c);
        uint64_t total = c->sending_total;
        char peer[INET6_ADDRSTRLEN];
        nm_conn_peer_format(&sc->peer, peer, sizeof(peer));
        nm_log_error("drain: cut %s to %s after %llu of %llu bytes", c->sending_what, peer,
                     (unsigned long long)(left < total ? total - left : 0),
                     (unsigned long long)total);
    }
}

/* The worker's ring, set up in its own thread (only that thread submits to it), with
 * --io-uring on. Where the kernel refuses io_uring (too old, /proc/sys/kernel/io_uring_disabled,
 * a container's seccomp filter), the server says so once, and every worker reads and sends with
 * a system call each. */
static void start_ring(struct nm_worker *w)
{
    static atomic_bool told;
    if (!w->site.cfg->io_uring)
        return;
    int rc = nm_ring_new(&w->ring);
    if (rc < 0) {
        w->ring = NULL;
        if (!atomic_exchange(&told, true))
            nm_log_error("io_uring unavailable (%s): one system call per read and send",
                         strerror(-rc));
    }
}

static void *worker_main(void *arg)
{
    struct nm_worker *w = arg;
    struct nm_worker_shared *sh = w->sh;
    struct epoll_event events[MAX_EVENTS];
    int64_t next_tick = nm_worker_clock_ms() + TICK_MS;
    bool stopping = false;

    start_ring(w);
    set_accepting(w, true);
    for (;;) {
        int64_t t = nm_worker_clock_ms();
        int timeout = next_tick > t && w->n_again == 0 ? (int)(next_tick - t) : 0;
        int n = epoll_wait(w->epfd, events, MAX_EVENTS, timeout);
        nm_site_set_time(&w->site, wall_seconds());
        dispatch(w, events, n, stopping);
        flush_log(w);
        if (!stopping)
            follow_config(w);
        t = nm_worker_clock_ms();
        if (atomic_load(&sh->stopping) && !stopping) {
            stopping = true;
            begin_stop(w);
            next_tick = t;
        }
        if (t >= next_tick) {
            next_tick = t + TICK_MS;
            sweep(w, t, stopping);
            if (t - w->trimmed_ms >= TRIM_MS) {
                w->trimmed_ms = t;
                nm_connpool_trim(&w->pool);
            }
            if (w->index == 0)
                nm_send_aborts_flush(sh->aborts, t, false);
            if (w->index == 0 && t >= w->trim_at_ms) {
                /* malloc gives back only the top of an arena: memory freed below it stays, so
                 * each worker's arena keeps the peak it reached (file versions of many sizes
                 * come and go) and RSS creeps up with every new peak. malloc_trim returns the
                 * free pages of every arena. */
                malloc_trim(0);
                w->trim_at_ms = t + MALLOC_TRIM_MS;
            }
            report_log_drops(w, t, false);
            if (!stopping && !w->accepting && atomic_load(&sh->n_conns) < conn_cap(w) &&
                t >= w->accept_resume_ms)
                set_accepting(w, true);
            flush_log(w);
        }
        if (stopping && (w->n_active == 0 || t >= sh->stop_deadline_ms))
            break;
    }
    log_cut(w);
    while (w->busy.head)
        close_conn(w, w->busy.head);
    while (w->idle.head)
        close_conn(w, w->idle.head);
    flush_log(w);
    report_log_drops(w, nm_worker_clock_ms(), true);
    nm_ring_free(w->ring); /* in the thread that set it up, the one its kernel side belongs to */
    w->ring = NULL;
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
    /* The thread inherits these blocked (nm_server_block_signals); the file table takes a lease
     * only in a thread that blocks them, and the notices for this thread's leases are read here. */
    sigset_t lease_signals;
    sigemptyset(&lease_signals);
    sigaddset(&lease_signals, nm_filecache_lease_signal());
    sigaddset(&lease_signals, SIGIO);
    w->lease_fd = signalfd(-1, &lease_signals, SFD_NONBLOCK | SFD_CLOEXEC);
    for (size_t i = 0; i < NM_LISTEN_MAX; i++)
        w->listen_fds[i] = -1;
    int rc = 0;
    if (w->epfd < 0 || w->wake_fd < 0 || w->lease_fd < 0) {
        rc = -errno;
        goto fail_free;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev);
    struct epoll_event lease_ev = {.events = EPOLLIN, .data.u64 = TAG_LEASE};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lease_fd, &lease_ev);
    const struct nm_config *cfg = sh->cfg;
    take_listeners(w, sh->listeners);
    if (sh->config) {
        w->gen = nm_confgen_slot_take(sh->config);
        cfg = w->gen->cfg;
        if (w->gen->listeners)
            take_listeners(w, w->gen->listeners);
    }
    rc = nm_site_init(&w->site, cfg, sh->mime, sh->root_fd);
    w->has_site = true;
    if (rc < 0)
        goto fail_free;
    nm_site_set_time(&w->site, wall_seconds());
    nm_connpool_init(&w->pool, &w->site, MAX_SPARE_STATES, 0);
    w->has_pool = true;
    if (sh->hashing)
        nm_site_set_hashing(&w->site, sh->hashing);
    w->site.fly = sh->fly;
    w->site.metrics = nm_metrics_worker(sh->metrics, index);
    if (w->site.watch_fd >= 0) {
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = TAG_WATCH};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->site.watch_fd, &ev) != 0)
            nm_site_stop_watching(&w->site); /* unheard events would leave entries stale */
    }
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
    if (w->has_pool)
        nm_connpool_cleanup(&w->pool);
    if (w->has_site)
        nm_site_cleanup(&w->site);
    nm_confgen_release(w->gen);
    while (w->spare) {
        struct sconn *sc = w->spare;
        w->spare = sc->next;
        free(sc);
    }
    nm_send_cleanup(&w->send);
    nm_ring_free(w->ring);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->lease_fd >= 0)
        close(w->lease_fd);
    free(w);
}
