/* The server: listening sockets, one epoll loop per worker thread (SO_REUSEPORT), timeouts,
 * graceful shutdown. Connections are nm_conn machines; this module only moves bytes. */
#ifndef NOTMOD_SERVER_H
#define NOTMOD_SERVER_H

#include <stddef.h>

#include "notmod/config.h"

struct nm_server;

/* Opens the root and binds every listen address (port 0 picks a free port; the bound addresses
 * are then readable with nm_server_address). Writes a message to err on failure and returns a
 * negative errno: -ENOTDIR/-ENOENT/-EACCES for the root, -EADDRINUSE, -EINVAL for an address. */
int nm_server_new(const struct nm_config *cfg, struct nm_server **out, char *err, size_t err_cap);

/* The i-th bound address as "http://HOST:PORT/", or NULL past the last. */
const char *nm_server_address(const struct nm_server *s, size_t i);

/* Runs the workers until SIGTERM or SIGINT (then stops accepting, lets in-flight responses finish
 * within cfg->shutdown_timeout_ms, and returns 0). SIGHUP reopens the access log. The caller must
 * have blocked SIGTERM, SIGINT, SIGHUP and SIGPIPE in every thread (nm_server_block_signals). */
int nm_server_run(struct nm_server *s);

/* Blocks the signals nm_server_run waits for; call before starting any thread. */
void nm_server_block_signals(void);

void nm_server_free(struct nm_server *s);

#endif
