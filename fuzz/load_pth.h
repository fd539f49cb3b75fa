/* What the .pth harnesses do with their bytes: load them as a checkpoint,
 * build whatever architecture the weights describe, and trap if a failed
 * load left anything behind. */
#ifndef SR_FUZZ_LOAD_PTH_H
#define SR_FUZZ_LOAD_PTH_H

#include "formats/pth.h"
#include "models/registry.h"

static inline void load_pth(const sr_mapped_file *file)
{
    sr_weights weights = {0};
    sr_error err = {{0}};
    if (sr_pth_load(file, 0, &weights, &err) == SR_OK) {
        sr_graph graph = {0};
        sr_model_info info = {0};
        sr_notices notices = {{0}};
        sr_model_build(&weights, false, &graph, &info, &notices, &err);
        sr_graph_free(&graph);
    } else if (weights.n_items != 0) {
        __builtin_trap(); /* a failed load leaves the collection as it was */
    }
    sr_weights_free(&weights);
}

#endif
