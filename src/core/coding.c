/* Content codings (RFC 9110 §8.4.1) and Accept-Encoding negotiation (§12.5.3) with quality values
 * (§12.4.2), in thousandths so that no floating point is involved. */
#include "notmod/coding.h"

#include <errno.h>

#include "notmod/token.h"

/* Quality values in thousandths: 1000 is q=1, 0 is "not acceptable". */
#define Q_MAX 1000
/* Not named in the field. */
#define Q_UNNAMED (-1)
/* §12.5.3 makes identity acceptable by default without giving it a weight: the lowest non-zero
 * quality, so that any coding the client names with q > 0 is preferred to none. */
#define Q_IDENTITY_DEFAULT 1

static const struct {
    const char *name;
    const char *suffix;
} codings[NM_CODING_COUNT] = {
    [NM_CODING_IDENTITY] = {"identity", ""},
    [NM_CODING_BR] = {"br", ".br"},
    [NM_CODING_ZSTD] = {"zstd", ".zst"},
    [NM_CODING_GZIP] = {"gzip", ".gz"},
};

static bool is_coding(enum nm_coding c)
{
    return (unsigned)c < NM_CODING_COUNT;
}

const char *nm_coding_name(enum nm_coding c)
{
    return is_coding(c) ? codings[c].name : NULL;
}

const char *nm_coding_suffix(enum nm_coding c)
{
    return is_coding(c) ? codings[c].suffix : NULL;
}

int nm_coding_parse(struct nm_slice name, enum nm_coding *out)
{
    /* §8.4.1.3: a recipient SHOULD consider "x-gzip" to be equivalent to "gzip". */
    if (nm_slice_case_eq(name, NM_SLICE_LIT("x-gzip"))) {
        *out = NM_CODING_GZIP;
        return 0;
    }
    for (int c = 0; c < NM_CODING_COUNT; c++) {
        /* §8.4.1: content-coding values are case-insensitive. */
        if (nm_slice_case_eq(name, nm_slice_from_cstr(codings[c].name))) {
            *out = (enum nm_coding)c;
            return 0;
        }
    }
    return -EINVAL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ). Returns thousandths or
 * -1; "1.0001", "0.5000", ".5" and "+1" are all malformed. */
static int parse_qvalue(struct nm_slice s)
{
    if (s.len == 0 || (s.ptr[0] != '0' && s.ptr[0] != '1'))
        return -1;
    int whole = s.ptr[0] - '0';
    if (s.len == 1)
        return whole * Q_MAX;
    if (s.ptr[1] != '.' || s.len > 5)
        return -1;
    int frac = 0;
    int scale = 100;
    for (size_t i = 2; i < s.len; i++) {
        if (!is_digit(s.ptr[i]))
            return -1;
        frac += (s.ptr[i] - '0') * scale;
        scale /= 10;
    }
    if (whole == 1 && frac != 0)
        return -1;
    return whole * Q_MAX + frac;
}

/* One list element (§12.5.3): ( codings ) [ weight ], weight = OWS ";" OWS "q=" qvalue (§12.4.2;
 * "q" is case-insensitive as every ABNF literal, RFC 5234 §2.3). Writes the coding name and its
 * quality; false for anything else, including other parameters, which the grammar does not allow,
 * so that element alone is ignored. */
static bool parse_element(struct nm_slice e, struct nm_slice *name, int *q)
{
    size_t i = 0;
    while (i < e.len && nm_token_is_tchar((unsigned char)e.ptr[i]))
        i++;
    if (i == 0)
        return false;
    *name = nm_slice_make(e.ptr, i);
    if (i == e.len) {
        *q = Q_MAX;
        return true;
    }
    while (i < e.len && nm_token_is_ows((unsigned char)e.ptr[i]))
        i++;
    if (i == e.len || e.ptr[i] != ';')
        return false;
    i++;
    while (i < e.len && nm_token_is_ows((unsigned char)e.ptr[i]))
        i++;
    if (e.len - i < 2 || (e.ptr[i] != 'q' && e.ptr[i] != 'Q') || e.ptr[i + 1] != '=')
        return false;
    i += 2;
    /* The element is trimmed of OWS, so the qvalue runs to its end. */
    int v = parse_qvalue(nm_slice_make(e.ptr + i, e.len - i));
    if (v < 0)
        return false;
    *q = v;
    return true;
}

static void keep_highest(int *slot, int q)
{
    if (q > *slot)
        *slot = q;
}

int nm_coding_negotiate(struct nm_field field, unsigned available, const enum nm_coding *preference,
                        size_t n)
{
    /* §12.5.3 lets a server send any coding to a request without Accept-Encoding; notmod does not
     * guess what the client can decode. */
    if (field.n_lines == 0)
        return NM_CODING_IDENTITY;

    int named[NM_CODING_COUNT];
    for (int c = 0; c < NM_CODING_COUNT; c++)
        named[c] = Q_UNNAMED;
    int star = Q_UNNAMED;

    /* §5.3: the field lines are one comma-separated list. A name listed more than once takes its
     * highest quality: §12.5.3 does not say, and the highest never refuses what the client
     * accepts in another element. */
    for (size_t l = 0; l < field.n_lines; l++) {
        size_t pos = 0;
        struct nm_slice e;
        while (nm_token_list_next(field.lines[l], &pos, &e)) {
            struct nm_slice name;
            int q;
            enum nm_coding c;
            if (!parse_element(e, &name, &q))
                continue;
            if (name.len == 1 && name.ptr[0] == '*')
                keep_highest(&star, q);
            else if (nm_coding_parse(name, &c) == 0)
                keep_highest(&named[c], q);
        }
    }

    /* §12.5.3: "*" matches every coding not listed; identity is acceptable unless "identity;q=0",
     * or "*;q=0" with no entry for identity, excludes it. An empty value names nothing, so only
     * identity remains. */
    int quality[NM_CODING_COUNT];
    for (int c = 0; c < NM_CODING_COUNT; c++)
        quality[c] = named[c] != Q_UNNAMED ? named[c] : star != Q_UNNAMED ? star : 0;
    if (named[NM_CODING_IDENTITY] == Q_UNNAMED && star == Q_UNNAMED)
        quality[NM_CODING_IDENTITY] = Q_IDENTITY_DEFAULT;

    /* Rank order: the server's preference, then the other available codings, identity last. The
     * first coding seen at the best quality wins, so ties go to the earlier rank. */
    int best = -ENOENT;
    int best_q = 0;
    for (size_t i = 0; i < n; i++) {
        enum nm_coding c = preference[i];
        if (!is_coding(c) || c == NM_CODING_IDENTITY || !(available & NM_CODING_BIT(c)))
            continue;
        if (quality[c] > best_q) {
            best = (int)c;
            best_q = quality[c];
        }
    }
    for (int c = NM_CODING_IDENTITY + 1; c < NM_CODING_COUNT; c++) {
        if (!(available & NM_CODING_BIT(c)))
            continue;
        if (quality[c] > best_q) {
            best = c;
            best_q = quality[c];
        }
    }
    if (quality[NM_CODING_IDENTITY] > best_q)
        best = NM_CODING_IDENTITY;
    return best;
}
