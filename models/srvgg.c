/* Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3: 64 features, 32
 * convs; realesr-animevideov3: 64 features, 16 convs). Its layers are one
 * list, body.0 ... body.N: a conv from the image, a PReLU with a slope per
 * channel, then num_conv (conv, PReLU) pairs, and a last conv to 3 s^2
 * channels that a pixel shuffle turns into the residual added to the
 * image upscaled nearest. The width, num_conv and the scale s are read
 * from the shapes. Networks trained with act_type relu or leakyrelu store
 * no activation weights, so nothing in the file says which: refused. */
#include <math.h>

#include "models/build.h"

#define MAX_LAYERS (2 * 1024 + 3)
#define MAX_WIDTH 4096

/* The first conv takes the image; EDSR without blocks has a body.0 too,
 * after its head. */
static bool srvgg_recognise(const sr_weights *w)
{
    const sr_weight *first = sr_weights_find(w, "body.0.weight");
    return first && first->ndim == 4 && first->shape[1] == 3 &&
           !sr_weights_find(w, "head.0.weight");
}

static sr_status srvgg_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                             sr_model_info *info, sr_notices *notices, sr_error *err)
{
    const int64_t f = sr_build_dim(w, "body.0.weight", 0);
    const int n_layers = sr_build_count(w, "body.%d.weight", MAX_LAYERS);
    if (f < 1 || f > MAX_WIDTH)
        return sr_fail(err, SR_ERR_MODEL, "body.0.weight: width %lld, must be 1 to %d",
                       (long long)f, MAX_WIDTH);
    if (n_layers > MAX_LAYERS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d layers (body.N)", MAX_LAYERS);
    if (n_layers < 3)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "SRVGGNetCompact without PReLU weights (no body.1.weight): trained "
                       "with act_type relu or leakyrelu, which the file does not say; srrun "
                       "runs the released prelu networks");
    const int last = n_layers - 1, num_conv = (last - 2) / 2;
    if (last % 2)
        return sr_fail(err, SR_ERR_MODEL,
                       "body.%d.weight follows the last conv (body.%d): a PReLU with no conv "
                       "after it",
                       last, last - 1);
    char key[32];
    snprintf(key, sizeof key, "body.%d.weight", last);
    const int64_t c_out = sr_build_dim(w, key, 0);
    const int s = c_out >= 3 ? (int)lround(sqrt((double)c_out / 3)) : 0;
    if (3 * (int64_t)s * s != c_out || s < 2 || s > SR_UPSAMPLE_MAX_FACTOR)
        return sr_fail(err, SR_ERR_MODEL,
                       "%s: %lld output channels, must be 3 s^2 for a scale s of 2 to %d", key,
                       (long long)c_out, SR_UPSAMPLE_MAX_FACTOR);

    sr_builder b = {.w = w, .g = g, .used = used, .err = err};
    const int image = sr_build_input(&b);
    int x = sr_build_conv(&b, image, 3, f, 3, "body.0");
    x = sr_build_prelu(&b, x, f, "body.1");
    for (int i = 1; i <= num_conv; i++) {
        x = sr_build_conv(&b, x, f, f, 3, "body.%d", 2 * i);
        x = sr_build_prelu(&b, x, f, "body.%d", 2 * i + 1);
    }
    x = sr_build_conv(&b, x, f, c_out, 3, "body.%d", last);
    x = sr_build_pixel_shuffle(&b, x, s, "upsampler");
    const int base = sr_build_upsample(&b, image, s, SR_UPSAMPLE_NEAREST, "base.nearest");
    x = sr_build_add(&b, x, base, 1.0f, "base.add");
    if (x < 0 || sr_build_finish(&b, strict, notices) != SR_OK)
        return b.status;
    *info = (sr_model_info){
        .architecture = "srvgg",
        .scale = s,
        .n_blocks = num_conv,
        .n_params = b.n_params,
    };
    return SR_OK;
}

static void srvgg_hparams(const sr_weights *w, const sr_model_info *info, sr_hparams *out)
{
    sr_hparams_add(out, "scale", info->scale);
    sr_hparams_add(out, "convs", info->n_blocks);
    sr_hparams_add(out, "width", sr_build_dim(w, "body.0.weight", 0));
}

const sr_arch sr_arch_srvgg = {
    .name = "srvgg",
    .recognise = srvgg_recognise,
    .build = srvgg_build,
    .hparams = srvgg_hparams,
};
