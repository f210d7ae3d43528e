/* Server settings: defaults and per-path Cache-Control selection. */
#include "config.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notmod/token.h"

void nm_config_init(struct nm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->etag_mode = NM_ETAG_CONTENT;
    cfg->prehash = true;
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
    cfg->small_file_bytes = 64 * 1024;
    cfg->max_conns = 4096;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->send_timeout_ms = 60000;
    cfg->shutdown_timeout_ms = 10000;
}

void nm_config_cleanup(struct nm_config *cfg)
{
    free(cfg->root);
    for (size_t i = 0; i < cfg->n_listen; i++)
        free(cfg->listen[i]);
    for (size_t i = 0; i < cfg->n_rules; i++) {
        free(cfg->rules[i].glob);
        free(cfg->rules[i].value);
    }
    free(cfg->index_name);
    free(cfg->etag_manifest);
    free(cfg->etag_store_dir);
    free(cfg->access_log);
    memset(cfg, 0, sizeof(*cfg));
}

static bool rule_matches(const char *glob, const char *path)
{
    if (strchr(glob, '/'))
        return fnmatch(glob, path, 0) == 0;
    const char *base = strrchr(path, '/');
    return fnmatch(glob, base ? base + 1 : path, 0) == 0;
}

const char *nm_config_cache_control(const struct nm_config *cfg, const char *path, char *buf,
                                    size_t cap)
{
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (rule_matches(cfg->rules[i].glob, path))
            return cfg->rules[i].value;
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
