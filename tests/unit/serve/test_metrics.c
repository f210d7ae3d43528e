/* The --metrics counters: per-worker counts summed at scrape time, and their Prometheus text. */
#include "serve/metrics.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static char *scrape(const struct nm_metrics *m, const struct nm_metrics_gauges *g, struct nm_buf *b)
{
    nm_buf_init(b, 1 << 20);
    cr_assert_eq(nm_metrics_format(m, g, b), 0);
    cr_assert_eq(nm_buf_append(b, "", 1), 0);
    return b->ptr;
}

static void expect_line(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    cr_expect_not_null(strstr(text, want), "missing line: %s\nin:\n%s", line, text);
}

Test(metrics, counts_of_every_worker_are_summed_by_method_and_status)
{
    struct nm_metrics *m;
    cr_assert_eq(nm_metrics_new(2, &m), 0);
    struct nm_metrics_worker *w0 = nm_metrics_worker(m, 0), *w1 = nm_metrics_worker(m, 1);
    cr_assert_null(nm_metrics_worker(m, 2));
    nm_metrics_count(w0, NM_METHOD_GET, 200, NM_CODING_IDENTITY, 100, 0);
    nm_metrics_count(w1, NM_METHOD_GET, 200, NM_CODING_GZIP, 40, 0);
    nm_metrics_count(w1, NM_METHOD_GET, 304, NM_CODING_IDENTITY, 0, 100);
    nm_metrics_count(w0, NM_METHOD_GET, 304, NM_CODING_IDENTITY, 0, 40);
    nm_metrics_count(w0, NM_METHOD_HEAD, 404, NM_CODING_IDENTITY, 0, 0);
    nm_metrics_count(NULL, NM_METHOD_GET, 200, NM_CODING_IDENTITY, 1, 0); /* a no-op */
    struct nm_metrics_gauges g = {.open_connections = 3, .aborted_bodies = 1};
    struct nm_buf b;
    const char *t = scrape(m, &g, &b);
    expect_line(t, "notmod_requests_total{method=\"GET\",code=\"200\"} 2");
    expect_line(t, "notmod_requests_total{method=\"GET\",code=\"304\"} 2");
    expect_line(t, "notmod_requests_total{method=\"HEAD\",code=\"404\"} 1");
    expect_line(t, "notmod_not_modified_total 2");
    expect_line(t, "notmod_not_modified_saved_bytes_total 140");
    expect_line(t, "notmod_response_bytes_total 140");
    expect_line(t, "notmod_responses_by_coding_total{coding=\"identity\"} 1");
    expect_line(t, "notmod_responses_by_coding_total{coding=\"gzip\"} 1");
    expect_line(t, "notmod_open_connections 3");
    expect_line(t, "notmod_aborted_bodies_total 1");
    cr_expect_null(strstr(t, "notmod_etag_sources_total"), "no hashing, no ETag sources");
    cr_expect_null(strstr(t, "code=\"500\""), "a status never counted is left out");
    nm_buf_cleanup(&b);
    nm_metrics_free(m);
}

Test(metrics, every_series_has_help_and_type_and_hashing_sources_come_from_the_gauges)
{
    struct nm_metrics *m;
    cr_assert_eq(nm_metrics_new(1, &m), 0);
    nm_metrics_count(nm_metrics_worker(m, 0), NM_METHOD_GET, 42, NM_CODING_IDENTITY, 0, 0);
    struct nm_metrics_gauges g = {.has_hashing = true,
                                  .hashed_files = 2,
                                  .hashed_bytes = 1000,
                                  .small_files = 5,
                                  .small_bytes = 50,
                                  .from_memo = 11,
                                  .from_store = 3,
                                  .from_xattr = 7,
                                  .from_manifest = 1,
                                  .hashing_queued = 4};
    struct nm_buf b;
    const char *t = scrape(m, &g, &b);
    expect_line(t, "notmod_requests_total{method=\"GET\",code=\"599\"} 1"); /* out of range */
    expect_line(t, "notmod_etag_sources_total{source=\"memory\"} 11");
    expect_line(t, "notmod_etag_sources_total{source=\"store\"} 3");
    expect_line(t, "notmod_etag_sources_total{source=\"attribute\"} 7");
    expect_line(t, "notmod_etag_sources_total{source=\"manifest\"} 1");
    expect_line(t, "notmod_etag_sources_total{source=\"hashed\"} 2");
    expect_line(t, "notmod_etag_sources_total{source=\"hashed_in_memory\"} 5");
    expect_line(t, "notmod_hashed_bytes_total 1050");
    expect_line(t, "notmod_hashing_queue_length 4");
    /* Every sample's metric has its # TYPE line before it. */
    for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
        if (*p != '#') {
            char name[64];
            size_t n = strcspn(p, "{ ");
            cr_assert_lt(n, sizeof(name));
            memcpy(name, p, n);
            name[n] = '\0';
            char type[96];
            snprintf(type, sizeof(type), "# TYPE %s ", name);
            const char *at = strstr(t, type);
            cr_expect(at && at < p, "no TYPE before %s", name);
        }
        if (!strchr(p, '\n'))
            break;
    }
    nm_buf_cleanup(&b);
    nm_metrics_free(m);
}
