/* RFC 3629 §4's table of well-formed byte sequences, its edges on both sides. */
#include "notmod/utf8.h"

#include <criterion/criterion.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct utf8_case {
    const char *bytes;
    size_t want;
};

static void expect_cases(const struct utf8_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)cases[i].bytes;
        size_t len = strlen(cases[i].bytes);
        cr_expect_eq(nm_utf8_sequence_len(p, len), cases[i].want, "case %zu", i);
    }
}

Test(utf8, each_row_of_the_rfc_3629_table_is_well_formed_at_its_edges)
{
    static const struct utf8_case cases[] = {
        {"a", 1},
        {"\x7f", 1},
        {"\xc2\x80", 2},         /* U+0080 */
        {"\xdf\xbf", 2},         /* U+07FF */
        {"\xe0\xa0\x80", 3},     /* U+0800 */
        {"\xe1\x80\x80", 3},     /* U+1000 */
        {"\xed\x9f\xbf", 3},     /* U+D7FF, below the surrogates */
        {"\xee\x80\x80", 3},     /* U+E000, above them */
        {"\xef\xbf\xbf", 3},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4}, /* U+10000 */
        {"\xf3\xbf\xbf\xbf", 4}, /* U+FFFFF */
        {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"caf\xc3\xa9", 1},      /* one sequence at a time */
    };
    expect_cases(cases, N_OF(cases));
}

Test(utf8, overlong_forms_surrogates_and_code_points_past_10ffff_are_not)
{
    static const struct utf8_case cases[] = {
        {"\xc0\x80", 0},         /* overlong NUL */
        {"\xc1\xbf", 0},         /* overlong U+007F */
        {"\xe0\x9f\xbf", 0},     /* overlong U+07FF */
        {"\xed\xa0\x80", 0},     /* U+D800 */
        {"\xed\xbf\xbf", 0},     /* U+DFFF */
        {"\xf0\x8f\xbf\xbf", 0}, /* overlong U+FFFF */
        {"\xf4\x90\x80\x80", 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 0},
        {"\xff", 0},
        {"\x80", 0}, /* a continuation byte on its own */
        {"\xc3\x28", 0},
        {"\xe2\x82\x28", 0},
    };
    expect_cases(cases, N_OF(cases));
}

Test(utf8, a_sequence_cut_short_by_the_length_is_not_well_formed)
{
    const unsigned char euro[] = {0xe2, 0x82, 0xac};
    cr_expect_eq(nm_utf8_sequence_len(euro, 3), 3u);
    cr_expect_eq(nm_utf8_sequence_len(euro, 2), 0u);
    cr_expect_eq(nm_utf8_sequence_len(euro, 1), 0u);
}
