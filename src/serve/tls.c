/* TLS over OpenSSL 3: contexts per listener and per SNI name in refcounted generations (a reload
 * swaps the generation; connections keep the one they started with), session ticket keys rotated
 * hourly, ALPN, and the non-blocking handshake, reads and writes of each connection, through a
 * socket BIO of its own that knows when a read emptied the socket. */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "listen.h"
#include "log.h"

/* TLS 1.2 suites with forward secrecy and an AEAD only; TLS 1.3 keeps OpenSSL's three (all AEAD,
 * all ECDHE or DHE by design). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* ALPN protocols in the server's order of preference (RFC 7301 §3.2), as wire-format vectors. */
static const unsigned char alpn_ours[] = "\x02h2\x08http/1.1";

/* The contexts of one reading of the certificate files. A connection holds a reference from its
 * creation to its end: its SNI callback looks the names up in the generation it started with. */
struct gen {
    atomic_uint refs;
    const struct nm_config *cfg;
    SSL_CTX *listen_ctx[NM_CONFIG_MAX_LISTEN]; /* NULL for a cleartext listener */
    SSL_CTX *name_ctx[NM_CONFIG_MAX_TLS_NAMES];
};

/* A session ticket key (RFC 5077 §4's recommended layout: a name, an AES key, an HMAC key). */
struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

struct nm_tls {
    const struct nm_config *cfg;
    BIO_METHOD *socket_method; /* the connections' BIO (see "the socket" below) */
    pthread_mutex_t gen_lock;
    struct gen *current;
    pthread_mutex_t key_lock;
    struct ticket_key keys[2]; /* the current key, then the previous one */
    bool has_previous;
    int64_t rotated_s; /* monotonic time of the last rotation */
    pthread_mutex_t log_lock;
    int64_t logged_ms;
    unsigned suppressed;
};

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* ---- session tickets ---- */

static int new_key(struct ticket_key *k)
{
    return RAND_bytes((unsigned char *)k, (int)sizeof(*k)) == 1 ? 0 : -EIO;
}

/* Called with key_lock held: a new current key every NM_TLS_TICKET_ROTATE_S, the old one kept to
 * open (and renew) the tickets it sealed. A ticket thus opens for one to two rotation periods. */
static void rotate_keys(struct nm_tls *t)
{
    int64_t now = clock_ms() / 1000;
    if (now - t->rotated_s < NM_TLS_TICKET_ROTATE_S)
        return;
    struct ticket_key k;
    if (new_key(&k) < 0)
        return; /* keep the current key rather than fail handshakes */
    t->keys[1] = t->keys[0];
    t->keys[0] = k;
    t->has_previous = true;
    t->rotated_s = now;
}

/* Seals (enc = 1) or opens a ticket. Returns 1, 2 when the ticket opened with the previous key
 * (a new ticket is issued), 0 for an unknown key (a full handshake), -1 on failure. */
static int ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                         EVP_MAC_CTX *hctx, int enc)
{
    struct nm_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct ticket_key k;
    int rc = 1;
    pthread_mutex_lock(&t->key_lock);
    rotate_keys(t);
    if (enc) {
        k = t->keys[0];
    } else if (memcmp(name, t->keys[0].name, 16) == 0) {
        k = t->keys[0];
    } else if (t->has_previous && memcmp(name, t->keys[1].name, 16) == 0) {
        k = t->keys[1];
        rc = 2;
    } else {
        rc = 0;
    }
    pthread_mutex_unlock(&t->key_lock);
    if (rc == 0)
        return 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        memcpy(name, k.name, 16);
        if (RAND_bytes(iv, 16) != 1 ||
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---- the socket ---- */

/* A connection's socket, as OpenSSL reads and writes it. OpenSSL's own socket BIO would do, but
 * it cannot tell that a read emptied the socket: a read that returns fewer bytes than asked (or
 * EAGAIN) marks the caller's `drained`, and while it stays marked (the caller clears it at the
 * socket's next epoll edge) a read asks the kernel nothing and says "retry". With read-ahead,
 * OpenSSL asks for as much as its buffer holds, so a keep-alive request costs one recv, not one
 * more that meets EAGAIN each time the caller reads on. Once the caller saw the peer's end (`hup`),
 * reads go on to the end of the stream, as no edge follows the FIN. Writes are plain sends. */
struct sock {
    int fd;
    bool *drained;
    const bool *hup;
    bool eof; /* a recv returned 0: BIO_eof, which OpenSSL asks to tell an end from an error */
};

static int sock_read(BIO *b, char *buf, size_t n, size_t *got)
{
    struct sock *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    if (*s->drained && !*s->hup) {
        BIO_set_retry_read(b);
        return 0;
    }
    ssize_t r = recv(s->fd, buf, n, 0);
    if ((r > 0 && (size_t)r < n) || (r < 0 && errno == EAGAIN))
        *s->drained = true;
    if (r > 0) {
        *got = (size_t)r;
        return 1;
    }
    if (r == 0)
        s->eof = true;
    else if (errno == EAGAIN || errno == EINTR)
        BIO_set_retry_read(b);
    return 0;
}

static int sock_write(BIO *b, const char *buf, size_t n, size_t *done)
{
    struct sock *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *done = 0;
    ssize_t r = send(s->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) {
        *done = (size_t)r;
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR)
        BIO_set_retry_write(b);
    return 0;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct sock *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return s->eof;
    default:
        return 0;
    }
}

static int sock_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static BIO_METHOD *sock_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "notmod socket");
    if (m && BIO_meth_set_read_ex(m, sock_read) == 1 && BIO_meth_set_write_ex(m, sock_write) == 1 &&
        BIO_meth_set_ctrl(m, sock_ctrl) == 1 && BIO_meth_set_destroy(m, sock_destroy) == 1)
        return m;
    BIO_meth_free(m);
    return NULL;
}

static BIO *sock_new(const struct nm_tls *t, int fd, bool *drained, const bool *hup)
{
    struct sock *s = malloc(sizeof(*s));
    BIO *b = s ? BIO_new(t->socket_method) : NULL;
    if (!b) {
        free(s);
        return NULL;
    }
    *s = (struct sock){.fd = fd, .drained = drained, .hup = hup};
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}

static int fd_of(SSL *ssl)
{
    const struct sock *s = BIO_get_data(SSL_get_rbio(ssl));
    return s->fd;
}

/* ---- contexts ---- */

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *chosen;
    if (SSL_select_next_proto(&chosen, out_len, alpn_ours, sizeof(alpn_ours) - 1, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: HTTP/1.1 without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* "*.example.com" matches one label below example.com (RFC 6125 §6.4.3); other names exactly.
 * DNS names compare without case (RFC 4343). */
static bool name_matches(const char *pattern, const char *host)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        return dot && dot != host && strcasecmp(dot, pattern + 1) == 0;
    }
    return strcasecmp(pattern, host) == 0;
}

/* SNI (RFC 6066 §3): the certificate of the first --tls name that matches; the listener's own
 * otherwise. */
static int select_name(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    struct gen *g = SSL_get_app_data(ssl);
    if (!host || !g)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < g->cfg->n_tls_names; i++) {
        if (g->name_ctx[i] && name_matches(g->cfg->tls_names[i].host, host)) {
            SSL_set_SSL_CTX(ssl, g->name_ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static void warn_key_mode(const char *key)
{
    struct stat st;
    if (stat(key, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        nm_log_error("warning: TLS key %s is readable by %s (chmod 600 it)", key,
                     (st.st_mode & S_IROTH) ? "others" : "its group");
}

/* A file OpenSSL cannot open is named with the system's reason rather than OpenSSL's. */
static bool readable(const char *what, const char *path, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        return true;
    }
    snprintf(err, err_cap, "cannot read TLS %s %s: %s", what, path, strerror(errno));
    return false;
}

static SSL_CTX *load_ctx(struct nm_tls *t, const char *cert, const char *key, char *err,
                         size_t err_cap)
{
    ERR_clear_error();
    if (!readable("certificate", cert, err, err_cap) || !readable("key", key, err, err_cap))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, err_cap, "cannot make a TLS context: %s", ssl_reason());
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, err_cap, "cannot load TLS certificate %s: %s", cert, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, err_cap, "cannot load TLS key %s: %s", key, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_cap, "TLS key %s does not match certificate %s", key, cert);
        goto fail;
    }
    warn_key_mode(key);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        snprintf(err, err_cap, "cannot set the TLS versions and ciphers: %s", ssl_reason());
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes: a send returns after each record, so the caller advances its queue by what
     * left; a moving buffer: a retry may present the same bytes from another copy. Buffers are
     * released while a connection is idle. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Whole reads of what the socket holds rather than a header then a body per record. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Resumption by tickets only: no per-session state on the server. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_timeout(ctx, NM_TLS_TICKET_ROTATE_S);
    SSL_CTX_set_app_data(ctx, t);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, select_name);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static void gen_put(struct gen *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    for (size_t i = 0; i < NM_CONFIG_MAX_LISTEN; i++)
        SSL_CTX_free(g->listen_ctx[i]);
    for (size_t i = 0; i < NM_CONFIG_MAX_TLS_NAMES; i++)
        SSL_CTX_free(g->name_ctx[i]);
    free(g);
}

/* One context: loaded anew, or, when that fails and `old` is given, the old one kept (logged). */
static int fill(struct nm_tls *t, SSL_CTX **slot, SSL_CTX *old, const char *cert, const char *key,
                char *err, size_t err_cap)
{
    *slot = load_ctx(t, cert, key, err, err_cap);
    if (*slot)
        return 0;
    if (!old)
        return -EBADMSG;
    nm_log_error("%s; keeping the previous certificate", err);
    SSL_CTX_up_ref(old);
    *slot = old;
    return 1;
}

/* Reads every file into a new generation. With `old`, a file that fails keeps its old context;
 * without, it fails the whole. Returns the number kept, or a negative errno. */
static int load_gen(struct nm_tls *t, const struct gen *old, struct gen **out, char *err,
                    size_t err_cap)
{
    const struct nm_config *cfg = t->cfg;
    struct gen *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    int kept = 0, rc = 0;
    for (size_t i = 0; i < cfg->n_listen && rc >= 0; i++) {
        if (!cfg->tls_cert[i])
            continue;
        rc = fill(t, &g->listen_ctx[i], old ? old->listen_ctx[i] : NULL, cfg->tls_cert[i],
                  cfg->tls_key[i], err, err_cap);
        kept += rc > 0;
    }
    for (size_t i = 0; i < cfg->n_tls_names && rc >= 0; i++) {
        const struct nm_tls_name *n = &cfg->tls_names[i];
        rc = fill(t, &g->name_ctx[i], old ? old->name_ctx[i] : NULL, n->cert, n->key, err, err_cap);
        kept += rc > 0;
    }
    if (rc < 0) {
        gen_put(g);
        return rc;
    }
    *out = g;
    return kept;
}

int nm_tls_new(const struct nm_config *cfg, struct nm_tls **out, char *err, size_t err_cap)
{
    *out = NULL;
    bool any = false;
    for (size_t i = 0; i < cfg->n_listen; i++)
        any |= cfg->tls_cert[i] != NULL;
    if (!any)
        return 0;
    struct nm_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->cfg = cfg;
    pthread_mutex_init(&t->gen_lock, NULL);
    pthread_mutex_init(&t->key_lock, NULL);
    pthread_mutex_init(&t->log_lock, NULL);
    t->rotated_s = clock_ms() / 1000;
    t->socket_method = sock_method();
    if (!t->socket_method) {
        nm_tls_free(t);
        return -ENOMEM;
    }
    int rc = new_key(&t->keys[0]);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot make a session ticket key: %s", ssl_reason());
        nm_tls_free(t);
        return rc;
    }
    rc = load_gen(t, NULL, &t->current, err, err_cap);
    if (rc < 0) {
        nm_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void nm_tls_free(struct nm_tls *t)
{
    if (!t)
        return;
    gen_put(t->current);
    if (t->suppressed)
        nm_log_error("%u more TLS handshakes failed", t->suppressed);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    BIO_meth_free(t->socket_method);
    pthread_mutex_destroy(&t->gen_lock);
    pthread_mutex_destroy(&t->key_lock);
    pthread_mutex_destroy(&t->log_lock);
    free(t);
}

int nm_tls_reload(struct nm_tls *t)
{
    char err[512];
    struct gen *g;
    int kept = load_gen(t, t->current, &g, err, sizeof(err));
    if (kept < 0) {
        nm_log_error("TLS reload: %s", err);
        return -kept;
    }
    pthread_mutex_lock(&t->gen_lock);
    struct gen *old = t->current;
    t->current = g;
    pthread_mutex_unlock(&t->gen_lock);
    gen_put(old);
    return kept;
}

bool nm_tls_listens(const struct nm_tls *t, size_t i)
{
    return t && i < NM_CONFIG_MAX_LISTEN && t->cfg->tls_cert[i] != NULL;
}

/* ---- connections ---- */

/* A connection is its SSL object; the generation it started with is its application data. */
static SSL *ssl_of(const struct nm_tls_conn *c)
{
    return (SSL *)c;
}

int nm_tls_conn_new(struct nm_tls *t, size_t i, int fd, bool *rx_drained, const bool *rx_hup,
                    struct nm_tls_conn **out)
{
    pthread_mutex_lock(&t->gen_lock);
    struct gen *g = t->current;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&t->gen_lock);
    SSL *ssl = SSL_new(g->listen_ctx[i]);
    BIO *b = ssl ? sock_new(t, fd, rx_drained, rx_hup) : NULL;
    if (!b) {
        SSL_free(ssl);
        gen_put(g);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_bio(ssl, b, b); /* one BIO both ways; the SSL owns it */
    SSL_set_app_data(ssl, g);
    SSL_set_accept_state(ssl);
    *out = (struct nm_tls_conn *)ssl;
    return 0;
}

void nm_tls_conn_free(struct nm_tls_conn *c)
{
    if (!c)
        return;
    struct gen *g = SSL_get_app_data(ssl_of(c));
    SSL_free(ssl_of(c));
    gen_put(g);
}

/* One line per NM_TLS_LOG_INTERVAL_MS across the server: a scan of the port or a flood of
 * garbage would otherwise write a line per connection. */
static void log_failure(const char *why, SSL *ssl)
{
    struct nm_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    int64_t now = clock_ms();
    pthread_mutex_lock(&t->log_lock);
    if (t->logged_ms && now - t->logged_ms < NM_TLS_LOG_INTERVAL_MS) {
        t->suppressed++;
        pthread_mutex_unlock(&t->log_lock);
        return;
    }
    unsigned more = t->suppressed;
    t->suppressed = 0;
    t->logged_ms = now;
    pthread_mutex_unlock(&t->log_lock);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char peer[64];
    if (getpeername(fd_of(ssl), (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = AF_UNSPEC;
    nm_listen_format_host(&ss, peer, sizeof(peer));
    if (more)
        nm_log_error("TLS handshake with %s failed: %s (and %u more since the last line)", peer,
                     why, more);
    else
        nm_log_error("TLS handshake with %s failed: %s", peer, why);
}

int nm_tls_handshake(struct nm_tls_conn *c)
{
    SSL *ssl = ssl_of(c);
    ERR_clear_error();
    int r = SSL_accept(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    unsigned long code = ERR_peek_last_error();
    if (e != SSL_ERROR_SSL || ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return -ECONNRESET; /* the peer closed or reset: nothing to tell */
    }
    log_failure(ssl_reason(), ssl);
    ERR_clear_error();
    return -EPROTO;
}

bool nm_tls_is_h2(const struct nm_tls_conn *c)
{
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(ssl_of(c), &p, &n);
    return n == 2 && p[0] == 'h' && p[1] == '2';
}

/* errno for a failed read or write; -1. */
static ssize_t failed(SSL *ssl, int r)
{
    int saved = errno;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        break;
    case SSL_ERROR_SYSCALL:
        errno = saved && saved != EAGAIN ? saved : ECONNRESET;
        break;
    default:
        errno = EPROTO;
        break;
    }
    ERR_clear_error();
    return -1;
}

ssize_t nm_tls_read(struct nm_tls_conn *c, void *buf, size_t n)
{
    SSL *ssl = ssl_of(c);
    size_t got;
    ERR_clear_error();
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1)
        return (ssize_t)got;
    if (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return 0;
    }
    return failed(ssl, r);
}

bool nm_tls_has_pending(const struct nm_tls_conn *c)
{
    return SSL_has_pending(ssl_of(c)) == 1;
}

ssize_t nm_tls_write(struct nm_tls_conn *c, const void *buf, size_t n)
{
    SSL *ssl = ssl_of(c);
    size_t done;
    ERR_clear_error();
    int r = SSL_write_ex(ssl, buf, n, &done);
    if (r == 1)
        return (ssize_t)done;
    return failed(ssl, r);
}

void nm_tls_close(struct nm_tls_conn *c)
{
    ERR_clear_error();
    SSL_shutdown(ssl_of(c));
    ERR_clear_error();
}
