/* Listening sockets: --listen values parsed (HOST:PORT, [IPv6]:PORT, host names resolved to every
 * address), and each address bound as one socket per worker in a SO_REUSEPORT group that no
 * other process can join unnoticed. */
#ifndef NOTMOD_LISTEN_H
#define NOTMOD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define NM_LISTEN_MAX (2 * NM_CONFIG_MAX_LISTEN) /* host names expand to several addresses */

struct nm_listener {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *spec; /* the --listen value it comes from */
    size_t index;     /* that value's place in cfg->listen (and cfg->tls_cert) */
    bool from_name;   /* one of the addresses a host name resolved to */
    int *fds;         /* one socket per worker, owned here; fds[0] is bound first */
    bool inherited;   /* passed by the service manager: every fds[i] is the same socket */
    char url[80];     /* "http://HOST:PORT/", numeric; "https://" for a TLS listener */
};

struct nm_listeners {
    struct nm_listener l[NM_LISTEN_MAX];
    size_t n;
    unsigned n_workers; /* sockets per listener */
};

/* A --listen value taken apart, before any name is resolved. */
struct nm_listen_spec {
    char host[256];               /* without brackets; empty for "any IPv4 address" */
    bool bracketed;               /* "[IPv6]:PORT" */
    uint16_t port;                /* 0: the kernel picks */
    struct sockaddr_storage addr; /* the address with the port, when host is numeric */
    socklen_t addr_len;           /* 0 for a host name, to be resolved */
};

/* Splits HOST:PORT (at the last ':', so an unbracketed IPv6 address takes the port after it),
 * [IPv6]:PORT or :PORT (any IPv4 address). The port is decimal digits only, 0 to 65535; a
 * bracketed host must be an IPv6 address; host names are left to resolve. Resolves nothing
 * and allocates nothing. Returns 0 or -EINVAL. */
int nm_listen_parse(const char *spec, struct nm_listen_spec *out);

/* Resolves every cfg->listen value (which must outlive ls) and binds n_workers listening sockets
 * (non-blocking, close-on-exec) for each address. Port 0 takes the port the kernel picks for the
 * first socket, and one port for all the addresses of a name. An address of a host name that
 * this host cannot bind (::1 without IPv6) is left out while another binds. Only the first socket
 * of an address binds without SO_REUSEPORT, so an address that anything else holds, even a
 * group of such sockets, is refused. Returns 0, or a negative errno with a message in err:
 * -EADDRINUSE ("address already in use", naming the address), -EINVAL for a malformed address,
 * a name that does not exist or too many addresses, -EAGAIN when the resolver cannot answer, or
 * the errno of socket, bind or listen. Call nm_listen_cleanup in either case.
 * Under socket activation (nm_systemd_listen_fds), the sockets passed replace cfg->listen: each
 * is one listener whose workers all share it (fds[i] the same socket, inherited set), bound
 * nothing; -EINVAL when a passed descriptor is not a listening stream socket. */
int nm_listen_init(struct nm_listeners *ls, const struct nm_config *cfg, unsigned n_workers,
                   char *err, size_t err_cap);

/* A reload: fills `next` (the same number of sockets per address as prev) for cfg's listen
 * values, which must outlive next. A value prev has too keeps its sockets, moved into next (prev
 * keeps the entry without them, so that closing prev leaves them open), so its connections never
 * stop being accepted; any other value is resolved and bound as nm_listen_init does. Returns 0,
 * or a negative errno with a message in err and prev unchanged (next then holds nothing). */
int nm_listen_reload(struct nm_listeners *next, struct nm_listeners *prev,
                     const struct nm_config *cfg, char *err, size_t err_cap);

/* Closes every socket. */
void nm_listen_cleanup(struct nm_listeners *ls);

/* Writes the numeric host of an IPv4 or IPv6 address (no brackets, no port), or "-" for any
 * other family. */
void nm_listen_format_host(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
