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
 * cannot be loaded (the message names the file); -EAGAIN when the resolver cannot answer. */
int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap);

/* The i-th bound address as "http://HOST:PORT/" (numeric), or NULL past the last. */
const char *nm_server_address(const struct nm_server *s, size_t i);

/* Runs the workers until SIGTERM or SIGINT (then stops accepting, lets in-flight responses finish
 * within cfg->shutdown_timeout_ms, and returns 0). SIGHUP reopens the access log and re-reads the
 * TLS certificates and keys (tls.h: new handshakes use them, open connections keep theirs, a file
 * that fails keeps its previous version with a logged error). A response
 * aborted because its file changed is logged at most once per file per second; the others are
 * counted, and the count logged once the second is over. With cfg->quiet, the hashing counters
 * are not logged. The caller must have blocked SIGTERM, SIGINT, SIGHUP and SIGPIPE in every
 * thread (nm_server_block_signals). */
int nm_server_run(struct nm_server *s);

/* Blocks the signals nm_server_run waits for; call before starting any thread. */
void nm_server_block_signals(void);

void nm_server_free(struct nm_server *s);

#endif
