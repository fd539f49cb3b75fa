/* libFuzzer harness for formats/zip.c: sr_zip_open on the input, then every
 * entry looked up by name and read back (CRC checked, which touches every
 * byte, so ASan sees any read outside the input). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/zip.h"

/* Deflated entries are inflated into buffers this large at most. */
#define MAX_ENTRY_SIZE (UINT64_C(64) << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sr_error err = {{0}};
    sr_zip *zip = NULL;
    if (sr_zip_open(&zip, size ? data : NULL, size, &err) != SR_OK)
        return 0;
    int64_t n = sr_zip_count(zip);
    for (int64_t i = 0; i < n; i++) {
        const sr_zip_entry *e = sr_zip_entry_at(zip, i);
        const sr_zip_entry *found = sr_zip_find(zip, e->name);
        if (!found || strcmp(found->name, e->name) != 0)
            __builtin_trap(); /* every listed name can be found */
        const uint8_t *bytes;
        void *owned;
        if (sr_zip_read(zip, e, MAX_ENTRY_SIZE, 1, &bytes, &owned, &err) == SR_OK) {
            if (!owned && (bytes < data || e->size > (uint64_t)(data + size - bytes)))
                __builtin_trap(); /* a stored entry lies inside the input */
            free(owned);
        }
    }
    sr_zip_close(zip);
    return 0;
}
