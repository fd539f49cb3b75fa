/* The SRPGAN generator as torchlite lays it out (docs/design.md 3.1). The width
 * (64 in torchlite), the number of residual blocks and the scale (2 to the
 * number of upsample blocks) are read from the weights; every shape is then
 * checked exactly, and any tensor the network does not use is reported. */
#include <string.h>

#include "models/build.h"

#define MAX_UP_BLOCKS 3 /* scale 8 */
#define MAX_RES_BLOCKS 1024

/* nn.PReLU() has one slope; nn.PReLU(channels) one per channel. */
static int prelu(sr_builder *b, int input, const char *prefix, int64_t channels)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    const int64_t n = sr_build_peek(b->w, key, 1, (int64_t[]){channels}) ? channels : 1;
    return sr_build_prelu(b, input, n, "%s", prefix);
}

static bool srpgan_recognise(const sr_weights *w)
{
    return sr_weights_find(w, "block1.0.weight") && sr_weights_find(w, "block4.weight");
}

static int residual_block(sr_builder *b, int x, int i, int64_t f)
{
    char p[32];
    snprintf(p, sizeof p, "res_blocks.%d", i);
    int r = sr_build_conv(b, x, f, f, 3, "%s.conv1", p);
    r = sr_build_instance_norm(b, r, 1e-5f, "%s.in1", p);
    char name[SR_NODE_NAME_SIZE];
    snprintf(name, sizeof name, "%s.prelu", p);
    r = prelu(b, r, name, f);
    r = sr_build_conv(b, r, f, f, 3, "%s.conv2", p);
    r = sr_build_instance_norm(b, r, 1e-5f, "%s.in2", p);
    return sr_build_add(b, x, r, 1.0f, "%s.add", p);
}

static int up_block(sr_builder *b, int x, int i, int64_t f)
{
    char p[32], name[SR_NODE_NAME_SIZE];
    snprintf(p, sizeof p, "up_blocks.%d", i);
    int r = sr_build_conv(b, x, f, 4 * f, 3, "%s.conv", p);
    r = sr_build_pixel_shuffle(b, r, 2, "%s.pixel_shuffle", p);
    snprintf(name, sizeof name, "%s.prelu", p);
    return prelu(b, r, name, f);
}

/* Old PyTorch saved running statistics for InstanceNorm; modern PyTorch
 * ignores them at inference, and so does srrun. */
static bool is_instance_norm_stat(const char *name)
{
    const char *dot = strrchr(name, '.');
    return strncmp(name, "res_blocks.", 11) == 0 && dot &&
           (strcmp(dot, ".running_mean") == 0 || strcmp(dot, ".running_var") == 0 ||
            strcmp(dot, ".num_batches_tracked") == 0);
}

static sr_status srpgan_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                              sr_model_info *info, sr_notices *notices, sr_error *err)
{
    const sr_weight *first = sr_weights_find(w, "block1.0.weight");
    if (first->ndim != 4 || first->shape[0] < 1 || first->shape[0] > 4096)
        return sr_fail(err, SR_ERR_MODEL, "block1.0.weight: expected [64,3,9,9]");
    const int64_t f = first->shape[0];
    const int n_res = sr_build_count(w, "res_blocks.%d.conv1.weight", MAX_RES_BLOCKS);
    const int n_up = sr_build_count(w, "up_blocks.%d.conv.weight", MAX_UP_BLOCKS);
    if (n_res > MAX_RES_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d residual blocks", MAX_RES_BLOCKS);
    if (n_up < 1 || n_up > MAX_UP_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL,
                       "%d upsample blocks (up_blocks.N): SRPGAN has 1 to %d (scale 2 to 8)",
                       n_up, MAX_UP_BLOCKS);

    sr_builder b = {.w = w, .g = g, .err = err, .used = used, .ignored = is_instance_norm_stat};
    int x = sr_build_input(&b);
    x = sr_build_conv(&b, x, 3, f, 9, "block1.0");
    const int block1 = prelu(&b, x, "block1.1", f);
    x = block1;
    for (int i = 0; i < n_res && x >= 0; i++)
        x = residual_block(&b, x, i, f);
    x = sr_build_conv(&b, x, f, f, 3, "block3.0");
    x = prelu(&b, x, "block3.1", f);
    x = sr_build_add(&b, block1, x, 1.0f, "skip.add");
    for (int i = 0; i < n_up && x >= 0; i++)
        x = up_block(&b, x, i, f);
    x = sr_build_conv(&b, x, f, 3, 9, "block4");
    x = sr_build_tanh_affine(&b, x, "output");
    if (x < 0 || sr_build_finish(&b, strict, notices) != SR_OK)
        return b.status;
    if (b.n_ignored)
        sr_notices_add(notices,
                       "ignoring %d InstanceNorm running statistics (saved by PyTorch < 0.4); "
                       "statistics of each image are used, as in PyTorch",
                       b.n_ignored);
    *info = (sr_model_info){
        .architecture = "srpgan",
        .scale = 1 << n_up,
        .n_blocks = n_res,
        .n_params = b.n_params,
    };
    return SR_OK;
}

/* In this order: model.bin version 1 stored these three by position. */
static void srpgan_hparams(const sr_weights *w, const sr_model_info *info, sr_hparams *out)
{
    sr_hparams_add(out, "scale", info->scale);
    sr_hparams_add(out, "blocks", info->n_blocks);
    sr_hparams_add(out, "width", sr_weights_find(w, "block1.0.weight")->shape[0]);
}

const sr_arch sr_arch_srpgan = {
    .name = "srpgan",
    .recognise = srpgan_recognise,
    .build = srpgan_build,
    .hparams = srpgan_hparams,
};
