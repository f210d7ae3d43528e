/* The config file reader: every setting, every problem named as FILE:LINE, warnings apart. */
#include "serve/configfile.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* What a load reported: errors and warnings, one per line. */
struct reports {
    char errors[8192];
    char warnings[4096];
    int n_errors, n_warnings;
};

static void collect(void *arg, bool is_error, const char *message)
{
    struct reports *r = arg;
    char *dst = is_error ? r->errors : r->warnings;
    size_t cap = is_error ? sizeof(r->errors) : sizeof(r->warnings);
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s\n", message);
    *(is_error ? &r->n_errors : &r->n_warnings) += 1;
}

static char path[64];

/* Writes text to a temporary file (its name in path) and loads it over cfg. */
static int load(struct nm_config *cfg, const char *text, struct reports *r)
{
    snprintf(path, sizeof(path), "/tmp/nm-configfile-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    memset(r, 0, sizeof(*r));
    int rc = nm_configfile_load(cfg, path, collect, r);
    unlink(path);
    return rc;
}

/* "PATH:LINE: what" for the file just loaded. */
static const char *at(int line, const char *what)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s:%d: %s", path, line, what);
    return buf;
}

Test(configfile, every_top_level_setting_sets_its_field)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    struct reports r;
    int rc = load(&cfg,
                  "root = \"/srv/www\";\n"
                  "listen = [\"127.0.0.1:8080\", \"[::1]:8080\"];\n"
                  "workers = 3;\n"
                  "etag = \"version:build-7\";\n"
                  "prehash = false;\n"
                  "hash_threshold = 4096;\n"
                  "if_modified_since = \"exact\";\n"
                  "max_age = 600;\n"
                  "expires = true;\n"
                  "precompressed = \"gzip,br\";\n"
                  "compress = false;\n"
                  "compress_max_size = 1000L;\n"
                  "compress_cache = 2000;\n"
                  "hold_size = 3000;\n"
                  "hold_budget = 4000000000L;\n"
                  "index = \"home.html\";\n"
                  "list_dirs = true;\n"
                  "dotfiles = \"allow\";\n"
                  "sendfile = \"all\";\n"
                  "follow_symlinks = \"all\";\n"
                  "access_log = \"/var/log/notmod.log\";\n"
                  "log_format = \"json\";\n"
                  "quiet = true;\n"
                  "timeouts = { header = 5; idle = 30; send = 40; drain = 25; };\n"
                  "error_pages = ( { status = 404; page = \"/404.html\"; },\n"
                  "                { status = 503; page = \"/busy.html\"; } );\n",
                  &r);
    cr_assert_eq(rc, 0, "%s", r.errors);
    cr_expect_str_eq(cfg.root, "/srv/www");
    cr_assert_eq(cfg.n_listen, 2);
    cr_expect_str_eq(cfg.listen[1], "[::1]:8080");
    cr_expect_eq(cfg.workers, 3);
    cr_expect_eq(cfg.etag_mode, NM_ETAG_VERSION);
    cr_expect_str_eq(cfg.etag_version, "\"build-7\"");
    cr_expect_not(cfg.prehash);
    cr_expect_eq(cfg.hash_threshold_bytes, 4096);
    cr_expect_eq(cfg.ims_mode, NM_IMS_EXACT);
    cr_expect_eq(cfg.max_age, 600);
    cr_expect(cfg.expires);
    cr_assert_eq(cfg.n_precompressed, 2);
    cr_expect_eq(cfg.precompressed[0], NM_CODING_GZIP);
    cr_expect_eq(cfg.precompressed[1], NM_CODING_BR);
    cr_expect_not(cfg.compress);
    cr_expect_eq(cfg.compress_max_bytes, 1000);
    cr_expect_eq(cfg.compress_cache_bytes, 2000);
    cr_expect_eq(cfg.small_file_bytes, 3000);
    cr_expect_eq(cfg.hold_budget_bytes, 4000000000u);
    cr_expect_str_eq(cfg.index_name, "home.html");
    cr_expect(cfg.list_dirs);
    cr_expect(cfg.allow_dotfiles);
    cr_expect_eq(cfg.sendfile, NM_SENDFILE_ALL);
    cr_expect(cfg.follow_all_symlinks);
    cr_expect_str_eq(cfg.access_log, "/var/log/notmod.log");
    cr_expect(cfg.access_log_set);
    cr_expect_eq(cfg.log_format, NM_LOG_JSON);
    cr_expect(cfg.quiet);
    cr_expect_eq(cfg.header_timeout_ms, 5000);
    cr_expect_eq(cfg.idle_timeout_ms, 30000);
    cr_expect_eq(cfg.send_timeout_ms, 40000);
    cr_expect_eq(cfg.shutdown_timeout_ms, 25000);
    cr_assert_eq(cfg.n_error_pages, 2);
    cr_expect_eq(cfg.error_pages[1].status, 503);
    cr_expect_str_eq(cfg.error_pages[1].path, "/busy.html");
    cr_expect_str_eq(cfg.config_file, path);
    nm_config_cleanup(&cfg);
}

Test(configfile, every_rule_setting_sets_its_field)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    struct reports r;
    int rc = load(&cfg,
                  "rules = (\n"
                  "  { match = \"/assets/*\"; cache_control = \"max-age=60\";\n"
                  "    headers = { Access-Control-Allow-Origin = \"*\"; X-Frame-Options = "
                  "\"DENY\"; };\n"
                  "    variants = false; listing = true; },\n"
                  "  { prefix = \"/app/\"; try_files = [\"$uri.html\", \"/app/index.html\"];\n"
                  "    error_pages = ( { status = 404; page = \"/app/404.html\"; } ); }\n"
                  ");\n",
                  &r);
    cr_assert_eq(rc, 0, "%s", r.errors);
    cr_assert_eq(cfg.n_path_rules, 2);
    const struct nm_path_rule *a = &cfg.path_rules[0], *b = &cfg.path_rules[1];
    cr_expect_str_eq(a->match, "/assets/*");
    cr_expect_not(a->is_prefix);
    cr_expect_eq(a->line, 2);
    cr_expect_str_eq(a->cache_control, "max-age=60");
    cr_assert_eq(a->n_headers, 2);
    cr_expect_str_eq(a->headers[0].name, "Access-Control-Allow-Origin");
    cr_expect_str_eq(a->headers[1].value, "DENY");
    cr_expect_eq(a->variants, 0);
    cr_expect_eq(a->listing, 1);
    cr_expect(b->is_prefix);
    cr_expect_str_eq(b->match, "/app/");
    cr_expect_eq(b->variants, -1);
    cr_expect_eq(b->listing, -1);
    cr_assert_eq(b->n_try_files, 2);
    cr_expect_str_eq(b->try_files[0], "$uri.html");
    cr_assert_eq(b->n_error_pages, 1);
    cr_expect_str_eq(b->error_pages[0].path, "/app/404.html");
    cr_expect(nm_config_rule_matches(b, "/app/x"));
    cr_expect_not(nm_config_rule_matches(b, "/apps"));
    char buf[NM_CACHE_CONTROL_MAX + 1];
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/assets/a.css", buf, sizeof(buf)),
                     "max-age=60");
    nm_config_cleanup(&cfg);
}

Test(configfile, a_file_read_over_settings_replaces_them_and_adds_its_rules)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cfg.listen[cfg.n_listen++] = strdup("127.0.0.1:1");
    cfg.root = strdup("/old");
    struct reports r;
    cr_assert_eq(load(&cfg, "listen = \"127.0.0.1:2\";\nrules = ( { match = \"*.css\"; } );\n", &r),
                 0);
    cr_assert_eq(load(&cfg, "rules = ( { prefix = \"/b/\"; } );\n", &r), 0);
    cr_assert_eq(cfg.n_listen, 1);
    cr_expect_str_eq(cfg.listen[0], "127.0.0.1:2");
    cr_expect_str_eq(cfg.root, "/old");
    cr_expect_eq(cfg.n_path_rules, 2);
    nm_config_cleanup(&cfg);
}

Test(configfile, every_problem_is_named_with_its_file_and_line)
{
    static const struct {
        const char *text;
        int line;
        const char *message;
    } cases[] = {
        {"a = ;\n", 1, "syntax error"},
        {"root = \"/a\";\nroot = \"/b\";\n", 2, "duplicate setting name"},
        {"\ncolour = 1;\n", 2, "unknown setting \"colour\""},
        {"root = 5;\n", 1, "root wants a string in double quotes"},
        {"listen = 8080;\n", 1, "listen wants \"HOST:PORT\" or a list of them"},
        {"listen = [];\n", 1, "listen wants 1 to 16 addresses"},
        {"listen = [1];\n", 1, "a list element wants a string"},
        {"workers = 0;\n", 1, "workers wants a whole number from 1 to 1024"},
        {"workers = \"2\";\n", 1, "workers wants a whole number"},
        {"etag = \"sometimes\";\n", 1, "etag wants \"content\""},
        {"etag = \"version:a\\\"b\";\n", 1, "etag wants"},
        {"prehash = 1;\n", 1, "prehash wants true or false"},
        {"hash_threshold = -1;\n", 1, "hash_threshold wants a whole number"},
        {"hold_size = 2000000000L;\n", 1, "hold_size wants a whole number from 0 to 1073741824"},
        {"if_modified_since = \"loose\";\n", 1, "if_modified_since wants rfc or exact"},
        {"max_age = -5;\n", 1, "max_age wants a whole number"},
        {"precompressed = \"br,lzma\";\n", 1, "precompressed wants a comma list"},
        {"precompressed = \"br,br\";\n", 1, "precompressed names a coding twice"},
        {"index = \"a/b.html\";\n", 1, "index wants a file name without '/'"},
        {"dotfiles = \"maybe\";\n", 1, "dotfiles wants deny or allow"},
        {"sendfile = \"maybe\";\n", 1, "sendfile wants off or on or all"},
        {"follow_symlinks = \"some\";\n", 1, "follow_symlinks wants inside or all"},
        {"log_format = \"xml\";\n", 1, "log_format wants combined or json"},
        {"timeouts = 5;\n", 1, "timeouts wants a group"},
        {"timeouts = {\n  lunch = 5; };\n", 2, "unknown timeout \"lunch\""},
        {"timeouts = { idle = 0; };\n", 1, "idle wants a whole number from 1 to 86400"},
        {"error_pages = 404;\n", 1, "error_pages wants a list"},
        {"error_pages = ( { status = 404; } );\n", 1,
         "an error page wants exactly status and page"},
        {"error_pages = ( { status = 200; page = \"/x\"; } );\n", 1,
         "status wants a whole number from 400 to 599"},
        {"error_pages = ( { status = 412; page = \"/x\"; } );\n", 1,
         "status 412 has no error page"},
        {"error_pages = ( { status = 404; page = \"x.html\"; } );\n", 1,
         "an error page is a URL path starting with '/'"},
        {"rules = 1;\n", 1, "rules wants a list"},
        {"rules = ( 1 );\n", 1, "a rule is a group"},
        {"rules = ( { cache_control = \"x\"; } );\n", 1, "a rule wants match"},
        {"rules = ( { match = \"/a\"; prefix = \"/b\"; } );\n", 1,
         "a rule has one match or one prefix"},
        {"rules = ( { match = \"/a\";\n  colour = 1; } );\n", 2, "unknown rule setting \"colour\""},
        {"rules = ( { match = \"/a\"; cache_control = \"\"; } );\n", 1,
         "cache_control wants 1 to 255"},
        {"rules = ( { match = \"/a\"; headers = 1; } );\n", 1, "headers wants a group"},
        {"rules = ( { match = \"/a\";\n headers = { ETag = \"x\"; }; } );\n", 2,
         "header ETag refused: the server sets this field itself"},
        {"rules = ( { match = \"/a\"; headers = { Cache-Control = \"x\"; }; } );\n", 1,
         "header Cache-Control refused: Cache-Control is set with cache_control"},
        {"rules = ( { match = \"/a\"; headers = { X-A = \"a\\nb\"; }; } );\n", 1,
         "header X-A: a value is at most 1024 bytes"},
        {"rules = ( { match = \"/a\"; headers = { A = \"1\"; B = \"2\"; C = \"3\"; D = \"4\"; "
         "E = \"5\"; F = \"6\"; G = \"7\"; H = \"8\"; I = \"9\"; J = \"10\"; K = \"11\"; "
         "L = \"12\"; M = \"13\"; N = \"14\"; O = \"15\"; P = \"16\"; Q = \"17\"; }; } );\n",
         1, "a rule has at most 16 fields of 8192 bytes in all"},
        {"rules = ( { match = \"/a\"; headers = { X-A = 1; }; } );\n", 1, "X-A wants a string"},
        {"rules = ( { match = \"/a\"; variants = \"no\"; } );\n", 1,
         "variants wants true or false"},
        {"rules = ( { match = \"/a\"; try_files = []; } );\n", 1,
         "try_files wants a list of 1 to 4 paths"},
        {"rules = ( { match = \"/a\"; try_files = [\"a.html\"]; } );\n", 1,
         "try_files entries start with '/' or $uri"},
        {"rules = ( { match = \"/a\"; try_files = [\"$uri$x\"]; } );\n", 1,
         "try_files knows only $uri"},
        {"etag = \"metadata\";\netag_manifest = \"/m\";\n", 2,
         "etag_manifest needs etag = \"content\""},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        struct nm_config cfg;
        nm_config_init(&cfg);
        struct reports r;
        cr_expect_eq(load(&cfg, cases[i].text, &r), -EINVAL, "%s", cases[i].text);
        cr_expect(strstr(r.errors, at(cases[i].line, cases[i].message)) != NULL,
                  "%s: want %s, got %s", cases[i].text, at(cases[i].line, cases[i].message),
                  r.errors);
        nm_config_cleanup(&cfg);
    }
}

Test(configfile, every_problem_of_a_file_is_reported_not_only_the_first)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    struct reports r;
    cr_expect_eq(load(&cfg, "workers = 0;\ncolour = 1;\nprehash = 2;\n", &r), -EINVAL);
    cr_expect_eq(r.n_errors, 3, "%s", r.errors);
    nm_config_cleanup(&cfg);
}

Test(configfile, a_file_that_cannot_be_read_is_its_errno)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    struct reports r = {0};
    cr_expect_eq(nm_configfile_load(&cfg, "/nonexistent/notmod.conf", collect, &r), -ENOENT);
    cr_expect_str_eq(r.errors, "/nonexistent/notmod.conf: No such file or directory\n");
    nm_config_cleanup(&cfg);
}

Test(configfile, a_rule_that_can_never_match_is_a_warning_naming_it)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    struct reports r;
    int rc = load(&cfg,
                  "rules = (\n  { match = \"docs/*\"; },\n  { prefix = \"api/\"; },\n"
                  "  { match = \"*.css\"; },\n  { match = \"*/docs/*\"; }\n);\n",
                  &r);
    cr_expect_eq(rc, 0, "%s", r.errors);
    cr_expect_eq(r.n_warnings, 2, "%s", r.warnings);
    cr_expect(strstr(r.warnings, at(2, "rule \"docs/*\" never matches")) != NULL, "%s", r.warnings);
    cr_expect(strstr(r.warnings, at(3, "rule \"api/\" never matches")) != NULL, "%s", r.warnings);
    nm_config_cleanup(&cfg);
}

Test(configfile, unreachable_cache_control_options_are_warned_about)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cfg.rules[0] = (struct nm_cache_rule){strdup("docs/*"), strdup("private")};
    cfg.rules[1] = (struct nm_cache_rule){strdup("/docs/*"), strdup("private")};
    cfg.rules[2] = (struct nm_cache_rule){strdup("*.html"), strdup("no-cache")};
    cfg.n_rules = 3;
    struct reports r = {0};
    cr_expect_eq(nm_configfile_warn_unreachable(&cfg, collect, &r), 1);
    cr_expect(strstr(r.warnings, "--cache-control rule \"docs/*\" never matches") != NULL);
    nm_config_cleanup(&cfg);
}
