/* Request-path normalization: decoding, dot segments, limits, hidden paths and re-encoding. */
#include "notmod/path.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct path_case {
    const char *in;
    size_t in_len;
    const char *out; /* NULL when err is expected */
    int err;
};

/* The length is taken from the literal, so an embedded NUL is part of the target. */
#define OK(in, out)                                                                                \
    {                                                                                              \
        (in), sizeof(in) - 1, (out), 0                                                             \
    }
#define BAD(in, err)                                                                               \
    {                                                                                              \
        (in), sizeof(in) - 1, NULL, (err)                                                          \
    }

static const struct path_case plain_cases[] = {
    OK("/", "/"),
    OK("/index.html", "/index.html"),
    OK("/a/b/c", "/a/b/c"),
    OK("/dir/", "/dir/"),
    OK("/a?x=1", "/a"),
    OK("/a/?x=../../etc", "/a/"),
    OK("/?", "/"),
    OK("/a?b?c", "/a"),
    OK("/a?%zz", "/a"),
    OK("/a%20b", "/a b"),
    OK("/caf%C3%A9", "/caf\xC3\xA9"),
    OK("/caf%c3%a9", "/caf\xC3\xA9"),
    OK("/%7Euser", "/~user"),
    OK("/a%41", "/aA"),
    OK("/a%3Fb", "/a?b"),
    OK("/a%23b", "/a#b"),
    OK("/100%25", "/100%"),
    OK("/a%2Cb", "/a,b"),
    OK("/a/b/..", "/a/"),
    OK("/a/b/.", "/a/b/"),
    OK("/a/./b", "/a/b"),
    OK("//a///b//", "/a/b/"),
    OK("/a/b/c/./../../g", "/a/g"),
    OK("/mid/content=5/../6", "/mid/6"),
    OK("/.well-known/acme-challenge/x", "/.well-known/acme-challenge/x"),
    OK("/...", "/..."),
    OK("/a..b", "/a..b"),
    OK("/..a", "/..a"),
    OK("/a./b.", "/a./b."),
    OK("/a/b;c=d", "/a/b;c=d"),
    OK("/\xC3\xA9t\xC3\xA9", "/\xC3\xA9t\xC3\xA9"),
    OK("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
    OK("/a\"<>`{}|^[]", "/a\"<>`{}|^[]"),

    BAD("", -EINVAL),
    BAD("a/b", -EINVAL),
    BAD("*", -EINVAL),
    BAD("?x", -EINVAL),
    BAD("http://example.com/a", -EINVAL),
    BAD("%2Fetc/passwd", -EINVAL),
    BAD("/a b", -EINVAL),
    BAD("/a#frag", -EINVAL),
    BAD("/a?q#frag", -EINVAL),
    BAD("/a\tb", -EINVAL),
    BAD("/a\r\n", -EINVAL),
    BAD("/a\x7f", -EINVAL),
    BAD("/a?q=\x01", -EINVAL),
    BAD("/a?q= ", -EINVAL),
    BAD("/a%G1", -EINVAL),
    BAD("/a%1G", -EINVAL),
    BAD("/a%4", -EINVAL),
    BAD("/a%", -EINVAL),
    BAD("/a%4?x", -EINVAL),
    BAD("/a%?41", -EINVAL),
    BAD("/a%%41", -EINVAL),
    BAD("/a% 1", -EINVAL),
    BAD("/a%0a", -EINVAL),
    BAD("/a%0D%0Ab", -EINVAL),
    BAD("/a%7F", -EINVAL),
    BAD("/a%1b", -EINVAL),
    BAD("/a%09", -EINVAL),
    BAD("/a%2Fb", -EINVAL),
    BAD("/a%2fb", -EINVAL),
    BAD("/a%00.html", -EINVAL),
    BAD("/a\0b", -EINVAL),
    BAD("/\0", -EINVAL),
};

/* Each of these tries to reach outside the root or to smuggle a separator. */
static const struct path_case traversal_cases[] = {
    OK("/../etc/passwd", "/etc/passwd"),
    OK("/%2e%2e/etc/passwd", "/etc/passwd"),
    BAD("/%2E%2E%2Fetc", -EINVAL),
    BAD("/..%2f..%2fetc", -EINVAL),
    BAD("/..%2F..%2Fetc%2Fpasswd", -EINVAL),
    BAD("/%2e%2e%2f", -EINVAL),
    OK("/.%2e/", "/"),
    OK("/%2e./", "/"),
    OK("/.%2E", "/"),
    OK("/%2E%2e/%2e%2E/etc", "/etc"),
    /* Decoded once only: the literal name "%2e%2e" is harmless. */
    OK("/%252e%252e/", "/%2e%2e/"),
    OK("/%252e%252e/%252e%252e/etc", "/%2e%2e/%2e%2e/etc"),
    OK("/..%252f..%252fetc", "/..%2f..%2fetc"),
    OK("/%25%32%65%25%32%65/", "/%2e%2e/"),
    OK("/a/../../b", "/b"),
    OK("/./././", "/"),
    OK("/..;/", "/..;/"),
    OK("/%2e%2e;/etc", "/..;/etc"),
    /* A backslash is an ordinary byte on Linux, never a separator. */
    OK("/\\..\\", "/\\..\\"),
    OK("/..\\..\\etc\\passwd", "/..\\..\\etc\\passwd"),
    OK("/%5c..%5c", "/\\..\\"),
    OK("/..%5c..%5cetc", "/..\\..\\etc"),
    /* Overlong UTF-8 for '.' and '/' stays bytes, never dots or separators. */
    OK("/%c0%ae%c0%ae/etc", "/\xC0\xAE\xC0\xAE/etc"),
    OK("/%C0%AE%C0%AE%C0%AFetc", "/\xC0\xAE\xC0\xAE\xC0\xAF"
                                 "etc"),
    OK("/%e0%80%ae%e0%80%ae/", "/\xE0\x80\xAE\xE0\x80\xAE/"),
    BAD("/%u002e%u002e/etc", -EINVAL),
    BAD("/%U002E", -EINVAL),
    BAD("/..%00/etc", -EINVAL),
    BAD("/%2e%2e%00", -EINVAL),
    BAD("/..\0/etc", -EINVAL),
    OK("/a/%2e%2e", "/"),
    OK("/a/b/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"),
    OK("/..", "/"),
    OK("/../", "/"),
    OK("/../../../../", "/"),
    OK("//../etc", "/etc"),
    OK("/..//..//etc", "/etc"),
    OK("/a/..?/../etc", "/"),
    OK("/%2e", "/"),
    OK("/%2e%2e%2e", "/..."),
    OK("/.../../etc", "/etc"),
    OK("/a/./../b/./../c", "/c"),
    OK("/a/b/../../../../c/./d/..", "/c/"),
    OK("/%2E%2E/%2e%2E/%2E%2e/%2e%2e/etc/shadow", "/etc/shadow"),
    BAD("/..#/etc", -EINVAL),
    BAD("/.. /etc", -EINVAL),
    BAD("\\..\\etc", -EINVAL),
    BAD("../etc/passwd", -EINVAL),
    BAD(".%2e/etc/passwd", -EINVAL),
};

/* An output that no file lookup beneath the root can turn into an escape. */
static void assert_safe_output(const char *in, const char *out, int len)
{
    cr_assert_gt(len, 0, "%s", in);
    cr_assert_eq(strlen(out), (size_t)len, "embedded NUL for %s", in);
    cr_assert_eq(out[0], '/', "%s", in);
    cr_assert_null(strstr(out, "//"), "%s -> %s", in, out);
    cr_assert_null(strstr(out, "/./"), "%s -> %s", in, out);
    cr_assert_null(strstr(out, "/../"), "%s -> %s", in, out);
    size_t n = (size_t)len;
    cr_assert(!(n >= 2 && strcmp(out + n - 2, "/.") == 0), "%s -> %s", in, out);
    cr_assert(!(n >= 3 && strcmp(out + n - 3, "/..") == 0), "%s -> %s", in, out);
}

static void run_cases(const struct path_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct path_case *c = &cases[i];
        char out[NM_PATH_MAX + 1];
        int rc = nm_path_normalize(nm_slice_make(c->in, c->in_len), out, sizeof(out));
        if (c->out == NULL) {
            cr_expect_eq(rc, c->err, "case %zu \"%s\": got %d", i, c->in, rc);
            continue;
        }
        cr_expect_eq(rc, (int)strlen(c->out), "case %zu \"%s\": got %d", i, c->in, rc);
        if (rc >= 0) {
            cr_expect_str_eq(out, c->out, "case %zu \"%s\"", i, c->in);
            assert_safe_output(c->in, out, rc);
        }
    }
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

Test(path, normalizes_the_table_of_plain_targets)
{
    run_cases(plain_cases, N_OF(plain_cases));
}

Test(path, never_lets_a_traversal_encoding_escape_the_root)
{
    cr_assert_geq(N_OF(traversal_cases), 30);
    run_cases(traversal_cases, N_OF(traversal_cases));
}

Test(path, every_success_is_a_fixed_point_of_encode_then_normalize)
{
    const struct path_case *tables[] = {plain_cases, traversal_cases};
    size_t sizes[] = {N_OF(plain_cases), N_OF(traversal_cases)};
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
            const struct path_case *c = &tables[t][i];
            char out[NM_PATH_MAX + 1], enc[3 * NM_PATH_MAX + 1], again[NM_PATH_MAX + 1];
            int rc = nm_path_normalize(nm_slice_make(c->in, c->in_len), out, sizeof(out));
            if (rc < 0)
                continue;
            int elen = nm_path_encode(out, enc, sizeof(enc));
            cr_assert_geq(elen, rc, "%s", c->in);
            int rc2 = nm_path_normalize(nm_slice_make(enc, (size_t)elen), again, sizeof(again));
            cr_assert_eq(rc2, rc, "%s -> %s -> %s", c->in, out, enc);
            cr_assert_str_eq(again, out, "%s -> %s", c->in, enc);
        }
    }
}

Test(path, accepts_exactly_nm_path_max_bytes)
{
    static char in[NM_PATH_MAX + 2];
    static char out[NM_PATH_MAX + 2];
    memset(in, 'a', sizeof(in));
    in[0] = '/';

    int rc = nm_path_normalize(nm_slice_make(in, NM_PATH_MAX), out, sizeof(out));
    cr_assert_eq(rc, NM_PATH_MAX);
    cr_assert_eq(out[NM_PATH_MAX], '\0');

    rc = nm_path_normalize(nm_slice_make(in, NM_PATH_MAX + 1), out, sizeof(out));
    cr_assert_eq(rc, -ENAMETOOLONG);
}

Test(path, counts_the_kept_trailing_slash_against_the_limit)
{
    static char in[NM_PATH_MAX + 2];
    static char out[NM_PATH_MAX + 2];
    memset(in, 'a', sizeof(in));
    in[0] = '/';
    in[NM_PATH_MAX - 1] = '/';
    cr_assert_eq(nm_path_normalize(nm_slice_make(in, NM_PATH_MAX), out, sizeof(out)), NM_PATH_MAX);
    in[NM_PATH_MAX - 1] = 'a';
    in[NM_PATH_MAX] = '/';
    cr_assert_eq(nm_path_normalize(nm_slice_make(in, NM_PATH_MAX + 1), out, sizeof(out)),
                 -ENAMETOOLONG);
}

Test(path, measures_the_limit_after_decoding)
{
    /* 4095 escapes of 'a' decode to 4095 bytes: with the leading '/', exactly NM_PATH_MAX. */
    size_t n = 1 + 3 * (NM_PATH_MAX - 1);
    char *in = malloc(n + 3);
    cr_assert_not_null(in);
    in[0] = '/';
    for (size_t i = 1; i < n; i += 3)
        memcpy(in + i, "%61", 3);
    static char out[NM_PATH_MAX + 1];
    cr_assert_eq(nm_path_normalize(nm_slice_make(in, n), out, sizeof(out)), NM_PATH_MAX);
    memcpy(in + n, "%61", 3);
    cr_assert_eq(nm_path_normalize(nm_slice_make(in, n + 3), out, sizeof(out)), -ENAMETOOLONG);
    free(in);
}

Test(path, refuses_a_path_too_long_while_dot_segments_are_removed)
{
    static char in[NM_PATH_MAX + 8];
    static char out[NM_PATH_MAX + 1];
    memset(in, 'a', sizeof(in));
    in[0] = '/';
    memcpy(in + NM_PATH_MAX + 1, "/..", 3);
    cr_assert_eq(nm_path_normalize(nm_slice_make(in, NM_PATH_MAX + 4), out, sizeof(out)),
                 -ENAMETOOLONG);
}

Test(path, honours_a_cap_smaller_than_nm_path_max)
{
    char out[8];
    struct nm_slice abc = NM_SLICE_LIT("/abc");
    cr_assert_eq(nm_path_normalize(abc, out, 5), 4);
    cr_assert_str_eq(out, "/abc");
    cr_assert_eq(nm_path_normalize(abc, out, 4), -ENAMETOOLONG);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/abc/"), out, 5), -ENAMETOOLONG);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/abc/.."), out, 2), -ENAMETOOLONG);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/"), out, 2), 1);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/"), out, 1), -ENAMETOOLONG);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/"), out, 0), -ENAMETOOLONG);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/%61%62%63"), out, 5), 4);
    cr_assert_str_eq(out, "/abc");
}

Test(path, leaves_out_unwritten_on_failure)
{
    char out[16];
    memset(out, 'X', sizeof(out));
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/abc/%2Fdef"), out, sizeof(out)), -EINVAL);
    cr_assert_eq(nm_path_normalize(NM_SLICE_LIT("/abcdefghijklmnop"), out, sizeof(out)),
                 -ENAMETOOLONG);
    for (size_t i = 0; i < sizeof(out); i++)
        cr_assert_eq(out[i], 'X');
}

struct hidden_case {
    const char *path;
    bool hidden;
};

Test(path, is_hidden_flags_dot_segments_except_root_well_known)
{
    static const struct hidden_case cases[] = {
        {"/", false},
        {"/index.html", false},
        {"/a/b.c/d", false},
        {"/a.", false},
        {"/.env", true},
        {"/.git/config", true},
        {"/a/.htaccess", true},
        {"/a/.hidden/", true},
        {"/..;", true},
        {"/...", true},
        {"/.well-known/acme-challenge/t", false},
        {"/.well-known/", false},
        {"/.well-known", false},
        {"/.well-known/.secret", true},
        {"/a/.well-known/x", true},
        {"/.well-knownx/", true},
        {"/.well-know/", true},
        {"/.WELL-KNOWN/", true},
    };
    for (size_t i = 0; i < N_OF(cases); i++)
        cr_expect_eq(nm_path_is_hidden(cases[i].path), cases[i].hidden, "%s", cases[i].path);
}

struct encode_case {
    const char *in;
    const char *out;
};

Test(path, encode_keeps_pchar_and_escapes_the_rest)
{
    static const struct encode_case cases[] = {
        {"/", "/"},
        {"/a/b.html", "/a/b.html"},
        {"/AZaz09-._~", "/AZaz09-._~"},
        {"/!$&'()*+,;=:@", "/!$&'()*+,;=:@"},
        {"/a b", "/a%20b"},
        {"/100%", "/100%25"},
        {"/a?b#c", "/a%3Fb%23c"},
        {"/caf\xC3\xA9", "/caf%C3%A9"},
        {"/\"<>\\^`{|}[]", "/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"},
        {"/%2e%2e/", "/%252e%252e/"},
        {"/\x7f\x01", "/%7F%01"},
        {"", ""},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char out[64];
        int rc = nm_path_encode(cases[i].in, out, sizeof(out));
        cr_expect_eq(rc, (int)strlen(cases[i].out), "%s", cases[i].in);
        if (rc >= 0)
            cr_expect_str_eq(out, cases[i].out, "%s", cases[i].in);
    }
}

Test(path, encode_refuses_a_short_buffer_and_leaves_it_unwritten)
{
    char out[8];
    memset(out, 'X', sizeof(out));
    cr_assert_eq(nm_path_encode("/a b", out, 6), -ENOSPC);
    cr_assert_eq(nm_path_encode("/abcdefgh", out, sizeof(out)), -ENOSPC);
    cr_assert_eq(nm_path_encode("/", out, 0), -ENOSPC);
    cr_assert_eq(nm_path_encode("/", out, 1), -ENOSPC);
    for (size_t i = 0; i < sizeof(out); i++)
        cr_assert_eq(out[i], 'X');
    cr_assert_eq(nm_path_encode("/a b", out, 7), 6);
    cr_assert_str_eq(out, "/a%20b");
}
