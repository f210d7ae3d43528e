/* Server settings: defaults and per-path Cache-Control selection. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notmod/etag.h"
#include "notmod/token.h"

void nm_config_init(struct nm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->etag_mode = NM_ETAG_CONTENT;
    cfg->prehash = true;
    cfg->watch = true;
    cfg->hash_threshold_bytes = 1 << 20;
    cfg->ims_mode = NM_IMS_RFC;
    cfg->precompressed[0] = NM_CODING_BR;
    cfg->precompressed[1] = NM_CODING_ZSTD;
    cfg->precompressed[2] = NM_CODING_GZIP;
    cfg->n_precompressed = 3;
    cfg->compress = true;
    cfg->compress_max_bytes = (uint64_t)8 << 20;
    cfg->compress_cache_bytes = (uint64_t)64 << 20;
    cfg->max_age = -1;
    cfg->max_target_bytes = 8192;
    cfg->max_head_bytes = 32768;
    cfg->max_discard_bytes = 1 << 20;
    cfg->small_file_bytes = 256 * 1024; /* docs/benchmarks.md, "What each change bought" */
    cfg->hold_budget_bytes = (uint64_t)64 << 20;
    cfg->sendfile = NM_SENDFILE_ON;
    cfg->io_uring = true;
    cfg->max_conns = 16384;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->send_timeout_ms = 60000;
    cfg->shutdown_timeout_ms = 10000;
}

void nm_config_cleanup(struct nm_config *cfg)
{
    free(cfg->root);
    for (size_t i = 0; i < cfg->n_listen; i++) {
        free(cfg->listen[i]);
        free(cfg->tls_cert[i]);
        free(cfg->tls_key[i]);
    }
    for (size_t i = 0; i < cfg->n_tls_names; i++) {
        free(cfg->tls_names[i].host);
        free(cfg->tls_names[i].cert);
        free(cfg->tls_names[i].key);
    }
    for (size_t i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i].glob);
        free(cfg->rules[i].value);
    }
    free(cfg->index_name);
    free(cfg->etag_manifest);
    free(cfg->etag_store_dir);
    free(cfg->access_log);
    for (size_t i = 0; i < cfg->n_path_rules; i++) {
        struct nm_path_rule *r = &cfg->path_rules[i];
        free(r->match);
        free(r->cache_control);
        for (size_t k = 0; k < r->n_headers; k++) {
            free(r->headers[k].name);
            free(r->headers[k].value);
        }
        for (size_t k = 0; k < r->n_try_files; k++)
            free(r->try_files[k]);
        for (size_t k = 0; k < r->n_error_pages; k++)
            free(r->error_pages[k].path);
    }
    free(cfg->path_rules);
    for (size_t k = 0; k < cfg->n_error_pages; k++)
        free(cfg->error_pages[k].path);
    free(cfg->config_file);
    free(cfg->run_user);
    free(cfg->run_group);
    free(cfg->metrics_listen);
    memset(cfg, 0, sizeof(*cfg));
}

/* A header value written verbatim must not carry controls: no response splitting. */
static bool is_safe_value(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int nm_config_add_cache_rule(struct nm_config *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || !is_safe_value(eq + 1))
        return -EINVAL;
    if (strlen(eq + 1) > NM_CACHE_CONTROL_MAX)
        return -EMSGSIZE;
    if (cfg->n_rules == NM_CONFIG_MAX_RULES)
        return -ENOSPC;
    char *glob = strndup(arg, (size_t)(eq - arg)), *value = strdup(eq + 1);
    if (!glob || !value) {
        free(glob);
        free(value);
        return -ENOMEM;
    }
    cfg->rules[cfg->n_rules++] = (struct nm_cache_rule){.glob = glob, .value = value};
    return 0;
}

int nm_config_set_etag_mode(struct nm_config *cfg, const char *arg)
{
    if (strcmp(arg, "content") == 0) {
        cfg->etag_mode = NM_ETAG_CONTENT;
    } else if (strcmp(arg, "metadata") == 0) {
        cfg->etag_mode = NM_ETAG_METADATA;
    } else if (strcmp(arg, "off") == 0) {
        cfg->etag_mode = NM_ETAG_OFF;
    } else if (strncmp(arg, "version:", 8) == 0) {
        char tag[sizeof(cfg->etag_version)];
        if (nm_etag_make_version(nm_slice_from_cstr(arg + 8), tag, sizeof(tag)) < 0)
            return -ERANGE;
        memcpy(cfg->etag_version, tag, sizeof(tag));
        cfg->etag_mode = NM_ETAG_VERSION;
    } else {
        return -EINVAL;
    }
    return 0;
}

int nm_config_set_precompressed(struct nm_config *cfg, const char *arg)
{
    enum nm_coding list[NM_CODING_COUNT];
    size_t n = 0;
    if (strcmp(arg, "off") != 0) {
        for (const char *p = arg;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            enum nm_coding c;
            if (nm_coding_parse(nm_slice_make(p, len), &c) < 0 || c == NM_CODING_IDENTITY ||
                len != strlen(nm_coding_name(c)) || strncmp(p, nm_coding_name(c), len) != 0)
                return -EINVAL;
            for (size_t i = 0; i < n; i++)
                if (list[i] == c)
                    return -EEXIST;
            list[n++] = c;
            if (!comma)
                break;
            p = comma + 1;
        }
    }
    memcpy(cfg->precompressed, list, n * sizeof(list[0]));
    cfg->n_precompressed = n;
    return 0;
}

static bool rule_matches(const char *glob, const char *path)
{
    if (strchr(glob, '/'))
        return fnmatch(glob, path, 0) == 0;
    const char *base = strrchr(path, '/');
    return fnmatch(glob, base ? base + 1 : path, 0) == 0;
}

bool nm_config_glob_is_reachable(const char *glob)
{
    return !strchr(glob, '/') || glob[0] == '/' || glob[0] == '*' || glob[0] == '?' ||
           glob[0] == '[' || glob[0] == '\\';
}

bool nm_config_rule_matches(const struct nm_path_rule *rule, const char *path)
{
    if (rule->is_prefix)
        return strncmp(path, rule->match, strlen(rule->match)) == 0;
    return rule_matches(rule->match, path);
}

const char *nm_config_cache_control(const struct nm_config *cfg, const char *path, char *buf,
                                    size_t cap)
{
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (rule_matches(cfg->rules[i].glob, path))
            return cfg->rules[i].value;
    for (size_t i = 0; i < cfg->n_path_rules; i++)
        if (cfg->path_rules[i].cache_control && nm_config_rule_matches(&cfg->path_rules[i], path))
            return cfg->path_rules[i].cache_control;
    if (cfg->max_age >= 0) {
        snprintf(buf, cap, "max-age=%lld", (long long)cfg->max_age);
        return buf;
    }
    return "no-cache";
}

int64_t nm_config_max_age_of(const char *cc)
{
    for (const char *p = cc; (p = strstr(p, "max-age=")) != NULL; p += 8) {
        /* A directive name starts the value or follows a comma and OWS (s-maxage is not it). */
        const char *q = p;
        while (q > cc && nm_token_is_ows((unsigned char)q[-1]))
            q--;
        if (q != cc && q[-1] != ',')
            continue;
        const char *d = p + 8;
        if (*d < '0' || *d > '9')
            return -1;
        int64_t v = 0;
        while (*d >= '0' && *d <= '9' && v < INT64_MAX / 10 - 10)
            v = v * 10 + (*d++ - '0');
        return v;
    }
    return -1;
}

int nm_config_set_etag_store(struct nm_config *cfg, const char *text)
{
    if (!*text)
        return -EINVAL;
    char *dir = NULL;
    if (strcmp(text, "xattr") != 0 && strcmp(text, "off") != 0 && !(dir = strdup(text)))
        return -ENOMEM;
    free(cfg->etag_store_dir);
    cfg->etag_store_dir = dir;
    cfg->etag_store = dir                          ? NM_ETAG_STORE_DIR
                      : strcmp(text, "xattr") == 0 ? NM_ETAG_STORE_XATTR
                                                   : NM_ETAG_STORE_OFF;
    return 0;
}

const char *nm_config_header_name_problem(const char *name)
{
    /* Fields whose value the server computes per response: one set by hand would contradict the
     * framing (RFC 9112 §6), the validators (RFC 9110 §8.8), the coding and its Vary (§8.4,
     * §12.5.5) or the connection's management (§7.6.1). */
    static const char *const owned[] = {
        "Content-Length",
        "Transfer-Encoding",
        "ETag",
        "Last-Modified",
        "Content-Encoding",
        "Content-Type",
        "Content-Range",
        "Accept-Ranges",
        "Vary",
        "Date",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "Trailer",
        "TE",
        "Proxy-Connection",
        "Allow",
        "Location",
        "Expires",
        "X-Content-Type-Options",
    };
    if (!*name)
        return "an empty field name";
    for (const char *p = name; *p; p++)
        if (!nm_token_is_tchar((unsigned char)*p))
            return "a field name is a token (letters, digits and !#$%&'*+-.^_`|~)";
    if (strcasecmp(name, "Cache-Control") == 0)
        return "Cache-Control is set with cache_control, which the 304s and Expires follow";
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strcasecmp(name, owned[i]) == 0)
            return "the server sets this field itself";
    return NULL;
}

bool nm_config_header_value_is_safe(const char *value)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++, n++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return n <= NM_HEADER_VALUE_MAX;
}
