/* Per-worker counters summed at scrape time, written as Prometheus text. */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

struct nm_metrics {
    size_t n_workers;
    struct nm_metrics_worker workers[];
};

int nm_metrics_new(size_t n_workers, struct nm_metrics **out)
{
    struct nm_metrics *m = calloc(1, sizeof(*m) + n_workers * sizeof(m->workers[0]));
    if (!m)
        return -ENOMEM;
    m->n_workers = n_workers;
    *out = m;
    return 0;
}

void nm_metrics_free(struct nm_metrics *m)
{
    free(m);
}

struct nm_metrics_worker *nm_metrics_worker(struct nm_metrics *m, size_t i)
{
    return m && i < m->n_workers ? &m->workers[i] : NULL;
}

/* One writer per counter: a relaxed add is all it needs, and a scrape sees each value whole. */
static void add(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const atomic_uint_least64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void nm_metrics_count(struct nm_metrics_worker *w, enum nm_method method, int status,
                      enum nm_coding coding, uint64_t content_bytes, uint64_t saved_bytes)
{
    if (!w)
        return;
    size_t s = status >= 100 && status < 600 ? (size_t)(status - 100) : NM_METRICS_STATUSES - 1;
    size_t m = (size_t)method < NM_METRICS_METHODS ? (size_t)method : 0;
    add(&w->requests[m][s], 1);
    add(&w->content_bytes, content_bytes);
    if (status == 304)
        add(&w->not_modified_saved_bytes, saved_bytes);
    if ((status == 200 || status == 206) && (size_t)coding < NM_CODING_COUNT)
        add(&w->by_coding[coding], 1);
}

static uint64_t sum(const struct nm_metrics *m, size_t offset)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_workers; i++)
        total += get((const atomic_uint_least64_t *)((const char *)&m->workers[i] + offset));
    return total;
}

#define SUM(m, field) sum((m), offsetof(struct nm_metrics_worker, field))

static int series(struct nm_buf *out, const char *name, const char *type, const char *help)
{
    return nm_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int format_requests(const struct nm_metrics *m, struct nm_buf *out)
{
    int rc = series(out, "notmod_requests_total", "counter", "Responses by method and status.");
    for (size_t me = 0; rc == 0 && me < NM_METRICS_METHODS; me++)
        for (size_t s = 0; rc == 0 && s < NM_METRICS_STATUSES; s++) {
            uint64_t n = SUM(m, requests[me][s]);
            if (n)
                rc = nm_buf_appendf(
                    out, "notmod_requests_total{method=\"%s\",code=\"%zu\"} %" PRIu64 "\n",
                    nm_method_name((enum nm_method)me), s + 100, n);
        }
    uint64_t not_modified = 0;
    for (size_t me = 0; me < NM_METRICS_METHODS; me++)
        not_modified += SUM(m, requests[me][304 - 100]);
    if (rc == 0)
        rc = series(out, "notmod_not_modified_total", "counter", "304 responses.");
    if (rc == 0)
        rc = nm_buf_appendf(out, "notmod_not_modified_total %" PRIu64 "\n", not_modified);
    return rc;
}

int nm_metrics_format(const struct nm_metrics *m, const struct nm_metrics_gauges *g,
                      struct nm_buf *out)
{
    int rc = format_requests(m, out);
    if (rc == 0)
        rc = series(out, "notmod_not_modified_saved_bytes_total", "counter",
                    "Content bytes the 304s did not send: what a 200 would have sent.");
    if (rc == 0)
        rc = nm_buf_appendf(out, "notmod_not_modified_saved_bytes_total %" PRIu64 "\n",
                            SUM(m, not_modified_saved_bytes));
    if (rc == 0)
        rc = series(out, "notmod_response_bytes_total", "counter", "Response content sent.");
    if (rc == 0)
        rc =
            nm_buf_appendf(out, "notmod_response_bytes_total %" PRIu64 "\n", SUM(m, content_bytes));
    if (rc == 0)
        rc = series(out, "notmod_responses_by_coding_total", "counter",
                    "200 and 206 responses by content coding.");
    for (size_t c = 0; rc == 0 && c < NM_CODING_COUNT; c++)
        rc = nm_buf_appendf(out, "notmod_responses_by_coding_total{coding=\"%s\"} %" PRIu64 "\n",
                            nm_coding_name((enum nm_coding)c), SUM(m, by_coding[c]));
    if (rc == 0)
        rc = series(out, "notmod_open_connections", "gauge", "Client connections open now.");
    if (rc == 0)
        rc = nm_buf_appendf(out, "notmod_open_connections %" PRIu64 "\n", g->open_connections);
    if (rc == 0)
        rc = series(out, "notmod_aborted_bodies_total", "counter",
                    "Responses cut because their file changed while being sent.");
    if (rc == 0)
        rc = nm_buf_appendf(out, "notmod_aborted_bodies_total %" PRIu64 "\n", g->aborted_bodies);
    if (rc == 0 && g->has_hashing) {
        rc = series(out, "notmod_etag_sources_total", "counter",
                    "File versions by where their content hash came from.");
        if (rc == 0)
            rc = nm_buf_appendf(out,
                                "notmod_etag_sources_total{source=\"memory\"} %" PRIu64 "\n"
                                "notmod_etag_sources_total{source=\"store\"} %" PRIu64 "\n"
                                "notmod_etag_sources_total{source=\"attribute\"} %" PRIu64 "\n"
                                "notmod_etag_sources_total{source=\"manifest\"} %" PRIu64 "\n"
                                "notmod_etag_sources_total{source=\"hashed\"} %" PRIu64 "\n"
                                "notmod_etag_sources_total{source=\"hashed_in_memory\"} %" PRIu64
                                "\n",
                                g->from_memo, g->from_store, g->from_xattr, g->from_manifest,
                                g->hashed_files, g->small_files);
        if (rc == 0)
            rc = series(out, "notmod_hashed_bytes_total", "counter", "Bytes read to hash them.");
        if (rc == 0)
            rc = nm_buf_appendf(out, "notmod_hashed_bytes_total %" PRIu64 "\n",
                                g->hashed_bytes + g->small_bytes);
        if (rc == 0)
            rc = series(out, "notmod_hashing_queue_length", "gauge",
                        "Files waiting to be hashed off the event loop.");
        if (rc == 0)
            rc =
                nm_buf_appendf(out, "notmod_hashing_queue_length %" PRIu64 "\n", g->hashing_queued);
    }
    return rc;
}
