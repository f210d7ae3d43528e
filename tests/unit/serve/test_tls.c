/* The TLS module's contract (tls.h): no state without a TLS listener, files that cannot be loaded
 * named in the error, handshakes over a socket pair against an OpenSSL client (ALPN, versions),
 * bytes both ways, the socket's drained mark shared with the caller (a short read sets it, and
 * nothing more is read from the socket until the caller clears it, or saw the peer's end), and a
 * reload that keeps a certificate whose new file is broken. The test
 * certificates are made by the openssl CLI in a temporary directory. */
#include "serve/tls.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    char dir[64];
    char cert[128], key[128], other_key[128];
    struct nm_config cfg;
    struct nm_tls *tls;
    char err[512];
} fx;

static void make_key_and_cert(const char *key, const char *cert)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -keyout %s -out %s 2>/dev/null && chmod 600 %s",
             key, cert ? cert : "/dev/null", key);
    cr_assert_eq(system(cmd), 0, "openssl could not make a test certificate");
}

static void setup(void)
{
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/notmod-tls-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(fx.dir));
    snprintf(fx.cert, sizeof(fx.cert), "%s/cert.pem", fx.dir);
    snprintf(fx.key, sizeof(fx.key), "%s/key.pem", fx.dir);
    snprintf(fx.other_key, sizeof(fx.other_key), "%s/other.pem", fx.dir);
    make_key_and_cert(fx.key, fx.cert);
    make_key_and_cert(fx.other_key, NULL);
    nm_config_init(&fx.cfg);
    fx.cfg.listen[0] = "127.0.0.1:0";
    fx.cfg.tls_cert[0] = fx.cert;
    fx.cfg.tls_key[0] = fx.key;
    fx.cfg.n_listen = 1;
    fx.tls = NULL;
}

static void teardown(void)
{
    nm_tls_free(fx.tls);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
    cr_assert_eq(system(cmd), 0);
    /* The config's strings are the fixture's own. */
}

TestSuite(tls, .init = setup, .fini = teardown);

/* An OpenSSL client and a server connection over a non-blocking socket pair. */
struct pair {
    int fd[2];
    SSL_CTX *ctx;
    SSL *client;
    struct nm_tls_conn *server;
    bool drained, hup; /* the marks the worker keeps (nm_tls_conn_new) */
};

static void pair_open(struct pair *p, const char *alpn, size_t alpn_len, int max_version)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(p->ctx);
    if (max_version) {
        SSL_CTX_set_security_level(p->ctx, 0);
        SSL_CTX_set_cipher_list(p->ctx, "DEFAULT@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(p->ctx, max_version);
        SSL_CTX_set_max_proto_version(p->ctx, max_version);
    }
    p->client = SSL_new(p->ctx);
    SSL_set_fd(p->client, p->fd[1]);
    if (alpn)
        SSL_set_alpn_protos(p->client, (const unsigned char *)alpn, (unsigned)alpn_len);
    p->drained = p->hup = false;
    cr_assert_eq(nm_tls_conn_new(fx.tls, 0, p->fd[0], &p->drained, &p->hup, &p->server), 0);
}

static void pair_close(struct pair *p)
{
    nm_tls_conn_free(p->server);
    SSL_free(p->client);
    SSL_CTX_free(p->ctx);
    close(p->fd[0]);
    close(p->fd[1]);
}

/* Bytes unread in the server's socket. */
static int unread(const struct pair *p)
{
    int n = -1;
    cr_assert_eq(ioctl(p->fd[0], FIONREAD, &n), 0);
    return n;
}

/* Runs both handshakes until the server's is done or failed: its last result. Each turn of the
 * server is a readiness event, which clears its drained mark. */
static int handshake(struct pair *p)
{
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        SSL_connect(p->client);
        ERR_clear_error();
        p->drained = false;
        rc = nm_tls_handshake(p->server);
    }
    SSL_connect(p->client); /* the client reads the server's last flight */
    ERR_clear_error();
    return rc;
}

static void load(void)
{
    cr_assert_eq(nm_tls_new(&fx.cfg, &fx.tls, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    cr_assert_not_null(fx.tls);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(tls, a_config_without_a_tls_listener_makes_no_tls_state)
{
    fx.cfg.tls_cert[0] = fx.cfg.tls_key[0] = NULL;
    cr_assert_eq(nm_tls_new(&fx.cfg, &fx.tls, fx.err, sizeof(fx.err)), 0);
    cr_assert_null(fx.tls);
    cr_assert_not(nm_tls_listens(NULL, 0));
}

Test(tls, a_listener_with_a_certificate_speaks_tls)
{
    load();
    cr_assert(nm_tls_listens(fx.tls, 0));
    cr_assert_not(nm_tls_listens(fx.tls, 1));
}

Test(tls, a_missing_or_broken_file_fails_with_a_message_naming_it)
{
    char broken[160], missing[160];
    snprintf(broken, sizeof(broken), "%s/broken.pem", fx.dir);
    snprintf(missing, sizeof(missing), "%s/missing.pem", fx.dir);
    write_file(broken, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n");
    const char *certs[] = {broken, missing, fx.cert, fx.cert};
    const char *keys[] = {fx.key, fx.key, broken, fx.other_key};
    for (size_t i = 0; i < 4; i++) {
        fx.cfg.tls_cert[0] = (char *)certs[i];
        fx.cfg.tls_key[0] = (char *)keys[i];
        fx.err[0] = '\0';
        cr_assert_eq(nm_tls_new(&fx.cfg, &fx.tls, fx.err, sizeof(fx.err)), -EBADMSG, "case %zu", i);
        cr_assert_null(fx.tls);
        const char *named = i == 0 || i == 1 ? certs[i] : keys[i];
        cr_assert_not_null(strstr(fx.err, named), "case %zu: %s", i, fx.err);
    }
}

Test(tls, alpn_chooses_h2_when_offered_and_bytes_cross_both_ways)
{
    load();
    struct pair p;
    pair_open(&p, "\x08http/1.1\x02h2", 12, 0);
    cr_assert_eq(handshake(&p), 1);
    cr_assert(nm_tls_is_h2(p.server));
    char buf[16];
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(SSL_write(p.client, "ping", 4), 4);
    p.drained = false; /* the bytes' edge */
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 4);
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    static char big[3 * NM_TLS_RECORD_BYTES];
    ssize_t w = nm_tls_write(p.server, big, sizeof(big));
    cr_assert(w > 0 && w <= NM_TLS_RECORD_BYTES, "one write sent %zd bytes", w);
    for (size_t got = 0; got < (size_t)w;) {
        int r = SSL_read(p.client, big, sizeof(big));
        cr_assert_gt(r, 0);
        got += (size_t)r;
    }
    cr_assert_eq(nm_tls_write(p.server, "pong", 4), 4);
    int n = 0;
    for (int i = 0; i < 10 && n <= 0; i++)
        n = SSL_read(p.client, buf, sizeof(buf));
    cr_assert_eq(n, 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    nm_tls_close(p.server);
    cr_assert_eq(SSL_read(p.client, buf, sizeof(buf)), 0); /* close_notify */
    pair_close(&p);
}

Test(tls, a_client_without_h2_gets_http11)
{
    load();
    struct pair p;
    pair_open(&p, "\x08http/1.1", 9, 0);
    cr_assert_eq(handshake(&p), 1);
    cr_assert_not(nm_tls_is_h2(p.server));
    pair_close(&p);
    pair_open(&p, NULL, 0, 0);
    cr_assert_eq(handshake(&p), 1);
    cr_assert_not(nm_tls_is_h2(p.server));
    pair_close(&p);
}

Test(tls, tls_12_is_accepted_and_tls_11_refused)
{
    load();
    struct pair p;
    pair_open(&p, NULL, 0, TLS1_2_VERSION);
    cr_assert_eq(handshake(&p), 1);
    pair_close(&p);
    pair_open(&p, NULL, 0, TLS1_1_VERSION);
    cr_assert_eq(handshake(&p), -EPROTO);
    pair_close(&p);
}

Test(tls, garbage_instead_of_a_client_hello_fails_the_handshake)
{
    load();
    struct pair p;
    pair_open(&p, NULL, 0, 0);
    cr_assert_eq(write(p.fd[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
    cr_assert_eq(nm_tls_handshake(p.server), -EPROTO);
    pair_close(&p);
}

Test(tls, a_peer_that_closes_mid_handshake_is_a_reset_not_an_error)
{
    load();
    struct pair p;
    pair_open(&p, NULL, 0, 0);
    cr_assert_eq(nm_tls_handshake(p.server), 0);
    shutdown(p.fd[1], SHUT_WR);
    cr_assert_eq(nm_tls_handshake(p.server), 0, "the socket was drained: no read until an event");
    p.hup = true; /* EPOLLRDHUP */
    cr_assert_eq(nm_tls_handshake(p.server), -ECONNRESET);
    pair_close(&p);
}

Test(tls, a_reload_with_a_broken_file_keeps_the_previous_certificate)
{
    load();
    struct pair before;
    pair_open(&before, NULL, 0, 0);
    cr_assert_eq(nm_tls_reload(fx.tls), 0);
    write_file(fx.cert, "not a certificate\n");
    cr_assert_eq(nm_tls_reload(fx.tls), 1);
    struct pair after;
    pair_open(&after, NULL, 0, 0);
    cr_assert_eq(handshake(&after), 1);
    cr_assert_eq(handshake(&before), 1); /* made before both reloads, still whole */
    pair_close(&after);
    pair_close(&before);
}

/* A connection past its handshake, with the socket empty and marked so. */
static void ready_pair(struct pair *p)
{
    pair_open(p, NULL, 0, 0);
    cr_assert_eq(handshake(p), 1);
    char buf[16];
    p->drained = false;
    cr_assert_eq(nm_tls_read(p->server, buf, sizeof(buf)), -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert(p->drained, "EAGAIN marks the socket drained");
}

Test(tls, a_short_read_marks_the_socket_drained_and_nothing_is_read_until_the_next_event)
{
    load();
    struct pair p;
    ready_pair(&p);
    char buf[64];
    p.drained = false;
    cr_assert_eq(SSL_write(p.client, "GET /a", 6), 6);
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 6);
    cr_assert(p.drained, "a read shorter than asked empties the socket");
    cr_assert_eq(SSL_write(p.client, " HTTP/1.1", 9), 9);
    int waiting = unread(&p);
    cr_assert_gt(waiting, 0);
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(unread(&p), waiting, "the socket was not read while marked drained");
    p.drained = false; /* the new bytes' edge */
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 9);
    cr_assert_eq(memcmp(buf, " HTTP/1.1", 9), 0);
    cr_assert_eq(unread(&p), 0);
    pair_close(&p);
}

Test(tls, bytes_tls_already_holds_are_read_while_the_socket_is_marked_drained)
{
    load();
    struct pair p;
    ready_pair(&p);
    cr_assert_eq(SSL_write(p.client, "first", 5), 5);
    cr_assert_eq(SSL_write(p.client, "second", 6), 6);
    p.drained = false;
    char buf[64];
    cr_assert_eq(nm_tls_read(p.server, buf, 2), 2);
    cr_assert(p.drained);
    cr_assert(nm_tls_has_pending(p.server));
    size_t got = 2;
    for (int i = 0; i < 10 && got < 11; i++) {
        ssize_t n = nm_tls_read(p.server, buf + got, sizeof(buf) - got);
        cr_assert_gt(n, 0, "read %d: held bytes must come without an event", i);
        got += (size_t)n;
    }
    cr_assert_eq(got, 11);
    cr_assert_eq(memcmp(buf, "firstsecond", 11), 0);
    cr_assert_not(nm_tls_has_pending(p.server));
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), -1);
    cr_assert_eq(errno, EAGAIN);
    pair_close(&p);
}

Test(tls, a_read_that_fills_the_buffer_leaves_the_mark_clear)
{
    load();
    struct pair p;
    ready_pair(&p);
    static char big[4 * NM_TLS_RECORD_BYTES];
    cr_assert_eq(SSL_write(p.client, big, sizeof(big)), (int)sizeof(big));
    p.drained = false;
    size_t got = 0;
    for (int i = 0; i < 64 && got < sizeof(big); i++) {
        ssize_t n = nm_tls_read(p.server, big, sizeof(big));
        cr_assert_gt(n, 0, "after %zu bytes", got);
        if (got == 0)
            cr_assert_not(p.drained, "the first read filled what TLS asked for");
        got += (size_t)n;
    }
    cr_assert_eq(got, sizeof(big));
    pair_close(&p);
}

Test(tls, the_peers_end_after_a_short_read_is_read_once_the_caller_saw_it)
{
    load();
    struct pair p;
    ready_pair(&p);
    shutdown(p.fd[1], SHUT_WR); /* a FIN without close_notify */
    char buf[16];
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), -1);
    cr_assert_eq(errno, EAGAIN);
    p.hup = true; /* EPOLLRDHUP: reads go on to the end, marked or not */
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 0);
    pair_close(&p);
}

Test(tls, a_close_notify_ends_the_stream_and_the_answer_still_goes_out)
{
    load();
    struct pair p;
    ready_pair(&p);
    cr_assert_eq(SSL_write(p.client, "GET", 3), 3);
    cr_assert_eq(SSL_shutdown(p.client), 0);
    p.drained = false;
    char buf[16];
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 3);
    cr_assert_eq(nm_tls_read(p.server, buf, sizeof(buf)), 0);
    cr_assert_eq(nm_tls_write(p.server, "answer", 6), 6);
    int n = 0;
    for (int i = 0; i < 10 && n <= 0; i++)
        n = SSL_read(p.client, buf, sizeof(buf));
    cr_assert_eq(n, 6);
    pair_close(&p);
}
