/* Decimal option values: digits only, up to a maximum. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "base/base.h"

Test(num, digits_up_to_the_maximum_parse)
{
    uint64_t v = 1;
    cr_assert_eq(nm_parse_u64("0", 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(nm_parse_u64("0010", 10, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(nm_parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
}

Test(num, signs_spaces_and_other_characters_are_einval)
{
    const char *bad[] = {"", " 5", "+5", "-0", "5 ", "0x10", "1e3", "5\n"};
    uint64_t v = 7;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(nm_parse_u64(bad[i], 100, &v), -EINVAL, "%s", bad[i]);
    cr_assert_eq(nm_parse_u64(NULL, 100, &v), -EINVAL);
    cr_assert_eq(v, 7);
}

Test(num, values_above_the_maximum_or_64_bits_are_erange)
{
    uint64_t v = 7;
    cr_assert_eq(nm_parse_u64("11", 10, &v), -ERANGE);
    cr_assert_eq(nm_parse_u64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(nm_parse_u64("99999999999999999999999", UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(v, 7);
}
