/* A worker: one thread with one edge-triggered epoll loop over its own listening sockets and its
 * connections: accepting, reading into each connection, sending what it queues, timeouts,
 * lingering close, the access log, and its part of a graceful stop. */
#ifndef NOTMOD_WORKER_H
#define NOTMOD_WORKER_H

#include <stdatomic.h>
#include <stdint.h>

#include "confgen.h"
#include "config.h"
#include "etags/etags.h"
#include "listen.h"
#include "metrics.h"
#include "mime.h"
#include "send.h"
#include "tls.h"
#include "variants/variants.h"

/* What the workers of a server share. Read-only once they start, but for `stopping`, which the
 * server sets (after stop_deadline_ms) and every worker reads, and the n_conns count. */
struct nm_worker_shared {
    const struct nm_config *cfg; /* the settings at start; reloads come through `config` */
    /* The current settings: each worker moves to a newer generation between requests, at its
     * loop's next pass (nm_worker_wake makes that now). */
    struct nm_confgen_slot *config;
    const struct nm_mime_table *mime;
    int root_fd;
    struct nm_hashing *hashing;    /* NULL without content ETags */
    struct nm_variants_cache *fly; /* variants made on the fly; NULL when off */
    const struct nm_listeners *listeners;
    struct nm_tls *tls; /* the TLS listeners' certificates; NULL when none speaks TLS */
    int log_fd;         /* the access log, or -1; reopening swaps the file under this number */
    struct nm_send_aborts *aborts;
    atomic_bool stopping;
    int64_t stop_deadline_ms; /* responses in flight are given until then */
    /* Open connections of all the workers, at most cfg->max_conns and at most max_open_conns (0:
     * no such bound), so that the descriptors left under RLIMIT_NOFILE stay free for files, the
     * logs and the hashing pool: a worker takes a slot before it accepts and gives it back when
     * the connection closes; accepting pauses while none is free. */
    atomic_uint n_conns;
    unsigned max_open_conns;
    struct nm_metrics *metrics; /* --metrics counters, one set per worker; NULL when off */
};

struct nm_worker;

/* The monotonic clock of every timeout, in milliseconds. */
int64_t nm_worker_clock_ms(void);

/* Sets up worker `index` (its site, its epoll set, its listening sockets from sh->listeners) over
 * sh, which must outlive it. Returns 0 and *out, or -ENOMEM or the errno of epoll or the root. */
int nm_worker_new(struct nm_worker_shared *sh, unsigned index, struct nm_worker **out);

/* Starts the worker's thread. Returns 0 or -EAGAIN. */
int nm_worker_start(struct nm_worker *w);

/* Makes a started worker look at sh->stopping now rather than at its next tick. */
void nm_worker_wake(struct nm_worker *w);

/* Waits for a started worker's thread to end: once it is stopping and its connections are gone,
 * or stop_deadline_ms has passed; each response still being sent then is logged as cut (its
 * request, the bytes sent of its total). */
void nm_worker_join(struct nm_worker *w);

/* Frees a worker whose thread never started or has been joined. NULL is a no-op. */
void nm_worker_free(struct nm_worker *w);

#endif
