/* The server: the root, the listening sockets (listen.h), the worker threads with an epoll loop
 * each (worker.h), signals and a graceful stop. Connections are nm_conn machines; the server's
 * modules only move bytes. */
#ifndef NOTMOD_SERVER_H
#define NOTMOD_SERVER_H

#include <stddef.h>

#include "config.h"

struct nm_server;

/* Opens the root and binds every listen address (port 0 picks a free port; the bound addresses
 * are then readable with nm_server_address). A host name listens on every address it resolves
 * to (one that this host cannot bind, such as ::1 without IPv6, is left out when another binds);
 * port 0 with a name takes one port for all its addresses. Each worker has a socket of its own
 * (SO_REUSEPORT), but an address that anything else holds, even a group of such sockets, is
 * refused. Writes a message to err on failure and returns a negative errno: -ENOTDIR/-ENOENT/
 * -EACCES for the root; -EADDRINUSE ("address already in use", naming the address); -EINVAL for
 * a malformed address or a name that does not exist; -EBADMSG for a TLS certificate or key that
 * cannot be loaded (the message names the file); -EAGAIN when the resolver cannot answer.
 * Sockets passed by socket activation replace the listen addresses (listen.h). With
 * cfg->metrics_listen it binds the metrics listener too (scrape.h: -EINVAL for a malformed
 * address). Once bound, it gives up root for cfg->run_user and cfg->run_group (privs.h; its
 * errors as there), and it raises the soft open file limit to the hard one, warning when that
 * is below what cfg->max_conns needs. */
int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap);

/* The i-th bound address as "http://HOST:PORT/" (numeric), or NULL past the last. */
const char *nm_server_address(const struct nm_server *s, size_t i);

/* Runs the workers until SIGTERM or SIGINT (then stops accepting, lets in-flight responses finish
 * within cfg->shutdown_timeout_ms, and returns 0). SIGHUP reopens the access log and re-reads the
 * TLS certificates and keys (tls.h: new handshakes use them, open connections keep theirs, a file
 * that fails keeps its previous version with a logged error). A response
 * aborted because its file changed is logged at most once per file per second; the others are
 * counted, and the count logged once the second is over. With cfg->quiet, the hashing counters
 * are not logged. The caller must have blocked SIGTERM, SIGINT, SIGHUP, SIGPIPE and the lease
 * signals in every thread (nm_server_block_signals). With --metrics, the metrics thread starts with
 * the workers and its URL is logged ("metrics on http://HOST:PORT/metrics, ..."). Under a service
 * manager (NOTIFY_SOCKET) it reports READY=1 once every worker runs, RELOADING=1 and READY=1 around
 * SIGHUP, and STOPPING=1 at the stop. */
int nm_server_run(struct nm_server *s);

/* Makes a new config for a reload: 0 and a heap config (from nm_config_init, filled), or a
 * negative errno after reporting the problems itself (as FILE:LINE through nm_log_error). */
typedef int nm_server_reload_fn(void *arg, struct nm_config **out);

/* With a reload function, SIGHUP reads the settings again and swaps them in: every worker takes
 * the new ones between requests (responses in flight finish as they were rendered), and the old
 * ones are freed when the last worker has moved on. A config that cannot be read, or that changes
 * what only a restart can change (workers, etag, etag_manifest, compress,
 * compress_cache, access_log, quiet), is refused with a logged error and the old one stays.
 * Listen addresses the new config adds are bound first (one that cannot be bound refuses the
 * reload), those it keeps keep their sockets, and those it drops are closed once every worker
 * has stopped watching them; each change is logged. SIGHUP reopens the access log either way.
 * The stop's drain timeout is the current config's
 * shutdown_timeout_ms. Call before nm_server_run. */
void nm_server_set_reload(struct nm_server *s, nm_server_reload_fn *fn, void *arg);

/* Blocks the signals nm_server_run waits for, and those the workers read lease breaks by
 * (nm_filecache_lease_signal and SIGIO); call before starting any thread. */
void nm_server_block_signals(void);

void nm_server_free(struct nm_server *s);

#endif
