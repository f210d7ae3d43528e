/* The listeners' contract (listen.h): addresses parsed and refused, port 0 resolved once for all
 * workers' sockets, an address in use refused, numeric hosts formatted. Binds 127.0.0.1 only. */
#include "serve/listen.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct {
    struct nm_config cfg;
    struct nm_listeners ls;
    char err[256];
} fx;

static void setup(void)
{
    nm_config_init(&fx.cfg);
    memset(&fx.ls, 0, sizeof(fx.ls));
    fx.err[0] = '\0';
}

static void teardown(void)
{
    nm_listen_cleanup(&fx.ls);
    fx.cfg.n_listen = 0; /* the specs are the tests' static strings */
    nm_config_cleanup(&fx.cfg);
}

TestSuite(listen, .init = setup, .fini = teardown);

static int listen_on(const char *spec, unsigned workers)
{
    fx.cfg.listen[0] = (char *)spec;
    fx.cfg.n_listen = 1;
    return nm_listen_init(&fx.ls, &fx.cfg, workers, fx.err, sizeof(fx.err));
}

static unsigned port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

Test(listen, port_zero_is_one_port_for_every_workers_socket)
{
    cr_assert_eq(listen_on("127.0.0.1:0", 3), 0, "%s", fx.err);
    cr_assert_eq(fx.ls.n, 1);
    const struct nm_listener *l = &fx.ls.l[0];
    unsigned port = port_of(l->fds[0]);
    cr_assert_gt(port, 0);
    for (unsigned i = 1; i < 3; i++)
        cr_assert_eq(port_of(l->fds[i]), port);
    char url[80];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
    cr_assert_str_eq(l->url, url);
}

Test(listen, a_tls_listener_is_described_as_https_and_knows_its_listen_index)
{
    static char plain[] = "127.0.0.1:0", tls[] = "127.0.0.1:0"; /* two values, two listeners */
    fx.cfg.listen[0] = plain;
    fx.cfg.listen[1] = tls;
    fx.cfg.tls_cert[1] = "cert.pem"; /* only looked at, never opened here */
    fx.cfg.n_listen = 2;
    cr_assert_eq(nm_listen_init(&fx.ls, &fx.cfg, 1, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    fx.cfg.tls_cert[1] = NULL;
    cr_assert_eq(fx.ls.n, 2);
    cr_assert_eq(fx.ls.l[0].index, 0);
    cr_assert_eq(fx.ls.l[1].index, 1);
    cr_assert(strncmp(fx.ls.l[0].url, "http://127.0.0.1:", 17) == 0, "%s", fx.ls.l[0].url);
    cr_assert(strncmp(fx.ls.l[1].url, "https://127.0.0.1:", 18) == 0, "%s", fx.ls.l[1].url);
}

Test(listen, malformed_addresses_are_einval_with_a_message)
{
    static const char *const bad[] = {"nope",    "127.0.0.1:",     "127.0.0.1:65536",
                                      "[::1:80", "[127.0.0.1]:80", "127.0.0.1:8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nm_listen_cleanup(&fx.ls);
        cr_expect_eq(listen_on(bad[i], 1), -EINVAL, "%s", bad[i]);
        cr_expect_not_null(strstr(fx.err, bad[i]), "%s", fx.err);
    }
}

Test(listen, an_address_in_use_is_refused_even_to_a_reuseport_group)
{
    cr_assert_eq(listen_on("127.0.0.1:0", 2), 0, "%s", fx.err);
    char spec[32];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_of(fx.ls.l[0].fds[0]));
    struct nm_listeners other = {0};
    fx.cfg.listen[0] = spec;
    cr_assert_eq(nm_listen_init(&other, &fx.cfg, 2, fx.err, sizeof(fx.err)), -EADDRINUSE);
    cr_assert_not_null(strstr(fx.err, "address already in use"), "%s", fx.err);
    nm_listen_cleanup(&other);
}

Test(listen, an_address_given_twice_is_bound_once)
{
    cr_assert_eq(listen_on("127.0.0.1:0", 1), 0, "%s", fx.err);
    char spec[32];
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", port_of(fx.ls.l[0].fds[0]));
    nm_listen_cleanup(&fx.ls);
    fx.cfg.listen[0] = fx.cfg.listen[1] = spec;
    fx.cfg.n_listen = 2;
    cr_assert_eq(nm_listen_init(&fx.ls, &fx.cfg, 1, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    cr_assert_eq(fx.ls.n, 1);
    nm_listen_cleanup(&fx.ls);
    static char one[] = "127.0.0.1:0", two[] = "127.0.0.1:0";
    fx.cfg.listen[0] = one;
    fx.cfg.listen[1] = two;
    cr_assert_eq(nm_listen_init(&fx.ls, &fx.cfg, 1, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    cr_assert_eq(fx.ls.n, 2, "port 0 asks for a port of its own each time");
}

Test(listen, hosts_are_formatted_numerically)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    in4->sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &in4->sin_addr);
    char host[64];
    nm_listen_format_host(&ss, host, sizeof(host));
    cr_assert_str_eq(host, "192.0.2.7");
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &in6->sin6_addr);
    nm_listen_format_host(&ss, host, sizeof(host));
    cr_assert_str_eq(host, "2001:db8::1");
    ss.ss_family = AF_UNIX;
    nm_listen_format_host(&ss, host, sizeof(host));
    cr_assert_str_eq(host, "-");
}

/* "127.0.0.1:PORT" for a port nothing listens on now. */
static void free_address(char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(out, cap, "127.0.0.1:%u", port_of(fd));
    close(fd);
}

Test(listen, a_reload_keeps_the_sockets_of_kept_addresses_and_binds_new_ones)
{
    char kept[32], gone[32];
    free_address(kept, sizeof(kept));
    free_address(gone, sizeof(gone));
    fx.cfg.listen[0] = kept;
    fx.cfg.listen[1] = gone;
    fx.cfg.n_listen = 2;
    cr_assert_eq(nm_listen_init(&fx.ls, &fx.cfg, 2, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    int kept_fd = fx.ls.l[0].fds[1];
    struct nm_config now;
    nm_config_init(&now);
    now.listen[0] = "127.0.0.1:0";
    now.listen[1] = kept;
    now.n_listen = 2;
    struct nm_listeners next = {0};
    cr_assert_eq(nm_listen_reload(&next, &fx.ls, &now, fx.err, sizeof(fx.err)), 0, "%s", fx.err);
    cr_assert_eq(next.n, 2);
    cr_expect_gt(port_of(next.l[0].fds[0]), 0); /* the new address, bound anew */
    cr_expect_eq(next.l[1].fds[1], kept_fd);    /* the kept one: the same sockets */
    cr_expect_eq(next.l[1].spec, now.listen[1]);
    cr_expect_null(fx.ls.l[0].fds);     /* moved out of the previous set */
    cr_expect_not_null(fx.ls.l[1].fds); /* dropped: closed with the previous set */
    nm_listen_cleanup(&next);
    now.n_listen = 0;
    nm_config_cleanup(&now);
}

Test(listen, a_reload_that_cannot_bind_leaves_the_previous_set_as_it_was)
{
    cr_assert_eq(listen_on("127.0.0.1:0", 1), 0, "%s", fx.err);
    struct nm_config bad;
    nm_config_init(&bad);
    bad.listen[0] = "nope";
    bad.n_listen = 1;
    struct nm_listeners next = {0};
    int fd = fx.ls.l[0].fds[0];
    cr_expect_eq(nm_listen_reload(&next, &fx.ls, &bad, fx.err, sizeof(fx.err)), -EINVAL);
    cr_expect_eq(next.n, 0);
    cr_expect_eq(fx.ls.l[0].fds[0], fd);
    bad.n_listen = 0;
    nm_config_cleanup(&bad);
}

Test(listen, a_listen_value_splits_into_host_and_a_port_of_digits_without_resolving)
{
    struct nm_listen_spec s;
    cr_assert_eq(nm_listen_parse("127.0.0.1:8080", &s), 0);
    cr_assert_eq(s.port, 8080);
    cr_assert_eq(s.addr.ss_family, AF_INET);
    cr_assert_eq(nm_listen_parse("[::1]:0", &s), 0);
    cr_assert_eq(s.addr.ss_family, AF_INET6);
    cr_assert(s.bracketed);
    cr_assert_eq(nm_listen_parse(":80", &s), 0);
    cr_assert_eq(s.addr.ss_family, AF_INET, "no host: any IPv4 address");
    cr_assert_eq(nm_listen_parse("no-such-host.invalid:80", &s), 0);
    cr_assert_eq(s.addr_len, 0, "a name is left to resolve");
    cr_assert_str_eq(s.host, "no-such-host.invalid");
    const char *bad[] = {"8080",   "a:",        "a: 80",        "a:+80", "a:-0",   "a:65536",
                         "a:0x50", "[::1]8080", "[1.2.3.4]:80", "[]:80", "[::1:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(nm_listen_parse(bad[i], &s), -EINVAL, "%s", bad[i]);
}
