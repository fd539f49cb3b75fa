/* The table from op type to descriptor, and helpers shared by descriptors. */
#include "ops/op.h"

static const sr_op_desc *const descriptors[] = {
    [SR_OP_INPUT] = &sr_op_input,
    [SR_OP_CONV2D] = &sr_op_conv2d,
    [SR_OP_PRELU] = &sr_op_prelu,
    [SR_OP_INSTANCE_NORM] = &sr_op_instance_norm,
    [SR_OP_PIXEL_SHUFFLE] = &sr_op_pixel_shuffle,
    [SR_OP_ADD] = &sr_op_add,
    [SR_OP_TANH_AFFINE] = &sr_op_tanh_affine,
    [SR_OP_LEAKY_RELU] = &sr_op_leaky_relu,
    [SR_OP_CONCAT] = &sr_op_concat,
    [SR_OP_UPSAMPLE] = &sr_op_upsample,
};
_Static_assert(sizeof descriptors / sizeof *descriptors == SR_OP_COUNT,
               "one descriptor per op");

const sr_op_desc *sr_op_get(sr_op_type op)
{
    return (unsigned)op < SR_OP_COUNT ? descriptors[op] : NULL;
}

const char *sr_op_name(const sr_node *node)
{
    if (node->op == SR_OP_LEAKY_RELU && node->p.leaky_relu.slope == 0.0f)
        return "relu";
    return sr_op_get(node->op)->name;
}

sr_status sr_op_same_shape(const sr_node *node, const sr_shape *in,
                           sr_shape *out, sr_error *err)
{
    (void)node;
    (void)err;
    *out = in[0];
    return SR_OK;
}

int sr_op_no_halo(const sr_node *node)
{
    (void)node;
    return 0;
}

int sr_op_unit_scale(const sr_node *node)
{
    (void)node;
    return 1;
}

/* The input has no kernel; the executor fills it from the image. */
const sr_op_desc sr_op_input = {
    .name = "input",
    .n_inputs = 0,
    .scale = sr_op_unit_scale,
    .halo = sr_op_no_halo,
};
