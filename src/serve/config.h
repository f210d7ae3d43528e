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

/* Where computed content hashes are remembered across restarts. */
enum nm_etag_store_mode {
    NM_ETAG_STORE_DIR = 0, /* the ETag store in etag_store_dir (none when it is NULL) */
    NM_ETAG_STORE_XATTR,   /* the user.notmod.etag attribute of each file: writes into the tree */
    NM_ETAG_STORE_OFF,     /* nowhere: hashes are kept in memory only */
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

/* A response header field a path rule adds (config file `headers`). */
struct nm_header_field {
    char *name;
    char *value;
};

/* An error page: a file of the tree sent as the content of an error `status`. */
struct nm_error_page {
    int status;
    char *path; /* URL path of the page, starting with '/' */
};

#define NM_RULE_MAX_HEADERS 16
#define NM_RULE_MAX_TRY 4
#define NM_RULE_MAX_ERROR_PAGES 8
#define NM_HEADER_VALUE_MAX 1024
/* The fields the rules matching one path add come to at most this many bytes (names and values):
 * a rule may not hold more, and the fields of later matching rules past it are left out. */
#define NM_RULE_HEADER_BYTES 8192

/* A per-path rule of the config file: the settings below apply to URL paths that match `match`
 * (a glob like --cache-control's, or a prefix when is_prefix). Every matching rule contributes its
 * fields; for the other settings the first matching rule that sets one wins. */
struct nm_path_rule {
    char *match;
    bool is_prefix;
    int line;            /* where the rule starts in the file, for messages */
    char *cache_control; /* NULL: not set */
    struct nm_header_field headers[NM_RULE_MAX_HEADERS];
    size_t n_headers;
    int variants; /* -1 not set, 0 off, 1 on: precompressed and on-the-fly variants */
    int listing;  /* -1 not set, 0 off, 1 on: directory listings */
    /* Tried in order when the path names nothing: "$uri" stands for the path ("$uri.html"),
     * else an absolute path ("/app/index.html"). */
    char *try_files[NM_RULE_MAX_TRY];
    size_t n_try_files;
    struct nm_error_page error_pages[NM_RULE_MAX_ERROR_PAGES];
    size_t n_error_pages;
};

#define NM_CONFIG_MAX_LISTEN 16
#define NM_CONFIG_MAX_RULES 64
#define NM_CONFIG_MAX_HOLD_BYTES (1LL << 30) /* --hold-size: a held file is hashed inline */
#define NM_CACHE_CONTROL_MAX 255             /* longest Cache-Control value a rule may set */
#define NM_CONFIG_MAX_TLS_NAMES 32           /* --tls HOST=CERT,KEY certificates chosen by SNI */

/* --tls HOST=CERT,KEY: the certificate for clients that ask for HOST (SNI, RFC 6066 §3). */
struct nm_tls_name {
    char *host; /* a DNS name, or "*.example.com" for the names one label below */
    char *cert; /* PEM certificate chain file */
    char *key;  /* PEM private key file */
};

enum nm_sendfile_mode {
    NM_SENDFILE_OFF = 0,
    NM_SENDFILE_ON,  /* to peers that are not on this host */
    NM_SENDFILE_ALL, /* also to peers on this host, which may read the bytes after a break */
};

struct nm_config {
    char *root; /* directory served */
    char *listen[NM_CONFIG_MAX_LISTEN];
    size_t n_listen;
    /* --tls-cert/--tls-key of listen[i]: both NULL for a cleartext listener. */
    char *tls_cert[NM_CONFIG_MAX_LISTEN];
    char *tls_key[NM_CONFIG_MAX_LISTEN];
    struct nm_tls_name tls_names[NM_CONFIG_MAX_TLS_NAMES];
    size_t n_tls_names;
    bool h2c; /* cleartext listeners take HTTP/2 with prior knowledge (RFC 9113 §3.3) too */
    unsigned workers; /* 0: one per CPU */

    enum nm_etag_mode etag_mode;
    char etag_version[NM_ETAG_MAX + 1]; /* the quoted tag for NM_ETAG_VERSION */
    char *etag_manifest;                /* manifest path (content mode), NULL for none */
    enum nm_etag_store_mode etag_store;
    char *etag_store_dir;          /* an existing private directory, for NM_ETAG_STORE_DIR */
    bool prehash;                  /* hash the tree in the background at startup */
    bool watch;                    /* changes from inotify, not a stat per request (at start) */
    uint64_t hash_threshold_bytes; /* larger files are hashed off the event loop */
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
    size_t small_file_bytes;    /* files up to this size are held in memory (--hold-size) */
    uint64_t hold_budget_bytes; /* bytes each worker's file table holds for them (--hold-budget) */
    /* Larger tagged bodies go by sendfile while a read lease on the file holds (docs/etags.md,
     * "Large bodies by sendfile under a read lease"): to peers on other hosts (ON), to every peer
     * (ALL), or never (OFF: always copied). */
    enum nm_sendfile_mode sendfile;
    /* Plain HTTP/1.1 sends of many connections made by one io_uring_enter per pass of the loop
     * (ring.h), where the kernel allows io_uring; else one sendmsg each (at start). */
    bool io_uring;
    unsigned max_conns; /* open connections, all workers together (--max-connections) */
    unsigned header_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned send_timeout_ms;
    unsigned shutdown_timeout_ms; /* drain: responses in flight at SIGTERM get this long */

    /* The config file (configfile.h): its path, its per-path rules (after the --cache-control
     * rules, which win), and its site-wide error pages. */
    char *config_file;
    struct nm_path_rule *path_rules;
    size_t n_path_rules;
    struct nm_error_page error_pages[NM_RULE_MAX_ERROR_PAGES];
    size_t n_error_pages;
    bool access_log_set; /* the file said access_log (possibly "off") */

    /* Privileges given up once the sockets are bound (--user, --group); NULL keeps them. */
    char *run_user;
    char *run_group;
    /* --metrics HOST:PORT: the Prometheus and status listener; NULL for none. */
    char *metrics_listen;
};

/* Fills the defaults: root ".", 127.0.0.1:8080 added by the caller when n_listen is 0, sidecars
 * br, zstd, gzip in that order, compression on the fly up to 8 MiB within a 64 MiB cache, at
 * most 16384 open connections. */
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

/* --etag-store: where content hashes are remembered, "xattr", "off" or a directory. Returns 0,
 * -EINVAL for an empty text, or -ENOMEM. */
int nm_config_set_etag_store(struct nm_config *cfg, const char *text);

/* The Cache-Control value for a URL path: the first matching --cache-control rule, else the
 * first matching path rule that sets cache_control, else "max-age=N" when
 * max_age is set, else "no-cache" (always revalidate, cheap with 304s). */
const char *nm_config_cache_control(const struct nm_config *cfg, const char *path, char *buf,
                                    size_t cap);

/* Whether a header field name may be set by a rule: a token (RFC 9110 §5.1) that is not one of
 * the fields the server owns (framing, validators, codings, Date, Connection, ...). Returns NULL
 * when it may, else why not. */
const char *nm_config_header_name_problem(const char *name);

/* Whether a header field value is safe to send as it is: at most NM_HEADER_VALUE_MAX bytes of
 * visible characters, spaces and tabs (RFC 9110 §5.5: no CR, LF or NUL). */
bool nm_config_header_value_is_safe(const char *value);

/* Whether a --cache-control or match glob can match some URL path: a glob with '/' is matched
 * against the whole path, which starts with '/', so one that starts with any other literal
 * character (a glob like "docs/x") never matches. */
bool nm_config_glob_is_reachable(const char *glob);

/* Whether a path rule matches a URL path. */
bool nm_config_rule_matches(const struct nm_path_rule *rule, const char *path);

/* The max-age in a Cache-Control value, or -1 when it has none. */
int64_t nm_config_max_age_of(const char *cache_control);

#endif
