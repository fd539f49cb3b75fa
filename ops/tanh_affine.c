/* The SRPGAN output mapping (tanh(x) + 1) / 2, from [-inf, inf] to [0, 1]. */
#include <math.h>

#include "ops/op.h"

static int64_t tanh_affine_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    return 3 * sr_shape_numel(out);
}

static void tanh_affine_reference(const sr_node *node, const sr_tensor *in,
                                  sr_tensor *out)
{
    (void)node;
    const int64_t n = sr_shape_numel(out->shape);
    for (int64_t i = 0; i < n; i++)
        out->data[i] = (tanhf(in->data[i]) + 1.0f) * 0.5f;
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
