/* What every architecture's builder does with a file's weights: looks each
 * tensor up by name with its exact expected shape, adds nodes that view
 * them, counts the parameters, and reports what the network left unused.
 *
 * Node functions return the new node's index, or -1 after recording the
 * failure in the builder; given a negative input they return it at once,
 * so that a network is written as a plain sequence of calls and checked
 * once at the end. Names are printf formats (a weight prefix for nodes
 * with weights, e.g. "body.%d.conv1"). */
#ifndef SR_MODELS_BUILD_H
#define SR_MODELS_BUILD_H

#include "models/registry.h"

typedef struct sr_builder {
    const sr_weights *w;
    sr_graph *g;
    bool *used; /* per weight: viewed by the graph */
    int64_t n_params;
    sr_status status; /* the first failure */
    sr_error *err;
    /* Optional: unused tensors the network knows it ignores, counted in
     * n_ignored by sr_build_finish instead of a notice each. */
    bool (*ignored)(const char *name);
    int n_ignored;
} sr_builder;

#define SR_BUILD_PRINTF(i) __attribute__((format(printf, i, i + 1)))

/* The weight `name` with exactly `shape`, marked used; NULL when missing
 * or of another shape (the failure names both shapes). */
const float *sr_build_weight(sr_builder *b, const char *name, int ndim,
                             const int64_t *shape);

/* The weight's data when it has exactly `shape`, else NULL; not marked
 * used: for values that decide the network's form before it is built. */
const float *sr_build_peek(const sr_weights *w, const char *name, int ndim,
                           const int64_t *shape);

/* The graph's image. */
int sr_build_input(sr_builder *b);

/* The image space-to-depth by factor (3 factor^2 channels), its bottom and
 * right edges padded by reflection to a multiple of it (ops/op.h,
 * sr_input_params): the output is then larger than the image's scale-up,
 * and the runtime crops it. */
int sr_build_unshuffled_input(sr_builder *b, int factor);

/* k x k, zero padding k / 2, from <prefix>.weight and <prefix>.bias. */
int sr_build_conv(sr_builder *b, int input, int64_t c_in, int64_t c_out, int k,
                  const char *prefix, ...) SR_BUILD_PRINTF(6);

/* nn.PReLU(channels): <prefix>.weight holds one slope per channel. */
int sr_build_prelu(sr_builder *b, int input, int64_t channels, const char *prefix, ...)
    SR_BUILD_PRINTF(4);

/* slope 0: ReLU. */
int sr_build_leaky_relu(sr_builder *b, int input, float slope, const char *name, ...)
    SR_BUILD_PRINTF(4);

/* in0 + scale * in1. */
int sr_build_add(sr_builder *b, int in0, int in1, float scale, const char *name, ...)
    SR_BUILD_PRINTF(5);

/* The inputs' channels one after the other (torch.cat(inputs, 1)). */
int sr_build_concat(sr_builder *b, int n_inputs, const int *inputs, const char *name, ...)
    SR_BUILD_PRINTF(4);

int sr_build_pixel_shuffle(sr_builder *b, int input, int r, const char *name, ...)
    SR_BUILD_PRINTF(4);

/* Per channel over H x W, biased variance, no affine parameters. */
int sr_build_instance_norm(sr_builder *b, int input, float eps, const char *name, ...)
    SR_BUILD_PRINTF(4);

/* (tanh(x) + 1) / 2. */
int sr_build_tanh_affine(sr_builder *b, int input, const char *name, ...) SR_BUILD_PRINTF(3);

/* F.interpolate(scale_factor=factor, mode=nearest or bilinear,
 * align_corners=False). */
int sr_build_upsample(sr_builder *b, int input, int factor, sr_upsample_mode mode,
                      const char *name, ...) SR_BUILD_PRINTF(5);

/* After the last node: each tensor the graph does not view (and the
 * builder does not know it ignores) is a notice, or with strict an error.
 * Returns the builder's status. */
sr_status sr_build_finish(sr_builder *b, bool strict, sr_notices *notices);

/* How many of fmt % 0, fmt % 1, ... name weights, counting up to limit + 1
 * (so that more than limit shows). */
int sr_build_count(const sr_weights *w, const char *fmt, int limit);

/* The weight's size along dimension dim, or -1 when it is missing or has
 * fewer dimensions: for reading widths before the exact checks. */
int64_t sr_build_dim(const sr_weights *w, const char *name, int dim);

#endif
