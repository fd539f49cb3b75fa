/* Elementwise in0 + scale in1 over two tensors of one shape: residual
 * connections, scaled as RRDB (0.2) and EDSR (res_scale) scale them. */
#include "ops/op.h"

static sr_status add_shape(const sr_node *node, const sr_shape *in, sr_shape *out,
                           sr_error *err)
{
    if (in[0].c != in[1].c || in[0].h != in[1].h || in[0].w != in[1].w)
        return sr_fail(err, SR_ERR_MODEL, "%s: adds tensors of different shapes", node->name);
    *out = in[0];
    return SR_OK;
}

static int64_t add_flops(const sr_node *node, sr_shape out)
{
    return (node->p.add.scale == 1.0f ? 1 : 2) * sr_shape_numel(out);
}

static void add_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                          const float *stats)
{
    (void)stats;
    const int64_t W = out->shape.w;
    const float scale = node->p.add.scale;
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *a = sr_tensor_row(&in[0], c, y), *b = sr_tensor_row(&in[1], c, y);
            float *o = sr_tensor_row(out, c, y);
            /* Rounded product, then rounded sum, as PyTorch's x * s + y: a
             * separate statement, which ISO C (-std=c11) does not contract
             * into an FMA. scale 1 is then a + b exactly. */
            for (int64_t i = 0; i < W; i++) {
                const float scaled = scale * b[i];
                o[i] = a[i] + scaled;
            }
        }
}

const sr_op_desc sr_op_add = {
    .name = "add",
    .n_inputs = 2,
    .scale = sr_op_unit_scale,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = add_shape,
    .flops = add_flops,
    .reference = add_reference,
};
