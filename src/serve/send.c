/* Sending queued output: batched sendmsg, the copy-then-check of tagged file parts, sendfile for
 * untagged ones and for tagged ones under a read lease, and the rate-limited log of responses
 * aborted because their file changed. */
#include "send.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "filecache.h"
#include "log.h"
#include "tls.h"

#define COPY_CHUNK (256 * 1024) /* tagged bodies without a lease are copied: see send_file_part */
#define ABORT_REPORT_MS 1000    /* at most one line per file in this time */
#define TLS_COPY_CHUNK (4 * NM_TLS_RECORD_BYTES) /* a file read per this many records over TLS */
#define SPLICE_MAX (1u << 30)                    /* one sendfile call moves at most this */

/* ---- aborted responses ---- */

void nm_send_aborts_init(struct nm_send_aborts *a)
{
    memset(a->notes, 0, sizeof(a->notes));
    atomic_init(&a->pending, 0);
    atomic_init(&a->total, 0);
    pthread_mutex_init(&a->lock, NULL);
}

void nm_send_aborts_cleanup(struct nm_send_aborts *a)
{
    pthread_mutex_destroy(&a->lock);
}

static uint64_t hash_path(const char *p)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

/* Called with the lock held. */
static void log_suppressed(struct nm_send_aborts *a, struct nm_send_abort_note *n)
{
    nm_log_error("%s: %u more responses aborted: the file changed while being sent", n->path,
                 n->suppressed);
    n->suppressed = 0;
    atomic_fetch_sub(&a->pending, 1);
}

/* A file rewritten in place while it is busy aborts every response sending it, and would fill
 * the log with one line each. One line per file per ABORT_REPORT_MS; the aborts in between are
 * counted, and the count logged by the tick once that time is over. */
static void report_abort(struct nm_send_aborts *a, const char *path, const char *what, int64_t t)
{
    uint64_t h = hash_path(path);
    struct nm_send_abort_note *n = NULL, *spare = NULL; /* spare: a free note, else the oldest */
    atomic_fetch_add_explicit(&a->total, 1, memory_order_relaxed);
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < NM_SEND_ABORT_NOTES && !n; i++) {
        struct nm_send_abort_note *o = &a->notes[i];
        if (o->path[0] && o->path_hash == h && strncmp(o->path, path, sizeof(o->path) - 1) == 0)
            n = o;
        else if (!spare || (spare->path[0] && (!o->path[0] || o->logged_ms < spare->logged_ms)))
            spare = o;
    }
    if (n && t - n->logged_ms < ABORT_REPORT_MS) {
        if (n->suppressed++ == 0)
            atomic_fetch_add(&a->pending, 1);
        pthread_mutex_unlock(&a->lock);
        return;
    }
    if (!n) {
        n = spare;
        if (n->suppressed)
            log_suppressed(a, n);
        snprintf(n->path, sizeof(n->path), "%s", path);
        n->path_hash = h;
    } else if (n->suppressed) {
        log_suppressed(a, n);
    }
    n->logged_ms = t;
    pthread_mutex_unlock(&a->lock);
    nm_log_error("%s %s while being sent; response aborted", path, what);
}

void nm_send_aborts_flush(struct nm_send_aborts *a, int64_t t, bool all)
{
    if (atomic_load(&a->pending) == 0)
        return;
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < NM_SEND_ABORT_NOTES; i++) {
        struct nm_send_abort_note *n = &a->notes[i];
        if (n->suppressed && (all || t - n->logged_ms >= ABORT_REPORT_MS)) {
            log_suppressed(a, n);
            n->logged_ms = t;
        }
    }
    pthread_mutex_unlock(&a->lock);
}

/* ---- sending ---- */

void nm_send_init(struct nm_send *s, struct nm_send_aborts *aborts)
{
    s->copy_buf = NULL;
    s->aborts = aborts;
}

void nm_send_cleanup(struct nm_send *s)
{
    free(s->copy_buf);
    s->copy_buf = NULL;
}

/* What one step of sending did. */
enum step {
    STEP_SENT,    /* bytes left: go on */
    STEP_AGAIN,   /* nothing left, but nothing stops the next try (a read a signal cut short) */
    STEP_BLOCKED, /* the socket is full (or a signal came): stop for now */
    STEP_DROP,    /* the connection must be dropped */
};

static enum step sent(struct nm_conn *c, ssize_t n)
{
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? STEP_BLOCKED : STEP_DROP;
    nm_conn_advance(c, (uint64_t)n);
    return STEP_SENT;
}

int nm_send_apply(struct nm_conn *c, int res)
{
    errno = res < 0 ? -res : 0;
    enum step st = sent(c, res);
    return st == STEP_SENT ? 1 : st == STEP_BLOCKED ? 0 : -1;
}

bool nm_send_is_memory_next(struct nm_conn *c)
{
    const struct nm_conn_seg *g = nm_conn_front(c);
    return g && (g->mem_len || (g->data && g->len));
}

size_t nm_send_gather(const struct nm_conn *c, struct iovec *iov, size_t max, int *flags)
{
    bool file_follows;
    size_t n_iov = nm_conn_gather(c, iov, max, &file_follows);
    *flags = MSG_NOSIGNAL | (file_follows ? MSG_MORE : 0);
    return n_iov;
}

static bool has_copy_buf(struct nm_send *s)
{
    return s->copy_buf || (s->copy_buf = aligned_alloc(4096, COPY_CHUNK)) != NULL;
}

/* Over TLS, heads and small bodies are copied together into one record rather than sealed one
 * small record each; a piece of a record's size or more is sealed where it is. The bytes chosen
 * depend only on the front of the queue, which stays put until it is sent, so the retry after a
 * full socket presents the same bytes (nm_tls_write). */
static enum step send_memory_tls(struct nm_send *s, struct nm_tls_conn *tls, struct nm_conn *c,
                                 const struct iovec *iov, size_t n_iov)
{
    if (iov[0].iov_len >= NM_TLS_RECORD_BYTES)
        return sent(c, nm_tls_write(tls, iov[0].iov_base, iov[0].iov_len));
    if (!has_copy_buf(s))
        return STEP_DROP;
    size_t len = 0;
    for (size_t i = 0; i < n_iov && len < NM_TLS_RECORD_BYTES; i++) {
        size_t n =
            iov[i].iov_len < NM_TLS_RECORD_BYTES - len ? iov[i].iov_len : NM_TLS_RECORD_BYTES - len;
        memcpy(s->copy_buf + len, iov[i].iov_base, n);
        len += n;
    }
    return sent(c, nm_tls_write(tls, s->copy_buf, len));
}

/* Heads and bodies held in memory, of as many queued responses as there are, leave in one
 * sendmsg, up to the first part that must be read from a file. */
static enum step send_memory(struct nm_send *s, int fd, struct nm_tls_conn *tls, struct nm_conn *c)
{
    struct iovec iov[2 * NM_CONN_MAX_SEGS];
    int flags;
    size_t n_iov = nm_send_gather(c, iov, sizeof(iov) / sizeof(iov[0]), &flags);
    if (tls)
        return send_memory_tls(s, tls, c, iov, n_iov);
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n_iov};
    return sent(c, sendmsg(fd, &msg, flags));
}

/* Bytes out of memory into the connection: the socket, or TLS. */
static ssize_t put(int fd, struct nm_tls_conn *tls, const char *p, size_t n)
{
    return tls ? nm_tls_write(tls, p, n) : send(fd, p, n, MSG_NOSIGNAL);
}

static enum step abort_response(struct nm_send *s, const struct nm_conn_seg *g, const char *what,
                                int64_t now_ms)
{
    report_abort(s->aborts, g->file->path, what, now_ms);
    return STEP_DROP;
}

/* The body of a tagged file part before its tail, copied: pread into the copy buffer, then send. */
static enum step send_copied(struct nm_send *s, int fd, struct nm_tls_conn *tls, struct nm_conn *c,
                             const struct nm_conn_seg *g, int64_t now_ms)
{
    if (!has_copy_buf(s))
        return STEP_DROP;
    uint64_t want = g->len - NM_SEND_TAIL_BYTES, chunk = tls ? TLS_COPY_CHUNK : COPY_CHUNK;
    ssize_t r = pread(g->file->fd, s->copy_buf, want > chunk ? chunk : want, (off_t)g->off);
    if (r < 0 && errno == EINTR)
        return STEP_AGAIN;
    if (r <= 0)
        return abort_response(s, g, "shrank", now_ms);
    if (!tls)
        return sent(c, send(fd, s->copy_buf, (size_t)r, MSG_NOSIGNAL));
    /* A record per write: the records of one read go while the socket takes them. What was read
     * but not sent is read again next time, from the same offset: the bytes a retry presents. */
    for (size_t done = 0; done < (size_t)r;) {
        ssize_t n = nm_tls_write(tls, s->copy_buf + done, (size_t)r - done);
        if (n < 0)
            return done ? STEP_SENT : sent(c, n);
        nm_conn_advance(c, (uint64_t)n);
        done += (size_t)n;
    }
    return STEP_SENT;
}

/* The first `want` bytes of what is left of a file part, spliced by sendfile. */
static enum step send_spliced(struct nm_send *s, int fd, struct nm_conn *c,
                              const struct nm_conn_seg *g, uint64_t want, int64_t now_ms)
{
    off_t off = (off_t)g->off;
    ssize_t n = sendfile(fd, g->file->fd, &off, want > SPLICE_MAX ? SPLICE_MAX : want);
    if (n == 0)
        return abort_response(s, g, "shrank", now_ms);
    return sent(c, n);
}

/* Bytes the socket holds that the peer has not acknowledged (or, when that cannot be told, 1). */
static int unacknowledged(int fd)
{
    int n;
    return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : 1;
}

/* Whether the peer of socket fd is on this host: a loopback address, the socket's own address
 * (this host calling one of its addresses), or not an IP socket. */
static bool peer_is_here(int fd)
{
    struct sockaddr_storage peer, self;
    socklen_t pl = sizeof(peer), sl = sizeof(self);
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
        getsockname(fd, (struct sockaddr *)&self, &sl) != 0)
        return true;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const void *)&peer, *s = (const void *)&self;
        return ntohl(p->sin_addr.s_addr) >> 24 == 127 || p->sin_addr.s_addr == s->sin_addr.s_addr;
    }
    if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const void *)&peer, *s = (const void *)&self;
        return IN6_IS_ADDR_LOOPBACK(&p->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127) ||
               memcmp(&p->sin6_addr, &s->sin6_addr, sizeof(p->sin6_addr)) == 0;
    }
    return true;
}

/* Whether this part may go by sendfile: its file's lease holds, the peer is on another host
 * (unless --sendfile all), and the connection tracks its spliced bytes by this file. A reader on
 * this host gets sendfile's bytes as references to the page cache, read when it reads them,
 * which may be after the lease went: only a peer elsewhere has them once it acknowledged them.
 * One file is tracked per connection: a part of another file is copied until the socket has no
 * bytes the peer has not acknowledged. */
static bool may_splice(int fd, const struct nm_conn *c, struct nm_send_splice *sp,
                       struct nm_file *f)
{
    enum nm_sendfile_mode mode = c->site->cfg->sendfile;
    if (!f->leased || mode == NM_SENDFILE_OFF)
        return false;
    if (mode != NM_SENDFILE_ALL) {
        if (sp->peer_here == 0)
            sp->peer_here = peer_is_here(fd) ? 1 : -1;
        if (sp->peer_here > 0)
            return false;
    }
    if (!nm_file_is_leased(f))
        return false;
    if (sp->file == f)
        return true;
    if (sp->file && unacknowledged(fd) != 0)
        return false;
    nm_file_release(sp->file);
    sp->file = nm_file_acquire(f);
    return true;
}

/* The last NM_SEND_TAIL_BYTES of a file part (or all of a shorter one): read whole, then the file
 * checked, then sent from the copy. */
static enum step send_tail(struct nm_send *s, int fd, struct nm_tls_conn *tls, struct nm_conn *c,
                           const struct nm_conn_seg *g, struct nm_send_tail *tail, int64_t now_ms)
{
    if (!tail->len) {
        size_t got = 0, len = (size_t)g->len;
        while (got < len) {
            ssize_t r = pread(g->file->fd, tail->bytes + got, len - got, (off_t)(g->off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return abort_response(s, g, "shrank", now_ms);
            got += (size_t)r;
        }
        if (!nm_file_is_unchanged(g->file))
            return abort_response(s, g, "changed", now_ms);
        tail->len = len;
    }
    size_t left = (size_t)g->len;
    ssize_t n = put(fd, tls, tail->bytes + (tail->len - left), left);
    if (n >= 0 && (size_t)n == left)
        tail->len = 0;
    return sent(c, n);
}

/* The invariant of the ETag: the end of a file part is read into memory, then the file is checked
 * to still be the version the headers described, and only then does that end leave. Without a
 * read lease on its file, a tagged body is copied into the socket (pread, then send) rather than
 * spliced by sendfile, whose socket buffers keep referring to the page cache until the peer has the
 * bytes, so a later write could still change bytes already "sent". Every byte sent is thus copied
 * before the check: a change made before the check is seen, one made after cannot reach the client.
 * A change aborts the response: the client sees a short transfer and caches nothing. Untagged
 * bodies go by sendfile. Over TLS every file part is copied (read, then sealed into records: the
 * record holds its own copy of the bytes), with the same tail rule: nothing is spliced, so the
 * invariant is the same. */
static enum step send_file_part(struct nm_send *s, int fd, struct nm_tls_conn *tls,
                                struct nm_conn *c, struct nm_send_tail *tail,
                                struct nm_send_splice *sp, int64_t now_ms)
{
    const struct nm_conn_seg *g = nm_conn_front(c);
    /* Under the file's read lease the whole part goes by sendfile and its tail is not checked:
     * no one can open the file for writing or truncate it without breaking the lease first, and
     * the worker cuts this connection (nm_send_is_exposed) before it lets the lease go, so the
     * pages sendfile left in the socket still hold the version's bytes while they can leave
     * (docs/etags.md, "Large bodies by sendfile under a read lease"). */
    if (!tls && !tail->len && g->len && may_splice(fd, c, sp, g->file))
        return send_spliced(s, fd, c, g, g->len, now_ms);
    if (g->len > NM_SEND_TAIL_BYTES && !tail->len)
        return g->file->has_etag || tls
                   ? send_copied(s, fd, tls, c, g, now_ms)
                   : send_spliced(s, fd, c, g, g->len - NM_SEND_TAIL_BYTES, now_ms);
    return send_tail(s, fd, tls, c, g, tail, now_ms);
}

void nm_send_splice_init(struct nm_send_splice *sp)
{
    sp->file = NULL;
    sp->peer_here = 0;
}

void nm_send_splice_reset(struct nm_send_splice *sp)
{
    nm_file_release(sp->file);
    nm_send_splice_init(sp);
}

/* f has descriptor file_fd, or (file_fd -1) a lease that no longer holds. */
static bool lease_broke_on(struct nm_file *f, int file_fd)
{
    if (!f || !f->leased)
        return false;
    return file_fd >= 0 ? f->fd == file_fd : fcntl(f->fd, F_GETLEASE) != F_RDLCK;
}

bool nm_send_is_exposed(struct nm_send *s, int fd, struct nm_conn *c, struct nm_send_splice *sp,
                        int file_fd, int64_t now_ms)
{
    if (!lease_broke_on(sp->file, file_fd))
        return false;
    const struct nm_conn_seg *g = c ? nm_conn_front(c) : NULL;
    if ((!g || g->file != sp->file) && unacknowledged(fd) == 0)
        return false; /* every byte it spliced has reached the peer */
    report_abort(s->aborts, sp->file->path, "changed", now_ms);
    return true;
}

void nm_send_unlease(struct nm_conn *c, struct nm_send_splice *sp, int file_fd)
{
    if (lease_broke_on(sp->file, file_fd))
        nm_file_unlease(sp->file);
    for (unsigned i = 0; c && i < c->n_segs; i++) {
        struct nm_file *f = c->segs[(c->seg_head + i) % NM_CONN_MAX_SEGS].file;
        if (lease_broke_on(f, file_fd))
            nm_file_unlease(f);
    }
}

int nm_send_some(struct nm_send *s, int fd, struct nm_tls_conn *tls, struct nm_conn *c,
                 struct nm_send_tail *tail, struct nm_send_splice *sp, int64_t now_ms)
{
    int progress = 0;
    while (nm_conn_front(c) != NULL) {
        enum step st = nm_send_is_memory_next(c) ? send_memory(s, fd, tls, c)
                                                 : send_file_part(s, fd, tls, c, tail, sp, now_ms);
        if (st == STEP_DROP)
            return -1;
        if (st == STEP_BLOCKED)
            return progress;
        if (st == STEP_SENT)
            progress = 1;
    }
    return progress;
}
