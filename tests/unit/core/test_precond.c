/* Preconditions: RFC 9110 §13.1, §13.2 (and §14.2 for Range) as tables, through notmod/precond.h.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "notmod/precond.h"

/* The selected representation of most tests: strong "v1", Last-Modified one day before Date. */
#define LM 784111777LL    /* Sun, 06 Nov 1994 08:49:37 GMT */
#define DATE (LM + 86400) /* Mon, 07 Nov 1994 08:49:37 GMT */
#define D_LM "Sun, 06 Nov 1994 08:49:37 GMT"
#define D_LM_M1S "Sun, 06 Nov 1994 08:49:36 GMT"
#define D_LM_P1S "Sun, 06 Nov 1994 08:49:38 GMT"
#define D_LM_M1D "Sat, 05 Nov 1994 08:49:37 GMT"
#define D_LM_P1D "Mon, 07 Nov 1994 08:49:37 GMT"
#define D_LM_P2D "Tue, 08 Nov 1994 08:49:37 GMT"
#define D_DATE_P1S "Mon, 07 Nov 1994 08:49:38 GMT" /* one second after Date */
#define D_LM_850 "Sunday, 06-Nov-94 08:49:37 GMT"
#define D_LM_ASC "Sun Nov  6 08:49:37 1994"
#define D_LM_M1D_850 "Saturday, 05-Nov-94 08:49:37 GMT"
#define D_LM_M1D_ASC "Sat Nov  5 08:49:37 1994"
#define ETAG_CUR "\"v1\""
#define ETAG_OLD "\"v0\""

#define M_GET NM_METHOD_GET
#define M_HEAD NM_METHOD_HEAD
#define M_POST NM_METHOD_POST
#define M_PUT NM_METHOD_PUT
#define M_DELETE NM_METHOD_DELETE
#define M_PATCH NM_METHOD_PATCH
#define M_OTHER NM_METHOD_OTHER
#define R_FULL NM_PRECOND_FULL
#define R_RANGE NM_PRECOND_RANGE
#define R_NOT_MODIFIED NM_PRECOND_NOT_MODIFIED
#define R_FAILED NM_PRECOND_FAILED

/* One request against the table's resource. Field values are NULL when absent; '\n' splits a
 * value into field lines. `absent` removes the current representation (exists = false). */
struct row {
    enum nm_method method;
    const char *im, *ius, *inm, *ims, *ir;
    bool range;
    bool absent;
    enum nm_precond_result want;
};

#define MAX_LINES 4

struct built {
    struct nm_slice lines[5][MAX_LINES];
    struct nm_precond_request req;
};

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

static void build(struct built *b, const struct row *r)
{
    b->req.method = r->method;
    b->req.if_match = to_field(r->im, b->lines[0]);
    b->req.if_unmodified_since = to_field(r->ius, b->lines[1]);
    b->req.if_none_match = to_field(r->inm, b->lines[2]);
    b->req.if_modified_since = to_field(r->ims, b->lines[3]);
    b->req.if_range = to_field(r->ir, b->lines[4]);
    b->req.has_range = r->range;
}

/* An entity-tag from its text, without going through the parser: W/ and the quoted opaque-tag. */
static struct nm_etag tag_of(const char *text)
{
    bool weak = strncmp(text, "W/", 2) == 0;
    return (struct nm_etag){nm_slice_from_cstr(text + (weak ? 2 : 0)), weak};
}

static const struct nm_etag cur_tag = {{"\"v1\"", 4}, false};

static struct nm_precond_resource default_resource(void)
{
    return (struct nm_precond_resource){
        .status = 200,
        .exists = true,
        .etag = &cur_tag,
        .has_last_modified = true,
        .last_modified = LM,
        .date = DATE,
    };
}

static const char *result_name(enum nm_precond_result r)
{
    switch (r) {
    case NM_PRECOND_FULL:
        return "FULL";
    case NM_PRECOND_RANGE:
        return "RANGE";
    case NM_PRECOND_NOT_MODIFIED:
        return "NOT_MODIFIED";
    case NM_PRECOND_FAILED:
        return "FAILED";
    }
    return "?";
}

static const char *show(const char *s)
{
    return s ? s : "-";
}

static void run_rows(const char *table, const struct row *rows, size_t n,
                     const struct nm_precond_resource *base, enum nm_ims_mode mode)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct built b;
        build(&b, r);
        struct nm_precond_resource res = *base;
        res.exists = base->exists && !r->absent;
        enum nm_precond_result got = nm_precond_evaluate(&b.req, &res, mode);
        cr_expect_eq(got, r->want,
                     "%s row %zu: %s IM=%s IUS=%s INM=%s IMS=%s IR=%s range=%d absent=%d: "
                     "got %s, want %s",
                     table, i, nm_method_name(r->method), show(r->im), show(r->ius), show(r->inm),
                     show(r->ims), show(r->ir), r->range, r->absent, result_name(got),
                     result_name(r->want));
    }
}

#define RUN(table, res, mode) run_rows(#table, table, sizeof(table) / sizeof(table[0]), res, mode)

/* Runs a table against the default resource in RFC mode. */
#define RUN_DEFAULT(table)                                                                         \
    do {                                                                                           \
        struct nm_precond_resource res_ = default_resource();                                      \
        RUN(table, &res_, NM_IMS_RFC);                                                             \
    } while (0)

/* Method x field x (matches / does not match) x (representation exists / not), one field at a
 * time. Columns: method, If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
 * If-Range, Range, absent, result. "Matches" means: If-Match and If-None-Match name the current
 * tag, If-Unmodified-Since and If-Modified-Since give Last-Modified itself, If-Range names the
 * current tag; otherwise an older tag or a date one day before Last-Modified. */
static const struct row combinations[] = {
    {M_GET, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_GET, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_GET, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_GET, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_HEAD, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_HEAD, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_HEAD, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_HEAD, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_POST, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_POST, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_POST, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_POST, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_PUT, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_PUT, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_PUT, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_PUT, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_DELETE, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_DELETE, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_DELETE, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_DELETE, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_PATCH, ETAG_CUR, NULL, NULL, NULL, NULL, false, false, R_FULL},
    {M_PATCH, ETAG_OLD, NULL, NULL, NULL, NULL, false, false, R_FAILED},
    {M_PATCH, ETAG_CUR, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_PATCH, ETAG_OLD, NULL, NULL, NULL, NULL, false, true, R_FAILED},
    {M_GET, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_GET, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_GET, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_GET, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_HEAD, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_HEAD, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_HEAD, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_HEAD, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_POST, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_POST, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_POST, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_POST, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_PUT, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_PUT, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_PUT, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_PUT, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_DELETE, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_DELETE, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_DELETE, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_DELETE, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_PATCH, NULL, D_LM, NULL, NULL, NULL, false, false, R_FULL},
    {M_PATCH, NULL, D_LM_M1D, NULL, NULL, NULL, false, false, R_FAILED},
    {M_PATCH, NULL, D_LM, NULL, NULL, NULL, false, true, R_FULL},
    {M_PATCH, NULL, D_LM_M1D, NULL, NULL, NULL, false, true, R_FULL},
    {M_GET, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_NOT_MODIFIED},
    {M_GET, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_GET, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_GET, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_HEAD, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_NOT_MODIFIED},
    {M_HEAD, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_HEAD, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_HEAD, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_POST, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_FAILED},
    {M_POST, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_POST, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_POST, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_PUT, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_FAILED},
    {M_PUT, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_PUT, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_PUT, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_DELETE, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_FAILED},
    {M_DELETE, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_DELETE, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_DELETE, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_PATCH, NULL, NULL, ETAG_CUR, NULL, NULL, false, false, R_FAILED},
    {M_PATCH, NULL, NULL, ETAG_OLD, NULL, NULL, false, false, R_FULL},
    {M_PATCH, NULL, NULL, ETAG_CUR, NULL, NULL, false, true, R_FULL},
    {M_PATCH, NULL, NULL, ETAG_OLD, NULL, NULL, false, true, R_FULL},
    {M_GET, NULL, NULL, NULL, D_LM, NULL, false, false, R_NOT_MODIFIED},
    {M_GET, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_GET, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_GET, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_HEAD, NULL, NULL, NULL, D_LM, NULL, false, false, R_NOT_MODIFIED},
    {M_HEAD, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_HEAD, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_HEAD, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_POST, NULL, NULL, NULL, D_LM, NULL, false, false, R_FULL},
    {M_POST, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_POST, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_POST, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_PUT, NULL, NULL, NULL, D_LM, NULL, false, false, R_FULL},
    {M_PUT, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_PUT, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_PUT, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_DELETE, NULL, NULL, NULL, D_LM, NULL, false, false, R_FULL},
    {M_DELETE, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_DELETE, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_DELETE, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_PATCH, NULL, NULL, NULL, D_LM, NULL, false, false, R_FULL},
    {M_PATCH, NULL, NULL, NULL, D_LM_M1D, NULL, false, false, R_FULL},
    {M_PATCH, NULL, NULL, NULL, D_LM, NULL, false, true, R_FULL},
    {M_PATCH, NULL, NULL, NULL, D_LM_M1D, NULL, false, true, R_FULL},
    {M_GET, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_RANGE},
    {M_GET, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_GET, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_GET, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
    {M_HEAD, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_FULL},
    {M_HEAD, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_HEAD, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_HEAD, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
    {M_POST, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_FULL},
    {M_POST, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_POST, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_POST, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
    {M_PUT, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_FULL},
    {M_PUT, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_PUT, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_PUT, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
    {M_DELETE, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_FULL},
    {M_DELETE, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_DELETE, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_DELETE, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
    {M_PATCH, NULL, NULL, NULL, NULL, ETAG_CUR, true, false, R_FULL},
    {M_PATCH, NULL, NULL, NULL, NULL, ETAG_OLD, true, false, R_FULL},
    {M_PATCH, NULL, NULL, NULL, NULL, ETAG_CUR, true, true, R_FULL},
    {M_PATCH, NULL, NULL, NULL, NULL, ETAG_OLD, true, true, R_FULL},
};

Test(precond, combination_table_of_method_field_match_and_existence)
{
    RUN_DEFAULT(combinations);
}

/* "*" in If-Match and If-None-Match, for every method, with and without a representation. */
static const struct row stars[] = {
    {M_GET, .im = "*", .want = R_FULL},
    {M_GET, .im = "*", .absent = true, .want = R_FAILED},
    {M_HEAD, .im = "*", .want = R_FULL},
    {M_HEAD, .im = "*", .absent = true, .want = R_FAILED},
    {M_POST, .im = "*", .want = R_FULL},
    {M_POST, .im = "*", .absent = true, .want = R_FAILED},
    {M_PUT, .im = "*", .want = R_FULL},
    {M_PUT, .im = "*", .absent = true, .want = R_FAILED},
    {M_DELETE, .im = "*", .want = R_FULL},
    {M_DELETE, .im = "*", .absent = true, .want = R_FAILED},
    {M_PATCH, .im = "*", .want = R_FULL},
    {M_PATCH, .im = "*", .absent = true, .want = R_FAILED},
    {M_GET, .inm = "*", .want = R_NOT_MODIFIED},
    {M_GET, .inm = "*", .absent = true, .want = R_FULL},
    {M_HEAD, .inm = "*", .want = R_NOT_MODIFIED},
    {M_HEAD, .inm = "*", .absent = true, .want = R_FULL},
    {M_POST, .inm = "*", .want = R_FAILED},
    {M_POST, .inm = "*", .absent = true, .want = R_FULL},
    {M_PUT, .inm = "*", .want = R_FAILED},
    {M_PUT, .inm = "*", .absent = true, .want = R_FULL},
    {M_DELETE, .inm = "*", .want = R_FAILED},
    {M_DELETE, .inm = "*", .absent = true, .want = R_FULL},
    {M_PATCH, .inm = "*", .want = R_FAILED},
    {M_PATCH, .inm = "*", .absent = true, .want = R_FULL},
};

Test(precond, star_matches_exactly_when_a_current_representation_exists)
{
    RUN_DEFAULT(stars);
}

/* §13.2.2: If-Match, If-Unmodified-Since (without If-Match), If-None-Match, If-Modified-Since
 * (without If-None-Match, GET/HEAD), If-Range (GET with Range). */
static const struct row order[] = {
    {M_GET, .im = ETAG_CUR, .ius = D_LM_M1D, .want = R_FULL},
    {M_PUT, .im = ETAG_CUR, .ius = D_LM_M1D, .want = R_FULL},
    {M_PUT, .im = "*", .ius = D_LM_M1D, .want = R_FULL},
    {M_GET, .im = ETAG_OLD, .ius = D_LM, .want = R_FAILED},
    {M_GET, .im = ETAG_OLD, .inm = ETAG_CUR, .want = R_FAILED},
    {M_GET, .ius = D_LM_M1D, .inm = ETAG_CUR, .want = R_FAILED},
    {M_GET, .ius = D_LM_M1D, .ims = D_LM, .want = R_FAILED},
    {M_GET, .im = ETAG_CUR, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
    {M_PUT, .im = ETAG_CUR, .inm = ETAG_CUR, .want = R_FAILED},
    {M_GET, .im = "*", .inm = "*", .want = R_NOT_MODIFIED},
    {M_DELETE, .im = "*", .inm = "*", .want = R_FAILED},
    {M_GET, .inm = ETAG_OLD, .ims = D_LM, .want = R_FULL},
    {M_HEAD, .inm = ETAG_OLD, .ims = D_LM_P2D, .want = R_FULL},
    {M_GET, .inm = ETAG_CUR, .ims = D_LM_M1D, .want = R_NOT_MODIFIED},
    {M_GET, .ius = D_LM, .ims = D_LM, .want = R_NOT_MODIFIED},
    {M_PUT, .ius = D_LM, .ims = D_LM, .want = R_FULL},
    {M_GET, .inm = ETAG_CUR, .ir = ETAG_CUR, .range = true, .want = R_NOT_MODIFIED},
    {M_GET, .ims = D_LM, .range = true, .want = R_NOT_MODIFIED},
    {M_GET, .ims = D_LM_M1D, .ir = ETAG_CUR, .range = true, .want = R_RANGE},
    {M_GET, .im = ETAG_OLD, .range = true, .want = R_FAILED},
    {M_GET, .im = ETAG_CUR, .ir = ETAG_OLD, .range = true, .want = R_FULL},
    {M_GET, .ius = D_LM, .inm = ETAG_OLD, .range = true, .want = R_RANGE},
    {M_GET, ETAG_CUR, D_LM, ETAG_OLD, D_LM, ETAG_CUR, true, false, R_RANGE},
    {M_GET, ETAG_CUR, D_LM_M1D, ETAG_CUR, D_LM_M1D, ETAG_CUR, true, false, R_NOT_MODIFIED},
    {M_POST, .im = ETAG_CUR, .inm = ETAG_OLD, .range = true, .want = R_FULL},
};

Test(precond, fields_are_evaluated_in_the_order_of_section_13_2_2)
{
    RUN_DEFAULT(order);
}

Test(precond, no_conditional_fields_give_full)
{
    static const struct row rows[] = {
        {M_GET, .want = R_FULL},    {M_HEAD, .want = R_FULL},
        {M_POST, .want = R_FULL},   {M_PUT, .want = R_FULL},
        {M_DELETE, .want = R_FULL}, {M_GET, .absent = true, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

/* §13.1.1: If-Match uses the strong comparison. */
static const struct row if_match_strong_current[] = {
    {M_PUT, .im = ETAG_CUR, .want = R_FULL},
    {M_PUT, .im = "W/\"v1\"", .want = R_FAILED},
    {M_PUT, .im = "\"v0\", \"v1\"", .want = R_FULL},
    {M_PUT, .im = "W/\"v0\", \"v1\"", .want = R_FULL},
    {M_PUT, .im = "\"v0\"\n\"v1\"", .want = R_FULL},
    {M_PUT, .im = "\"V1\"", .want = R_FAILED},
    {M_PUT, .im = "v1", .want = R_FAILED},
    {M_PUT, .im = "", .want = R_FAILED},
};

static const struct row if_match_weak_current[] = {
    {M_PUT, .im = ETAG_CUR, .want = R_FAILED},
    {M_PUT, .im = "W/\"v1\"", .want = R_FAILED},
    {M_GET, .im = "W/\"v1\", \"v1\"", .want = R_FAILED},
    {M_PUT, .im = "*", .want = R_FULL},
};

Test(precond, if_match_uses_the_strong_comparison_so_weak_tags_never_match)
{
    struct nm_precond_resource res = default_resource();
    RUN(if_match_strong_current, &res, NM_IMS_RFC);
    struct nm_etag weak = tag_of("W/\"v1\"");
    res.etag = &weak;
    RUN(if_match_weak_current, &res, NM_IMS_RFC);
}

Test(precond, if_match_false_gives_412_for_every_method_that_selects_a_representation)
{
    static const struct row rows[] = {
        {M_GET, .im = ETAG_OLD, .want = R_FAILED},    {M_HEAD, .im = ETAG_OLD, .want = R_FAILED},
        {M_POST, .im = ETAG_OLD, .want = R_FAILED},   {M_PUT, .im = ETAG_OLD, .want = R_FAILED},
        {M_DELETE, .im = ETAG_OLD, .want = R_FAILED}, {M_PATCH, .im = ETAG_OLD, .want = R_FAILED},
        {M_OTHER, .im = ETAG_OLD, .want = R_FAILED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_match_fails_when_the_representation_has_no_entity_tag)
{
    static const struct row rows[] = {
        {M_PUT, .im = ETAG_CUR, .want = R_FAILED},
        {M_PUT, .im = "*", .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    res.etag = NULL;
    RUN(rows, &res, NM_IMS_RFC);
}

Test(precond, validators_are_ignored_when_no_current_representation_exists)
{
    /* A caller that passes exists = false with validators still set gets no match on them. */
    static const struct row rows[] = {
        {M_PUT, .im = ETAG_CUR, .absent = true, .want = R_FAILED},
        {M_GET, .inm = ETAG_CUR, .absent = true, .want = R_FULL},
        {M_GET, .ims = D_LM, .absent = true, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D, .absent = true, .want = R_FULL},
        {M_GET, .ir = ETAG_CUR, .range = true, .absent = true, .want = R_FULL},
        {M_GET, .ir = D_LM, .range = true, .absent = true, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_unmodified_since_is_ignored_when_if_match_is_present)
{
    static const struct row rows[] = {
        {M_PUT, .im = ETAG_CUR, .ius = D_LM_M1D, .want = R_FULL},
        {M_PUT, .im = "*", .ius = D_LM_M1D, .want = R_FULL},
        {M_DELETE, .im = "\"v0\", \"v1\"", .ius = "Thu, 01 Jan 1970 00:00:00 GMT", .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D, .want = R_FAILED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_unmodified_since_is_ignored_when_not_a_valid_http_date)
{
    static const struct row rows[] = {
        {M_PUT, .ius = "garbage", .want = R_FULL},
        {M_PUT, .ius = "", .want = R_FULL},
        {M_PUT, .ius = "Sat, 05 Nov 1994 08:49:37", .want = R_FULL},
        {M_PUT, .ius = "Sat, 05 nov 1994 08:49:37 GMT", .want = R_FULL},
        {M_PUT, .ius = "Sun, 05 Nov 1994 08:49:37 GMT", .want = R_FULL},
        {M_PUT, .ius = "1994-11-05T08:49:37Z", .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D "; x", .want = R_FULL},
        {M_PUT, .ius = "784025377", .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D, .want = R_FAILED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_unmodified_since_with_more_than_one_member_is_ignored)
{
    static const struct row rows[] = {
        {M_PUT, .ius = D_LM_M1D "\n" D_LM_M1D, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D "\n" D_LM, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D ", " D_LM_M1D, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D ",", .want = R_FULL},
        {M_PUT, .ius = " " D_LM_M1D " ", .want = R_FAILED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_unmodified_since_is_ignored_without_last_modified)
{
    static const struct row rows[] = {
        {M_PUT, .ius = D_LM_M1D, .want = R_FULL},
        {M_GET, .ius = "Thu, 01 Jan 1970 00:00:00 GMT", .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    res.has_last_modified = false;
    RUN(rows, &res, NM_IMS_RFC);
}

/* §13.1.4: false (412) only when Last-Modified is later than the date; all three formats. */
Test(precond, if_unmodified_since_fails_only_when_last_modified_is_later)
{
    static const struct row rows[] = {
        {M_PUT, .ius = D_LM_M1D, .want = R_FAILED},
        {M_PUT, .ius = D_LM_M1S, .want = R_FAILED},
        {M_PUT, .ius = D_LM, .want = R_FULL},
        {M_PUT, .ius = D_LM_P1S, .want = R_FULL},
        {M_PUT, .ius = D_LM_P2D, .want = R_FULL},
        {M_PUT, .ius = D_LM_850, .want = R_FULL},
        {M_PUT, .ius = D_LM_ASC, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D_850, .want = R_FAILED},
        {M_PUT, .ius = D_LM_M1D_ASC, .want = R_FAILED},
        {M_GET, .ius = D_LM_M1D, .want = R_FAILED},
        {M_HEAD, .ius = D_LM_M1D, .want = R_FAILED},
    };
    RUN_DEFAULT(rows);
}

/* §13.1.2: If-None-Match uses the weak comparison. */
static const struct row inm_weak_on_strong[] = {
    {M_GET, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
    {M_GET, .inm = "W/\"v1\"", .want = R_NOT_MODIFIED},
    {M_GET, .inm = "\"v0\", W/\"v1\"", .want = R_NOT_MODIFIED},
    {M_GET, .inm = "\"v0\"\n\"v1\"", .want = R_NOT_MODIFIED},
    {M_GET, .inm = "\"V1\"", .want = R_FULL},
    {M_GET, .inm = "\"v1 \"", .want = R_FULL},
    {M_GET, .inm = "", .want = R_FULL},
    {M_PUT, .inm = "W/\"v1\"", .want = R_FAILED},
};

static const struct row inm_weak_on_weak[] = {
    {M_GET, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
    {M_HEAD, .inm = "W/\"v1\"", .want = R_NOT_MODIFIED},
    {M_GET, .inm = "W/\"v0\"", .want = R_FULL},
    {M_POST, .inm = ETAG_CUR, .want = R_FAILED},
};

Test(precond, if_none_match_uses_the_weak_comparison)
{
    struct nm_precond_resource res = default_resource();
    RUN(inm_weak_on_strong, &res, NM_IMS_RFC);
    struct nm_etag weak = tag_of("W/\"v1\"");
    res.etag = &weak;
    RUN(inm_weak_on_weak, &res, NM_IMS_RFC);
}

Test(precond, if_none_match_without_a_current_entity_tag_only_matches_star)
{
    static const struct row rows[] = {
        {M_GET, .inm = ETAG_CUR, .want = R_FULL},
        {M_GET, .inm = "*", .want = R_NOT_MODIFIED},
        {M_PUT, .inm = "*", .want = R_FAILED},
    };
    struct nm_precond_resource res = default_resource();
    res.etag = NULL;
    RUN(rows, &res, NM_IMS_RFC);
}

Test(precond, if_none_match_false_gives_304_for_get_and_head_and_412_for_other_methods)
{
    static const struct row rows[] = {
        {M_GET, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
        {M_HEAD, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
        {M_POST, .inm = ETAG_CUR, .want = R_FAILED},
        {M_PUT, .inm = ETAG_CUR, .want = R_FAILED},
        {M_DELETE, .inm = ETAG_CUR, .want = R_FAILED},
        {M_PATCH, .inm = ETAG_CUR, .want = R_FAILED},
        {M_OTHER, .inm = ETAG_CUR, .want = R_FAILED},
        {M_GET, .inm = ETAG_CUR, .range = true, .want = R_NOT_MODIFIED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_is_ignored_when_if_none_match_is_present)
{
    static const struct row rows[] = {
        {M_GET, .inm = ETAG_OLD, .ims = D_LM, .want = R_FULL},
        {M_GET, .inm = ETAG_OLD, .ims = D_LM_P2D, .want = R_FULL},
        {M_HEAD, .inm = "\"a\", \"b\"", .ims = D_LM, .want = R_FULL},
        {M_GET, .inm = "", .ims = D_LM, .want = R_FULL},
        {M_GET, .inm = ETAG_CUR, .ims = D_LM_M1D, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM, .want = R_NOT_MODIFIED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_is_ignored_when_not_a_valid_http_date)
{
    static const struct row rows[] = {
        {M_GET, .ims = "garbage", .want = R_FULL},
        {M_GET, .ims = "", .want = R_FULL},
        {M_GET, .ims = D_LM " junk", .want = R_FULL},
        {M_GET, .ims = "Sun, 06 nov 1994 08:49:37 GMT", .want = R_FULL},
        {M_GET, .ims = "Sun, 06 Nov 1994 08:49:37 UTC", .want = R_FULL},
        {M_GET, .ims = "Mon, 06 Nov 1994 08:49:37 GMT", .want = R_FULL},
        {M_GET, .ims = "Sun, 06 Nov 1994 24:49:37 GMT", .want = R_FULL},
        {M_GET, .ims = "784111777", .want = R_FULL},
        {M_GET, .ims = D_LM, .want = R_NOT_MODIFIED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_with_more_than_one_member_is_ignored)
{
    static const struct row rows[] = {
        {M_GET, .ims = D_LM "\n" D_LM, .want = R_FULL},
        {M_HEAD, .ims = D_LM "\n" D_LM_P2D, .want = R_FULL},
        {M_GET, .ims = D_LM ", " D_LM, .want = R_FULL},
        {M_GET, .ims = D_LM ",", .want = R_FULL},
        {M_GET, .ims = "\t" D_LM " ", .want = R_NOT_MODIFIED},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_is_ignored_for_methods_other_than_get_and_head)
{
    static const struct row rows[] = {
        {M_GET, .ims = D_LM, .want = R_NOT_MODIFIED}, {M_HEAD, .ims = D_LM, .want = R_NOT_MODIFIED},
        {M_POST, .ims = D_LM, .want = R_FULL},        {M_PUT, .ims = D_LM, .want = R_FULL},
        {M_DELETE, .ims = D_LM, .want = R_FULL},      {M_PATCH, .ims = D_LM, .want = R_FULL},
        {M_OTHER, .ims = D_LM_P2D, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_is_ignored_without_last_modified)
{
    static const struct row rows[] = {
        {M_GET, .ims = D_LM, .want = R_FULL},
        {M_HEAD, .ims = D_LM_P2D, .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    res.has_last_modified = false;
    RUN(rows, &res, NM_IMS_RFC);
    RUN(rows, &res, NM_IMS_EXACT);
}

/* §13.1.3: not modified (304) when Last-Modified is earlier than or equal to the date. */
Test(precond, if_modified_since_rfc_mode_gives_304_unless_last_modified_is_later)
{
    static const struct row rows[] = {
        {M_GET, .ims = D_LM_M1D, .want = R_FULL},
        {M_GET, .ims = D_LM_M1S, .want = R_FULL},
        {M_GET, .ims = D_LM, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_P1S, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_P1D, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_850, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_ASC, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_M1D_850, .want = R_FULL},
        {M_HEAD, .ims = D_LM_M1D_ASC, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

Test(precond, if_modified_since_exact_mode_gives_304_only_for_the_same_date)
{
    /* A rollback to an older file has a Last-Modified earlier than the client's date: EXACT
     * sends it (200) where RFC mode would answer 304. */
    static const struct row rows[] = {
        {M_GET, .ims = D_LM, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_850, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_ASC, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_M1D, .want = R_FULL},
        {M_GET, .ims = D_LM_P1S, .want = R_FULL},
        {M_HEAD, .ims = D_LM_P1D, .want = R_FULL},
        {M_GET, .ims = D_LM_P2D, .want = R_FULL},
        {M_PUT, .ims = D_LM, .want = R_FULL},
        {M_GET, .inm = ETAG_OLD, .ims = D_LM, .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    RUN(rows, &res, NM_IMS_EXACT);
}

/* §13.1.3, §13.1.4: the timestamp is read on the origin server's clock: an If-Unmodified-Since
 * later than the response's Date is compared, not rejected (If-Modified-Since has its own rule,
 * below), and a two-digit year is placed relative to Date. */
Test(precond, dates_are_interpreted_on_the_origin_server_clock)
{
    static const struct row future[] = {
        {M_PUT, .ius = D_LM_P2D, .want = R_FULL},
        {M_PUT, .ius = "Fri, 31 Dec 9999 23:59:59 GMT", .want = R_FULL},
        {M_GET, .ims = D_LM_P1D, .want = R_NOT_MODIFIED},
    };
    RUN_DEFAULT(future);

    /* "Saturday, 06-Nov-94" is a valid date only in 2094 and "Sunday, 06-Nov-94" only in 1994:
     * which one applies depends on the Date given, not on the machine's clock. */
    static const struct row in_2025[] = {
        {M_GET, .ims = D_LM_850, .want = R_NOT_MODIFIED},
        {M_GET, .ims = "Saturday, 06-Nov-94 08:49:37 GMT", .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D_850, .want = R_FAILED},
        {M_GET, .ir = D_LM_850, .range = true, .want = R_RANGE},
    };
    static const struct row in_2095[] = {
        {M_GET, .ims = D_LM_850, .want = R_FULL},
        {M_GET, .ims = "Saturday, 06-Nov-94 08:49:37 GMT", .want = R_NOT_MODIFIED},
        {M_PUT, .ius = D_LM_M1D_850, .want = R_FULL},
        {M_GET, .ir = D_LM_850, .range = true, .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    res.date = 1735689600; /* 2025-01-01 */
    RUN(in_2025, &res, NM_IMS_EXACT);
    res.date = 3944678400; /* 2095-01-01: "94" is 2094, a date before Date */
    RUN(in_2095, &res, NM_IMS_RFC);
}

/* §13.1.3 on the origin server's clock, with §8.8.2.1 (Last-Modified never later than Date): an
 * If-Modified-Since later than Date was not sent by this server, so it is ignored (200, as Apache
 * does); one equal to Date, or between Last-Modified and Date, still gives 304. */
Test(precond, if_modified_since_later_than_date_is_ignored)
{
    static const struct row rows[] = {
        {M_GET, .ims = D_DATE_P1S, .want = R_FULL},
        {M_GET, .ims = D_LM_P2D, .want = R_FULL},
        {M_HEAD, .ims = "Fri, 31 Dec 9999 23:59:59 GMT", .want = R_FULL},
        {M_GET, .ims = D_LM_P1D, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_P1S, .want = R_NOT_MODIFIED},
        {M_HEAD, .ims = D_LM, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_LM_P2D, .range = true, .want = R_RANGE},
        {M_GET, .inm = ETAG_CUR, .ims = D_LM_P2D, .want = R_NOT_MODIFIED},
        {M_GET, .inm = ETAG_OLD, .ims = D_LM_P1D, .want = R_FULL},
    };
    RUN_DEFAULT(rows);

    /* Last-Modified equal to Date: the same date is not modified, a second later is ignored. */
    static const struct row at_date[] = {
        {M_GET, .ims = D_LM_P1D, .want = R_NOT_MODIFIED},
        {M_GET, .ims = D_DATE_P1S, .want = R_FULL},
        {M_HEAD, .ims = D_LM_P2D, .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    res.last_modified = DATE;
    RUN(at_date, &res, NM_IMS_RFC);
    RUN(at_date, &res, NM_IMS_EXACT);
}

Test(precond, if_range_is_ignored_without_a_range)
{
    static const struct row rows[] = {
        {M_GET, .ir = ETAG_CUR, .want = R_FULL},
        {M_GET, .ir = ETAG_OLD, .want = R_FULL},
        {M_GET, .ir = D_LM, .want = R_FULL},
        {M_GET, .ir = "garbage", .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

/* §14.2: GET is the only method with range handling; HEAD ignores Range too. */
Test(precond, range_is_ignored_for_every_method_but_get)
{
    static const struct row rows[] = {
        {M_GET, .range = true, .want = R_RANGE},
        {M_GET, .ir = ETAG_CUR, .range = true, .want = R_RANGE},
        {M_HEAD, .range = true, .want = R_FULL},
        {M_HEAD, .ir = ETAG_CUR, .range = true, .want = R_FULL},
        {M_POST, .range = true, .want = R_FULL},
        {M_PUT, .range = true, .want = R_FULL},
        {M_DELETE, .range = true, .want = R_FULL},
        {M_PATCH, .ir = ETAG_CUR, .range = true, .want = R_FULL},
        {M_OTHER, .range = true, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

/* §13.1.5: an entity-tag in If-Range matches only by the strong comparison. */
static const struct row if_range_tags_strong[] = {
    {M_GET, .ir = ETAG_CUR, .range = true, .want = R_RANGE},
    {M_GET, .ir = " \"v1\" ", .range = true, .want = R_RANGE},
    {M_GET, .ir = ETAG_OLD, .range = true, .want = R_FULL},
    {M_GET, .ir = "\"V1\"", .range = true, .want = R_FULL},
    {M_GET, .ir = "W/\"v1\"", .range = true, .want = R_FULL},
};

static const struct row if_range_tags_weak[] = {
    {M_GET, .ir = ETAG_CUR, .range = true, .want = R_FULL},
    {M_GET, .ir = "W/\"v1\"", .range = true, .want = R_FULL},
};

static const struct row if_range_tags_none[] = {
    {M_GET, .ir = ETAG_CUR, .range = true, .want = R_FULL},
    {M_GET, .range = true, .want = R_RANGE},
};

Test(precond, if_range_entity_tag_matches_only_a_strong_current_tag)
{
    struct nm_precond_resource res = default_resource();
    RUN(if_range_tags_strong, &res, NM_IMS_RFC);
    struct nm_etag weak = tag_of("W/\"v1\"");
    res.etag = &weak;
    RUN(if_range_tags_weak, &res, NM_IMS_RFC);
    res.etag = NULL;
    RUN(if_range_tags_none, &res, NM_IMS_RFC);
}

/* §13.1.5: a date in If-Range matches only when it equals a strong Last-Modified. */
Test(precond, if_range_date_matches_only_a_strong_last_modified_exactly)
{
    static const struct row strong_lm[] = {
        {M_GET, .ir = D_LM, .range = true, .want = R_RANGE},
        {M_GET, .ir = D_LM_850, .range = true, .want = R_RANGE},
        {M_GET, .ir = D_LM_ASC, .range = true, .want = R_RANGE},
        {M_GET, .ir = D_LM_M1S, .range = true, .want = R_FULL},
        {M_GET, .ir = D_LM_P1S, .range = true, .want = R_FULL},
        {M_GET, .ir = D_LM_M1D, .range = true, .want = R_FULL},
        {M_GET, .ir = D_LM_P1D, .range = true, .want = R_FULL},
    };
    struct nm_precond_resource res = default_resource();
    RUN(strong_lm, &res, NM_IMS_RFC);

    /* §8.8.2.2: Last-Modified equal to Date may hide a second change in that second: weak. */
    static const struct row weak_lm[] = {
        {M_GET, .ir = D_LM, .range = true, .want = R_FULL},
    };
    res.date = LM;
    RUN(weak_lm, &res, NM_IMS_RFC);
    static const struct row later_lm[] = {
        {M_GET, .ir = D_LM, .range = true, .want = R_FULL},
    };
    res.date = LM - 1;
    RUN(later_lm, &res, NM_IMS_RFC);
    static const struct row one_second_old[] = {
        {M_GET, .ir = D_LM, .range = true, .want = R_RANGE},
    };
    res.date = LM + 1;
    RUN(one_second_old, &res, NM_IMS_RFC);

    static const struct row no_lm[] = {
        {M_GET, .ir = D_LM, .range = true, .want = R_FULL},
    };
    res = default_resource();
    res.has_last_modified = false;
    RUN(no_lm, &res, NM_IMS_RFC);
}

Test(precond, if_range_that_is_neither_a_tag_nor_a_date_ignores_the_range)
{
    static const struct row rows[] = {
        {M_GET, .ir = "garbage", .range = true, .want = R_FULL},
        {M_GET, .ir = "v1", .range = true, .want = R_FULL},
        {M_GET, .ir = "", .range = true, .want = R_FULL},
        {M_GET, .ir = "*", .range = true, .want = R_FULL},
        {M_GET, .ir = "\"v1\", \"v0\"", .range = true, .want = R_FULL},
        {M_GET, .ir = "\"v1\" x", .range = true, .want = R_FULL},
        {M_GET, .ir = D_LM ", " D_LM, .range = true, .want = R_FULL},
        {M_GET, .ir = "\"v1\"\n\"v1\"", .range = true, .want = R_FULL},
        {M_GET, .ir = D_LM "\n" D_LM, .range = true, .want = R_FULL},
    };
    RUN_DEFAULT(rows);
}

Test(precond, preconditions_are_ignored_when_the_status_is_not_2xx)
{
    static const int statuses[] = {100, 199, 300, 301, 302, 304, 307, 400, 403, 404, 405, 410, 500};
    static const struct row rows[] = {
        {M_GET, .im = ETAG_OLD, .want = R_FULL},
        {M_PUT, .ius = D_LM_M1D, .want = R_FULL},
        {M_GET, .inm = ETAG_CUR, .want = R_FULL},
        {M_PUT, .inm = "*", .want = R_FULL},
        {M_GET, .ims = D_LM, .want = R_FULL},
        {M_GET, .ir = ETAG_CUR, .range = true, .want = R_FULL},
        {M_GET, .range = true, .want = R_FULL},
    };
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct nm_precond_resource res = default_resource();
        res.status = statuses[i];
        cr_log_info("status %d", statuses[i]);
        RUN(rows, &res, NM_IMS_RFC);
    }
}

Test(precond, preconditions_are_evaluated_for_every_2xx_status)
{
    static const int statuses[] = {200, 201, 202, 203, 204, 206, 299};
    static const struct row rows[] = {
        {M_GET, .im = ETAG_OLD, .want = R_FAILED},
        {M_GET, .inm = ETAG_CUR, .want = R_NOT_MODIFIED},
        {M_PUT, .inm = "*", .want = R_FAILED},
    };
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct nm_precond_resource res = default_resource();
        res.status = statuses[i];
        RUN(rows, &res, NM_IMS_RFC);
    }
}

Test(precond, preconditions_are_ignored_for_connect_options_and_trace)
{
    static const enum nm_method methods[] = {NM_METHOD_CONNECT, NM_METHOD_OPTIONS, NM_METHOD_TRACE};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        enum nm_method m = methods[i];
        const struct row rows[] = {
            {m, .im = ETAG_OLD, .want = R_FULL},
            {m, .im = "*", .absent = true, .want = R_FULL},
            {m, .ius = D_LM_M1D, .want = R_FULL},
            {m, .inm = ETAG_CUR, .want = R_FULL},
            {m, .inm = "*", .want = R_FULL},
            {m, .ims = D_LM, .want = R_FULL},
            {m, .ir = ETAG_CUR, .range = true, .want = R_FULL},
        };
        RUN_DEFAULT(rows);
    }
}

Test(precond, status_maps_each_result_to_its_code)
{
    static const struct {
        enum nm_precond_result r;
        int status, want;
    } rows[] = {
        {NM_PRECOND_FULL, 200, 200},         {NM_PRECOND_FULL, 201, 201},
        {NM_PRECOND_FULL, 404, 404},         {NM_PRECOND_RANGE, 200, 206},
        {NM_PRECOND_NOT_MODIFIED, 200, 304}, {NM_PRECOND_FAILED, 200, 412},
        {NM_PRECOND_FAILED, 204, 412},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        cr_expect_eq(nm_precond_status(rows[i].r, rows[i].status), rows[i].want, "%s with %d",
                     result_name(rows[i].r), rows[i].status);
}

/* Exhaustive over methods x each field absent / matching / not matching x Range x existence:
 * 304 only for GET and HEAD, 206 only for GET with a Range (§13.1.2, §13.1.3, §14.2). */
Test(precond, not_modified_only_for_get_and_head_and_range_only_for_get_with_range)
{
    static const enum nm_method methods[] = {
        NM_METHOD_OTHER,  NM_METHOD_GET,     NM_METHOD_HEAD,    NM_METHOD_POST,  NM_METHOD_PUT,
        NM_METHOD_DELETE, NM_METHOD_CONNECT, NM_METHOD_OPTIONS, NM_METHOD_TRACE, NM_METHOD_PATCH,
    };
    static const char *const tags[] = {NULL, ETAG_CUR, ETAG_OLD};
    static const char *const dates[] = {NULL, D_LM, D_LM_M1D};
    size_t seen[4] = {0};
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
        for (unsigned combo = 0; combo < 243 * 4; combo++) {
            unsigned c = combo;
            struct row r = {.method = methods[m]};
            r.im = tags[c % 3];
            c /= 3;
            r.ius = dates[c % 3];
            c /= 3;
            r.inm = tags[c % 3];
            c /= 3;
            r.ims = dates[c % 3];
            c /= 3;
            r.ir = tags[c % 3];
            c /= 3;
            r.range = c & 1;
            r.absent = (c >> 1) & 1;
            struct built b;
            build(&b, &r);
            struct nm_precond_resource res = default_resource();
            res.exists = !r.absent;
            enum nm_precond_result got = nm_precond_evaluate(&b.req, &res, NM_IMS_RFC);
            seen[got]++;
            bool get_or_head = r.method == NM_METHOD_GET || r.method == NM_METHOD_HEAD;
            cr_expect(got != NM_PRECOND_NOT_MODIFIED || get_or_head, "304 for %s",
                      nm_method_name(r.method));
            cr_expect(got != NM_PRECOND_RANGE || (r.method == NM_METHOD_GET && r.range),
                      "RANGE for %s range=%d", nm_method_name(r.method), r.range);
        }
    for (size_t i = 0; i < 4; i++)
        cr_expect(seen[i] > 0, "result %s never produced", result_name((enum nm_precond_result)i));
}
