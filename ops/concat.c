/* Concatenation along channels (torch.cat(dim=1)): the inputs' channels
 * one after another, in input order: a copy, where sr_graph_fuse could not
 * fold it into the convolutions that read it. Also the shape rule of a
 * convolution's inputs. */
#include <string.h>

#include "ops/op.h"

sr_status sr_concat_shape(const char *name, int n, const sr_shape *in, sr_shape *out,
                          sr_error *err)
{
    if (n < 1 || n > SR_NODE_MAX_INPUTS)
        return sr_fail(err, SR_ERR_MODEL, "%s: concatenates %d tensors, not 1 to %d", name, n,
                       SR_NODE_MAX_INPUTS);
    sr_shape s = {0, in[0].h, in[0].w};
    for (int j = 0; j < n; j++) {
        if (in[j].h != s.h || in[j].w != s.w)
            return sr_fail(err, SR_ERR_MODEL, "%s: concatenates %lldx%lld with %lldx%lld", name,
                           (long long)s.w, (long long)s.h, (long long)in[j].w,
                           (long long)in[j].h);
        s.c += in[j].c;
    }
    *out = s;
    return SR_OK;
}

static sr_status concat_shape(const sr_node *node, const sr_shape *in, sr_shape *out,
                              sr_error *err)
{
    if (node->n_inputs < 2 || node->n_inputs > SR_NODE_MAX_INPUTS)
        return sr_fail(err, SR_ERR_MODEL, "%s: concatenates %d tensors, not 2 to %d",
                       node->name, node->n_inputs, SR_NODE_MAX_INPUTS);
    return sr_concat_shape(node->name, node->n_inputs, in, out, err);
}

static int64_t concat_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    (void)out;
    return 0;
}

static void concat_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                             const float *stats)
{
    (void)stats;
    const size_t row_bytes = (size_t)out->shape.w * sizeof(float);
    int64_t co = 0;
    for (int j = 0; j < node->n_inputs; j++)
        for (int64_t c = 0; c < in[j].shape.c; c++, co++)
            for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++)
                memcpy(sr_tensor_row(out, co, y), sr_tensor_row(&in[j], c, y), row_bytes);
}

const sr_op_desc sr_op_concat = {
    .name = "concat",
    .n_inputs = SR_OP_VARIADIC,
    .scale = sr_op_unit_scale,
    .halo = sr_op_no_halo,
    .shape = concat_shape,
    .flops = concat_flops,
    .reference = concat_reference,
};
