/* EDSR (Lim et al. 2017) as EDSR-PyTorch lays it out: sub_mean, head.0,
 * residual blocks body.N.body.{0,2} (conv, ReLU, conv), the conv after
 * them body.<blocks>, the upsampler tail.0 (per x2 step a conv to 4 F
 * channels and a pixel shuffle, or at x3 one conv to 9 F and a shuffle by
 * 3), tail.1, add_mean. The released baseline has 16 blocks of 64
 * features, the paper's EDSR 32 blocks of 256.
 *
 * Two things the file does not hold directly:
 * - res_scale, which scales each block's residual: 0.1 in the official
 *   configuration of the 256-feature EDSR, 1 in the baseline's; srrun
 *   decides by the width the same way (and says so for other widths).
 * - rgb_range: EDSR works on images in [0, rgb_range] (255 in the releases)
 *   while srrun's networks take and give [0, 1]. MeanShift is a 1x1 conv
 *   with weight 1/std and bias -rgb_range mean / std for the DIV2K mean,
 *   so sub_mean's weights give it; sub_mean's weights are scaled by
 *   rgb_range and add_mean's weights and bias by 1 / rgb_range, which is
 *   the same network on [0, 1] images. */
#include <math.h>

#include "models/build.h"

#define MAX_BLOCKS 1024
#define MAX_STEPS 3 /* scale 8 */
#define MAX_WIDTH 4096
#define FULL_WIDTH 256
#define FULL_RES_SCALE 0.1f
#define MAX_RGB_RANGE 65535

static const double div2k_mean[3] = {0.4488, 0.4371, 0.4040};

static bool edsr_recognise(const sr_weights *w)
{
    return sr_weights_find(w, "sub_mean.weight") && sr_weights_find(w, "head.0.weight");
}

/* rgb_range from sub_mean (a [3,3,1,1] weight and a [3] bias, checked);
 * 0 when it does not hold a DIV2K mean shift. */
static double rgb_range(const float *weight, const float *bias)
{
    double range = 0;
    for (int c = 0; c < 3; c++) {
        for (int d = 0; d < 3; d++)
            if (d != c && weight[c * 3 + d] != 0)
                return 0;
        const double inv_std = weight[c * 3 + c], r = -bias[c] / (div2k_mean[c] * inv_std);
        if (!(inv_std > 0 && r > 0) || (c > 0 && fabs(r - range) > 1e-4 * range))
            return 0;
        range = c ? range : r;
    }
    /* The releases use 255 or 1; a float32 bias leaves a trace of rounding. */
    return fabs(range - round(range)) <= 1e-4 * range ? round(range) : range;
}

/* Conv node i as if its input were multiplied by in_scale and its output
 * by out_scale: the weights (out_scale in_scale W) and the bias
 * (out_scale b), copies the graph owns. */
static int rescale_conv(sr_builder *b, int i, double in_scale, double out_scale)
{
    if (i < 0)
        return i;
    sr_conv2d_params *p = &b->g->nodes[i].p.conv2d;
    const int64_t n = p->c_out * p->c_in * p->k * p->k;
    float *weight = sr_graph_constants(b->g, n, b->err);
    float *bias = weight ? sr_graph_constants(b->g, p->c_out, b->err) : NULL;
    if (!bias) {
        b->status = SR_ERR_NO_MEMORY;
        return -1;
    }
    for (int64_t j = 0; j < n; j++)
        weight[j] = (float)(out_scale * in_scale * p->weight[j]);
    for (int64_t j = 0; j < p->c_out; j++)
        bias[j] = (float)(out_scale * p->bias[j]);
    p->weight = weight;
    p->bias = bias;
    return i;
}

static sr_status edsr_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                            sr_model_info *info, sr_notices *notices, sr_error *err)
{
    const int64_t f = sr_build_dim(w, "head.0.weight", 0);
    const int n_blocks = sr_build_count(w, "body.%d.body.0.weight", MAX_BLOCKS);
    if (f < 1 || f > MAX_WIDTH)
        return sr_fail(err, SR_ERR_MODEL, "head.0.weight: width %lld, must be 1 to %d",
                       (long long)f, MAX_WIDTH);
    if (n_blocks > MAX_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d residual blocks", MAX_BLOCKS);
    /* x3: one conv to 9 F channels; else a conv to 4 F per x2 step at
     * tail.0.0, tail.0.2, ... */
    const bool x3 = sr_build_dim(w, "tail.0.0.weight", 0) == 9 * f;
    int n_steps = 0;
    if (!x3)
        while (n_steps <= MAX_STEPS) {
            char key[32];
            snprintf(key, sizeof key, "tail.0.%d.weight", 2 * n_steps);
            if (!sr_weights_find(w, key))
                break;
            n_steps++;
        }
    if (!x3 && (n_steps < 1 || n_steps > MAX_STEPS))
        return sr_fail(err, SR_ERR_MODEL,
                       "%s%d x2 steps in the upsampler (tail.0.0, tail.0.2, ...): EDSR has 1 "
                       "to %d, or one x3 conv to 9 x width channels",
                       n_steps > MAX_STEPS ? "more than " : "", n_steps > MAX_STEPS ? MAX_STEPS : n_steps,
                       MAX_STEPS);
    const float res_scale = f == FULL_WIDTH ? FULL_RES_SCALE : 1.0f;

    /* Of another shape, sub_mean's conv below says what is wrong. */
    const float *shift_w = sr_build_peek(w, "sub_mean.weight", 4, (int64_t[]){3, 3, 1, 1});
    const float *shift_b = sr_build_peek(w, "sub_mean.bias", 1, (int64_t[]){3});
    const double range = shift_w && shift_b ? rgb_range(shift_w, shift_b) : 1;
    if (!(range >= 1 && range <= MAX_RGB_RANGE)) /* 1 or 255 in the releases */
        return sr_fail(err, SR_ERR_MODEL,
                       "sub_mean: not EDSR's mean shift (a 1x1 conv with weight 1/std and bias "
                       "-rgb_range x the DIV2K mean / std)");

    sr_builder b = {.w = w, .g = g, .used = used, .err = err};
    int x = sr_build_input(&b);
    x = rescale_conv(&b, sr_build_conv(&b, x, 3, 3, 1, "sub_mean"), range, 1);
    const int head = sr_build_conv(&b, x, 3, f, 3, "head.0");
    x = head;
    for (int i = 0; i < n_blocks; i++) {
        int r = sr_build_conv(&b, x, f, f, 3, "body.%d.body.0", i);
        r = sr_build_leaky_relu(&b, r, 0.0f, "body.%d.body.1", i);
        r = sr_build_conv(&b, r, f, f, 3, "body.%d.body.2", i);
        x = sr_build_add(&b, x, r, res_scale, "body.%d.add", i);
    }
    x = sr_build_conv(&b, x, f, f, 3, "body.%d", n_blocks);
    x = sr_build_add(&b, x, head, 1.0f, "body.add");
    if (x3) {
        x = sr_build_conv(&b, x, f, 9 * f, 3, "tail.0.0");
        x = sr_build_pixel_shuffle(&b, x, 3, "tail.0.1");
    }
    for (int i = 0; i < n_steps; i++) {
        x = sr_build_conv(&b, x, f, 4 * f, 3, "tail.0.%d", 2 * i);
        x = sr_build_pixel_shuffle(&b, x, 2, "tail.0.%d", 2 * i + 1);
    }
    x = sr_build_conv(&b, x, f, 3, 3, "tail.1");
    x = rescale_conv(&b, sr_build_conv(&b, x, 3, 3, 1, "add_mean"), 1, 1 / range);
    if (x < 0 || sr_build_finish(&b, strict, notices) != SR_OK)
        return b.status;
    if (f != FULL_WIDTH && f != 64)
        sr_notices_add(notices,
                       "EDSR of width %lld: res_scale is not stored in the file; 1 assumed, as "
                       "in the baseline (0.1 is the 256-feature EDSR's)",
                       (long long)f);
    *info = (sr_model_info){
        .architecture = "edsr",
        .scale = x3 ? 3 : 1 << n_steps,
        .n_blocks = n_blocks,
        .n_params = b.n_params,
    };
    return SR_OK;
}

static void edsr_hparams(const sr_weights *w, const sr_model_info *info, sr_hparams *out)
{
    sr_hparams_add(out, "scale", info->scale);
    sr_hparams_add(out, "blocks", info->n_blocks);
    sr_hparams_add(out, "width", sr_build_dim(w, "head.0.weight", 0));
}

const sr_arch sr_arch_edsr = {
    .name = "edsr",
    .recognise = edsr_recognise,
    .build = edsr_build,
    .hparams = edsr_hparams,
};
