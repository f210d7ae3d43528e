/* Listen addresses: parsing, name resolution, binding one socket per worker (RFC 3986 §3.2.2
 * for the bracketed IPv6 form). */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "systemd.h"

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

static uint16_t get_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* Adds an address of spec, unless a listener has it already: a name listed twice in /etc/hosts,
 * or given both as a name and as a number. Port 0 asks for a port of its own, so it is only
 * the same within one spec. */
static int add_address(struct nm_listeners *s, const char *spec, size_t index, bool from_name,
                       const void *addr, socklen_t len, char *err, size_t err_cap)
{
    struct nm_listener l = {.addr_len = len, .spec = spec, .index = index, .from_name = from_name};
    memcpy(&l.addr, addr, len);
    for (size_t i = 0; i < s->n; i++)
        if (same_address(&s->l[i].addr, &l.addr) &&
            (get_port(&l.addr) != 0 || s->l[i].spec == spec))
            return 0;
    if (s->n == NM_LISTEN_MAX) {
        snprintf(err, err_cap, "too many listen addresses (at most %d, host names included)",
                 NM_LISTEN_MAX);
        return -EINVAL;
    }
    s->l[s->n++] = l;
    return 0;
}

int nm_listen_parse(const char *spec, struct nm_listen_spec *out)
{
    memset(out, 0, sizeof(*out));
    const char *port;
    size_t host_len;
    const char *host;
    out->bracketed = spec[0] == '[';
    if (out->bracketed) {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host = spec + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon)
            return -EINVAL;
        host = spec;
        host_len = (size_t)(colon - spec);
        port = colon + 1;
    }
    uint64_t p;
    if (host_len >= sizeof(out->host) || nm_parse_u64(port, 65535, &p) != 0)
        return -EINVAL;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)p;
    struct sockaddr_in in4 = {.sin_family = AF_INET, .sin_port = htons(out->port)};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(out->port)};
    if (!out->bracketed &&
        inet_pton(AF_INET, out->host[0] ? out->host : "0.0.0.0", &in4.sin_addr) == 1) {
        memcpy(&out->addr, &in4, sizeof(in4));
        out->addr_len = sizeof(in4);
    } else if (inet_pton(AF_INET6, out->host, &in6.sin6_addr) == 1) {
        memcpy(&out->addr, &in6, sizeof(in6));
        out->addr_len = sizeof(in6);
    } else if (out->bracketed || !out->host[0]) {
        return -EINVAL;
    }
    return 0;
}

/* Adds the addresses of one --listen value, HOST:PORT or [IPv6]:PORT: a numeric host as it is,
 * an empty one as 0.0.0.0, and a host name as every address it resolves to. */
static int add_listen(struct nm_listeners *s, const char *spec, size_t index, char *err,
                      size_t err_cap)
{
    struct nm_listen_spec ps;
    if (nm_listen_parse(spec, &ps) != 0) {
        snprintf(err, err_cap, "invalid listen address '%s' (want HOST:PORT or [IPv6]:PORT)", spec);
        return -EINVAL;
    }
    if (ps.addr_len)
        return add_address(s, spec, index, false, &ps.addr, ps.addr_len, err, err_cap);
    const char *host = ps.host;
    long p = ps.port;

    /* A host name: AI_PASSIVE is moot with a host given; AI_ADDRCONFIG is left out so that
     * "localhost" means ::1 too on a host with only loopback IPv6. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res;
    int g = getaddrinfo(host, NULL, &hints, &res);
    if (g != 0) {
        /* A name that does not exist is a bad value, like a malformed address; a resolver
         * that cannot answer now is a failure to start. */
        int sys = errno;
        snprintf(err, err_cap, "cannot resolve '%s' in listen address '%s': %s", host, spec,
                 g == EAI_SYSTEM ? strerror(sys) : gai_strerror(g));
        if (g == EAI_SYSTEM)
            return sys ? -sys : -EIO;
        return g == EAI_AGAIN    ? -EAGAIN
               : g == EAI_MEMORY ? -ENOMEM
               : g == EAI_FAIL   ? -EIO
                                 : -EINVAL;
    }
    int rc = 0;
    for (struct addrinfo *a = res; a && rc == 0; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        struct sockaddr_storage ss;
        memcpy(&ss, a->ai_addr, a->ai_addrlen);
        set_port(&ss, (uint16_t)p);
        rc = add_address(s, spec, index, true, &ss, a->ai_addrlen, err, err_cap);
    }
    freeaddrinfo(res);
    return rc;
}

/* One listening socket for l. Linux lets sockets share an address and port only when every one
 * of them set SO_REUSEPORT (under the same user): that is how each worker has a socket of its
 * own, and how a second server would join the group unnoticed and take a share of the
 * connections. So the first socket binds without it, which fails when anything already holds
 * the address, whatever its options; it sets SO_REUSEPORT only once bound, before listen, so
 * that the workers' sockets can join. A lone worker never sets it. */
static int open_socket(const struct nm_listener *l, bool first, bool shared)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc = 0;
    /* Binds while the connections of a previous run are in TIME_WAIT; never beside a listener. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (shared && !first)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addr_len) != 0)
        rc = -errno;
    if (rc == 0 && shared && first &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        rc = -errno;
    if (rc == 0 && listen(fd, 1024) != 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Another process of the same user can still join the group with SO_REUSEPORT of its own once
 * the first socket listens (a server that does not check, like this one before). The group's
 * program picks one of its first n sockets, the ones joined first: ours, so such a socket gets
 * no connections. Kernels without SO_ATTACH_REUSEPORT_CBPF (before 4.5) keep their own hash. */
static void keep_group_private(int fd, unsigned n)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};
    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog));
}

void nm_listen_format_host(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "-");
}

static void describe(struct nm_listener *l, bool tls)
{
    char host[INET6_ADDRSTRLEN];
    nm_listen_format_host(&l->addr, host, sizeof(host));
    snprintf(l->url, sizeof(l->url), l->addr.ss_family == AF_INET ? "%s://%s:%u/" : "%s://[%s]:%u/",
             tls ? "https" : "http", host, get_port(&l->addr));
}

/* Binds every socket of l, one per worker. Port 0 takes the port the kernel chose for the first
 * socket, and the first one chosen for the spec when a name gave it several addresses. */
static int bind_listener(struct nm_listeners *s, struct nm_listener *l)
{
    for (const struct nm_listener *o = s->l; o < l && get_port(&l->addr) == 0; o++)
        if (o->spec == l->spec)
            set_port(&l->addr, get_port(&o->addr));
    bool shared = s->n_workers > 1;
    l->fds[0] = open_socket(l, true, shared);
    if (l->fds[0] < 0)
        return l->fds[0];
    getsockname(l->fds[0], (struct sockaddr *)&l->addr, &l->addr_len);
    for (unsigned i = 1; i < s->n_workers; i++) {
        l->fds[i] = open_socket(l, false, true);
        if (l->fds[i] < 0)
            return l->fds[i];
    }
    if (shared)
        keep_group_private(l->fds[0], s->n_workers);
    return 0;
}

/* The sockets systemd passed (a notmod.socket unit, systemd-socket-activate): the listeners, as
 * they are, the i-th with the TLS files of the i-th --listen when it has them. Returns how many, 0
 * when none were passed, or a negative errno (err says). */
static int use_inherited(struct nm_listeners *s, const struct nm_config *cfg, char *err,
                         size_t err_cap)
{
    int fds[NM_LISTEN_MAX];
    int n = nm_systemd_listen_fds(fds, NM_LISTEN_MAX);
    if (n < 0) {
        snprintf(err, err_cap, "the sockets passed by the service manager (LISTEN_FDS): %s",
                 n == -EINVAL ? "not all listening stream sockets, or more than 32" : strerror(-n));
        return n;
    }
    for (int i = 0; i < n; i++) {
        struct nm_listener *l = &s->l[s->n];
        *l = (struct nm_listener){.addr_len = sizeof(l->addr),
                                  .spec = "LISTEN_FDS",
                                  .index = (size_t)i,
                                  .inherited = true};
        if (!(l->fds = malloc(s->n_workers * sizeof(*l->fds)))) {
            for (int k = i; k < n; k++)
                close(fds[k]);
            return -ENOMEM;
        }
        s->n++;
        for (unsigned k = 0; k < s->n_workers; k++)
            l->fds[k] = fds[i];
        getsockname(fds[i], (struct sockaddr *)&l->addr, &l->addr_len);
        describe(l, i < NM_CONFIG_MAX_LISTEN && cfg->tls_cert[i] != NULL);
    }
    return n;
}

static void close_listener(const struct nm_listeners *s, struct nm_listener *l)
{
    if (l->inherited && l->fds) {
        close(l->fds[0]);
        free(l->fds);
        l->fds = NULL;
        return;
    }
    for (unsigned i = 0; l->fds && i < s->n_workers; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l->fds);
    l->fds = NULL;
}

int nm_listen_init(struct nm_listeners *s, const struct nm_config *cfg, unsigned n_workers,
                   char *err, size_t err_cap)
{
    s->n = 0;
    s->n_workers = n_workers;
    int inherited = use_inherited(s, cfg, err, err_cap);
    if (inherited != 0)
        return inherited < 0 ? inherited : 0;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        int rc = add_listen(s, cfg->listen[i], i, err, err_cap);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < s->n;) {
        struct nm_listener *l = &s->l[i];
        if (!(l->fds = malloc(s->n_workers * sizeof(*l->fds))))
            return -ENOMEM;
        for (unsigned k = 0; k < s->n_workers; k++)
            l->fds[k] = -1;
        int rc = bind_listener(s, l);
        size_t siblings = 0;
        for (size_t k = 0; k < s->n; k++)
            siblings += s->l[k].spec == l->spec;
        if (rc < 0 && l->from_name && siblings > 1 &&
            (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)) {
            close_listener(s, l);
            memmove(l, l + 1, (s->n - i - 1) * sizeof(*l));
            s->n--;
            continue;
        }
        if (rc < 0) {
            char name[INET6_ADDRSTRLEN + 8] = "";
            describe(l, false);
            if (l->from_name)
                snprintf(name, sizeof(name), " (%.*s)", (int)strlen(l->url) - 8, l->url + 7);
            snprintf(err, err_cap, "cannot listen on %s%s: %s", l->spec, name,
                     rc == -EADDRINUSE ? "address already in use" : strerror(-rc));
            return rc;
        }
        describe(l, cfg->tls_cert[l->index] != NULL);
        i++;
    }
    return 0;
}

/* cfg's listen value equal to spec, or NULL. */
static const char *spec_in(const struct nm_config *cfg, const char *spec)
{
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (strcmp(cfg->listen[i], spec) == 0)
            return cfg->listen[i];
    return NULL;
}

static bool has_spec(const struct nm_listeners *s, const char *spec)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->l[i].fds && strcmp(s->l[i].spec, spec) == 0)
            return true;
    return false;
}

int nm_listen_reload(struct nm_listeners *next, struct nm_listeners *prev,
                     const struct nm_config *cfg, char *err, size_t err_cap)
{
    /* The new values first, bound on their own: a failure leaves prev as it was. */
    struct nm_config fresh;
    memset(&fresh, 0, sizeof(fresh));
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (!has_spec(prev, cfg->listen[i]))
            fresh.listen[fresh.n_listen++] = cfg->listen[i];
    int rc = nm_listen_init(next, &fresh, prev->n_workers, err, err_cap);
    size_t moving = 0;
    for (size_t i = 0; i < prev->n; i++)
        moving += prev->l[i].fds && spec_in(cfg, prev->l[i].spec);
    if (rc == 0 && next->n + moving > NM_LISTEN_MAX) {
        snprintf(err, err_cap, "too many listening addresses (at most %d)", NM_LISTEN_MAX);
        rc = -EINVAL;
    }
    if (rc < 0) {
        nm_listen_cleanup(next);
        return rc;
    }
    for (size_t i = 0; i < prev->n; i++) {
        struct nm_listener *l = &prev->l[i];
        const char *spec = l->fds ? spec_in(cfg, l->spec) : NULL;
        if (!spec)
            continue;
        next->l[next->n] = *l;
        next->l[next->n++].spec = spec;
        l->fds = NULL;
    }
    return 0;
}

void nm_listen_cleanup(struct nm_listeners *s)
{
    for (size_t i = 0; i < s->n; i++)
        close_listener(s, &s->l[i]);
    s->n = 0;
}
