/* BasicSR's MSRResNet, SRResNet (Ledig et al. 2017) without batch norm:
 * conv_first and LeakyReLU 0.1, residual blocks body.N (x + conv2(ReLU(
 * conv1(x)))), the upsampler (x4: upconv1 and upconv2, each to 4 F
 * channels, a pixel shuffle by 2 and LeakyReLU; x2 and x3: upconv1 to s^2 F
 * channels and one shuffle by s), conv_hr and LeakyReLU, conv_last; plus
 * the image upscaled bilinear (align_corners=False). Width, blocks and
 * scale are read from the shapes. */
#include "models/build.h"

#define MAX_BLOCKS 1024
#define MAX_WIDTH 4096
#define LRELU_SLOPE 0.1f

static bool msrresnet_recognise(const sr_weights *w)
{
    return sr_weights_find(w, "conv_first.weight") && sr_weights_find(w, "upconv1.weight");
}

static sr_status msrresnet_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                                 sr_model_info *info, sr_notices *notices, sr_error *err)
{
    const int64_t f = sr_build_dim(w, "conv_first.weight", 0);
    const int n_blocks = sr_build_count(w, "body.%d.conv1.weight", MAX_BLOCKS);
    if (f < 1 || f > MAX_WIDTH)
        return sr_fail(err, SR_ERR_MODEL, "conv_first.weight: width %lld, must be 1 to %d",
                       (long long)f, MAX_WIDTH);
    if (n_blocks > MAX_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d residual blocks", MAX_BLOCKS);
    const int64_t up1 = sr_build_dim(w, "upconv1.weight", 0);
    const bool has_up2 = sr_weights_find(w, "upconv2.weight") != NULL;
    const int scale = has_up2 ? 4 : up1 == 9 * f ? 3 : 2;

    sr_builder b = {.w = w, .g = g, .used = used, .err = err};
    const int image = sr_build_input(&b);
    int x = sr_build_conv(&b, image, 3, f, 3, "conv_first");
    x = sr_build_leaky_relu(&b, x, LRELU_SLOPE, "conv_first.lrelu");
    for (int i = 0; i < n_blocks; i++) {
        int r = sr_build_conv(&b, x, f, f, 3, "body.%d.conv1", i);
        r = sr_build_leaky_relu(&b, r, 0.0f, "body.%d.relu", i);
        r = sr_build_conv(&b, r, f, f, 3, "body.%d.conv2", i);
        x = sr_build_add(&b, x, r, 1.0f, "body.%d.add", i);
    }
    const int r = scale == 4 ? 2 : scale;
    for (int i = 1; i <= (scale == 4 ? 2 : 1); i++) {
        x = sr_build_conv(&b, x, f, r * r * f, 3, "upconv%d", i);
        x = sr_build_pixel_shuffle(&b, x, r, "upconv%d.pixel_shuffle", i);
        x = sr_build_leaky_relu(&b, x, LRELU_SLOPE, "upconv%d.lrelu", i);
    }
    x = sr_build_conv(&b, x, f, f, 3, "conv_hr");
    x = sr_build_leaky_relu(&b, x, LRELU_SLOPE, "conv_hr.lrelu");
    x = sr_build_conv(&b, x, f, 3, 3, "conv_last");
    const int base = sr_build_upsample(&b, image, scale, SR_UPSAMPLE_BILINEAR, "base.bilinear");
    x = sr_build_add(&b, x, base, 1.0f, "base.add");
    if (x < 0 || sr_build_finish(&b, strict, notices) != SR_OK)
        return b.status;
    *info = (sr_model_info){
        .architecture = "msrresnet",
        .scale = scale,
        .n_blocks = n_blocks,
        .n_params = b.n_params,
    };
    return SR_OK;
}

static void msrresnet_hparams(const sr_weights *w, const sr_model_info *info, sr_hparams *out)
{
    sr_hparams_add(out, "scale", info->scale);
    sr_hparams_add(out, "blocks", info->n_blocks);
    sr_hparams_add(out, "width", sr_build_dim(w, "conv_first.weight", 0));
}

const sr_arch sr_arch_msrresnet = {
    .name = "msrresnet",
    .recognise = msrresnet_recognise,
    .build = msrresnet_build,
    .hparams = msrresnet_hparams,
};
