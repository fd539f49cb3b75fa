/* LeakyReLU: x above 0, slope x at and below it. Slope 0 is ReLU, which
 * PyTorch computes as its own op: negatives become +0.0, while -0.0 and NaN
 * pass through (LeakyReLU with slope 0 would make -0.0 of negatives). */
#include "ops/op.h"

static int64_t leaky_relu_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    return sr_shape_numel(out);
}

static void leaky_relu_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                                 const float *stats)
{
    (void)stats;
    const float a = node->p.leaky_relu.slope;
    const int64_t W = out->shape.w;
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *x = sr_tensor_row(in, c, y);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++)
                o[i] = sr_leaky_relu(x[i], a);
        }
}

const sr_op_desc sr_op_leaky_relu = {
    .name = "leaky_relu",
    .n_inputs = 1,
    .scale = sr_op_unit_scale,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = sr_op_same_shape,
    .flops = leaky_relu_flops,
    .reference = leaky_relu_reference,
};
