/* One HTTP/1.1 connection as a machine that turns request bytes into response bytes, without a
 * socket: the server feeds it what it reads and sends what it queues; golden exchanges and the
 * connection fuzzer drive it directly. */
#ifndef NOTMOD_CONN_H
#define NOTMOD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "config.h"
#include "filecache.h"
#include "mime.h"
#include "notmod/http1.h"

/* What a worker shares between its connections: settings, files, the clock, the access log. */
struct nm_site {
    const struct nm_config *cfg;
    const struct nm_mime_table *mime;
    struct nm_filecache *files; /* the file table of the tree root_fd names */
    struct nm_hashing *hashing; /* given to every file table; NULL without a pool */
    int root_fd;
    int own_root_fd; /* root_fd when the site opened it after a swap, else -1 */
    dev_t root_dev;  /* the directory root_fd names: a new one at cfg->root is a swap */
    ino_t root_ino;
    uint64_t root_swaps; /* times the site moved to a new directory at cfg->root */
    int64_t now;         /* seconds; set by nm_site_set_time */
    char date_line[sizeof("Date: \r\n") + 29]; /* "Date: <IMF-fixdate>\r\n" for `now` */
    size_t date_line_len;
    struct nm_buf log; /* access-log lines not yet written; NULL ptr when logging is off */
    bool log_enabled;
    struct nm_http1_request scratch; /* the head being handled: one at a time per worker */
    uint64_t boundary_key; /* keys multipart boundaries; random at init, tests may fix it */
};

/* Sets up a site over an open root directory (not taken: the caller closes it after
 * nm_site_cleanup); the config and mime table must outlive it. Returns 0, -ENOMEM or -errno. */
int nm_site_init(struct nm_site *site, const struct nm_config *cfg,
                 const struct nm_mime_table *mime, int root_fd);
void nm_site_cleanup(struct nm_site *site);

/* Content hashes through h (which must outlive the site), for this and every later file table. */
void nm_site_set_hashing(struct nm_site *site, struct nm_hashing *h);

/* A deploy that points a `current` symlink at a new release, or exchanges two directories, changes
 * which directory cfg->root names. Each request calls this before it resolves a path: when
 * cfg->root now names another directory, the site opens it and starts a new, empty file table;
 * the old table's entries live on only in the responses that hold them, so no response mixes two
 * trees. A root that cannot be resolved for a moment (mid-rename) keeps the current one. */
void nm_site_follow_root(struct nm_site *site);

/* Moves the site's clock; the Date line is rendered only when the second changes. */
void nm_site_set_time(struct nm_site *site, int64_t now);

/* A part of the output: first mem_len bytes from the front of the output buffer, then `len`
 * bytes of `file` from `off` (none when file is NULL). The segment holds a file reference, so a
 * file held in memory is sent from its own bytes (`data`), never copied per response. */
struct nm_conn_seg {
    size_t mem_len;
    struct nm_file *file;
    uint64_t off;
    uint64_t len;
    const char *data; /* non-NULL: the file part is file->data[off..off+len), not read from fd */
};

#define NM_CONN_MAX_SEGS 64

enum nm_conn_state {
    NM_CONN_HEAD = 0, /* reading a request head */
    NM_CONN_CONTENT,  /* reading request content by Content-Length before answering */
    NM_CONN_CHUNKED,  /* reading chunked request content before answering */
    NM_CONN_CLOSING,  /* no more requests: send what is queued, then close */
};

struct nm_conn {
    struct nm_site *site;
    enum nm_conn_state state;
    struct nm_buf in;
    struct nm_buf out;
    size_t out_sent; /* bytes at the front of out already sent */
    struct nm_conn_seg segs[NM_CONN_MAX_SEGS];
    unsigned seg_head, n_segs;
    uint64_t discard_left;
    struct nm_http1_chunked chunked;
    char peer[64];
    unsigned requests; /* served on this connection */
    size_t scanned;    /* input length at the last parse that found the head incomplete */
};

void nm_conn_init(struct nm_conn *c, struct nm_site *site, const char *peer);

/* Drops queued output and the file references it holds. */
void nm_conn_cleanup(struct nm_conn *c);

/* Handles every complete request in the input buffer (pipelining), queueing responses in order,
 * until the input runs out, the output queue is full, or the connection must close. Call it after
 * appending received bytes to c->in and again after output has drained. Returns 0, or -ENOMEM. */
int nm_conn_process(struct nm_conn *c);

/* Queues an error response (408 after a header timeout, for instance) and stops reading. */
int nm_conn_fail(struct nm_conn *c, int status, const char *why);

/* True when nothing is queued and the connection is CLOSING: close it now. */
bool nm_conn_is_done(const struct nm_conn *c);

/* True when the input buffer holds part of a request head (the header timeout applies) rather than
 * nothing (the idle timeout applies). */
bool nm_conn_is_mid_request(const struct nm_conn *c);

/* The first queued segment, or NULL when nothing is queued. */
struct nm_conn_seg *nm_conn_front(struct nm_conn *c);

/* Records that n bytes of the front segment were sent (memory part first, then file part). */
void nm_conn_advance(struct nm_conn *c, uint64_t n);

/* For tests and embedders without sockets: moves every queued byte to dst, reading file parts
 * with pread. Returns 0, -EIO when a file part cannot be read whole, or a buffer error. */
int nm_conn_drain(struct nm_conn *c, struct nm_buf *dst);

#endif
