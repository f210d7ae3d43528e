/* The server's settings: what `notmod serve` parses and every worker reads (never writes). */
#ifndef NOTMOD_CONFIG_H
#define NOTMOD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notmod/coding.h"
#include "notmod/etag.h"
#include "notmod/precond.h"

enum nm_etag_mode {
    NM_ETAG_CONTENT = 0, /* XXH3-128 of the bytes */
    NM_ETAG_METADATA,    /* size + mtime_ns */
    NM_ETAG_VERSION,     /* the operator's version string */
    NM_ETAG_OFF,
};

enum nm_log_format {
    NM_LOG_COMBINED = 0,
    NM_LOG_JSON,
};

/* --cache-control GLOB=VALUE: the first rule whose glob matches the path wins. */
struct nm_cache_rule {
    char *glob;  /* fnmatch(3) pattern against the URL path; without '/' it matches the base name */
    char *value; /* the Cache-Control value */
};

#define NM_CONFIG_MAX_LISTEN 16
#define NM_CONFIG_MAX_RULES 64
#define NM_CACHE_CONTROL_MAX 255 /* longest Cache-Control value a rule may set */

struct nm_config {
    char *root; /* directory served */
    char *listen[NM_CONFIG_MAX_LISTEN];
    size_t n_listen;
    unsigned workers; /* 0: one per CPU */

    enum nm_etag_mode etag_mode;
    char etag_version[NM_ETAG_MAX + 1]; /* the quoted tag for NM_ETAG_VERSION */
    char *etag_manifest;                /* manifest path (content mode), NULL for none */
    bool prehash;                       /* hash the tree in the background at startup */
    uint64_t hash_threshold_bytes;      /* larger files are hashed off the event loop */
    enum nm_ims_mode ims_mode;
    /* Precompressed sidecars (x.br, x.zst, x.gz) served as variants of x, in the server's order
     * of preference (RFC 9110 §12.5.3 ties); none when n_precompressed is 0. */
    enum nm_coding precompressed[NM_CODING_COUNT];
    size_t n_precompressed;
    /* Variants made on the fly for compressible files without a current sidecar, from 256 bytes
     * up to compress_max_bytes, kept within compress_cache_bytes (content ETags only). */
    bool compress;
    uint64_t compress_max_bytes;
    uint64_t compress_cache_bytes;
    struct nm_cache_rule rules[NM_CONFIG_MAX_RULES];
    size_t n_rules;
    int64_t max_age; /* seconds; -1 when not set */
    bool expires;

    char *index_name;
    bool list_dirs;
    bool allow_dotfiles;
    bool follow_all_symlinks;

    char *access_log; /* path, "-" for stdout, NULL for off */
    enum nm_log_format log_format;
    bool quiet;

    /* Limits. */
    size_t max_target_bytes;
    size_t max_head_bytes;
    uint64_t max_discard_bytes; /* request content read and dropped; more is 413 */
    size_t small_file_bytes;    /* files up to this size are held in memory */
    unsigned max_conns;         /* per worker */
    unsigned header_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned send_timeout_ms;
    unsigned shutdown_timeout_ms;
};

/* Fills the defaults: root ".", 127.0.0.1:8080 added by the caller when n_listen is 0, sidecars
 * br, zstd, gzip in that order, compression on the fly up to 8 MiB within a 64 MiB cache. */
void nm_config_init(struct nm_config *cfg);

/* Frees the strings the config owns. */
void nm_config_cleanup(struct nm_config *cfg);

/* Option values, parsed into cfg (nothing changes on failure).
 * --cache-control GLOB=VALUE: a non-empty glob, '=', a non-empty value without control
 * characters (it is written verbatim into responses). Returns 0, -EINVAL for another form,
 * -EMSGSIZE for a value over NM_CACHE_CONTROL_MAX bytes, -ENOSPC past NM_CONFIG_MAX_RULES
 * rules, or -ENOMEM. */
int nm_config_add_cache_rule(struct nm_config *cfg, const char *arg);

/* --etag content, metadata, off or version:STRING. Returns 0, -EINVAL for another word, or
 * -ERANGE for a STRING that nm_etag_make_version refuses (1 to 78 visible ASCII characters,
 * no '"'). */
int nm_config_set_etag_mode(struct nm_config *cfg, const char *arg);

/* --precompressed: a comma list of br, zstd, gzip (the codings' names, each at most once, in
 * the server's order of preference) or "off". Returns 0, -EINVAL for another form, or -EEXIST
 * for a coding named twice. */
int nm_config_set_precompressed(struct nm_config *cfg, const char *arg);

/* The Cache-Control value for a URL path: the first matching rule, else "max-age=N" when
 * max_age is set, else "no-cache" (always revalidate, cheap with 304s). */
const char *nm_config_cache_control(const struct nm_config *cfg, const char *path, char *buf,
                                    size_t cap);

/* The max-age in a Cache-Control value, or -1 when it has none. */
int64_t nm_config_max_age_of(const char *cache_control);

#endif
