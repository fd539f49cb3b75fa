/* Upsampling by an integer factor, as torch.nn.functional.interpolate with
 * scale_factor=factor: nearest (out[y][x] = in[y / f][x / f]) or bilinear
 * with align_corners=False (half-pixel centres; a source coordinate below
 * 0 is clamped to 0, and the last row and column stand in for the ones
 * past the edge). The source coordinates are computed exactly from image
 * rows, so a band's values are the whole image's. */
#include "ops/op.h"

static sr_status upsample_shape(const sr_node *node, const sr_shape *in, sr_shape *out,
                                sr_error *err)
{
    const sr_upsample_params *p = &node->p.upsample;
    if (p->factor < 2 || p->factor > SR_UPSAMPLE_MAX_FACTOR)
        return sr_fail(err, SR_ERR_MODEL, "%s: upsampling factor %d is not 2 to %d",
                       node->name, p->factor, SR_UPSAMPLE_MAX_FACTOR);
    if (p->mode != SR_UPSAMPLE_NEAREST && p->mode != SR_UPSAMPLE_BILINEAR)
        return sr_fail(err, SR_ERR_MODEL, "%s: unknown upsampling mode %d", node->name,
                       p->mode);
    *out = (sr_shape){in[0].c, in[0].h * p->factor, in[0].w * p->factor};
    return SR_OK;
}

static int upsample_scale(const sr_node *node)
{
    return node->p.upsample.factor;
}

/* Bilinear reads the next input row below (or above) the nearest one. */
static int upsample_halo(const sr_node *node)
{
    return node->p.upsample.mode == SR_UPSAMPLE_BILINEAR;
}

static int64_t upsample_flops(const sr_node *node, sr_shape out)
{
    return node->p.upsample.mode == SR_UPSAMPLE_BILINEAR ? 9 * sr_shape_numel(out) : 0;
}

static void upsample_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                               const float *stats)
{
    (void)stats;
    const int64_t f = node->p.upsample.factor, W = out->shape.w;
    if (node->p.upsample.mode == SR_UPSAMPLE_NEAREST) {
        /* Each input value f times over: x[i / f], a 64-bit division per
         * value, made RealESRGAN_x4plus's two upsamplings at 256x256 take
         * 0.18 s. Factor 2, the usual one, is a loop the compiler
         * vectorises. */
        const int64_t w = in->shape.w;
        for (int64_t c = 0; c < out->shape.c; c++)
            for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
                const float *restrict x = sr_tensor_row(in, c, y / f);
                float *restrict o = sr_tensor_row(out, c, y);
                if (f == 2) {
                    for (int64_t i = 0; i < w; i++)
                        o[2 * i] = o[2 * i + 1] = x[i];
                    continue;
                }
                for (int64_t i = 0; i < w; i++)
                    for (int64_t k = 0; k < f; k++)
                        o[i * f + k] = x[i];
            }
        return;
    }
    for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
        const sr_upsample_tap ty = sr_upsample_bilinear_tap(f, y, in->image_h);
        for (int64_t c = 0; c < out->shape.c; c++) {
            const float *top = sr_tensor_row(in, c, ty.i0), *bottom = sr_tensor_row(in, c, ty.i1);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++) {
                const sr_upsample_tap tx = sr_upsample_bilinear_tap(f, i, in->shape.w);
                o[i] = sr_upsample_bilinear_mix(ty, tx, top, bottom);
            }
        }
    }
}

const sr_op_desc sr_op_upsample = {
    .name = "upsample",
    .n_inputs = 1,
    .scale = upsample_scale,
    .halo = upsample_halo,
    .shape = upsample_shape,
    .flops = upsample_flops,
    .reference = upsample_reference,
};
