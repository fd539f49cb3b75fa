/* Architectures srrun knows, each recognised from its weight names and
 * built into a graph whose nodes view the weights (which must outlive it). */
#ifndef SR_MODELS_REGISTRY_H
#define SR_MODELS_REGISTRY_H

#include <stdbool.h>

#include "ops/graph.h"
#include "base/weights.h"

/* Things worth telling the user that did not stop the build, one a line. */
typedef struct sr_notices {
    char text[2048];
} sr_notices;

void sr_notices_add(sr_notices *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef struct sr_arch {
    const char *name;
    bool (*recognise)(const sr_weights *w);
    /* strict: a tensor the network does not use is an error, not a notice.
     * Sets used[i] (zeroed, one per weight) for each weight the graph views. */
    sr_status (*build)(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                       sr_model_info *info, sr_notices *notices, sr_error *err);
} sr_arch;

extern const sr_arch sr_arch_srpgan, sr_arch_rrdbnet, sr_arch_srvgg, sr_arch_edsr,
    sr_arch_msrresnet;

/* Finds the architecture the weights belong to and builds its graph, then
 * frees the weights the graph does not view: a model holds, and converts
 * to model.bin, only what its network uses. */
sr_status sr_model_build(sr_weights *w, bool strict, sr_graph *g,
                         sr_model_info *info, sr_notices *notices, sr_error *err);

#endif
