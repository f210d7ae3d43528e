/* ETag manifests (untrusted files): whatever the parser accepts is canonical, so formatting it
 * gives back the input byte for byte; every entry can be found by its path; a rejection names a
 * line inside the input. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "etags/etags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    const char *text = (const char *)data;
    struct nm_manifest *m;
    size_t line = 0;
    const char *what = NULL;
    int rc = nm_manifest_parse(text, size, &m, &line, &what);
    if (rc != 0) {
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        if (rc == -EINVAL && (!what || line < 1 || line > lines))
            __builtin_trap();
        return 0;
    }
    struct nm_buf out;
    nm_buf_init(&out, size + 1);
    if (nm_manifest_format(m, &out) != 0 || out.len != size || memcmp(out.ptr, data, size) != 0)
        __builtin_trap();
    for (size_t i = 0; i < nm_manifest_count(m); i++) {
        const struct nm_manifest_entry *e = nm_manifest_at(m, i);
        if (nm_manifest_find(m, e->path) != e || e->path[0] != '/')
            __builtin_trap();
        if (i > 0 && strcmp(nm_manifest_at(m, i - 1)->path, e->path) >= 0)
            __builtin_trap();
    }
    /* Sorting a parsed manifest changes nothing. */
    if (nm_manifest_sort(m) != 0)
        __builtin_trap();
    nm_buf_cleanup(&out);
    nm_manifest_free(m);
    return 0;
}
