/* libFuzzer harness for the .pth loader: sr_pth_load on a mapped file made
 * of the input bytes (container sniffing, zip, unpickler with torch's
 * hooks, tensor geometry, dtype conversion), then the architecture
 * builder on whatever weights came out. Mutations inside a stored
 * data.pkl mostly fail its CRC here; fuzz_pickle reaches those. */
#include <stdint.h>

#include "formats/pth.h"
#include "models/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const sr_mapped_file file = {size ? data : NULL, size};
    sr_weights weights = {0};
    sr_error err = {{0}};
    if (sr_pth_load(&file, &weights, &err) == SR_OK) {
        sr_graph graph = {0};
        sr_model_info info = {0};
        sr_notices notices = {{0}};
        sr_model_build(&weights, false, &graph, &info, &notices, &err);
        sr_graph_free(&graph);
    } else if (weights.n_items != 0) {
        __builtin_trap(); /* a failed load leaves the collection as it was */
    }
    sr_weights_free(&weights);
    return 0;
}
