/* libFuzzer harness for formats/modelbin.c, srrun's own weight format:
 * sr_modelbin_load on a mapped file made of the input bytes, with the
 * CRC-32 checks off so mutations reach the header, the tensor table and
 * the data (the CRC code itself is fuzzed on every other input), then
 * the builder of the architecture it names and the check of its recorded
 * hyper-parameters against the weights. */
#include <stdint.h>

#include "formats/modelbin.h"
#include "models/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const sr_mapped_file file = {size ? data : NULL, size};
    sr_weights weights = {0};
    sr_modelbin_info info = {0};
    sr_error err = {{0}};
    const bool verify_crc = size > 0 && (data[size - 1] & 1);
    if (sr_modelbin_load(&file, verify_crc, &weights, &info, &err) == SR_OK) {
        sr_graph graph = {0};
        sr_model_info model = {0};
        sr_hparams hparams;
        sr_notices notices = {{0}};
        if (sr_model_build_as(info.arch.name, &weights, false, &graph, &model, &hparams, &notices,
                              &err) == SR_OK)
            sr_hparams_check(&info.arch.hparams, &hparams, info.arch.name, &err);
        sr_graph_free(&graph);
    } else if (weights.n_items != 0) {
        __builtin_trap(); /* a failed load leaves the collection as it was */
    }
    sr_weights_free(&weights);
    return 0;
}
