/* ETag store records (bytes read back from a file a crash or a bad disk may have damaged): what
 * the decoder accepts is canonical, so encoding it again gives the input byte for byte; anything
 * else is -EBADMSG. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "etags/etags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nm_etag_store_record r;
    int rc = nm_etag_store_decode(data, size, &r);
    if (rc != 0) {
        if (rc != -EBADMSG)
            __builtin_trap();
        return 0;
    }
    uint8_t again[NM_ETAG_STORE_RECORD_BYTES];
    if (size != sizeof(again) || nm_etag_store_encode(&r, again) != 0 ||
        memcmp(again, data, size) != 0)
        __builtin_trap();
    return 0;
}
