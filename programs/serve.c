/* notmod serve: parses the options into a config and runs the server. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cliutil.h"
#include "commands.h"
#include "notmod/coding.h"
#include "notmod/etag.h"
#include "serve/serve.h"

static const char usage_text[] =
    "usage: notmod serve [OPTIONS] [DIR]\n"
    "\n"
    "Serves DIR (default .) over HTTP/1.1, and HTTP/2 over TLS or with --h2c, with exact\n"
    "validators and conditional requests.\n"
    "\n"
    "  --listen HOST:PORT      listen here (repeatable; IPv6 as [::1]:8080; port 0 picks one;\n"
    "                          a host name means every address it resolves to)\n"
    "                          default 127.0.0.1:8080\n"
    "  --tls-cert FILE         TLS on the --listen before it, with this PEM certificate chain\n"
    "  --tls-key FILE          and this PEM private key (both needed; TLS 1.2 and 1.3, ALPN h2\n"
    "                          and http/1.1; SIGHUP re-reads them)\n"
    "  --tls HOST=CERT,KEY     the certificate for clients asking for HOST by SNI (repeatable;\n"
    "                          *.example.com for one label below; the listener's own otherwise)\n"
    "  --h2c                   cleartext listeners also take HTTP/2 with prior knowledge\n"
    "  --workers N             worker threads (default: one per CPU)\n"
    "  --etag MODE             content (hash of the bytes, default), metadata (size + mtime),\n"
    "                          version:STRING (a build id), or off\n"
    "  --etag-manifest FILE    content ETags and Last-Modified from a manifest written by\n"
    "                          'notmod etag --manifest' (entries that do not match are ignored)\n"
    "  --etag-store WHERE      where content hashes are kept across restarts: a directory\n"
    "                          (default $CACHE_DIRECTORY from systemd, /var/cache/notmod as\n"
    "                          root, else $XDG_CACHE_HOME/notmod or ~/.cache/notmod), xattr\n"
    "                          (the user.notmod.etag attribute: writes into DIR), or off\n"
    "                          (memory only)\n"
    "  --prehash, --no-prehash hash the tree in the background at startup (default on)\n"
    "  --watch, --no-watch     learn of file changes from inotify instead of a stat per\n"
    "                          request (default on; a stat where inotify cannot tell)\n"
    "  --hash-threshold BYTES  hash larger files on background threads, serving them without\n"
    "                          an ETag until done (default 1048576)\n"
    "  --hold-size BYTES       hold files up to BYTES in memory, hashed and sent from those\n"
    "                          bytes (default 262144; at most 1073741824)\n"
    "  --hold-budget BYTES     memory each worker holds such files in (default 67108864);\n"
    "                          past it the least recently used go\n"
    "  --if-modified-since M   rfc (304 unless modified after the date, default) or exact\n"
    "                          (304 only for the exact date: rollbacks get 200)\n"
    "  --cache-control G=V     Cache-Control V for paths matching glob G (repeatable, first\n"
    "                          match wins); default no-cache: always revalidate\n"
    "  --max-age SECONDS       Cache-Control max-age for paths no rule matches\n"
    "  --expires               also send Expires, from the max-age\n"
    "  --precompressed LIST    serve sidecars X.br, X.zst, X.gz as variants of X: codings from\n"
    "                          br,zstd,gzip in order of preference (default all three), or off\n"
    "  --compress, --no-compress\n"
    "                          compress files without sidecars on the fly, off the event loop\n"
    "                          (text types, 256 bytes and up; default on)\n"
    "  --compress-max-size BYTES\n"
    "                          larger files are not compressed on the fly (default 8388608)\n"
    "  --compress-cache BYTES  memory for variants compressed on the fly (default 67108864)\n"
    "  --index NAME            directory index file (default index.html; '' for none)\n"
    "  --list-dirs             list directories that have no index file\n"
    "  --dotfiles deny|allow   serve names starting with '.' (default deny: 404)\n"
    "  --follow-symlinks M     inside (default: only links that stay in DIR) or all\n";
/* The rest of the help (one string would pass the 4095 bytes C requires compilers to take). */
static const char usage_text_more[] =
    "  --sendfile MODE         large tagged bodies by sendfile while a read lease on the file\n"
    "                          holds: on (to peers on other hosts, default), all (also to\n"
    "                          peers on this host), or off (always copied)\n"
    "  --io-uring on|off       plain HTTP/1.1 sends of many connections in one io_uring_enter\n"
    "                          where the kernel allows io_uring (default on)\n"
    "  --access-log DEST       a file, - for stdout (default), or off\n"
    "  --log-format F          combined (default) or json\n"
    "  --header-timeout S      seconds for a request head to arrive (default 10; then 408)\n"
    "  --idle-timeout S        seconds an idle keep-alive connection is kept (default 60)\n"
    "  --send-timeout S        seconds a client may stop reading a response (default 60)\n"
    "  --drain-timeout S       seconds responses in flight get at SIGTERM (default 10; each\n"
    "                          one cut then is logged)\n"
    "  --config FILE           read settings and per-path rules from FILE (libconfig syntax,\n"
    "                          see docs/usage.md); options given here override it; SIGHUP\n"
    "                          reads it again\n"
    "  --check-config          check the settings (and --config FILE) and exit: 0 when usable,\n"
    "                          1 with the problems as FILE:LINE: message\n"
    "  --max-connections N     open connections, all workers together (default 16384; more\n"
    "                          wait in the listen queue)\n"
    "  --user USER             once listening, run as USER and its groups (started as root)\n"
    "  --group GROUP           once listening, run as GROUP (default: USER's group)\n"
    "  --metrics HOST:PORT     Prometheus metrics at /metrics and a live page at /status on\n"
    "                          their own listener (numeric address; port 0 picks one)\n"
    "  -q, --quiet             no access log, no startup line, no hashing counters\n"
    "  -h, --help              this text\n"
    "  -V, --version           the version\n";

enum {
    OPT_LISTEN = 256,
    OPT_WORKERS,
    OPT_ETAG,
    OPT_IMS,
    OPT_CACHE_CONTROL,
    OPT_MAX_AGE,
    OPT_EXPIRES,
    OPT_INDEX,
    OPT_LIST_DIRS,
    OPT_DOTFILES,
    OPT_SYMLINKS,
    OPT_ACCESS_LOG,
    OPT_LOG_FORMAT,
    OPT_HEADER_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_SEND_TIMEOUT,
    OPT_ETAG_MANIFEST,
    OPT_PREHASH,
    OPT_NO_PREHASH,
    OPT_WATCH,
    OPT_NO_WATCH,
    OPT_HASH_THRESHOLD,
    OPT_PRECOMPRESSED,
    OPT_COMPRESS,
    OPT_NO_COMPRESS,
    OPT_COMPRESS_MAX_SIZE,
    OPT_COMPRESS_CACHE,
    OPT_HOLD_SIZE,
    OPT_HOLD_BUDGET,
    OPT_SENDFILE,
    OPT_IO_URING,
    OPT_DRAIN_TIMEOUT,
    OPT_CONFIG,
    OPT_CHECK_CONFIG,
    OPT_MAX_CONNECTIONS,
    OPT_USER,
    OPT_GROUP,
    OPT_METRICS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS,
    OPT_H2C,
    OPT_ETAG_STORE,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"etag", required_argument, NULL, OPT_ETAG},
    {"if-modified-since", required_argument, NULL, OPT_IMS},
    {"cache-control", required_argument, NULL, OPT_CACHE_CONTROL},
    {"max-age", required_argument, NULL, OPT_MAX_AGE},
    {"expires", no_argument, NULL, OPT_EXPIRES},
    {"index", required_argument, NULL, OPT_INDEX},
    {"list-dirs", no_argument, NULL, OPT_LIST_DIRS},
    {"dotfiles", required_argument, NULL, OPT_DOTFILES},
    {"follow-symlinks", required_argument, NULL, OPT_SYMLINKS},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT},
    {"etag-manifest", required_argument, NULL, OPT_ETAG_MANIFEST},
    {"etag-store", required_argument, NULL, OPT_ETAG_STORE},
    {"prehash", no_argument, NULL, OPT_PREHASH},
    {"no-prehash", no_argument, NULL, OPT_NO_PREHASH},
    {"watch", no_argument, NULL, OPT_WATCH},
    {"no-watch", no_argument, NULL, OPT_NO_WATCH},
    {"hash-threshold", required_argument, NULL, OPT_HASH_THRESHOLD},
    {"precompressed", required_argument, NULL, OPT_PRECOMPRESSED},
    {"compress", no_argument, NULL, OPT_COMPRESS},
    {"no-compress", no_argument, NULL, OPT_NO_COMPRESS},
    {"compress-max-size", required_argument, NULL, OPT_COMPRESS_MAX_SIZE},
    {"compress-cache", required_argument, NULL, OPT_COMPRESS_CACHE},
    {"hold-size", required_argument, NULL, OPT_HOLD_SIZE},
    {"hold-budget", required_argument, NULL, OPT_HOLD_BUDGET},
    {"sendfile", required_argument, NULL, OPT_SENDFILE},
    {"io-uring", required_argument, NULL, OPT_IO_URING},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls", required_argument, NULL, OPT_TLS},
    {"h2c", no_argument, NULL, OPT_H2C},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "notmod serve: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'notmod serve --help'.\n");
    va_end(ap);
    return NM_EXIT_USAGE;
}

static const char *option_name(int val)
{
    for (const struct option *o = options; o->name; o++)
        if (o->val == val)
            return o->name;
    return "?";
}

/* An amount up to max: digits only (nm_parse_u64). */
static bool parse_uint(const char *s, long long max, long long *out)
{
    uint64_t v;
    if (nm_parse_u64(s, (uint64_t)max, &v) != 0)
        return false;
    *out = (long long)v;
    return true;
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        perror("notmod serve");
        exit(NM_EXIT_FAILURE);
    }
    return d;
}

/* A value among fixed words; the message lists them. */
struct choice {
    const char *word;
    int value;
};

static const struct choice ims_modes[] = {{"rfc", NM_IMS_RFC}, {"exact", NM_IMS_EXACT}, {NULL, 0}};
static const struct choice dotfile_modes[] = {{"deny", 0}, {"allow", 1}, {NULL, 0}};
static const struct choice sendfile_modes[] = {
    {"off", NM_SENDFILE_OFF}, {"on", NM_SENDFILE_ON}, {"all", NM_SENDFILE_ALL}, {NULL, 0}};
static const struct choice switch_modes[] = {{"off", 0}, {"on", 1}, {NULL, 0}};
static const struct choice symlink_modes[] = {{"inside", 0}, {"all", 1}, {NULL, 0}};
static const struct choice log_formats[] = {
    {"combined", NM_LOG_COMBINED}, {"json", NM_LOG_JSON}, {NULL, 0}};

static int pick(int opt, const char *arg, const struct choice *choices, int *out)
{
    char words[128] = "";
    for (const struct choice *c = choices; c->word; c++) {
        if (strcmp(arg, c->word) == 0) {
            *out = c->value;
            return 0;
        }
        size_t n = strlen(words);
        snprintf(words + n, sizeof(words) - n, "%s%s", n ? " or " : "", c->word);
    }
    return bad("--%s wants %s, not '%s'", option_name(opt), words, arg);
}

static int set_etag_mode(struct nm_config *cfg, const char *arg)
{
    int rc = nm_config_set_etag_mode(cfg, arg);
    if (rc == -ERANGE)
        return bad("--etag version:STRING wants 1 to 78 visible ASCII characters without '\"', "
                   "not '%s'",
                   arg + 8);
    if (rc < 0)
        return bad("--etag wants content, metadata, version:STRING or off, not '%s'", arg);
    return 0;
}

/* --precompressed br,zstd,gzip (any order, each at most once) or off. */
static int set_precompressed(struct nm_config *cfg, const char *arg)
{
    int rc = nm_config_set_precompressed(cfg, arg);
    if (rc == -EEXIST)
        return bad("--precompressed names a coding twice in '%s'", arg);
    if (rc < 0)
        return bad("--precompressed wants a comma list of br, zstd, gzip, or off, not '%s'", arg);
    return 0;
}

static int add_cache_rule(struct nm_config *cfg, const char *arg)
{
    switch (nm_config_add_cache_rule(cfg, arg)) {
    case 0:
        return 0;
    case -EMSGSIZE:
        return bad("--cache-control value longer than %d bytes: '%s'", NM_CACHE_CONTROL_MAX,
                   strchr(arg, '=') + 1);
    case -ENOSPC:
        return bad("too many --cache-control rules (at most %d)", NM_CONFIG_MAX_RULES);
    case -ENOMEM:
        return bad("out of memory");
    default:
        return bad("--cache-control wants GLOB=VALUE, not '%s'", arg);
    }
}

/* --tls-cert and --tls-key belong to the --listen before them. */
static int set_tls_file(struct nm_config *cfg, int opt, const char *arg)
{
    if (cfg->n_listen == 0)
        return bad("--%s must follow the --listen it applies to", option_name(opt));
    char **slot =
        opt == OPT_TLS_CERT ? &cfg->tls_cert[cfg->n_listen - 1] : &cfg->tls_key[cfg->n_listen - 1];
    if (*slot)
        return bad("--%s given twice for --listen %s", option_name(opt),
                   cfg->listen[cfg->n_listen - 1]);
    if (!*arg)
        return bad("--%s wants a file name", option_name(opt));
    *slot = dup_or_die(arg);
    return 0;
}

/* --tls HOST=CERT,KEY (the key is after the last comma). */
static int add_tls_name(struct nm_config *cfg, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *comma = eq ? strrchr(eq, ',') : NULL;
    if (!eq || eq == arg || !comma || comma == eq + 1 || !comma[1])
        return bad("--tls wants HOST=CERT,KEY, not '%s'", arg);
    for (const char *p = arg; p < eq; p++)
        if (*p <= ' ' || *p == '/' || *p == 0x7f)
            return bad("--tls wants a host name before '=', not '%.*s'", (int)(eq - arg), arg);
    if (cfg->n_tls_names == NM_CONFIG_MAX_TLS_NAMES)
        return bad("too many --tls names (at most %d)", NM_CONFIG_MAX_TLS_NAMES);
    struct nm_tls_name *n = &cfg->tls_names[cfg->n_tls_names++];
    n->host = strndup(arg, (size_t)(eq - arg));
    n->cert = strndup(eq + 1, (size_t)(comma - eq - 1));
    n->key = dup_or_die(comma + 1);
    if (!n->host || !n->cert)
        return bad("out of memory");
    return 0;
}

/* Every TLS listener has both files, and SNI names have a TLS listener to serve them on. */
static int check_tls(const struct nm_config *cfg)
{
    bool any = false;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (!cfg->tls_cert[i] != !cfg->tls_key[i])
            return bad("--listen %s has --%s without --%s", cfg->listen[i],
                       cfg->tls_cert[i] ? "tls-cert" : "tls-key",
                       cfg->tls_cert[i] ? "tls-key" : "tls-cert");
        any |= cfg->tls_cert[i] != NULL;
    }
    if (cfg->n_tls_names && !any)
        return bad("--tls needs a TLS listener (--listen ADDR --tls-cert FILE --tls-key FILE)");
    return 0;
}

/* The options that take an amount: bytes or seconds. Returns 0, or the usage exit status (said)
 * for a bad value or an option that is not one of them. */
static int set_amount(struct nm_config *cfg, int opt, const char *arg)
{
    long long v;
    switch (opt) {
    case OPT_COMPRESS_MAX_SIZE:
    case OPT_COMPRESS_CACHE:
    case OPT_HASH_THRESHOLD:
    case OPT_HOLD_SIZE:
    case OPT_HOLD_BUDGET:
        if (!parse_uint(arg, opt == OPT_HOLD_SIZE ? NM_CONFIG_MAX_HOLD_BYTES : LLONG_MAX, &v))
            return bad("--%s wants a number of bytes%s, not '%s'", option_name(opt),
                       opt == OPT_HOLD_SIZE ? " up to 1073741824" : "", arg);
        if (opt == OPT_COMPRESS_MAX_SIZE)
            cfg->compress_max_bytes = (uint64_t)v;
        else if (opt == OPT_COMPRESS_CACHE)
            cfg->compress_cache_bytes = (uint64_t)v;
        else if (opt == OPT_HOLD_SIZE)
            cfg->small_file_bytes = (size_t)v;
        else if (opt == OPT_HOLD_BUDGET)
            cfg->hold_budget_bytes = (uint64_t)v;
        else
            cfg->hash_threshold_bytes = (uint64_t)v;
        return 0;
    case OPT_HEADER_TIMEOUT:
    case OPT_IDLE_TIMEOUT:
    case OPT_SEND_TIMEOUT:
    case OPT_DRAIN_TIMEOUT: {
        if (!parse_uint(arg, 86400, &v) || v == 0)
            return bad("--%s wants seconds from 1 to 86400, not '%s'", option_name(opt), arg);
        unsigned ms = (unsigned)v * 1000;
        if (opt == OPT_HEADER_TIMEOUT)
            cfg->header_timeout_ms = ms;
        else if (opt == OPT_IDLE_TIMEOUT)
            cfg->idle_timeout_ms = ms;
        else if (opt == OPT_DRAIN_TIMEOUT)
            cfg->shutdown_timeout_ms = ms;
        else
            cfg->send_timeout_ms = ms;
        return 0;
    }
    default:
        return NM_EXIT_USAGE;
    }
}

/* --max-connections, --user, --group, --metrics: how the server runs as a service. */
static int set_service_option(struct nm_config *cfg, int opt, const char *arg)
{
    long long v;
    if (opt == OPT_MAX_CONNECTIONS) {
        if (!parse_uint(arg, 1000000, &v) || v == 0)
            return bad("--max-connections wants a number from 1 to 1000000, not '%s'", arg);
        cfg->max_conns = (unsigned)v;
        return 0;
    }
    if (!*arg)
        return bad("--%s wants a value, not an empty one", option_name(opt));
    char **field = opt == OPT_USER    ? &cfg->run_user
                   : opt == OPT_GROUP ? &cfg->run_group
                                      : &cfg->metrics_listen;
    free(*field);
    *field = dup_or_die(arg);
    return 0;
}

/* Options over what cfg holds already (a config file's settings): a value given here replaces
 * the file's, and the first --listen here replaces the file's list. */
static int parse_args(int argc, char **argv, struct nm_config *cfg, bool *check_only)
{
    bool quiet = false, log_set = false, listen_set = false;
    long long v;
    int opt, choice;
    optind = 1;
    while ((opt = nm__cli_getopt("serve", argc, argv, "qhV", options)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            while (!listen_set && cfg->n_listen > 0)
                free(cfg->listen[--cfg->n_listen]);
            listen_set = true;
            if (cfg->n_listen == NM_CONFIG_MAX_LISTEN)
                return bad("too many --listen addresses (at most 16)");
            cfg->listen[cfg->n_listen++] = dup_or_die(optarg);
            break;
        case OPT_WORKERS:
            if (!parse_uint(optarg, 1024, &v) || v == 0)
                return bad("--workers wants a number from 1 to 1024, not '%s'", optarg);
            cfg->workers = (unsigned)v;
            break;
        case OPT_ETAG:
            if (set_etag_mode(cfg, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_IMS:
            if (pick(opt, optarg, ims_modes, &choice))
                return NM_EXIT_USAGE;
            cfg->ims_mode = (enum nm_ims_mode)choice;
            break;
        case OPT_CACHE_CONTROL:
            if (add_cache_rule(cfg, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_MAX_AGE:
            if (!parse_uint(optarg, 10LL * 365 * 86400, &v))
                return bad("--max-age wants seconds (0 to 315360000), not '%s'", optarg);
            cfg->max_age = v;
            break;
        case OPT_EXPIRES:
            cfg->expires = true;
            break;
        case OPT_INDEX:
            if (strchr(optarg, '/'))
                return bad("--index wants a file name without '/', not '%s'", optarg);
            free(cfg->index_name);
            cfg->index_name = dup_or_die(optarg);
            break;
        case OPT_LIST_DIRS:
            cfg->list_dirs = true;
            break;
        case OPT_DOTFILES:
            if (pick(opt, optarg, dotfile_modes, &choice))
                return NM_EXIT_USAGE;
            cfg->allow_dotfiles = choice;
            break;
        case OPT_SENDFILE:
            if (pick(opt, optarg, sendfile_modes, &choice))
                return NM_EXIT_USAGE;
            cfg->sendfile = (enum nm_sendfile_mode)choice;
            break;
        case OPT_IO_URING:
            if (pick(opt, optarg, switch_modes, &choice))
                return NM_EXIT_USAGE;
            cfg->io_uring = choice;
            break;
        case OPT_SYMLINKS:
            if (pick(opt, optarg, symlink_modes, &choice))
                return NM_EXIT_USAGE;
            cfg->follow_all_symlinks = choice;
            break;
        case OPT_ACCESS_LOG:
            free(cfg->access_log);
            cfg->access_log = strcmp(optarg, "off") == 0 ? NULL : dup_or_die(optarg);
            log_set = true;
            break;
        case OPT_LOG_FORMAT:
            if (pick(opt, optarg, log_formats, &choice))
                return NM_EXIT_USAGE;
            cfg->log_format = (enum nm_log_format)choice;
            break;
        case OPT_ETAG_MANIFEST:
            free(cfg->etag_manifest);
            cfg->etag_manifest = dup_or_die(optarg);
            break;
        case OPT_ETAG_STORE:
            if (nm_config_set_etag_store(cfg, optarg) == -EINVAL)
                return bad("--etag-store wants a directory, xattr or off");
            break;
        case OPT_PREHASH:
        case OPT_NO_PREHASH:
            cfg->prehash = opt == OPT_PREHASH;
            break;
        case OPT_WATCH:
        case OPT_NO_WATCH:
            cfg->watch = opt == OPT_WATCH;
            break;
        case OPT_PRECOMPRESSED:
            if (set_precompressed(cfg, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_COMPRESS:
        case OPT_NO_COMPRESS:
            cfg->compress = opt == OPT_COMPRESS;
            break;
        case OPT_CONFIG:
            break; /* read before the options (read_config) */
        case OPT_CHECK_CONFIG:
            *check_only = true;
            break;
        case OPT_MAX_CONNECTIONS:
        case OPT_USER:
        case OPT_GROUP:
        case OPT_METRICS:
            if (set_service_option(cfg, opt, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY:
            if (set_tls_file(cfg, opt, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_TLS:
            if (add_tls_name(cfg, optarg))
                return NM_EXIT_USAGE;
            break;
        case OPT_H2C:
            cfg->h2c = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            fputs(usage_text_more, stdout);
            return -1;
        case 'V':
            printf("notmod %s\n", NM_VERSION);
            return -1;
        default:
            if (set_amount(cfg, opt, optarg))
                return NM_EXIT_USAGE; /* an unknown option was named by nm__cli_getopt */
            break;
        }
    }
    if (argc - optind > 1)
        return bad("serve takes one directory, and '%s' is a second", argv[optind + 1]);
    if (cfg->etag_manifest && cfg->etag_mode != NM_ETAG_CONTENT)
        return bad("--etag-manifest needs --etag content");
    if (check_tls(cfg))
        return NM_EXIT_USAGE;
    if (optind < argc || !cfg->root) {
        free(cfg->root);
        cfg->root = dup_or_die(optind < argc ? argv[optind] : ".");
    }
    if (cfg->n_listen == 0)
        cfg->listen[cfg->n_listen++] = dup_or_die("127.0.0.1:8080");
    if (!cfg->index_name)
        cfg->index_name = dup_or_die("index.html");
    cfg->quiet = cfg->quiet || quiet;
    if (!log_set && !cfg->access_log_set && !cfg->quiet)
        cfg->access_log = dup_or_die("-");
    return 0;
}

/* The value of the last --config, or NULL: the file is read before the other options, which
 * override it. Anything malformed is left to parse_args to name. */
static const char *config_path(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    return path;
}

/* Problems go to stderr at start and --check-config, to the server's log on a reload. */
static void print_problem(void *arg, bool is_error, const char *message)
{
    (void)arg;
    fprintf(stderr, "notmod serve: %s%s\n", is_error ? "" : "warning: ", message);
}

static void log_problem(void *arg, bool is_error, const char *message)
{
    (void)arg;
    nm_log_error("%s%s", is_error ? "" : "warning: ", message);
}

/* The config file, then the options. Returns 0, -1 after -h or -V, NM_EXIT_USAGE for a bad
 * option, NM_EXIT_FAILURE for a bad file (the problems reported). */
static int read_config(int argc, char **argv, struct nm_config *cfg, bool *check_only,
                       nm_configfile_report_fn *report)
{
    const char *path = config_path(argc, argv);
    int file_rc = path ? nm_configfile_load(cfg, path, report, NULL) : 0;
    int rc = parse_args(argc, argv, cfg, check_only);
    if (rc != 0)
        return rc;
    nm_configfile_warn_unreachable(cfg, report, NULL);
    return file_rc < 0 ? NM_EXIT_FAILURE : 0;
}

static int argc_saved;
static char **argv_saved;

static int reload(void *arg, struct nm_config **out)
{
    (void)arg;
    struct nm_config *cfg = malloc(sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    nm_config_init(cfg);
    bool check_only = false;
    if (read_config(argc_saved, argv_saved, cfg, &check_only, log_problem) != 0) {
        nm_config_cleanup(cfg);
        free(cfg);
        return -EINVAL;
    }
    *out = cfg;
    return 0;
}

/* --check-config: what a start would refuse before binding anything. */
static int check_config(const struct nm_config *cfg)
{
    int fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "notmod serve: cannot serve %s: %s\n", cfg->root, strerror(errno));
        return NM_EXIT_FAILURE;
    }
    close(fd);
    printf("%s: ok\n", cfg->config_file ? cfg->config_file : "options");
    return NM_EXIT_OK;
}

/* The ETag store's directory: the one given, or the default one, checked and made. Refuses one
 * another user owns or can write; a default one that cannot be made leaves hashes in memory
 * with a warning (no HOME, a read-only home), a given one is an error. Returns 0 or an exit
 * status. */
static int prepare_etag_store(struct nm_config *cfg)
{
    if (cfg->etag_mode != NM_ETAG_CONTENT || cfg->etag_store != NM_ETAG_STORE_DIR)
        return 0;
    bool given = cfg->etag_store_dir != NULL;
    char dir[PATH_MAX];
    int rc = 0;
    if (!given) {
        rc = nm__cli_etag_store_dir(dir, sizeof(dir));
        if (rc == 0)
            cfg->etag_store_dir = dup_or_die(dir);
    }
    if (rc == 0 && nm__cli_refuse_shared_dir("serve", "ETag store", cfg->etag_store_dir) == -EPERM)
        return NM_EXIT_FAILURE;
    if (rc == 0)
        rc = nm_dir_make_private(cfg->etag_store_dir);
    if (rc == 0)
        return 0;
    if (given) {
        fprintf(stderr, "notmod serve: cannot use ETag store %s: %s\n", cfg->etag_store_dir,
                strerror(-rc));
        return NM_EXIT_FAILURE;
    }
    fprintf(stderr,
            "notmod serve: no ETag store (%s: %s); hashes are kept in memory only (set "
            "--etag-store DIR)\n",
            cfg->etag_store_dir ? cfg->etag_store_dir : "no HOME", strerror(-rc));
    free(cfg->etag_store_dir);
    cfg->etag_store_dir = NULL;
    cfg->etag_store = NM_ETAG_STORE_OFF;
    return 0;
}

static const char *etag_mode_name(const struct nm_config *cfg)
{
    switch (cfg->etag_mode) {
    case NM_ETAG_CONTENT:
        return "content hash";
    case NM_ETAG_METADATA:
        return "size+mtime";
    case NM_ETAG_VERSION:
        return cfg->etag_version;
    default:
        return "off";
    }
}

int nm_cmd_serve(int argc, char **argv)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    bool check_only = false;
    int rc = read_config(argc, argv, &cfg, &check_only, print_problem);
    if (rc == 0 && check_only)
        rc = check_config(&cfg);
    if (rc != 0 || check_only) {
        nm_config_cleanup(&cfg);
        return rc < 0 ? NM_EXIT_OK : rc;
    }
    rc = prepare_etag_store(&cfg);
    if (rc != 0) {
        nm_config_cleanup(&cfg);
        return rc;
    }
    nm_server_block_signals();
    struct nm_server *srv;
    char err[512];
    rc = nm_server_new(&cfg, &srv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "notmod serve: %s\n", err);
        nm_config_cleanup(&cfg);
        /* -EINVAL is a --listen value that is not an address or a name that does not resolve:
         * a usage error like the others. */
        return rc == -EINVAL ? NM_EXIT_USAGE : NM_EXIT_FAILURE;
    }
    /* Standard output carries the access log: the startup line is a diagnostic, on stderr, in
     * one write so that no other line lands inside it. */
    if (!cfg.quiet) {
        char where[PATH_MAX], cc[64];
        if (!realpath(cfg.root, where))
            snprintf(where, sizeof(where), "%s", cfg.root);
        struct nm_buf line;
        nm_buf_init(&line, 2 * PATH_MAX + 80 * 32);
        int lrc = nm_buf_appendf(&line, "notmod: serving %s on ", where);
        for (size_t i = 0; lrc == 0 && nm_server_address(srv, i); i++)
            lrc = nm_buf_appendf(&line, "%s%s", i ? ", " : "", nm_server_address(srv, i));
        if (lrc == 0)
            lrc =
                nm_buf_appendf(&line, " (ETag: %s; If-Modified-Since: %s; Cache-Control: %s%s)\n",
                               etag_mode_name(&cfg), cfg.ims_mode == NM_IMS_EXACT ? "exact" : "rfc",
                               nm_config_cache_control(&cfg, "/", cc, sizeof(cc)),
                               cfg.n_rules || cfg.n_path_rules ? " unless a rule matches" : "");
        if (lrc == 0)
            fwrite(line.ptr, 1, line.len, stderr);
        nm_buf_cleanup(&line);
    }
    argc_saved = argc;
    argv_saved = argv;
    if (cfg.config_file)
        nm_server_set_reload(srv, reload, NULL);
    rc = nm_server_run(srv);
    nm_server_free(srv);
    nm_config_cleanup(&cfg);
    return rc < 0 ? NM_EXIT_FAILURE : NM_EXIT_OK;
}
