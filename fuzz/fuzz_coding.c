/* Accept-Encoding negotiation on arbitrary bytes. The first byte chooses the available codings
 * (low nibble) and the server's order (high nibble); the rest, split at '\n', is the field's lines
 * (absent when there is no rest). Properties: the answer is identity, an available coding or
 * -ENOENT; never a coding whose quality is 0, nor one below another available coding's quality
 * (checked against a plain re-reading of §12.5.3 and §12.4.2); adding "identity;q=0" never turns a
 * non-identity answer into another; the same elements on one line or on several give the same
 * answer. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "notmod/coding.h"
#include "notmod/token.h"

#include "check.h"

#define MAX_LINES 32
#define MAX_BYTES 4096

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* §12.4.2 qvalue in thousandths, or -1. */
static int ref_qvalue(const char *p, size_t len)
{
    if (len == 0 || len > 5 || (p[0] != '0' && p[0] != '1'))
        return -1;
    if (len > 1 && p[1] != '.')
        return -1;
    int v = (p[0] - '0') * 1000;
    static const int scale[] = {100, 10, 1};
    for (size_t i = 2; i < len; i++) {
        if (p[i] < '0' || p[i] > '9' || (p[0] == '1' && p[i] != '0'))
            return -1;
        v += (p[i] - '0') * scale[i - 2];
    }
    return v;
}

/* The highest quality the field gives `want` by name ("*" for the wildcard), or -1 when unnamed. */
static int ref_named(const struct nm_slice *lines, size_t n, const char *want)
{
    int best = -1;
    for (size_t l = 0; l < n; l++) {
        const char *p = lines[l].ptr, *end = p + lines[l].len;
        while (p <= end) {
            const char *comma = p;
            while (comma < end && *comma != ',')
                comma++;
            const char *a = p, *b = comma;
            p = comma + 1;
            while (a < b && is_ows(*a))
                a++;
            while (b > a && is_ows(b[-1]))
                b--;
            const char *name_end = a;
            while (name_end < b && nm_token_is_tchar((unsigned char)*name_end))
                name_end++;
            if (name_end == a)
                continue;
            int q = 1000;
            const char *r = name_end;
            while (r < b && is_ows(*r))
                r++;
            if (r < b) {
                if (*r++ != ';')
                    continue;
                while (r < b && is_ows(*r))
                    r++;
                if (b - r < 2 || (r[0] | 0x20) != 'q' || r[1] != '=')
                    continue;
                q = ref_qvalue(r + 2, (size_t)(b - r - 2));
                if (q < 0)
                    continue;
            }
            struct nm_slice name = nm_slice_make(a, (size_t)(name_end - a));
            bool match =
                nm_slice_case_eq(name, nm_slice_from_cstr(want)) ||
                (strcmp(want, "gzip") == 0 && nm_slice_case_eq(name, NM_SLICE_LIT("x-gzip")));
            if (match && q > best)
                best = q;
        }
    }
    return best;
}

static int ref_quality(const struct nm_slice *lines, size_t n, enum nm_coding c)
{
    int named = ref_named(lines, n, nm_coding_name(c));
    int star = ref_named(lines, n, "*");
    if (named >= 0)
        return named;
    if (star >= 0)
        return star;
    return c == NM_CODING_IDENTITY ? 1 : 0;
}

static size_t split(const char *p, size_t len, struct nm_slice *lines)
{
    size_t n = 0, pos = 0;
    while (n < MAX_LINES) {
        const char *nl = memchr(p + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - p) : len;
        lines[n++] = nm_slice_make(p + pos, end - pos);
        if (!nl)
            break;
        pos = end + 1;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > MAX_BYTES)
        return 0;
    unsigned avail = data[0] & 0x0fu;
    static const enum nm_coding orders[][3] = {
        {NM_CODING_BR, NM_CODING_ZSTD, NM_CODING_GZIP},
        {NM_CODING_GZIP, NM_CODING_BR, 0},
        {NM_CODING_ZSTD, NM_CODING_GZIP, NM_CODING_BR},
        {NM_CODING_IDENTITY, NM_CODING_GZIP, 0},
    };
    const enum nm_coding *pref = orders[(data[0] >> 4) & 3];
    size_t n_pref = (data[0] >> 6) & 3;
    const char *p = (const char *)data + 1;
    size_t len = size - 1;

    struct nm_slice lines[MAX_LINES + 1];
    size_t n = size > 1 ? split(p, len, lines) : 0;
    struct nm_field f = {lines, n};
    int r = nm_coding_negotiate(f, avail, pref, n_pref);

    nm_fuzz_check(r == -ENOENT || r == NM_CODING_IDENTITY ||
                  (r > 0 && r < NM_CODING_COUNT && (avail & NM_CODING_BIT(r))));
    if (n == 0) {
        nm_fuzz_check(r == NM_CODING_IDENTITY);
        return 0;
    }

    int best = ref_quality(lines, n, NM_CODING_IDENTITY);
    for (int c = 1; c < NM_CODING_COUNT; c++)
        if ((avail & NM_CODING_BIT(c)) && ref_quality(lines, n, (enum nm_coding)c) > best)
            best = ref_quality(lines, n, (enum nm_coding)c);
    if (r < 0)
        nm_fuzz_check(best == 0);
    else
        nm_fuzz_check(ref_quality(lines, n, (enum nm_coding)r) == best && best > 0);

    /* One more line "identity;q=0" (§5.3 appends it to the list). */
    lines[n] = NM_SLICE_LIT("identity;q=0");
    int r_no_id = nm_coding_negotiate((struct nm_field){lines, n + 1}, avail, pref, n_pref);
    if (r > NM_CODING_IDENTITY)
        nm_fuzz_check(r_no_id == r);
    nm_fuzz_check(r_no_id != NM_CODING_IDENTITY || r == NM_CODING_IDENTITY);

    /* All lines joined with commas into one. */
    char joined[MAX_BYTES];
    size_t j = 0;
    for (size_t l = 0; l < n; l++) {
        if (l > 0)
            joined[j++] = ',';
        if (lines[l].len > 0)
            memcpy(joined + j, lines[l].ptr, lines[l].len);
        j += lines[l].len;
    }
    struct nm_slice one = nm_slice_make(joined, j);
    nm_fuzz_check(nm_coding_negotiate((struct nm_field){&one, 1}, avail, pref, n_pref) == r);

    /* The first line split at its first comma into two lines. */
    const char *comma = lines[0].len > 0 ? memchr(lines[0].ptr, ',', lines[0].len) : NULL;
    if (comma && n < MAX_LINES) {
        struct nm_slice two[MAX_LINES + 1];
        two[0] = nm_slice_make(lines[0].ptr, (size_t)(comma - lines[0].ptr));
        two[1] = nm_slice_make(comma + 1, lines[0].len - two[0].len - 1);
        for (size_t l = 1; l < n; l++)
            two[l + 1] = lines[l];
        nm_fuzz_check(nm_coding_negotiate((struct nm_field){two, n + 1}, avail, pref, n_pref) == r);
    }
    return 0;
}
