/* The config file: libconfig's syntax, one table of settings, every problem as FILE:LINE. */
#include "configfile.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 256
#define MAX_SECONDS 86400

/* One load: where problems go and whether one was an error. */
struct reader {
    struct nm_config *cfg;
    const char *path;
    nm_configfile_report_fn *report;
    void *arg;
    int errors;
};

__attribute__((format(printf, 4, 5))) static void
say(struct reader *r, bool is_error, const config_setting_t *s, const char *fmt, ...)
{
    char msg[768];
    int n = s ? snprintf(msg, sizeof(msg), "%s:%u: ", r->path, config_setting_source_line(s))
              : snprintf(msg, sizeof(msg), "%s: ", r->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    r->errors += is_error;
    r->report(r->arg, is_error, msg);
}

/* A setting's name for messages: an element of a list has none. */
static const char *name_of(const config_setting_t *s)
{
    const char *n = config_setting_name(s);
    return n ? n : "a list element";
}

static bool is_int(const config_setting_t *s)
{
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* A string setting, or NULL after saying so. */
static const char *get_string(struct reader *r, const config_setting_t *s)
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return config_setting_get_string(s);
    say(r, true, s, "%s wants a string in double quotes", name_of(s));
    return NULL;
}

static bool get_bool(struct reader *r, const config_setting_t *s, bool *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        say(r, true, s, "%s wants true or false", name_of(s));
        return false;
    }
    *out = config_setting_get_bool(s);
    return true;
}

static bool get_int(struct reader *r, const config_setting_t *s, long long lo, long long hi,
                    long long *out)
{
    long long v = is_int(s) ? config_setting_get_int64(s) : 0;
    if (!is_int(s) || v < lo || v > hi) {
        say(r, true, s, "%s wants a whole number from %lld to %lld", name_of(s), lo, hi);
        return false;
    }
    *out = v;
    return true;
}

/* Replaces *dst by a copy of the string setting s. */
static void set_string(struct reader *r, const config_setting_t *s, char **dst)
{
    const char *v = get_string(r, s);
    char *d = v ? strdup(v) : NULL;
    if (v && !d) {
        say(r, true, s, "out of memory");
        return;
    }
    if (d) {
        free(*dst);
        *dst = d;
    }
}

/* One of a few words; the message lists them. Returns the index or -1. */
static int pick(struct reader *r, const config_setting_t *s, const char *const *words)
{
    const char *v = get_string(r, s);
    if (!v)
        return -1;
    char list[128] = "";
    for (int i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0)
            return i;
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", i ? " or " : "", words[i]);
    }
    say(r, true, s, "%s wants %s, not \"%s\"", name_of(s), list, v);
    return -1;
}

/* ---- the site-wide settings ---- */

static void set_listen(struct reader *r, const config_setting_t *s)
{
    struct nm_config *cfg = r->cfg;
    bool one = config_setting_type(s) == CONFIG_TYPE_STRING;
    if (!one && !config_setting_is_aggregate(s)) {
        say(r, true, s, "listen wants \"HOST:PORT\" or a list of them");
        return;
    }
    int n = one ? 1 : config_setting_length(s);
    if (n == 0 || n > NM_CONFIG_MAX_LISTEN) {
        say(r, true, s, "listen wants 1 to %d addresses", NM_CONFIG_MAX_LISTEN);
        return;
    }
    for (size_t i = 0; i < cfg->n_listen; i++)
        free(cfg->listen[i]);
    cfg->n_listen = 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = one ? s : config_setting_get_elem(s, (unsigned)i);
        const char *v = get_string(r, e);
        if (v && (cfg->listen[cfg->n_listen] = strdup(v)) != NULL)
            cfg->n_listen++;
    }
}

static void set_precompressed(struct reader *r, const config_setting_t *s)
{
    const char *v = get_string(r, s);
    int rc = v ? nm_config_set_precompressed(r->cfg, v) : 0;
    if (rc == -EEXIST)
        say(r, true, s, "precompressed names a coding twice in \"%s\"", v);
    else if (rc < 0)
        say(r, true, s,
            "precompressed wants a comma list of br, zstd, gzip, or \"off\", not \"%s\"", v);
}

static void set_timeouts(struct reader *r, const config_setting_t *g)
{
    static const char *const names[] = {"header", "idle", "send", "drain", NULL};
    struct nm_config *cfg = r->cfg;
    unsigned *dst[] = {&cfg->header_timeout_ms, &cfg->idle_timeout_ms, &cfg->send_timeout_ms,
                       &cfg->shutdown_timeout_ms};
    if (!config_setting_is_group(g)) {
        say(r, true, g, "timeouts wants a group: { header = 10; idle = 60; ... }");
        return;
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        int k = 0;
        while (names[k] && strcmp(names[k], config_setting_name(s)) != 0)
            k++;
        long long v;
        if (!names[k])
            say(r, true, s, "unknown timeout \"%s\" (header, idle, send or drain)",
                config_setting_name(s));
        else if (get_int(r, s, 1, MAX_SECONDS, &v))
            *dst[k] = (unsigned)v * 1000;
    }
}

/* error_pages = ( { status = 404; page = "/404.html"; }, ... ) */
static void add_error_pages(struct reader *r, const config_setting_t *list,
                            struct nm_error_page *pages, size_t *n_pages)
{
    if (!config_setting_is_list(list)) {
        say(r, true, list, "error_pages wants a list: ( { status = 404; page = \"/404.html\"; } )");
        return;
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        const config_setting_t *st = config_setting_get_member(g, "status");
        const config_setting_t *pg = config_setting_get_member(g, "page");
        long long status;
        const char *page;
        if (!config_setting_is_group(g) || !st || !pg || config_setting_length(g) != 2) {
            say(r, true, g, "an error page wants exactly status and page");
            continue;
        }
        /* 412 and 416 answer a request's own preconditions and ranges: their meaning is in the
         * status and fields, and a page would only hide it. */
        if (!get_int(r, st, 400, 599, &status) || !(page = get_string(r, pg)))
            continue;
        if (status == 412 || status == 416) {
            say(r, true, st,
                "status %lld has no error page (it answers the request's own "
                "preconditions or ranges)",
                status);
            continue;
        }
        if (page[0] != '/') {
            say(r, true, pg, "an error page is a URL path starting with '/', not \"%s\"", page);
            continue;
        }
        if (*n_pages == NM_RULE_MAX_ERROR_PAGES) {
            say(r, true, g, "at most %d error pages here", NM_RULE_MAX_ERROR_PAGES);
            return;
        }
        char *d = strdup(page);
        if (d)
            pages[(*n_pages)++] = (struct nm_error_page){(int)status, d};
    }
}

/* ---- rules ---- */

static void set_headers(struct reader *r, const config_setting_t *g, struct nm_path_rule *rule)
{
    if (!config_setting_is_group(g)) {
        say(r, true, g, "headers wants a group: { Field-Name = \"value\"; ... }");
        return;
    }
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s), *why = nm_config_header_name_problem(name);
        const char *value = get_string(r, s);
        if (why) {
            say(r, true, s, "header %s refused: %s", name, why);
            continue;
        }
        if (!value)
            continue;
        if (!nm_config_header_value_is_safe(value)) {
            say(r, true, s,
                "header %s: a value is at most %d bytes of visible characters, spaces and tabs "
                "(no CR, LF or NUL)",
                name, NM_HEADER_VALUE_MAX);
            continue;
        }
        size_t bytes = strlen(name) + strlen(value);
        for (size_t k = 0; k < rule->n_headers; k++)
            bytes += strlen(rule->headers[k].name) + strlen(rule->headers[k].value);
        if (rule->n_headers == NM_RULE_MAX_HEADERS || bytes > NM_RULE_HEADER_BYTES) {
            say(r, true, s, "a rule has at most %d fields of %d bytes in all", NM_RULE_MAX_HEADERS,
                NM_RULE_HEADER_BYTES);
            return;
        }
        struct nm_header_field *h = &rule->headers[rule->n_headers];
        h->name = strdup(name);
        h->value = strdup(value);
        if (h->name && h->value)
            rule->n_headers++;
        else
            free(h->name), free(h->value);
    }
}

static void set_try_files(struct reader *r, const config_setting_t *s, struct nm_path_rule *rule)
{
    int n = config_setting_is_aggregate(s) ? config_setting_length(s) : -1;
    if (n < 1 || n > NM_RULE_MAX_TRY) {
        say(r, true, s, "try_files wants a list of 1 to %d paths: [\"$uri.html\", \"/index.html\"]",
            NM_RULE_MAX_TRY);
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v = get_string(r, e);
        if (!v)
            continue;
        if (v[0] != '/' && strncmp(v, "$uri", 4) != 0) {
            say(r, true, e, "try_files entries start with '/' or $uri, not \"%s\"", v);
            continue;
        }
        if (strstr(v + (v[0] == '$' ? 4 : 0), "$")) {
            say(r, true, e, "try_files knows only $uri, at the start: \"%s\"", v);
            continue;
        }
        if ((rule->try_files[rule->n_try_files] = strdup(v)) != NULL)
            rule->n_try_files++;
    }
}

static void set_rule_setting(struct reader *r, const config_setting_t *s, struct nm_path_rule *rule)
{
    const char *name = config_setting_name(s);
    bool b;
    if (strcmp(name, "match") == 0 || strcmp(name, "prefix") == 0) {
        if (rule->match) {
            say(r, true, s, "a rule has one match or one prefix");
            return;
        }
        set_string(r, s, &rule->match);
        rule->is_prefix = name[0] == 'p';
    } else if (strcmp(name, "cache_control") == 0) {
        set_string(r, s, &rule->cache_control);
        if (rule->cache_control &&
            (!nm_config_header_value_is_safe(rule->cache_control) ||
             strlen(rule->cache_control) > NM_CACHE_CONTROL_MAX || !rule->cache_control[0]))
            say(r, true, s, "cache_control wants 1 to %d visible characters", NM_CACHE_CONTROL_MAX);
    } else if (strcmp(name, "headers") == 0) {
        set_headers(r, s, rule);
    } else if (strcmp(name, "variants") == 0 || strcmp(name, "listing") == 0) {
        if (get_bool(r, s, &b))
            *(name[0] == 'v' ? &rule->variants : &rule->listing) = b;
    } else if (strcmp(name, "try_files") == 0) {
        set_try_files(r, s, rule);
    } else if (strcmp(name, "error_pages") == 0) {
        add_error_pages(r, s, rule->error_pages, &rule->n_error_pages);
    } else {
        say(r, true, s,
            "unknown rule setting \"%s\" (match, prefix, cache_control, headers, variants, "
            "listing, try_files, error_pages)",
            name);
    }
}

static void add_rules(struct reader *r, const config_setting_t *list)
{
    struct nm_config *cfg = r->cfg;
    int n = config_setting_is_list(list) ? config_setting_length(list) : -1;
    if (n < 0 || cfg->n_path_rules + (size_t)n > MAX_RULES) {
        say(r, true, list,
            "rules wants a list of at most %d groups: ( { match = \"/app/*\"; ... } )", MAX_RULES);
        return;
    }
    struct nm_path_rule *all =
        realloc(cfg->path_rules, (cfg->n_path_rules + (size_t)n + 1) * sizeof(*all));
    if (!all) {
        say(r, true, list, "out of memory");
        return;
    }
    cfg->path_rules = all;
    for (int i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct nm_path_rule *rule = &cfg->path_rules[cfg->n_path_rules++];
        *rule = (struct nm_path_rule){
            .line = config_setting_source_line(g), .variants = -1, .listing = -1};
        if (!config_setting_is_group(g)) {
            say(r, true, g, "a rule is a group: { match = \"/app/*\"; ... }");
            continue;
        }
        for (int k = 0; k < config_setting_length(g); k++)
            set_rule_setting(r, config_setting_get_elem(g, (unsigned)k), rule);
        if (!rule->match)
            say(r, true, g, "a rule wants match = \"GLOB\" or prefix = \"/PATH/\"");
        else if (rule->is_prefix ? rule->match[0] != '/'
                                 : !nm_config_glob_is_reachable(rule->match))
            say(r, false, g, "rule \"%s\" never matches: URL paths start with '/'", rule->match);
    }
}

/* ---- the table of top-level settings ---- */

static const char *const ims_words[] = {"rfc", "exact", NULL};
static const char *const dotfile_words[] = {"deny", "allow", NULL};
static const char *const sendfile_words[] = {"off", "on", "all", NULL};
static const char *const switch_words[] = {"off", "on", NULL};
static const char *const symlink_words[] = {"inside", "all", NULL};
static const char *const log_words[] = {"combined", "json", NULL};

static void set_top(struct reader *r, const config_setting_t *s)
{
    struct nm_config *cfg = r->cfg;
    const char *name = config_setting_name(s);
    long long v;
    bool b;
    int k;
    if (strcmp(name, "root") == 0) {
        set_string(r, s, &cfg->root);
    } else if (strcmp(name, "listen") == 0) {
        set_listen(r, s);
    } else if (strcmp(name, "workers") == 0) {
        if (get_int(r, s, 1, 1024, &v))
            cfg->workers = (unsigned)v;
    } else if (strcmp(name, "etag") == 0) {
        const char *t = get_string(r, s);
        if (t && nm_config_set_etag_mode(cfg, t) < 0)
            say(r, true, s,
                "etag wants \"content\", \"metadata\", \"version:STRING\" (1 to 78 visible "
                "characters without '\"') or \"off\", not \"%s\"",
                t);
    } else if (strcmp(name, "etag_store") == 0) {
        const char *t = get_string(r, s);
        if (t && nm_config_set_etag_store(cfg, t) < 0)
            say(r, true, s, "etag_store wants a directory, \"xattr\" or \"off\"");
    } else if (strcmp(name, "etag_manifest") == 0) {
        set_string(r, s, &cfg->etag_manifest);
    } else if (strcmp(name, "prehash") == 0) {
        if (get_bool(r, s, &b))
            cfg->prehash = b;
    } else if (strcmp(name, "watch") == 0) {
        if (get_bool(r, s, &b))
            cfg->watch = b;
    } else if (strcmp(name, "hash_threshold") == 0) {
        if (get_int(r, s, 0, INT64_MAX, &v))
            cfg->hash_threshold_bytes = (uint64_t)v;
    } else if (strcmp(name, "if_modified_since") == 0) {
        if ((k = pick(r, s, ims_words)) >= 0)
            cfg->ims_mode = k ? NM_IMS_EXACT : NM_IMS_RFC;
    } else if (strcmp(name, "max_age") == 0) {
        if (get_int(r, s, 0, 10LL * 365 * 86400, &v))
            cfg->max_age = v;
    } else if (strcmp(name, "expires") == 0) {
        if (get_bool(r, s, &b))
            cfg->expires = b;
    } else if (strcmp(name, "precompressed") == 0) {
        set_precompressed(r, s);
    } else if (strcmp(name, "compress") == 0) {
        if (get_bool(r, s, &b))
            cfg->compress = b;
    } else if (strcmp(name, "sendfile") == 0) {
        if ((k = pick(r, s, sendfile_words)) >= 0)
            cfg->sendfile = (enum nm_sendfile_mode)k;
    } else if (strcmp(name, "io_uring") == 0) {
        if ((k = pick(r, s, switch_words)) >= 0)
            cfg->io_uring = k == 1;
    } else if (strcmp(name, "compress_max_size") == 0) {
        if (get_int(r, s, 0, INT64_MAX, &v))
            cfg->compress_max_bytes = (uint64_t)v;
    } else if (strcmp(name, "compress_cache") == 0) {
        if (get_int(r, s, 0, INT64_MAX, &v))
            cfg->compress_cache_bytes = (uint64_t)v;
    } else if (strcmp(name, "hold_size") == 0) {
        if (get_int(r, s, 0, NM_CONFIG_MAX_HOLD_BYTES, &v))
            cfg->small_file_bytes = (size_t)v;
    } else if (strcmp(name, "hold_budget") == 0) {
        if (get_int(r, s, 0, INT64_MAX, &v))
            cfg->hold_budget_bytes = (uint64_t)v;
    } else if (strcmp(name, "index") == 0) {
        const char *t = get_string(r, s);
        if (t && strchr(t, '/'))
            say(r, true, s, "index wants a file name without '/', not \"%s\"", t);
        else if (t)
            set_string(r, s, &cfg->index_name);
    } else if (strcmp(name, "list_dirs") == 0) {
        if (get_bool(r, s, &b))
            cfg->list_dirs = b;
    } else if (strcmp(name, "dotfiles") == 0) {
        if ((k = pick(r, s, dotfile_words)) >= 0)
            cfg->allow_dotfiles = k;
    } else if (strcmp(name, "follow_symlinks") == 0) {
        if ((k = pick(r, s, symlink_words)) >= 0)
            cfg->follow_all_symlinks = k;
    } else if (strcmp(name, "access_log") == 0) {
        const char *t = get_string(r, s);
        if (t && strcmp(t, "off") == 0) {
            free(cfg->access_log);
            cfg->access_log = NULL;
        } else if (t) {
            set_string(r, s, &cfg->access_log);
        }
        cfg->access_log_set = t != NULL;
    } else if (strcmp(name, "log_format") == 0) {
        if ((k = pick(r, s, log_words)) >= 0)
            cfg->log_format = k ? NM_LOG_JSON : NM_LOG_COMBINED;
    } else if (strcmp(name, "quiet") == 0) {
        if (get_bool(r, s, &b))
            cfg->quiet = b;
    } else if (strcmp(name, "max_connections") == 0) {
        if (get_int(r, s, 1, 1000000, &v))
            cfg->max_conns = (unsigned)v;
    } else if (strcmp(name, "user") == 0) {
        set_string(r, s, &cfg->run_user);
    } else if (strcmp(name, "group") == 0) {
        set_string(r, s, &cfg->run_group);
    } else if (strcmp(name, "metrics") == 0) {
        set_string(r, s, &cfg->metrics_listen);
    } else if (strcmp(name, "timeouts") == 0) {
        set_timeouts(r, s);
    } else if (strcmp(name, "error_pages") == 0) {
        add_error_pages(r, s, cfg->error_pages, &cfg->n_error_pages);
    } else if (strcmp(name, "rules") == 0) {
        add_rules(r, s);
    } else {
        say(r, true, s, "unknown setting \"%s\"", name);
    }
}

int nm_configfile_load(struct nm_config *cfg, const char *path, nm_configfile_report_fn *report,
                       void *arg)
{
    struct reader r = {cfg, path, report, arg, 0};
    FILE *f = fopen(path, "r");
    if (!f) {
        int err = errno;
        say(&r, true, NULL, "%s", strerror(err));
        return -err;
    }
    config_t c;
    config_init(&c);
    int ok = config_read(&c, f);
    fclose(f);
    if (!ok) {
        char msg[768];
        snprintf(msg, sizeof(msg), "%s:%d: %s", path, config_error_line(&c), config_error_text(&c));
        report(arg, true, msg);
        config_destroy(&c);
        return -EINVAL;
    }
    char *p = strdup(path);
    if (p) {
        free(cfg->config_file);
        cfg->config_file = p;
    }
    const config_setting_t *top = config_root_setting(&c);
    for (int i = 0; i < config_setting_length(top); i++)
        set_top(&r, config_setting_get_elem(top, (unsigned)i));
    if (cfg->etag_manifest && cfg->etag_mode != NM_ETAG_CONTENT)
        say(&r, true, config_lookup(&c, "etag_manifest"), "etag_manifest needs etag = \"content\"");
    config_destroy(&c);
    return r.errors ? -EINVAL : 0;
}

int nm_configfile_warn_unreachable(const struct nm_config *cfg, nm_configfile_report_fn *report,
                                   void *arg)
{
    int n = 0;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        if (nm_config_glob_is_reachable(cfg->rules[i].glob))
            continue;
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "--cache-control rule \"%s\" never matches: a glob with '/' is matched against "
                 "the whole URL path, which starts with '/'",
                 cfg->rules[i].glob);
        report(arg, false, msg);
        n++;
    }
    return n;
}
