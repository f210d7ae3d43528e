/* Request method tokens (RFC 9110 §9). */
#include <criterion/criterion.h>
#include <string.h>

#include "notmod/method.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(method, registered_tokens_map_to_their_enum)
{
    static const struct {
        const char *token;
        enum nm_method m;
    } cases[] = {
        {"GET", NM_METHOD_GET},         {"HEAD", NM_METHOD_HEAD},
        {"POST", NM_METHOD_POST},       {"PUT", NM_METHOD_PUT},
        {"DELETE", NM_METHOD_DELETE},   {"CONNECT", NM_METHOD_CONNECT},
        {"OPTIONS", NM_METHOD_OPTIONS}, {"TRACE", NM_METHOD_TRACE},
        {"PATCH", NM_METHOD_PATCH},
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(nm_method_from_token(nm_slice_from_cstr(cases[i].token)), cases[i].m, "%s",
                     cases[i].token);
}

Test(method, methods_are_case_sensitive_and_other_tokens_are_other)
{
    /* §9.1: the method token is case-sensitive. */
    static const char *const cases[] = {
        "get", "Get", "head", "GETX", "GE", "", "G ET", "GET ", "PROPFIND", "OTHER", "\xff",
    };
    for (size_t i = 0; i < N(cases); i++)
        cr_expect_eq(nm_method_from_token(nm_slice_from_cstr(cases[i])), NM_METHOD_OTHER, "\"%s\"",
                     cases[i]);
}

Test(method, token_is_read_only_within_its_slice)
{
    static const char buf[] = "GETS";
    cr_expect_eq(nm_method_from_token(nm_slice_make(buf, 3)), NM_METHOD_GET);
    cr_expect_eq(nm_method_from_token(nm_slice_make(buf, 4)), NM_METHOD_OTHER);
    cr_expect_eq(nm_method_from_token(nm_slice_make(NULL, 0)), NM_METHOD_OTHER);
}

Test(method, name_round_trips_through_the_token)
{
    for (int m = NM_METHOD_GET; m <= NM_METHOD_PATCH; m++) {
        const char *name = nm_method_name((enum nm_method)m);
        cr_assert_not_null(name);
        cr_expect_eq(nm_method_from_token(nm_slice_from_cstr(name)), (enum nm_method)m, "%s", name);
    }
    cr_expect_str_eq(nm_method_name(NM_METHOD_GET), "GET");
    cr_expect_str_eq(nm_method_name(NM_METHOD_PATCH), "PATCH");
}

Test(method, other_and_out_of_range_values_are_named_other)
{
    cr_expect_str_eq(nm_method_name(NM_METHOD_OTHER), "OTHER");
    cr_expect_str_eq(nm_method_name((enum nm_method)99), "OTHER");
    cr_expect_str_eq(nm_method_name((enum nm_method)(NM_METHOD_PATCH + 1)), "OTHER");
}
