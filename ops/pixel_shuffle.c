/* PixelShuffle(r): out[c][y r + i][x r + j] = in[c r^2 + i r + j][y][x]. */
#include "ops/op.h"

static sr_status pixel_shuffle_shape(const sr_node *node, const sr_shape *in,
                                     sr_shape *out, sr_error *err)
{
    const int64_t r = node->p.pixel_shuffle.r;
    if (r < 1 || in[0].c % (r * r) != 0)
        return sr_fail(err, SR_ERR_MODEL, "%s: %lld channels do not shuffle by %lld",
                       node->name, (long long)in[0].c, (long long)r);
    *out = (sr_shape){in[0].c / (r * r), in[0].h * r, in[0].w * r};
    return SR_OK;
}

static int64_t pixel_shuffle_flops(const sr_node *node, sr_shape out)
{
    (void)node;
    (void)out;
    return 0;
}

static void pixel_shuffle_reference(const sr_node *node, const sr_tensor *in,
                                    sr_tensor *out, const float *stats)
{
    (void)stats;
    const int64_t r = node->p.pixel_shuffle.r, W = in->shape.w;
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t oy = out->y0; oy < out->y0 + out->shape.h; oy++) {
            const int64_t i = oy % r;
            float *o = sr_tensor_row(out, c, oy);
            for (int64_t j = 0; j < r; j++) {
                const float *x = sr_tensor_row(in, (c * r + i) * r + j, oy / r);
                for (int64_t xx = 0; xx < W; xx++)
                    o[xx * r + j] = x[xx];
            }
        }
}

static int pixel_shuffle_scale(const sr_node *node)
{
    return node->p.pixel_shuffle.r;
}

const sr_op_desc sr_op_pixel_shuffle = {
    .name = "pixel_shuffle",
    .n_inputs = 1,
    .scale = pixel_shuffle_scale,
    .halo = sr_op_no_halo,
    .shape = pixel_shuffle_shape,
    .flops = pixel_shuffle_flops,
    .reference = pixel_shuffle_reference,
};
