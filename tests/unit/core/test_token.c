/* The token grammar: tchar, OWS and token (RFC 9110 §5.6.2, §5.6.3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "notmod/token.h"

Test(token, tchar_is_exactly_the_rfc_9110_set)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (unsigned c = 0; c < 256; c++) {
        bool want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c != 0 && c < 0x80 && strchr(extra, (int)c) != NULL);
        cr_expect_eq(nm_token_is_tchar((unsigned char)c), want, "byte 0x%02x", c);
    }
}

Test(token, delimiters_controls_and_non_ascii_are_not_tchars)
{
    static const char delims[] = "\"(),/:;<=>?@[\\]{} \t";
    for (size_t i = 0; i < sizeof(delims) - 1; i++)
        cr_expect_not(nm_token_is_tchar((unsigned char)delims[i]), "'%c'", delims[i]);
    cr_expect_not(nm_token_is_tchar(0));
    cr_expect_not(nm_token_is_tchar(0x7f));
    cr_expect_not(nm_token_is_tchar(0x80));
    cr_expect_not(nm_token_is_tchar(0xff));
}

Test(token, ows_is_space_and_tab_only)
{
    for (unsigned c = 0; c < 256; c++)
        cr_expect_eq(nm_token_is_ows((unsigned char)c), c == ' ' || c == '\t', "byte 0x%02x", c);
}

Test(token, token_is_one_or_more_tchars)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"GET", true},  {"max-age", true}, {"x!#$%&'*+-.^_`|~", true}, {"", false},
        {"a b", false}, {"a,b", false},    {"\"q\"", false},           {"a\tb", false},
        {"a=1", false}, {"\x80", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(nm_token_is_token(nm_slice_from_cstr(cases[i].s)), cases[i].ok, "\"%s\"",
                     cases[i].s);
    cr_expect_not(nm_token_is_token(nm_slice_make(NULL, 0)));
    cr_expect_not(nm_token_is_token(nm_slice_make("a\0b", 3)));
}

/* Joins the elements nm_token_list_next yields with '|' to compare them as one string. */
static void list_elements(const char *list, char *out, size_t cap)
{
    struct nm_slice l = nm_slice_from_cstr(list), e;
    size_t pos = 0, n = 0;
    out[0] = '\0';
    for (size_t k = 0; nm_token_list_next(l, &pos, &e); k++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", k ? "|" : "", (int)e.len, e.ptr);
        cr_assert_lt(n, cap);
    }
}

Test(token, list_elements_are_trimmed_and_empty_ones_kept)
{
    static const struct {
        const char *list, *want;
    } cases[] = {
        {"", ""},
        {"a", "a"},
        {"a,b", "a|b"},
        {" a ,\tb\t, c", "a|b|c"},
        {"a,,b", "a||b"},
        {",a", "|a"},
        {"a,", "a|"},
        {" , ", "|"},
        {"chunked, gzip", "chunked|gzip"},
        {"a b , c", "a b|c"},
    };
    char got[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        list_elements(cases[i].list, got, sizeof(got));
        cr_expect_str_eq(got, cases[i].want, "list \"%s\"", cases[i].list);
    }
}

Test(token, list_of_n_commas_has_n_plus_one_elements_borrowed_from_the_list)
{
    static const char buf[] = ",,";
    struct nm_slice l = nm_slice_make(buf, 2), e;
    size_t pos = 0, n = 0;
    while (nm_token_list_next(l, &pos, &e)) {
        cr_expect_eq(e.len, 0);
        cr_expect(e.ptr >= buf && e.ptr <= buf + 2);
        n++;
    }
    cr_expect_eq(n, 3);
    cr_expect_not(nm_token_list_next(l, &pos, &e), "a used-up list stays used up");
    pos = 0;
    cr_expect(nm_token_list_next(nm_slice_make(NULL, 0), &pos, &e));
    cr_expect_eq(e.len, 0);
    cr_expect_not(nm_token_list_next(nm_slice_make(NULL, 0), &pos, &e));
}

Test(token, list_has_compares_whole_elements_case_insensitively)
{
    static const struct {
        const char *list, *token;
        bool has;
    } cases[] = {
        {"close", "close", true},           {"keep-alive, Close", "close", true},
        {" CLOSE ", "close", true},         {"closed", "close", false},
        {"x-close", "close", false},        {"", "close", false},
        {"gzip, chunked", "chunked", true}, {"\"close\"", "close", false},
        {",,close,,", "close", true},       {"a b, close", "a", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(nm_token_list_has(nm_slice_from_cstr(cases[i].list),
                                       nm_slice_from_cstr(cases[i].token)),
                     cases[i].has, "\"%s\" has \"%s\"", cases[i].list, cases[i].token);
}
