/* The SRPGAN output mapping (tanh(x) + 1) / 2, from [-inf, inf] to [0, 1]. */
#include <math.h>

#include "ops/op.h"

static int64_t tanh_affine_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    return 3 * sr_shape_numel(out);
}

static void tanh_affine_reference(const sr_node *node, const sr_tensor *in,
                                  sr_tensor *out, const float *stats)
{
    (void)node;
    (void)stats;
    const int64_t W = out->shape.w;
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *x = sr_tensor_row(in, c, y);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++)
                o[i] = (tanhf(x[i]) + 1.0f) * 0.5f;
        }
}

const sr_op_desc sr_op_tanh_affine = {
    .name = "tanh_affine",
    .n_inputs = 1,
    .scale = sr_op_unit_scale,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = sr_op_same_shape,
    .flops = tanh_affine_flops,
    .reference = tanh_affine_reference,
};
