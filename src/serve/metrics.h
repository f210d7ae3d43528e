/* Counters for `--metrics`: each worker writes its own (relaxed atomics, one writer, no locks),
 * a scrape sums them and writes the Prometheus text exposition format 0.0.4. */
#ifndef NOTMOD_METRICS_H
#define NOTMOD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "notmod/coding.h"
#include "notmod/method.h"

#define NM_METRICS_METHODS ((size_t)NM_METHOD_PATCH + 1)
#define NM_METRICS_STATUSES 500 /* 100..599; anything else is counted as 599 */

/* One worker's counters. Only that worker writes them; a scrape reads them at any time. */
struct nm_metrics_worker {
    atomic_uint_least64_t requests[NM_METRICS_METHODS][NM_METRICS_STATUSES];
    atomic_uint_least64_t content_bytes;              /* response content sent, all statuses */
    atomic_uint_least64_t not_modified_saved_bytes;   /* what the 304s' 200s would have sent */
    atomic_uint_least64_t by_coding[NM_CODING_COUNT]; /* 200 and 206 by content coding */
};

struct nm_metrics;

/* What a scrape adds from outside the workers. */
struct nm_metrics_gauges {
    uint64_t open_connections;
    uint64_t aborted_bodies; /* responses cut because their file changed while sent */
    bool has_hashing;        /* content ETags: the fields below are set */
    uint64_t hashed_files, hashed_bytes, small_files, small_bytes, from_memo, from_xattr,
        from_store, from_manifest, hashing_queued;
};

/* Counters for n_workers workers, all zero. Returns 0 or -ENOMEM. */
int nm_metrics_new(size_t n_workers, struct nm_metrics **out);

/* NULL is a no-op. */
void nm_metrics_free(struct nm_metrics *m);

/* Worker i's counters (i < n_workers), for it alone to count into. */
struct nm_metrics_worker *nm_metrics_worker(struct nm_metrics *m, size_t i);

/* Counts one response: its method and status, its content bytes, its coding (a 200 or 206 only),
 * and for a 304 the length of the representation it did not send. NULL w is a no-op. */
void nm_metrics_count(struct nm_metrics_worker *w, enum nm_method method, int status,
                      enum nm_coding coding, uint64_t content_bytes, uint64_t saved_bytes);

/* Appends the exposition: every worker's counters summed, then the gauges. Series:
 *   notmod_requests_total{method,code}, notmod_response_bytes_total,
 *   notmod_not_modified_total, notmod_not_modified_saved_bytes_total,
 *   notmod_responses_by_coding_total{coding}, notmod_open_connections,
 *   notmod_aborted_bodies_total, and with hashing notmod_etag_sources_total{source} (memory,
 *   store, attribute, manifest, hashed, hashed_in_memory), notmod_hashed_bytes_total and
 *   notmod_hashing_queue_length.
 * Returns 0 or the buffer's error. */
int nm_metrics_format(const struct nm_metrics *m, const struct nm_metrics_gauges *g,
                      struct nm_buf *out);

#endif
