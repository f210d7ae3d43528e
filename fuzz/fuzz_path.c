/* Fuzzes request-path normalization: every accepted target yields a path that cannot leave the
 * root, normalizing is idempotent, and encode -> normalize gives the path back. */
#include "notmod/path.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool has_dot_segment(const char *p, size_t n)
{
    if (strstr(p, "/./") || strstr(p, "/../"))
        return true;
    if (n >= 2 && memcmp(p + n - 2, "/.", 2) == 0)
        return true;
    return n >= 3 && memcmp(p + n - 3, "/..", 3) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[NM_PATH_MAX + 1];
    static char again[NM_PATH_MAX + 1];
    static char enc[3 * NM_PATH_MAX + 1];

    struct nm_slice target = nm_slice_make((const char *)data, size);
    int rc = nm_path_normalize(target, out, sizeof(out));
    if (rc < 0) {
        check(rc == -EINVAL || rc == -ENAMETOOLONG);
        return 0;
    }

    size_t n = (size_t)rc;
    check(n >= 1 && n <= NM_PATH_MAX);
    check(strlen(out) == n);
    check(out[0] == '/');
    check(strstr(out, "//") == NULL);
    check(!has_dot_segment(out, n));
    for (size_t i = 0; i < n; i++)
        check((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
    /* Decoding can only shrink the target: the query goes and each escape becomes one byte. */
    check(n <= size);

    /* Without '%' and '?' the output is itself a valid target that means the same path. */
    if (!memchr(out, '%', n) && !memchr(out, '?', n) && !memchr(out, '#', n) &&
        !memchr(out, ' ', n)) {
        int rc2 = nm_path_normalize(nm_slice_make(out, n), again, sizeof(again));
        check(rc2 == rc && memcmp(again, out, n + 1) == 0);
    }

    /* Encoding escapes every byte that decoding or the syntax would treat specially. */
    int elen = nm_path_encode(out, enc, sizeof(enc));
    check(elen >= rc);
    int rc3 = nm_path_normalize(nm_slice_make(enc, (size_t)elen), again, sizeof(again));
    check(rc3 == rc && memcmp(again, out, n + 1) == 0);

    check(nm_path_is_hidden(out) == nm_path_is_hidden(again));
    return 0;
}
