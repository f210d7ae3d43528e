/* The parsers of option values, each with a property of what it accepts. Input: the first byte
 * picks the parser (low 3 bits) and a maximum for numbers; the rest, up to a NUL, is the value.
 *   0 --listen (nm_listen_parse): a numeric address written back (bracketed IPv6) parses to
 *     the same address and port, a host name written back to the same name and port.
 *   1 --cache-control (nm_config_add_cache_rule): an accepted rule is GLOB=VALUE split at its
 *     first '=', its value capped and free of control characters, and every Cache-Control the
 *     config answers is one of those.
 *   2 --backends (nm_client_parse_backends): the items, joined with ',', are the value without
 *     its empty items; each is HOST:PORT with a port 1..65535.
 *   3 -H (nm_client_parse_header_option): a token name and a trimmed value without controls
 *     but HTAB, which written back as "name: value" parses the same; -EPERM only for the
 *     fields the tools manage.
 *   4 amounts (nm_parse_u64): an accepted number prints back as the value without leading
 *     zeros and is within the maximum; -EINVAL exactly for a value that is not all digits.
 *   5 --etag (nm_config_set_etag_mode): a version tag is a strong entity-tag.
 *   6 --precompressed (nm_config_set_precompressed): the codings, named and joined with ',',
 *     are the value ("off" for none), none twice.
 *   7 max-age in a Cache-Control value (nm_config_max_age_of): -1 or a number that the value
 *     spells after "max-age=". */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "check.h"
#include "client/client.h"
#include "notmod/etag.h"
#include "notmod/token.h"
#include "serve/serve.h"

#define VALUE_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_listen(const char *v)
{
    struct nm_listen_spec a, b;
    if (nm_listen_parse(v, &a) != 0)
        return;
    nm_fuzz_check(strchr(v, ':') != NULL);
    char host[64], again[VALUE_MAX + 16];
    if (a.addr_len) {
        nm_fuzz_check(a.addr.ss_family == AF_INET || a.addr.ss_family == AF_INET6);
        nm_listen_format_host(&a.addr, host, sizeof(host));
        snprintf(again, sizeof(again), a.addr.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
                 (unsigned)a.port);
        nm_fuzz_check(nm_listen_parse(again, &b) == 0);
        nm_fuzz_check(b.addr_len == a.addr_len && b.port == a.port);
        nm_fuzz_check(memcmp(&a.addr, &b.addr, a.addr_len) == 0);
    } else {
        nm_fuzz_check(a.host[0] != '\0' && !a.bracketed);
        snprintf(again, sizeof(again), "%s:%u", a.host, (unsigned)a.port);
        nm_fuzz_check(nm_listen_parse(again, &b) == 0);
        nm_fuzz_check(b.addr_len == 0 && b.port == a.port && strcmp(a.host, b.host) == 0);
    }
}

static void check_cache_rule(const char *v)
{
    static struct nm_config cfg;
    nm_config_init(&cfg);
    int rc = nm_config_add_cache_rule(&cfg, v);
    nm_fuzz_check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE);
    if (rc == 0) {
        nm_fuzz_check(cfg.n_rules == 1);
        const struct nm_cache_rule *r = &cfg.rules[0];
        size_t g = strlen(r->glob);
        nm_fuzz_check(g > 0 && strncmp(v, r->glob, g) == 0 && v[g] == '=');
        nm_fuzz_check(strchr(r->glob, '=') == NULL && strcmp(v + g + 1, r->value) == 0);
        size_t n = strlen(r->value);
        nm_fuzz_check(n > 0 && n <= NM_CACHE_CONTROL_MAX);
        for (size_t i = 0; i < n; i++)
            nm_fuzz_check((unsigned char)r->value[i] >= 0x20 && r->value[i] != 0x7f);
        char path[VALUE_MAX + 2], buf[32];
        snprintf(path, sizeof(path), "/%s", r->glob);
        const char *paths[] = {path, "/", "/a/b.css", "/index.html"};
        for (size_t i = 0; i < 4; i++) {
            const char *cc = nm_config_cache_control(&cfg, paths[i], buf, sizeof(buf));
            nm_fuzz_check(cc == r->value || strcmp(cc, "no-cache") == 0);
        }
    } else {
        nm_fuzz_check(cfg.n_rules == 0);
    }
    nm_config_cleanup(&cfg);
}

static void check_backends(const char *v)
{
    static char copy[VALUE_MAX + 1], joined[VALUE_MAX + 1], expect[VALUE_MAX + 1];
    const char *out[8];
    size_t n = 1;
    out[0] = "before";
    memcpy(copy, v, strlen(v) + 1);
    int rc = nm_client_parse_backends(copy, out, 8, &n);
    if (rc != 0) {
        nm_fuzz_check(rc == -EINVAL && n == 1);
        return;
    }
    nm_fuzz_check(n > 1 && strcmp(out[0], "before") == 0);
    size_t len = 0;
    for (size_t i = 1; i < n; i++) {
        const char *colon = strrchr(out[i], ':');
        nm_fuzz_check(colon && colon > out[i]);
        uint64_t port;
        nm_fuzz_check(nm_parse_u64(colon + 1, 65535, &port) == 0 && port > 0);
        len +=
            (size_t)snprintf(joined + len, sizeof(joined) - len, "%s%s", i > 1 ? "," : "", out[i]);
    }
    size_t e = 0;
    for (const char *p = v; *p; p++)
        if (*p != ',' || (e > 0 && expect[e - 1] != ',' && p[1] != '\0'))
            expect[e++] = *p;
    while (e > 0 && expect[e - 1] == ',')
        e--;
    expect[e] = '\0';
    nm_fuzz_check(strcmp(joined, expect) == 0);
}

static bool same(struct nm_slice a, struct nm_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_header(const char *v)
{
    struct nm_http1_field h, h2;
    int rc = nm_client_parse_header_option(v, &h);
    nm_fuzz_check(rc == 0 || rc == -EINVAL || rc == -EPERM);
    if (rc == -EINVAL)
        return;
    nm_fuzz_check(h.name.len > 0 && nm_token_is_token(h.name));
    static const char *const managed[] = {"If-None-Match",       "If-Modified-Since", "If-Match",
                                          "If-Unmodified-Since", "If-Range",          "Range"};
    bool is_managed = false;
    for (size_t i = 0; i < 6; i++)
        is_managed |= nm_slice_case_eq(h.name, nm_slice_from_cstr(managed[i]));
    nm_fuzz_check(is_managed == (rc == -EPERM));
    for (size_t i = 0; i < h.value.len; i++) {
        unsigned char c = (unsigned char)h.value.ptr[i];
        nm_fuzz_check((c >= 0x20 || c == '\t') && c != 0x7f);
    }
    if (h.value.len)
        nm_fuzz_check(!nm_token_is_ows((unsigned char)h.value.ptr[0]) &&
                      !nm_token_is_ows((unsigned char)h.value.ptr[h.value.len - 1]));
    static char again[VALUE_MAX + 4];
    snprintf(again, sizeof(again), "%.*s: %.*s", (int)h.name.len, h.name.ptr, (int)h.value.len,
             h.value.ptr);
    nm_fuzz_check(nm_client_parse_header_option(again, &h2) == rc);
    nm_fuzz_check(same(h.name, h2.name) && same(h.value, h2.value));
}

static void check_number(const char *v, uint8_t sel)
{
    static const uint64_t maxes[] = {0,         1,         65535,          86400,
                                     315360000, INT64_MAX, UINT64_MAX - 1, UINT64_MAX};
    uint64_t max = maxes[(sel >> 3) & 7], got = 42;
    int rc = nm_parse_u64(v, max, &got);
    bool digits = *v != '\0';
    for (const char *p = v; *p; p++)
        digits &= *p >= '0' && *p <= '9';
    nm_fuzz_check((rc == -EINVAL) == !digits);
    if (rc != 0) {
        nm_fuzz_check(got == 42 && (rc == -EINVAL || rc == -ERANGE));
        return;
    }
    nm_fuzz_check(got <= max);
    const char *p = v;
    while (p[0] == '0' && p[1] != '\0')
        p++;
    char out[32];
    snprintf(out, sizeof(out), "%" PRIu64, got);
    nm_fuzz_check(strcmp(out, p) == 0);
}

static void check_etag_mode(const char *v)
{
    static struct nm_config cfg;
    nm_config_init(&cfg);
    int rc = nm_config_set_etag_mode(&cfg, v);
    nm_fuzz_check(rc == 0 || rc == -EINVAL || rc == -ERANGE);
    if (rc == 0 && cfg.etag_mode == NM_ETAG_VERSION) {
        struct nm_etag t;
        nm_fuzz_check(strncmp(v, "version:", 8) == 0);
        nm_fuzz_check(nm_etag_parse(nm_slice_from_cstr(cfg.etag_version), &t) == 0 && !t.weak);
    }
    if (rc != 0)
        nm_fuzz_check(cfg.etag_mode == NM_ETAG_CONTENT);
    nm_config_cleanup(&cfg);
}

static void check_precompressed(const char *v)
{
    static struct nm_config cfg;
    nm_config_init(&cfg);
    size_t before = cfg.n_precompressed;
    int rc = nm_config_set_precompressed(&cfg, v);
    nm_fuzz_check(rc == 0 || rc == -EINVAL || rc == -EEXIST);
    if (rc != 0) {
        nm_fuzz_check(cfg.n_precompressed == before);
    } else {
        char joined[64] = "off";
        size_t len = 0;
        for (size_t i = 0; i < cfg.n_precompressed; i++) {
            for (size_t k = 0; k < i; k++)
                nm_fuzz_check(cfg.precompressed[k] != cfg.precompressed[i]);
            len += (size_t)snprintf(joined + len, sizeof(joined) - len, "%s%s", i ? "," : "",
                                    nm_coding_name(cfg.precompressed[i]));
        }
        nm_fuzz_check(strcmp(joined, v) == 0);
    }
    nm_config_cleanup(&cfg);
}

static void check_max_age(const char *v)
{
    int64_t age = nm_config_max_age_of(v);
    nm_fuzz_check(age >= -1);
    if (age >= 0) {
        bool spelled = false;
        for (const char *p = v; (p = strstr(p, "max-age=")) != NULL; p++)
            spelled |= p[8] >= '0' && p[8] <= '9';
        nm_fuzz_check(spelled);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > VALUE_MAX + 1)
        return 0;
    static char v[VALUE_MAX + 1];
    memcpy(v, data + 1, size - 1);
    v[size - 1] = '\0';
    switch (data[0] & 7) {
    case 0:
        check_listen(v);
        break;
    case 1:
        check_cache_rule(v);
        break;
    case 2:
        check_backends(v);
        break;
    case 3:
        check_header(v);
        break;
    case 4:
        check_number(v, data[0]);
        break;
    case 5:
        check_etag_mode(v);
        break;
    case 6:
        check_precompressed(v);
        break;
    default:
        check_max_age(v);
        break;
    }
    return 0;
}
