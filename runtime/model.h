/* What a loaded model is, shared by the model API (api.c) and sessions
 * (session.c): the mapped file, the weights viewing it, the graph viewing
 * the weights. Immutable once loaded. */
#ifndef SR_RUNTIME_MODEL_H
#define SR_RUNTIME_MODEL_H

#include "formats/file.h"
#include "models/registry.h"
#include "ops/graph.h"
#include "base/weights.h"

struct sr_model {
    sr_mapped_file file; /* float32 weights are views into it */
    sr_weights weights;
    sr_graph graph;
    sr_model_info info;
    sr_hparams hparams; /* what the architecture derived from the weights,
                           then the patch's, if any */
    int64_t patch, patch_margin; /* runtime/patches.h; patch 0: whole images */
    sr_notices notices;
};

#endif
