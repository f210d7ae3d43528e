/* The `--metrics` listener: one thread answering GET /metrics (the Prometheus text format) and
 * GET /status (a self-contained HTML page that polls /metrics for the request rate and the 304
 * ratio), one request per connection. */
#ifndef NOTMOD_SCRAPE_H
#define NOTMOD_SCRAPE_H

#include <stddef.h>

#include "metrics.h"

struct nm_scrape;

/* Fills g with what the workers' counters do not hold; called on the scrape thread. */
typedef void (*nm_scrape_gauges_fn)(void *arg, struct nm_metrics_gauges *g);

/* Binds spec, a numeric "HOST:PORT" or "[IPv6]:PORT" (port 0 picks one), and listens. Returns
 * 0, -EINVAL for a malformed spec, or the errno of socket/bind/listen; err says which. */
int nm_scrape_bind(const char *spec, struct nm_scrape **out, char *err, size_t err_cap);

/* "http://HOST:PORT/" of the bound address. */
const char *nm_scrape_url(const struct nm_scrape *s);

/* Starts the thread serving m (which must outlive it) and gauges. Returns 0 or -EAGAIN. */
int nm_scrape_start(struct nm_scrape *s, const struct nm_metrics *m, nm_scrape_gauges_fn gauges,
                    void *arg);

/* Stops the thread (when started) and closes the socket. NULL is a no-op. */
void nm_scrape_free(struct nm_scrape *s);

#endif
