/* libFuzzer harness for the .pth loader: sr_pth_load on a mapped file made
 * of the input bytes (container sniffing, zip, unpickler with torch's
 * hooks, tensor geometry, dtype conversion), then the architecture
 * builder on whatever weights came out. Mutations inside a stored
 * data.pkl mostly fail its CRC here; fuzz_pickle reaches those. */
#include <stdint.h>

#include "load_pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const sr_mapped_file file = {size ? data : NULL, size};
    load_pth(&file);
    return 0;
}
