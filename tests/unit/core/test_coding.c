/* Content codings: RFC 9110 §8.4.1 names and §12.5.3 Accept-Encoding negotiation with §12.4.2
 * quality values, as tables, through notmod/coding.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "notmod/coding.h"

#define ID NM_CODING_IDENTITY
#define BR NM_CODING_BR
#define ZSTD NM_CODING_ZSTD
#define GZIP NM_CODING_GZIP
#define NONE (-ENOENT)

#define B_BR NM_CODING_BIT(NM_CODING_BR)
#define B_ZSTD NM_CODING_BIT(NM_CODING_ZSTD)
#define B_GZIP NM_CODING_BIT(NM_CODING_GZIP)
#define ALL (B_BR | B_ZSTD | B_GZIP)

/* One request. `ae` is the Accept-Encoding value, NULL when absent; '\n' splits it into field
 * lines. `pref` is the server's order, one letter a coding (b br, z zstd, g gzip, i identity, x
 * outside the enum), NULL for "bzg". */
struct row {
    const char *ae;
    unsigned avail;
    const char *pref;
    int want;
};

#define MAX_LINES 8

static struct nm_field to_field(const char *s, struct nm_slice *lines)
{
    if (s == NULL)
        return (struct nm_field){NULL, 0};
    size_t n = 0;
    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        lines[n++] = nm_slice_make(s, len);
        if (!nl || n == MAX_LINES)
            break;
        s = nl + 1;
    }
    return (struct nm_field){lines, n};
}

static size_t to_pref(const char *s, enum nm_coding *out)
{
    size_t n = 0;
    for (; *s; s++) {
        switch (*s) {
        case 'b':
            out[n++] = NM_CODING_BR;
            break;
        case 'z':
            out[n++] = NM_CODING_ZSTD;
            break;
        case 'g':
            out[n++] = NM_CODING_GZIP;
            break;
        case 'i':
            out[n++] = NM_CODING_IDENTITY;
            break;
        default:
            out[n++] = NM_CODING_COUNT;
            break;
        }
    }
    return n;
}

static const char *result_name(int r)
{
    if (r == NONE)
        return "-ENOENT";
    const char *name = nm_coding_name((enum nm_coding)r);
    return name ? name : "?";
}

static void run_rows(const char *table, const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct nm_slice lines[MAX_LINES];
        enum nm_coding pref[16];
        size_t n_pref = to_pref(r->pref ? r->pref : "bzg", pref);
        int got = nm_coding_negotiate(to_field(r->ae, lines), r->avail, pref, n_pref);
        cr_expect_eq(got, r->want,
                     "%s row %zu: Accept-Encoding=%s avail=%#x pref=%s: got %s, want %s", table, i,
                     r->ae ? r->ae : "(absent)", r->avail, r->pref ? r->pref : "bzg",
                     result_name(got), result_name(r->want));
    }
}

#define RUN(table) run_rows(#table, table, sizeof(table) / sizeof(table[0]))

/* §12.5.3 and §12.4.2 element by element, with the server's default order br, zstd, gzip. */
static const struct row negotiation[] = {
    /* No field: the server does not guess. */
    {NULL, ALL, NULL, ID},
    {NULL, 0, NULL, ID},
    /* An empty value: identity only. */
    {"", ALL, NULL, ID},
    {" ", ALL, NULL, ID},
    {",", ALL, NULL, ID},
    {"", 0, NULL, ID},
    /* Plain lists: every named coding at q=1, the server's order breaks the tie. */
    {"gzip", ALL, NULL, GZIP},
    {"gzip, br", ALL, NULL, BR},
    {"gzip, deflate, br, zstd", ALL, NULL, BR},
    {"gzip, deflate, br, zstd", B_GZIP | B_ZSTD, NULL, ZSTD},
    {"gzip", B_BR, NULL, ID},
    {"deflate, compress", ALL, NULL, ID},
    /* Unknown codings are ignored. */
    {"snappy, gzip", ALL, NULL, GZIP},
    {"x-compress;q=1", ALL, NULL, ID},
    /* Case-insensitive names, x-gzip. */
    {"GZIP", ALL, NULL, GZIP},
    {"Br", ALL, NULL, BR},
    {"ZStd", ALL, NULL, ZSTD},
    {"x-gzip", ALL, NULL, GZIP},
    {"X-GZip", B_GZIP, NULL, GZIP},
    {"IDENTITY;q=0", 0, NULL, NONE},
    /* Quality values decide before the server's order. */
    {"br;q=0.5, gzip", ALL, NULL, GZIP},
    {"br;q=0.123, gzip;q=0.122", ALL, NULL, BR},
    {"br;q=0.122, gzip;q=0.123", ALL, NULL, GZIP},
    {"gzip;q=1.000, br;q=0.999", ALL, NULL, GZIP},
    {"gzip;q=1.0, br;q=1.", ALL, NULL, BR},
    {"gzip;Q=0.8, br;Q=0.7", ALL, NULL, GZIP},
    {"br;q=0.000, gzip;q=0.001", ALL, NULL, GZIP},
    /* q=0 means not acceptable, in any spelling. */
    {"br;q=0", ALL, NULL, ID},
    {"br;Q=0.000, gzip", ALL, NULL, GZIP},
    {"br;q=0., gzip;q=0.0", ALL, NULL, ID},
    /* A malformed qvalue or parameter drops that element only. */
    {"br;q=1.0001, gzip", ALL, NULL, GZIP},
    {"br;q=1.001, gzip", ALL, NULL, GZIP},
    {"br;q=0.5000, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=.5, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=2, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=-1, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q = 0.5, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=0.5x, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=\"1\", gzip;q=0.1", ALL, NULL, GZIP},
    {"br;, gzip;q=0.1", ALL, NULL, GZIP},
    {"br gzip, zstd;q=0.1", ALL, NULL, ZSTD},
    {"br;q=0;q=1, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;level=5, gzip;q=0.1", ALL, NULL, GZIP},
    {"br;q=0.5;level=5, gzip;q=0.1", ALL, NULL, GZIP},
    {"identity;q=0;x=1, br;q=0", 0, NULL, ID},
    {"br;q=0.9, gzip;q=0.1, zstd;q=1.0001", ALL, NULL, BR},
    /* OWS around elements and around ";", but not around "=". */
    {"  gzip  ;  q=0.5 ,\tbr\t;\tq=0.4  ", ALL, NULL, GZIP},
    {" , ,gzip,, ", ALL, NULL, GZIP},
    /* "*" gives its quality to every coding not named. */
    {"*", ALL, NULL, BR},
    {"*", 0, NULL, ID},
    {"*;q=0.5, br;q=0.4", ALL, NULL, ZSTD},
    {"*;q=0.5, br;q=0.6", ALL, NULL, BR},
    {"br;q=0, *", ALL, NULL, ZSTD},
    {"*;q=0.1, gzip;q=0.2", B_BR | B_GZIP, NULL, GZIP},
    /* Unnamed, identity takes the quality of "*", else the lowest non-zero one. */
    {"*;q=0.5, gzip;q=0.4", B_GZIP, NULL, ID},
    {"gzip;q=0.001", B_GZIP, NULL, GZIP},
    {"br;q=0.001", B_GZIP, NULL, ID},
    /* identity;q=0 and *;q=0 exclude identity. */
    {"identity;q=0", ALL, NULL, NONE},
    {"identity;q=0", B_GZIP, NULL, NONE},
    {"gzip, identity;q=0", B_GZIP, NULL, GZIP},
    {"gzip, identity;q=0", B_BR, NULL, NONE},
    {"*;q=0", ALL, NULL, NONE},
    {"*;q=0", 0, NULL, NONE},
    {"gzip, *;q=0", B_BR, NULL, NONE},
    {"gzip, *;q=0", B_GZIP | B_BR, NULL, GZIP},
    {"*;q=0, identity", ALL, NULL, ID},
    {"*;q=0, identity;q=0.5", 0, NULL, ID},
    {"identity;q=0, *", ALL, NULL, BR},
    {"identity;q=0, *", 0, NULL, NONE},
    /* identity named beats a coding at a lower quality, and loses ties. */
    {"identity, gzip;q=0.5", B_GZIP, NULL, ID},
    {"identity;q=0.5, gzip;q=0.5", B_GZIP, NULL, GZIP},
    {"identity;q=0.6, gzip;q=0.5", B_GZIP, NULL, ID},
};

/* §5.3: several field lines are one list. */
static const struct row field_lines[] = {
    {"gzip\nbr", ALL, NULL, BR},
    {"br;q=0.5\ngzip", ALL, NULL, GZIP},
    {"gzip\nidentity;q=0", B_BR, NULL, NONE},
    {"\ngzip", ALL, NULL, GZIP},
    {"\n", ALL, NULL, ID},
    {"br;q=1.0001\ngzip;q=0.2\nzstd;q=0.1", ALL, NULL, GZIP},
    {"*;q=0\n", ALL, NULL, NONE},
};

/* A name given more than once takes its highest quality, on one line or across lines. */
static const struct row duplicates[] = {
    {"br;q=0, br;q=0.5, gzip;q=0.4", ALL, NULL, BR},
    {"br;q=0.5, br;q=0, gzip;q=0.4", ALL, NULL, BR},
    {"br;q=0.3, br;q=0.2, gzip;q=0.25", ALL, NULL, BR},
    {"gzip, x-gzip;q=0", B_GZIP, NULL, GZIP},
    {"identity;q=0, identity", B_GZIP, NULL, ID},
    {"*;q=0, *;q=0.2", B_GZIP, NULL, GZIP},
    {"br;q=0\nbr", ALL, NULL, BR},
};

/* Ties go to the server's order; identity is always last; skipped entries. */
static const struct row preference[] = {
    {"gzip, br, zstd", ALL, "gzb", GZIP},
    {"gzip, br, zstd", ALL, "zgb", ZSTD},
    {"gzip, br, zstd", B_BR | B_ZSTD, "gzb", ZSTD},
    {"gzip, br, zstd", ALL, "", BR},
    {"gzip, br, zstd", ALL, "g", GZIP},
    {"gzip, br, zstd", B_BR | B_ZSTD, "g", BR},
    {"gzip;q=0.5, br", ALL, "g", BR},
    {"gzip, identity", ALL, "ig", GZIP},
    {"identity", ALL, "i", ID},
    {"gzip, zstd", ALL, "xz", ZSTD},
    {"*", B_GZIP, "bzg", GZIP},
};

Test(coding, negotiation_table_of_accept_encoding_elements)
{
    RUN(negotiation);
}

Test(coding, several_field_lines_are_one_list)
{
    RUN(field_lines);
}

Test(coding, a_name_given_twice_takes_its_highest_quality)
{
    RUN(duplicates);
}

Test(coding, ties_go_to_the_server_preference_with_identity_last)
{
    RUN(preference);
}

Test(coding, available_bits_outside_the_enum_are_ignored)
{
    struct nm_slice line = NM_SLICE_LIT("*, identity;q=0");
    enum nm_coding pref[] = {NM_CODING_BR};
    cr_expect_eq(nm_coding_negotiate((struct nm_field){&line, 1}, ~ALL & ~1u, pref, 1), NONE);
    cr_expect_eq(nm_coding_negotiate((struct nm_field){&line, 1}, B_BR, NULL, 0), BR);
}

Test(coding, names_and_suffixes_of_every_coding)
{
    static const struct {
        enum nm_coding c;
        const char *name, *suffix;
    } t[] = {
        {ID, "identity", ""},
        {BR, "br", ".br"},
        {ZSTD, "zstd", ".zst"},
        {GZIP, "gzip", ".gz"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        cr_expect_str_eq(nm_coding_name(t[i].c), t[i].name);
        cr_expect_str_eq(nm_coding_suffix(t[i].c), t[i].suffix);
        enum nm_coding back;
        cr_expect_eq(nm_coding_parse(nm_slice_from_cstr(t[i].name), &back), 0);
        cr_expect_eq(back, t[i].c);
    }
    cr_expect_null(nm_coding_name(NM_CODING_COUNT));
    cr_expect_null(nm_coding_suffix(NM_CODING_COUNT));
}

Test(coding, parse_is_case_insensitive_and_knows_x_gzip)
{
    static const struct {
        const char *s;
        int want;
    } t[] = {
        {"gzip", GZIP},     {"GZIP", GZIP},       {"x-gzip", GZIP},
        {"X-GZIP", GZIP},   {"Br", BR},           {"zSTD", ZSTD},
        {"Identity", ID},   {"deflate", -EINVAL}, {"compress", -EINVAL},
        {"*", -EINVAL},     {"", -EINVAL},        {" gzip", -EINVAL},
        {"gzip ", -EINVAL}, {"gzi", -EINVAL},     {"gzipp", -EINVAL},
        {"x-br", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        enum nm_coding out = NM_CODING_COUNT;
        int rc = nm_coding_parse(nm_slice_from_cstr(t[i].s), &out);
        if (t[i].want < 0) {
            cr_expect_eq(rc, t[i].want, "\"%s\": got %d", t[i].s, rc);
            cr_expect_eq(out, NM_CODING_COUNT, "\"%s\": out written on failure", t[i].s);
        } else {
            cr_expect_eq(rc, 0, "\"%s\": got %d", t[i].s, rc);
            cr_expect_eq((int)out, t[i].want, "\"%s\"", t[i].s);
        }
    }
}
