/* ESRGAN's RRDBNet (Wang et al. 2018), under either of the key layouts its
 * weights are released in:
 *
 *   BasicSR / Real-ESRGAN: conv_first, body.N.rdbK.convJ, conv_body,
 *     conv_up1, conv_up2, conv_hr, conv_last (RealESRGAN_x4plus: 23 blocks,
 *     64 features, growth 32; RealESRGAN_x4plus_anime_6B: 6 blocks)
 *   the original ESRGAN release: model.0, model.1.sub.N.RDBK.convJ.0, the
 *     trunk conv model.1.sub.<blocks>, then per x2 step a conv at model.3,
 *     model.6, ... and the last two convs (model.8, model.10 at x4)
 *
 * The width, growth, block count and (original layout) the number of x2
 * steps are read from the weights. BasicSR's x2 and x1 variants (RealESRGAN_x2plus)
 * are the x4 network on the image pixel-unshuffled by 2 or 4: conv_first
 * takes 12 or 48 channels. Their input node unshuffles (ops/op.h,
 * sr_input_params): the image is padded by reflection to a multiple of the
 * factor as Real-ESRGAN's inference does, and the output cropped. */
#include <stdio.h>

#include "models/build.h"

#define MAX_BLOCKS 1024
#define MAX_UP 3 /* scale 8 */
#define MAX_WIDTH 4096
#define LRELU_SLOPE 0.2f
#define RESIDUAL_SCALE 0.2f /* of each dense block and each RRDB */

typedef struct rrdb_layout {
    char first[32], trunk[32], up[MAX_UP][32], hr[32], last[32];
    const char *block;       /* an RRDB's prefix from its index */
    const char *rdb;         /* its dense blocks' names: "rdb" or "RDB" */
    const char *conv_suffix; /* after convJ: "" or the original's ".0" */
    int n_blocks, n_up;
    int unshuffle; /* the input's: 1, or BasicSR's 2 (x2) and 4 (x1) */
    int64_t feat, grow;
} rrdb_layout;

/* MSRResNet shares conv_first; its upconv1 (RRDBNet has conv_up1) tells
 * them apart. */
static bool is_new_layout(const sr_weights *w)
{
    return sr_weights_find(w, "conv_first.weight") &&
           sr_weights_find(w, "body.0.rdb1.conv1.weight") && !sr_weights_find(w, "upconv1.weight");
}

static bool is_old_layout(const sr_weights *w)
{
    return sr_weights_find(w, "model.0.weight") &&
           sr_weights_find(w, "model.1.sub.0.RDB1.conv1.0.weight");
}

static bool rrdbnet_recognise(const sr_weights *w)
{
    return is_new_layout(w) || is_old_layout(w);
}

static sr_status read_new_layout(const sr_weights *w, rrdb_layout *l, sr_error *err)
{
    if (sr_weights_find(w, "conv_up3.weight"))
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "RRDBNet with conv_up3 (an x8 variant): srrun knows only conv_up1 and "
                       "conv_up2 (x4)");
    *l = (rrdb_layout){.block = "body.%d", .rdb = "rdb", .conv_suffix = "", .n_up = 2,
                       .first = "conv_first", .trunk = "conv_body", .up = {"conv_up1", "conv_up2"},
                       .hr = "conv_hr", .last = "conv_last"};
    /* 3 channels, else 3 f^2 from BasicSR's unshuffle by f; any other
     * count is refused by conv_first's shape check as 3 expected. */
    const int64_t c_in = sr_build_dim(w, "conv_first.weight", 1);
    l->unshuffle = c_in == 3 * 2 * 2 ? 2 : c_in == 3 * 4 * 4 ? 4 : 1;
    l->feat = sr_build_dim(w, "conv_first.weight", 0);
    l->grow = sr_build_dim(w, "body.0.rdb1.conv1.weight", 0);
    l->n_blocks = sr_build_count(w, "body.%d.rdb1.conv1.weight", MAX_BLOCKS);
    return SR_OK;
}

static sr_status read_old_layout(const sr_weights *w, rrdb_layout *l, sr_error *err)
{
    *l = (rrdb_layout){.block = "model.1.sub.%d", .rdb = "RDB", .conv_suffix = ".0",
                       .first = "model.0", .unshuffle = 1};
    l->feat = sr_build_dim(w, "model.0.weight", 0);
    l->grow = sr_build_dim(w, "model.1.sub.0.RDB1.conv1.0.weight", 0);
    l->n_blocks = sr_build_count(w, "model.1.sub.%d.RDB1.conv1.0.weight", MAX_BLOCKS);
    snprintf(l->trunk, sizeof l->trunk, "model.1.sub.%d", l->n_blocks);
    /* Each x2 step is (upsample, conv, lrelu) from model.2 on; then conv,
     * lrelu, conv. */
    char key[32];
    while (l->n_up <= MAX_UP) {
        snprintf(key, sizeof key, "model.%d.weight", 3 + 3 * l->n_up);
        if (!sr_weights_find(w, key))
            break;
        l->n_up++;
    }
    if (l->n_up < 1 || l->n_up > MAX_UP)
        return sr_fail(err, SR_ERR_MODEL,
                       "%s%d x2 steps (model.3, model.6, ...): the original ESRGAN layout has "
                       "1 to %d (scale 2 to 8)",
                       l->n_up > MAX_UP ? "more than " : "", l->n_up > MAX_UP ? MAX_UP : l->n_up,
                       MAX_UP);
    for (int i = 0; i < l->n_up; i++)
        snprintf(l->up[i], sizeof l->up[i], "model.%d", 3 + 3 * i);
    snprintf(l->hr, sizeof l->hr, "model.%d", 2 + 3 * l->n_up);
    snprintf(l->last, sizeof l->last, "model.%d", 4 + 3 * l->n_up);
    return SR_OK;
}

/* Five convs, each on the concatenation of the block's input and every
 * earlier conv's activation; x + 0.2 conv5. */
static int dense_block(sr_builder *b, const rrdb_layout *l, int x, const char *block, int k)
{
    char p[SR_NODE_NAME_SIZE];
    snprintf(p, sizeof p, "%s.%s%d", block, l->rdb, k);
    int seen[5] = {x};
    for (int j = 1; j <= 4; j++) {
        const int in = j == 1 ? x : sr_build_concat(b, j, seen, "%s.cat%d", p, j);
        const int c = sr_build_conv(b, in, l->feat + (j - 1) * l->grow, l->grow, 3, "%s.conv%d%s",
                                    p, j, l->conv_suffix);
        seen[j] = sr_build_leaky_relu(b, c, LRELU_SLOPE, "%s.lrelu%d", p, j);
    }
    int y = sr_build_concat(b, 5, seen, "%s.cat5", p);
    y = sr_build_conv(b, y, l->feat + 4 * l->grow, l->feat, 3, "%s.conv5%s", p, l->conv_suffix);
    return sr_build_add(b, x, y, RESIDUAL_SCALE, "%s.add", p);
}

static sr_status rrdbnet_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                               sr_model_info *info, sr_notices *notices, sr_error *err)
{
    rrdb_layout l;
    sr_status st = is_new_layout(w) ? read_new_layout(w, &l, err) : read_old_layout(w, &l, err);
    if (st != SR_OK)
        return st;
    if (l.feat < 1 || l.feat > MAX_WIDTH || l.grow < 1 || l.grow > MAX_WIDTH)
        return sr_fail(err, SR_ERR_MODEL,
                       "RRDBNet width %lld and growth %lld: each must be 1 to %d",
                       (long long)l.feat, (long long)l.grow, MAX_WIDTH);
    if (l.n_blocks > MAX_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d RRDB blocks", MAX_BLOCKS);

    sr_builder b = {.w = w, .g = g, .used = used, .err = err};
    const int64_t f = l.feat;
    const int64_t u = l.unshuffle;
    const int first = sr_build_conv(&b, sr_build_unshuffled_input(&b, l.unshuffle), 3 * u * u, f,
                                    3, "%s", l.first);
    int x = first;
    for (int i = 0; i < l.n_blocks; i++) {
        char block[32];
        snprintf(block, sizeof block, l.block, i);
        const int block_in = x;
        for (int k = 1; k <= 3; k++)
            x = dense_block(&b, &l, x, block, k);
        x = sr_build_add(&b, block_in, x, RESIDUAL_SCALE, "%s.add", block);
    }
    x = sr_build_conv(&b, x, f, f, 3, "%s", l.trunk);
    x = sr_build_add(&b, first, x, 1.0f, "%s.add", l.trunk);
    for (int i = 0; i < l.n_up; i++) {
        x = sr_build_upsample(&b, x, 2, SR_UPSAMPLE_NEAREST, "%s.nearest", l.up[i]);
        x = sr_build_conv(&b, x, f, f, 3, "%s", l.up[i]);
        x = sr_build_leaky_relu(&b, x, LRELU_SLOPE, "%s.lrelu", l.up[i]);
    }
    x = sr_build_conv(&b, x, f, f, 3, "%s", l.hr);
    x = sr_build_leaky_relu(&b, x, LRELU_SLOPE, "%s.lrelu", l.hr);
    x = sr_build_conv(&b, x, f, 3, 3, "%s", l.last);
    if (x < 0 || sr_build_finish(&b, strict, notices) != SR_OK)
        return b.status;
    *info = (sr_model_info){
        .architecture = "rrdbnet",
        .scale = (1 << l.n_up) / l.unshuffle,
        .n_blocks = l.n_blocks,
        .n_params = b.n_params,
    };
    return SR_OK;
}

/* Called after a build succeeded: the keys are there, of the checked
 * shapes. */
static void rrdbnet_hparams(const sr_weights *w, const sr_model_info *info, sr_hparams *out)
{
    const bool new_layout = is_new_layout(w);
    sr_hparams_add(out, "scale", info->scale);
    sr_hparams_add(out, "blocks", info->n_blocks);
    sr_hparams_add(out, "width",
                   sr_build_dim(w, new_layout ? "conv_first.weight" : "model.0.weight", 0));
    sr_hparams_add(out, "growth", sr_build_dim(w, new_layout ? "body.0.rdb1.conv1.weight"
                                                             : "model.1.sub.0.RDB1.conv1.0.weight",
                                               0));
}

const sr_arch sr_arch_rrdbnet = {
    .name = "rrdbnet",
    .recognise = rrdbnet_recognise,
    .build = rrdbnet_build,
    .hparams = rrdbnet_hparams,
};
