/* PReLU: x for x >= 0, slope * x below; one shared slope or one per channel. */
#include "ops/op.h"

static sr_status prelu_shape(const sr_node *node, const sr_shape *in,
                             sr_shape *out, sr_error *err)
{
    const sr_prelu_params *p = &node->p.prelu;
    if (p->n_slopes != 1 && p->n_slopes != in[0].c)
        return sr_fail(err, SR_ERR_MODEL, "%s: %lld slopes for %lld channels",
                       node->name, (long long)p->n_slopes, (long long)in[0].c);
    *out = in[0];
    return SR_OK;
}

static int64_t prelu_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    return sr_shape_numel(out);
}

static void prelu_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                            const float *stats)
{
    (void)stats;
    const sr_prelu_params *p = &node->p.prelu;
    const int64_t W = out->shape.w;
    for (int64_t c = 0; c < out->shape.c; c++) {
        const float a = sr_prelu_slope(p, c);
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *x = sr_tensor_row(in, c, y);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++)
                o[i] = sr_prelu(x[i], a);
        }
    }
}

const sr_op_desc sr_op_prelu = {
    .name = "prelu",
    .n_inputs = 1,
    .scale = sr_op_unit_scale,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = prelu_shape,
    .flops = prelu_flops,
    .reference = prelu_reference,
};
