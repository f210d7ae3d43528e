/* Settings: the defaults every worker starts from, and the Cache-Control a path gets. */
#include "serve/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void add_rule(struct nm_config *cfg, const char *glob, const char *value)
{
    cfg->rules[cfg->n_rules].glob = strdup(glob);
    cfg->rules[cfg->n_rules].value = strdup(value);
    cfg->n_rules++;
}

Test(config, defaults_are_content_etags_rfc_dates_and_bounded_limits)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_expect_eq(cfg.etag_mode, NM_ETAG_CONTENT);
    cr_expect_eq(cfg.ims_mode, NM_IMS_RFC);
    cr_expect(cfg.prehash);
    cr_expect_eq(cfg.max_age, -1);
    cr_expect_eq(cfg.hash_threshold_bytes, 1u << 20);
    cr_expect_eq(cfg.small_file_bytes, 256u * 1024);
    cr_expect_eq(cfg.hold_budget_bytes, 64u << 20);
    cr_expect_eq(cfg.max_target_bytes, 8192u);
    cr_expect_eq(cfg.max_head_bytes, 32768u);
    cr_expect_eq(cfg.max_discard_bytes, 1u << 20);
    cr_expect_eq(cfg.header_timeout_ms, 10000u);
    cr_expect_eq(cfg.idle_timeout_ms, 60000u);
    cr_expect_null(cfg.access_log);
    nm_config_cleanup(&cfg);
}

Test(config, without_rules_or_max_age_every_path_is_no_cache)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    char buf[NM_CACHE_CONTROL_MAX + 1];
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/a.css", buf, sizeof(buf)), "no-cache");
    cfg.max_age = 3600;
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/a.css", buf, sizeof(buf)), "max-age=3600");
    nm_config_cleanup(&cfg);
}

Test(config, the_first_matching_rule_wins_and_a_glob_without_slash_matches_the_base_name)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cfg.max_age = 60;
    add_rule(&cfg, "/assets/*.css", "max-age=31536000, immutable");
    add_rule(&cfg, "*.css", "max-age=300");
    add_rule(&cfg, "*.html", "no-cache");
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"/assets/app.css", "max-age=31536000, immutable"},
        {"/assets/sub/app.css", "max-age=31536000, immutable"}, /* '*' crosses '/' */
        {"/other/app.css", "max-age=300"},
        {"/app.css", "max-age=300"},
        {"/deep/dir/app.css", "max-age=300"},
        {"/index.html", "no-cache"},
        {"/logo.svg", "max-age=60"},
    };
    char buf[NM_CACHE_CONTROL_MAX + 1];
    for (size_t i = 0; i < N_OF(cases); i++)
        cr_expect_str_eq(nm_config_cache_control(&cfg, cases[i].path, buf, sizeof(buf)),
                         cases[i].want, "%s", cases[i].path);
    nm_config_cleanup(&cfg);
}

Test(config, max_age_is_read_only_from_a_max_age_directive)
{
    static const struct {
        const char *value;
        int64_t want;
    } cases[] = {
        {"max-age=60", 60},
        {"public, max-age=5", 5},
        {"public,max-age=7, immutable", 7},
        {"public,\tmax-age=8", 8},
        {"s-maxage=5", -1},
        {"x-max-age=3", -1},
        {"max-age=", -1},
        {"max-age=abc", -1},
        {"no-cache", -1},
        {"", -1},
        {"max-age=0", 0},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        cr_expect_eq(nm_config_max_age_of(cases[i].value), cases[i].want, "%s", cases[i].value);
}

Test(config, an_overlong_max_age_stops_short_of_overflow)
{
    int64_t v = nm_config_max_age_of("max-age=99999999999999999999999999");
    cr_expect_gt(v, 0);
    cr_expect_lt(v, INT64_MAX);
}

Test(config, fields_the_server_owns_and_names_that_are_not_tokens_are_refused)
{
    static const char *const owned[] = {"content-length", "Transfer-Encoding", "ETag",
                                        "Last-Modified",  "Content-Encoding",  "Vary",
                                        "DATE",           "Connection",        "Cache-Control"};
    for (size_t i = 0; i < N_OF(owned); i++)
        cr_expect_not_null(nm_config_header_name_problem(owned[i]), "%s", owned[i]);
    cr_expect_not_null(nm_config_header_name_problem(""));
    cr_expect_not_null(nm_config_header_name_problem("X Bad"));
    cr_expect_not_null(nm_config_header_name_problem("X:Bad"));
    cr_expect_null(nm_config_header_name_problem("Access-Control-Allow-Origin"));
    cr_expect_null(nm_config_header_name_problem("Content-Security-Policy"));
    cr_expect(nm_config_header_value_is_safe("default-src 'self'\tx"));
    cr_expect_not(nm_config_header_value_is_safe("a\r\nSet-Cookie: x"));
    cr_expect_not(nm_config_header_value_is_safe("a\x7f"));
    char big[NM_HEADER_VALUE_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_expect_not(nm_config_header_value_is_safe(big));
    big[NM_HEADER_VALUE_MAX] = '\0';
    cr_expect(nm_config_header_value_is_safe(big));
}

Test(config, a_glob_with_a_slash_not_at_its_start_can_never_match)
{
    cr_expect_not(nm_config_glob_is_reachable("docs/*"));
    cr_expect_not(nm_config_glob_is_reachable("a/b"));
    cr_expect(nm_config_glob_is_reachable("/docs/*"));
    cr_expect(nm_config_glob_is_reachable("*/docs/*"));
    cr_expect(nm_config_glob_is_reachable("*.css"));
    cr_expect(nm_config_glob_is_reachable("?docs/x"));
}

Test(config, path_rules_give_cache_control_after_the_command_lines_rules)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    add_rule(&cfg, "*.css", "max-age=1");
    cfg.path_rules = calloc(2, sizeof(*cfg.path_rules));
    cfg.path_rules[0] = (struct nm_path_rule){.match = strdup("/a/"), .is_prefix = true};
    cfg.path_rules[1] =
        (struct nm_path_rule){.match = strdup("/a/*"), .cache_control = strdup("max-age=2")};
    cfg.n_path_rules = 2;
    char buf[NM_CACHE_CONTROL_MAX + 1];
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/a/x.css", buf, sizeof(buf)), "max-age=1");
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/a/x.js", buf, sizeof(buf)), "max-age=2");
    cr_expect_str_eq(nm_config_cache_control(&cfg, "/b/x.js", buf, sizeof(buf)), "no-cache");
    cr_expect(nm_config_rule_matches(&cfg.path_rules[0], "/a/"));
    cr_expect_not(nm_config_rule_matches(&cfg.path_rules[0], "/ab"));
    nm_config_cleanup(&cfg);
}

Test(config, a_service_keeps_its_privileges_and_takes_16384_connections_by_default)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_expect_eq(cfg.max_conns, 16384u);
    cr_expect_null(cfg.run_user);
    cr_expect_null(cfg.run_group);
    cfg.run_user = strdup("nobody");
    cfg.run_group = strdup("nogroup");
    nm_config_cleanup(&cfg); /* frees both: LeakSanitizer would say otherwise */
    cr_expect_null(cfg.run_user);
}

Test(config, the_etag_store_is_a_directory_xattr_or_off_and_never_empty)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_expect_eq(cfg.etag_store, NM_ETAG_STORE_DIR);
    cr_expect_eq(nm_config_set_etag_store(&cfg, "/var/cache/x"), 0);
    cr_expect_str_eq(cfg.etag_store_dir, "/var/cache/x");
    cr_expect_eq(nm_config_set_etag_store(&cfg, "xattr"), 0);
    cr_expect_eq(cfg.etag_store, NM_ETAG_STORE_XATTR);
    cr_expect_null(cfg.etag_store_dir);
    cr_expect_eq(nm_config_set_etag_store(&cfg, ""), -EINVAL);
    cr_expect_eq(cfg.etag_store, NM_ETAG_STORE_XATTR);
    cr_expect_eq(nm_config_set_etag_store(&cfg, "off"), 0);
    cr_expect_eq(cfg.etag_store, NM_ETAG_STORE_OFF);
    nm_config_cleanup(&cfg);
}

Test(config, a_cache_control_rule_is_glob_equals_a_safe_capped_value)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_assert_eq(nm_config_add_cache_rule(&cfg, "*.css=max-age=60, immutable"), 0);
    cr_assert_str_eq(cfg.rules[0].glob, "*.css");
    cr_assert_str_eq(cfg.rules[0].value, "max-age=60, immutable");
    const char *bad[] = {"no-equals", "=no-glob", "glob=", "a=x\r\nSet-Cookie: y", "a=\x7f"};
    for (size_t i = 0; i < N_OF(bad); i++)
        cr_assert_eq(nm_config_add_cache_rule(&cfg, bad[i]), -EINVAL, "%s", bad[i]);
    char long_rule[NM_CACHE_CONTROL_MAX + 8] = "a=";
    memset(long_rule + 2, 'x', NM_CACHE_CONTROL_MAX + 1);
    long_rule[NM_CACHE_CONTROL_MAX + 3] = '\0';
    cr_assert_eq(nm_config_add_cache_rule(&cfg, long_rule), -EMSGSIZE);
    while (cfg.n_rules < NM_CONFIG_MAX_RULES)
        cr_assert_eq(nm_config_add_cache_rule(&cfg, "x=no-store"), 0);
    cr_assert_eq(nm_config_add_cache_rule(&cfg, "y=no-store"), -ENOSPC);
    nm_config_cleanup(&cfg);
}

Test(config, etag_modes_are_four_words_and_a_version_must_make_a_strong_tag)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_assert_eq(nm_config_set_etag_mode(&cfg, "metadata"), 0);
    cr_assert_eq(cfg.etag_mode, NM_ETAG_METADATA);
    cr_assert_eq(nm_config_set_etag_mode(&cfg, "version:v1"), 0);
    cr_assert_eq(cfg.etag_mode, NM_ETAG_VERSION);
    cr_assert_str_eq(cfg.etag_version, "\"v1\"");
    cr_assert_eq(nm_config_set_etag_mode(&cfg, "version:a\"b"), -ERANGE);
    cr_assert_eq(nm_config_set_etag_mode(&cfg, "version:"), -ERANGE);
    cr_assert_eq(nm_config_set_etag_mode(&cfg, "Content"), -EINVAL);
    cr_assert_eq(cfg.etag_mode, NM_ETAG_VERSION, "a refused value changes nothing");
    cr_assert_str_eq(cfg.etag_version, "\"v1\"");
    nm_config_cleanup(&cfg);
}

Test(config, precompressed_is_a_list_of_coding_names_each_once_or_off)
{
    struct nm_config cfg;
    nm_config_init(&cfg);
    cr_assert_eq(nm_config_set_precompressed(&cfg, "gzip,br"), 0);
    cr_assert_eq(cfg.n_precompressed, 2);
    cr_assert_eq(cfg.precompressed[0], NM_CODING_GZIP);
    cr_assert_eq(nm_config_set_precompressed(&cfg, "br,br"), -EEXIST);
    const char *bad[] = {"", "br,", "BR", "identity", "x-gzip", "br zstd"};
    for (size_t i = 0; i < N_OF(bad); i++)
        cr_assert_eq(nm_config_set_precompressed(&cfg, bad[i]), -EINVAL, "%s", bad[i]);
    cr_assert_eq(cfg.n_precompressed, 2, "a refused value changes nothing");
    cr_assert_eq(nm_config_set_precompressed(&cfg, "off"), 0);
    cr_assert_eq(cfg.n_precompressed, 0);
    nm_config_cleanup(&cfg);
}
