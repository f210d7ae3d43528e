/* JSON string escaping (RFC 8259 §7): UTF-8 kept, controls and invalid bytes escaped. */
#include <criterion/criterion.h>
#include <string.h>

#include "notmod/json.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct json_case {
    const char *in;
    size_t in_len;
    const char *out;
};

/* The length is taken from the literal, so an embedded NUL is part of the input. */
#define CASE(in, out)                                                                              \
    {                                                                                              \
        (in), sizeof(in) - 1, (out)                                                                \
    }

static void expect_escape(const struct json_case *c)
{
    char out[256];
    size_t used = 99;
    size_t n = nm_json_escape(nm_slice_make(c->in, c->in_len), out, sizeof(out), &used);
    cr_expect_eq(used, c->in_len, "consumed %zu of %zu for \"%s\"", used, c->in_len, c->out);
    cr_expect_eq(n, strlen(c->out), "length %zu for \"%s\"", n, c->out);
    cr_expect(n == strlen(c->out) && memcmp(out, c->out, n) == 0, "got \"%.*s\", want \"%s\"",
              (int)n, out, c->out);
}

Test(json, valid_utf8_is_copied_as_it_is)
{
    static const struct json_case cases[] = {
        CASE("", ""),
        CASE("plain ascii /index.html?a=1", "plain ascii /index.html?a=1"),
        CASE("caf\xc3\xa9", "caf\xc3\xa9"),           /* U+00E9 */
        CASE("\xc2\xa0", "\xc2\xa0"),                 /* U+00A0, the first after C1 */
        CASE("\xe2\x82\xac", "\xe2\x82\xac"),         /* U+20AC */
        CASE("\xe0\xa0\x80", "\xe0\xa0\x80"),         /* U+0800, shortest 3 bytes */
        CASE("\xed\x9f\xbf", "\xed\x9f\xbf"),         /* U+D7FF, just below surrogates */
        CASE("\xee\x80\x80", "\xee\x80\x80"),         /* U+E000, just above them */
        CASE("\xef\xbf\xbf", "\xef\xbf\xbf"),         /* U+FFFF */
        CASE("\xf0\x90\x80\x80", "\xf0\x90\x80\x80"), /* U+10000, shortest 4 bytes */
        CASE("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"), /* U+1F600 */
        CASE("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"), /* U+10FFFF, the last */
        CASE("/\xd0\xbf\xd1\x83\xd1\x82\xd1\x8c", "/\xd0\xbf\xd1\x83\xd1\x82\xd1\x8c"),
        CASE("~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}"),
    };
    for (size_t i = 0; i < N(cases); i++)
        expect_escape(&cases[i]);
}

Test(json, quote_backslash_and_controls_are_escaped)
{
    static const struct json_case cases[] = {
        CASE("a\"b", "a\\\"b"),
        CASE("a\\b", "a\\\\b"),
        CASE("\b\t\n\f\r", "\\b\\t\\n\\f\\r"),
        CASE("\0", "\\u0000"),
        CASE("\x01\x1b[31m", "\\u0001\\u001b[31m"),
        CASE("\x1f", "\\u001f"),
        CASE("\x7f", "\\u007f"),
        CASE("\xc2\x80", "\\u0080"), /* the C1 controls */
        CASE("\xc2\x85", "\\u0085"),
        CASE("\xc2\x9b", "\\u009b"),
        CASE("\xc2\x9f", "\\u009f"),
        CASE("/", "/"), /* no need to escape the solidus */
    };
    for (size_t i = 0; i < N(cases); i++)
        expect_escape(&cases[i]);
}

Test(json, invalid_bytes_become_lone_low_surrogates)
{
    static const struct json_case cases[] = {
        CASE("\xff", "\\udcff"),
        CASE("\x80", "\\udc80"),                                  /* lone continuation */
        CASE("caf\xe9", "caf\\udce9"),                            /* Latin-1, not UTF-8 */
        CASE("\xc0\xaf", "\\udcc0\\udcaf"),                       /* overlong '/' */
        CASE("\xc1\xbf", "\\udcc1\\udcbf"),                       /* overlong */
        CASE("\xe0\x80\xaf", "\\udce0\\udc80\\udcaf"),            /* overlong 3 bytes */
        CASE("\xf0\x80\x80\xaf", "\\udcf0\\udc80\\udc80\\udcaf"), /* overlong 4 bytes */
        CASE("\xed\xa0\x80", "\\udced\\udca0\\udc80"),            /* U+D800 */
        CASE("\xed\xbf\xbf", "\\udced\\udcbf\\udcbf"),            /* U+DFFF */
        CASE("\xf4\x90\x80\x80", "\\udcf4\\udc90\\udc80\\udc80"), /* U+110000 */
        CASE("\xf5\x80\x80\x80", "\\udcf5\\udc80\\udc80\\udc80"), /* beyond any plane */
        CASE("\xe2\x82", "\\udce2\\udc82"),                       /* cut short at the end */
        CASE("\xe2\x82x", "\\udce2\\udc82x"),                     /* cut short before ASCII */
        CASE("\xe2\xe2\x82\xac", "\\udce2\xe2\x82\xac"),          /* resumes at a lead byte */
        CASE("\xf0\x9f\x98", "\\udcf0\\udc9f\\udc98"),            /* 3 of 4 bytes */
        CASE("a\xfe\xff!", "a\\udcfe\\udcff!"),
    };
    for (size_t i = 0; i < N(cases); i++)
        expect_escape(&cases[i]);
}

Test(json, no_high_surrogate_is_ever_written)
{
    /* Every byte value, alone and after every lead byte: no output holds \ud8..\udb. */
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            char in[2] = {(char)a, (char)b};
            char out[2 * NM_JSON_ESCAPE_MAX + 1];
            size_t used;
            size_t n = nm_json_escape(nm_slice_make(in, 2), out, sizeof(out) - 1, &used);
            cr_assert_eq(used, 2);
            out[n] = '\0';
            cr_assert_null(strstr(out, "\\ud8"));
            cr_assert_null(strstr(out, "\\ud9"));
            cr_assert_null(strstr(out, "\\uda"));
            cr_assert_null(strstr(out, "\\udb"));
        }
    }
}

Test(json, each_byte_takes_at_most_the_longest_escape)
{
    char in[256], out[256 * NM_JSON_ESCAPE_MAX];
    for (unsigned i = 0; i < 256; i++)
        in[i] = (char)(255 - i);
    size_t used;
    size_t n = nm_json_escape(nm_slice_make(in, sizeof(in)), out, sizeof(out), &used);
    cr_expect_eq(used, sizeof(in));
    cr_expect_leq(n, sizeof(in) * NM_JSON_ESCAPE_MAX);
}

Test(json, stops_before_a_character_that_does_not_fit)
{
    char out[8];
    size_t used;
    /* "é" needs 2 bytes: 1 byte of room writes nothing rather than half a character. */
    cr_expect_eq(nm_json_escape(NM_SLICE_LIT("\xc3\xa9"), out, 1, &used), 0);
    cr_expect_eq(used, 0);
    /* An escape is never cut either. */
    cr_expect_eq(nm_json_escape(NM_SLICE_LIT("a\xff"), out, 5, &used), 1);
    cr_expect_eq(used, 1);
    cr_expect_eq(nm_json_escape(NM_SLICE_LIT("a\"b"), out, 2, &used), 1);
    cr_expect_eq(used, 1);
    cr_expect_eq(nm_json_escape(NM_SLICE_LIT("abc"), out, 0, &used), 0);
    cr_expect_eq(used, 0);
}

Test(json, chunks_of_the_longest_escape_make_progress_and_join_to_the_whole)
{
    static const char in[] = "caf\xc3\xa9 \"q\" \xff\x01 \xf0\x9f\x98\x80\xe2\x82 end\xc2\x85";
    char whole[sizeof(in) * NM_JSON_ESCAPE_MAX], joined[sizeof(in) * NM_JSON_ESCAPE_MAX];
    size_t used;
    size_t whole_len =
        nm_json_escape(nm_slice_make(in, sizeof(in) - 1), whole, sizeof(whole), &used);
    cr_assert_eq(used, sizeof(in) - 1);
    size_t off = 0, len = 0;
    for (int rounds = 0; off < sizeof(in) - 1; rounds++) {
        cr_assert_lt(rounds, (int)sizeof(in));
        len += nm_json_escape(nm_slice_make(in + off, sizeof(in) - 1 - off), joined + len,
                              NM_JSON_ESCAPE_MAX, &used);
        cr_assert_gt(used, 0);
        off += used;
    }
    cr_expect_eq(len, whole_len);
    cr_expect(memcmp(joined, whole, len) == 0);
}
