/* user.notmod.etag attribute values (bytes any process that can write the file may have set):
 * what the parser accepts is canonical, so formatting it again gives the value byte for byte;
 * anything else is -EINVAL. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "etags/etags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nm_attr_record r;
    int rc = nm_attr_parse((const char *)data, size, &r);
    if (rc != 0) {
        if (rc != -EINVAL)
            __builtin_trap();
        return 0;
    }
    char again[NM_ATTR_MAX + 1];
    int n = nm_attr_format(&r, again, sizeof(again));
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
        __builtin_trap();
    return 0;
}
