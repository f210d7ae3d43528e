/* Cache-Control, Vary and 304 freshening on arbitrary bytes. The input is split at '\n' into
 * header lines "Name: value"; lines before an empty line are the stored response, after it the
 * 304. Properties: freshness is never negative and "fresh" implies lifetime > age without
 * no-cache; Vary "*" never matches; freshening never takes Content-Length or framing fields from
 * the 304, and keeps only lines that came from one of the two inputs. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "notmod/cachectl.h"

#include "check.h"

#define MAX 64

static size_t split(const char *p, size_t len, struct nm_http1_field *h, size_t *consumed)
{
    size_t n = 0, pos = 0;
    while (pos < len && n < MAX) {
        const char *nl = memchr(p + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - p) : len;
        if (end == pos) {
            pos++;
            break;
        }
        const char *colon = memchr(p + pos, ':', end - pos);
        if (colon) {
            h[n].name = nm_slice_make(p + pos, (size_t)(colon - (p + pos)));
            h[n].value = nm_slice_make(colon + 1, end - (size_t)(colon + 1 - p));
            n++;
        }
        pos = end + 1;
    }
    *consumed = pos > len ? len : pos;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct nm_http1_field a[MAX], b[MAX], out[2 * MAX];
    size_t used_a, used_b;
    size_t na = split(p, size, a, &used_a);
    size_t nb = split(p + used_a, size - used_a, b, &used_b);

    struct nm_slice l[5][NM_CACHECTL_MAX_LINES];
    struct nm_cachectl_response r = {
        .status = 200,
        .cache_control = nm_cachectl_field(a, na, "Cache-Control", l[0], NM_CACHECTL_MAX_LINES),
        .expires = nm_cachectl_field(a, na, "Expires", l[1], NM_CACHECTL_MAX_LINES),
        .date = nm_cachectl_field(a, na, "Date", l[2], NM_CACHECTL_MAX_LINES),
        .last_modified = nm_cachectl_field(a, na, "Last-Modified", l[3], NM_CACHECTL_MAX_LINES),
        .age = nm_cachectl_field(a, na, "Age", l[4], NM_CACHECTL_MAX_LINES),
        .request_time = 1000000000,
        .response_time = 1000000001,
    };
    struct nm_cachectl_policy pol = {
        .heuristic = true, .heuristic_max_s = 86400, .heuristic_percent = 10};
    struct nm_freshness fr;
    nm_cachectl_evaluate(&r, &pol, 1000000100, &fr);
    nm_fuzz_check(fr.lifetime_s >= 0 && fr.current_age_s >= 0);
    if (fr.fresh)
        nm_fuzz_check(fr.lifetime_s > fr.current_age_s && !(fr.cc_flags & NM_CACHECTL_NO_CACHE));

    struct nm_slice vl[NM_CACHECTL_MAX_LINES];
    struct nm_field vary = nm_cachectl_field(a, na, "Vary", vl, NM_CACHECTL_MAX_LINES);
    if (nm_cachectl_vary_is_any(vary))
        nm_fuzz_check(!nm_cachectl_vary_matches(vary, a, na, b, nb));

    nm_cachectl_select_304(a, na, b, nb, 1000000100);
    int n = nm_cachectl_freshen(a, na, b, nb, out, 2 * MAX);
    nm_fuzz_check(n >= 0 && (size_t)n <= na + nb);
    for (int i = 0; i < n; i++) {
        bool from_b = false;
        for (size_t j = 0; j < nb; j++)
            from_b |= out[i].name.ptr == b[j].name.ptr && out[i].value.ptr == b[j].value.ptr;
        bool from_a = false;
        for (size_t j = 0; j < na; j++)
            from_a |= out[i].name.ptr == a[j].name.ptr && out[i].value.ptr == a[j].value.ptr;
        nm_fuzz_check(from_a || from_b);
        if (from_b && !from_a) {
            nm_fuzz_check(!nm_slice_case_eq(out[i].name, NM_SLICE_LIT("Content-Length")));
            nm_fuzz_check(!nm_slice_case_eq(out[i].name, NM_SLICE_LIT("Transfer-Encoding")));
            nm_fuzz_check(!nm_slice_case_eq(out[i].name, NM_SLICE_LIT("Connection")));
        }
    }
    return 0;
}
