/* The hashing pool: threads that hash queued versions at low priority, demand jobs before the
 * startup walk's, a racy version set aside until it is old enough. Functions taking the memo
 * entry run under the hashing lock. */
#ifndef NOTMOD_POOL_H
#define NOTMOD_POOL_H

#include <stdbool.h>

#include "internal.h"

/* Starts h->opt.threads threads. Returns 0, -ENOMEM or -EAGAIN; h->n_threads counts the threads
 * that did start, which nm__pool_stop joins. */
int nm__pool_start(struct nm_hashing *h);

/* Joins the threads (h->stop is set and h->work broadcast first) and closes every queued job. */
void nm__pool_stop(struct nm_hashing *h);

/* Queues a job for version v of the file open on fd, in place of what v's entry e (NULL when
 * the memo has none) held: a queued job for an older version is dropped, as it would only be
 * discarded, and the walk no longer waits for that version. The entry becomes PENDING for v and
 * fd belongs to the job. Returns the entry, or NULL when memory ran out (fd stays the
 * caller's). */
struct nm_memo_entry *nm__pool_queue(struct nm_hashing *h, struct nm_memo_entry *e,
                                     const struct nm_file_version *v, int fd, bool background);

/* Lowers the calling thread's priority: nice 19 and the lowest best-effort I/O priority, or
 * with idle, SCHED_IDLE and the idle I/O class. */
void nm__pool_lower_priority(bool idle);

#endif
