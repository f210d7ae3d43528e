/* TLS for the listeners that have a certificate, over OpenSSL 3: the contexts (one per TLS
 * listener, one per SNI name), re-read on demand without dropping a connection, session tickets
 * with rotated keys, ALPN (h2 preferred, RFC 7301), and each connection's non-blocking handshake,
 * reads and writes. The only module that speaks to OpenSSL. */
#ifndef NOTMOD_TLS_H
#define NOTMOD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define NM_TLS_RECORD_BYTES 16384   /* the most plaintext one TLS record carries */
#define NM_TLS_TICKET_ROTATE_S 3600 /* a new ticket key this often; the last one still opens */
#define NM_TLS_LOG_INTERVAL_MS 1000 /* at most one failed-handshake line per this time */

/* The server's TLS state: every certificate of cfg, which must outlive it. */
struct nm_tls;

/* One TLS connection. */
struct nm_tls_conn;

/* Loads the certificate and key of every TLS listener of cfg (listen[i] with tls_cert[i]) and
 * every SNI name: TLS 1.2 and 1.3 only; for TLS 1.2, ECDHE key exchange with AES-GCM or
 * ChaCha20-Poly1305 only. *out is NULL when cfg has no TLS listener. A key file that the group or
 * others may read is warned about (logged, naming it). Returns 0, or -EBADMSG with a message in
 * err naming the file that cannot be loaded (or a key that does not match its certificate), or
 * -ENOMEM. */
int nm_tls_new(const struct nm_config *cfg, struct nm_tls **out, char *err, size_t err_cap);

/* Frees t; connections made from it must be freed first. NULL is a no-op. */
void nm_tls_free(struct nm_tls *t);

/* Re-reads every certificate and key file. New handshakes use the new ones; connections made
 * before keep theirs (contexts are refcounted). A file that cannot be loaded keeps its previous
 * certificate, with a logged error naming it. Safe while workers make connections. Returns the
 * number of certificates that kept their previous version. */
int nm_tls_reload(struct nm_tls *t);

/* Whether listen[i] of the config speaks TLS. */
bool nm_tls_listens(const struct nm_tls *t, size_t i);

/* A server connection over the connected non-blocking socket fd, accepted on listen[i], for a
 * caller that waits on fd with edge-triggered epoll. *rx_drained and *rx_hup are the caller's,
 * shared with c's reads of the socket (the handshake's too) and must outlive c: a read of the
 * socket that returns fewer bytes than asked, or EAGAIN, sets *rx_drained (the socket is empty);
 * while it is set and *rx_hup is not, c reads nothing from the socket and a read that needs its
 * bytes reports EAGAIN (bytes c already holds are still read). The caller clears *rx_drained at
 * the socket's next readiness event, and sets *rx_hup once it saw the peer's end (EPOLLRDHUP),
 * after which reads go on to the end of the stream. Returns 0 and *out, or -ENOMEM. */
int nm_tls_conn_new(struct nm_tls *t, size_t i, int fd, bool *rx_drained, const bool *rx_hup,
                    struct nm_tls_conn **out);

/* Frees c without sending anything. NULL is a no-op. */
void nm_tls_conn_free(struct nm_tls_conn *c);

/* Moves the handshake on. Returns 1 once it is done, 0 while it waits for the socket, -EPROTO
 * when the peer sent something that is not TLS we accept (logged with the peer's address and
 * OpenSSL's reason, at most one line per NM_TLS_LOG_INTERVAL_MS per server, the others counted
 * into the next line), -ECONNRESET when the peer went away (not logged). */
int nm_tls_handshake(struct nm_tls_conn *c);

/* After the handshake: true when ALPN chose "h2" (else HTTP/1.1). */
bool nm_tls_is_h2(const struct nm_tls_conn *c);

/* Decrypts up to n bytes into buf. Returns the count, 0 at the end of the peer's data, or -1
 * with errno EAGAIN (wait for the socket) or another errno (drop the connection). */
ssize_t nm_tls_read(struct nm_tls_conn *c, void *buf, size_t n);

/* True when decrypted bytes wait inside c (read them before waiting for the socket). */
bool nm_tls_has_pending(const struct nm_tls_conn *c);

/* Sends up to n bytes, at most one record's worth per call. Returns the count, or -1 with errno
 * EAGAIN (wait for the socket) or another errno. After EAGAIN, the next call must present the
 * same bytes first (the record is already sealed; its buffer may move, and may grow). */
ssize_t nm_tls_write(struct nm_tls_conn *c, const void *buf, size_t n);

/* Sends close_notify, without waiting for the peer's (RFC 8446 §6.1). */
void nm_tls_close(struct nm_tls_conn *c);

#endif
