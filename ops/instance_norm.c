/* InstanceNorm2d without affine parameters, as PyTorch computes it at
 * inference: per channel, (x - mean) / sqrt(var + eps) with the biased
 * variance over H x W. Global: every output needs the whole plane. The
 * reference takes mean and variance in two passes in double. */
#include <math.h>

#include "ops/op.h"

static int64_t instance_norm_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    return 5 * sr_shape_numel(out);
}

static void instance_norm_reference(const sr_node *node, const sr_tensor *in,
                                    sr_tensor *out)
{
    const int64_t plane = in->shape.h * in->shape.w;
    for (int64_t c = 0; c < in->shape.c; c++) {
        const float *x = in->data + c * plane;
        float *y = out->data + c * plane;
        double sum = 0.0;
        for (int64_t i = 0; i < plane; i++)
            sum += x[i];
        const double mean = sum / (double)plane;
        double sq = 0.0;
        for (int64_t i = 0; i < plane; i++)
            sq += (x[i] - mean) * (x[i] - mean);
        const double inv = 1.0 / sqrt(sq / (double)plane + node->p.instance_norm.eps);
        for (int64_t i = 0; i < plane; i++)
            y[i] = (float)((x[i] - mean) * inv);
    }
}

const sr_op_desc sr_op_instance_norm = {
    .name = "instance_norm",
    .n_inputs = 1,
    .scale = sr_op_unit_scale,
    .is_global = true,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = sr_op_same_shape,
    .flops = instance_norm_flops,
    .reference = instance_norm_reference,
};
