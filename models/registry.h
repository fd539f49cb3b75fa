/* Architectures srrun knows, each recognised from its weight names and
 * built into a graph whose nodes view the weights (which must outlive it).
 * Everything srrun knows of an architecture is in its models/<name>.c,
 * behind one sr_arch listed in registry.c: file formats know none. */
#ifndef SR_MODELS_REGISTRY_H
#define SR_MODELS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/graph.h"
#include "base/hparams.h"
#include "base/weights.h"

/* Things worth telling the user that did not stop the build, one a line. */
typedef struct sr_notices {
    char text[2048];
} sr_notices;

void sr_notices_add(sr_notices *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What a new architecture provides (then add it to registry.c's list):
 *
 * name       Required. 1 to 15 bytes of [a-z0-9_] ("srpgan"): model.bin
 *            stores it (never rename one that shipped) and `srrun info`
 *            shows it.
 * recognise  Required. True when the weights' names are this layout's;
 *            cheap, and no two architectures may claim the same weights.
 * build      Required. Called only on weights recognise accepted. strict:
 *            a tensor the network does not use is an error, not a notice.
 *            Sets used[i] (zeroed, one per weight) for each weight the
 *            graph views. On success fills *info: architecture (= name),
 *            scale, n_blocks and n_params (the others are the runtime's).
 * hparams    Optional. Appends to *out (empty) with sr_hparams_add the
 *            hyper-parameters build derived from these weights, which
 *            model.bin records and `srrun info` lists: a few names of 1 to
 *            23 bytes of [a-z0-9_], the same every time, and at most
 *            SR_HPARAMS_MAX; their values are integers. Called only after
 *            build succeeded on the same weights, with the info it filled.
 *            Names and order are stored in files: never rename or reorder
 *            one that shipped. NULL: "scale" and "blocks" from the info. */
typedef struct sr_arch {
    const char *name;
    bool (*recognise)(const sr_weights *w);
    sr_status (*build)(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                       sr_model_info *info, sr_notices *notices, sr_error *err);
    void (*hparams)(const sr_weights *w, const sr_model_info *info, sr_hparams *out);
} sr_arch;

extern const sr_arch sr_arch_srpgan, sr_arch_rrdbnet, sr_arch_srvgg, sr_arch_edsr,
    sr_arch_msrresnet;

/* Builds the weights' graph as the architecture called `arch` (a model.bin
 * names its own) or, when arch is NULL, as the one that recognises them,
 * then frees the weights the graph does not view: a model holds, and
 * converts to model.bin, only what its network uses. Fills *hparams with
 * what the architecture derived. An unknown name, weights that are not
 * laid out as the named architecture's, and weights no architecture
 * recognises are SR_ERR_MODEL, the first and last listing those srrun
 * knows. */
sr_status sr_model_build_as(const char *arch, sr_weights *w, bool strict, sr_graph *g,
                            sr_model_info *info, sr_hparams *hparams, sr_notices *notices,
                            sr_error *err);

/* sr_model_build_as(NULL, ...) without the hyper-parameters. */
sr_status sr_model_build(sr_weights *w, bool strict, sr_graph *g, sr_model_info *info,
                         sr_notices *notices, sr_error *err);

/* The file name of the shipped default model that upscales by `scale`
 * ("srpgan_x4.bin"), or NULL when none does. */
const char *sr_default_model_file(int scale);

/* The scales that have a default model, for messages: "x2 and x4". */
void sr_default_model_scales(char *buf, size_t size);

#endif
