/* The SRPGAN generator as torchlite lays it out (docs/design.md 3.1). The width
 * (64 in torchlite), the number of residual blocks and the scale (2 to the
 * number of upsample blocks) are read from the weights; every shape is then
 * checked exactly, and any tensor the network does not use is reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/registry.h"

#define MAX_UP_BLOCKS 3 /* scale 8 */
#define MAX_RES_BLOCKS 1024

typedef struct builder {
    const sr_weights *w;
    sr_graph *g;
    bool *used; /* per weight: consumed by the graph */
    int64_t n_params;
    sr_status status;
    sr_error *err;
} builder;

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? "," : "",
                                (long long)shape[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

static int fail(builder *b, sr_status status)
{
    b->status = status;
    return -1;
}

/* The weight `name`, which must have exactly `shape`; NULL on failure. */
static const float *weight(builder *b, const char *name, int ndim, const int64_t *shape)
{
    const sr_weight *t = sr_weights_find(b->w, name);
    if (!t) {
        fail(b, sr_fail(b->err, SR_ERR_MODEL, "missing key '%s'", name));
        return NULL;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[64], have[64];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(have, sizeof have, t->ndim, t->shape);
        fail(b, sr_fail(b->err, SR_ERR_MODEL, "%s: expected %s, file has %s", name, want, have));
        return NULL;
    }
    b->used[t - b->w->items] = true;
    b->n_params += sr_weight_numel(t);
    return t->data;
}

static int add_node(builder *b, sr_node *node, const char *name)
{
    snprintf(node->name, sizeof node->name, "%s", name);
    int index = sr_graph_add(b->g, node, b->err);
    return index < 0 ? fail(b, SR_ERR_NO_MEMORY) : index;
}

static int conv(builder *b, int input, const char *prefix, int64_t c_in,
                int64_t c_out, int k)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    const float *wt = weight(b, key, 4, (int64_t[]){c_out, c_in, k, k});
    snprintf(key, sizeof key, "%s.bias", prefix);
    const float *bias = wt ? weight(b, key, 1, (int64_t[]){c_out}) : NULL;
    if (!bias)
        return -1;
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1, .inputs = {input}};
    node.p.conv2d = (sr_conv2d_params){.c_in = c_in, .c_out = c_out, .k = k, .pad = k / 2,
                                        .weight = wt, .bias = bias};
    return add_node(b, &node, prefix);
}

/* nn.PReLU() has one slope; nn.PReLU(channels) one per channel. */
static int prelu(builder *b, int input, const char *prefix, int64_t channels)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    const sr_weight *t = sr_weights_find(b->w, key);
    int64_t n = t && t->ndim == 1 && t->shape[0] == channels ? channels : 1;
    const float *slopes = weight(b, key, 1, (int64_t[]){n});
    if (!slopes)
        return -1;
    sr_node node = {.op = SR_OP_PRELU, .n_inputs = 1, .inputs = {input}};
    node.p.prelu = (sr_prelu_params){n, slopes};
    return add_node(b, &node, prefix);
}

static int simple(builder *b, sr_op_type op, int a, int c, const char *name)
{
    sr_node node = {.op = op, .n_inputs = c < 0 ? 1 : 2, .inputs = {a, c}};
    if (op == SR_OP_INSTANCE_NORM)
        node.p.instance_norm.eps = 1e-5f;
    if (op == SR_OP_PIXEL_SHUFFLE)
        node.p.pixel_shuffle.r = 2;
    if (op == SR_OP_ADD)
        node.p.add.scale = 1.0f;
    return add_node(b, &node, name);
}

static int count_blocks(const sr_weights *w, const char *fmt, int limit)
{
    char key[128];
    int n = 0;
    for (; n <= limit; n++) {
        snprintf(key, sizeof key, fmt, n);
        if (!sr_weights_find(w, key))
            break;
    }
    return n;
}

static bool srpgan_recognise(const sr_weights *w)
{
    return sr_weights_find(w, "block1.0.weight") && sr_weights_find(w, "block4.weight");
}

static int residual_block(builder *b, int x, int i, int64_t f)
{
    char p[32], name[SR_NODE_NAME_SIZE];
    snprintf(p, sizeof p, "res_blocks.%d", i);
    snprintf(name, sizeof name, "%s.conv1", p);
    int r = conv(b, x, name, f, f, 3);
    snprintf(name, sizeof name, "%s.in1", p);
    r = r < 0 ? r : simple(b, SR_OP_INSTANCE_NORM, r, -1, name);
    snprintf(name, sizeof name, "%s.prelu", p);
    r = r < 0 ? r : prelu(b, r, name, f);
    snprintf(name, sizeof name, "%s.conv2", p);
    r = r < 0 ? r : conv(b, r, name, f, f, 3);
    snprintf(name, sizeof name, "%s.in2", p);
    r = r < 0 ? r : simple(b, SR_OP_INSTANCE_NORM, r, -1, name);
    snprintf(name, sizeof name, "%s.add", p);
    return r < 0 ? r : simple(b, SR_OP_ADD, x, r, name);
}

static int up_block(builder *b, int x, int i, int64_t f)
{
    char p[32], name[SR_NODE_NAME_SIZE];
    snprintf(p, sizeof p, "up_blocks.%d", i);
    snprintf(name, sizeof name, "%s.conv", p);
    int r = conv(b, x, name, f, 4 * f, 3);
    snprintf(name, sizeof name, "%s.pixel_shuffle", p);
    r = r < 0 ? r : simple(b, SR_OP_PIXEL_SHUFFLE, r, -1, name);
    snprintf(name, sizeof name, "%s.prelu", p);
    return r < 0 ? r : prelu(b, r, name, f);
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

static sr_status report_unused(const builder *b, bool strict, sr_notices *notices)
{
    int n_stats = 0;
    for (int64_t i = 0; i < b->w->n_items; i++) {
        const char *name = b->w->items[i].name;
        if (b->used[i])
            continue;
        if (is_instance_norm_stat(name))
            n_stats++;
        else if (strict)
            return sr_fail(b->err, SR_ERR_MODEL, "unexpected key '%s' (refused by strict loading)",
                           name);
        else
            sr_notices_add(notices, "ignoring unexpected key '%s'", name);
    }
    if (n_stats)
        sr_notices_add(notices,
                       "ignoring %d InstanceNorm running statistics (saved by PyTorch < 0.4); "
                       "statistics of each image are used, as in PyTorch",
                       n_stats);
    return SR_OK;
}

static sr_status srpgan_build(const sr_weights *w, bool strict, bool *used, sr_graph *g,
                              sr_model_info *info, sr_notices *notices, sr_error *err)
{
    const sr_weight *first = sr_weights_find(w, "block1.0.weight");
    if (first->ndim != 4 || first->shape[0] < 1 || first->shape[0] > 4096)
        return sr_fail(err, SR_ERR_MODEL, "block1.0.weight: expected [64,3,9,9]");
    const int64_t f = first->shape[0];
    const int n_res = count_blocks(w, "res_blocks.%d.conv1.weight", MAX_RES_BLOCKS);
    const int n_up = count_blocks(w, "up_blocks.%d.conv.weight", MAX_UP_BLOCKS);
    if (n_res > MAX_RES_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL, "more than %d residual blocks", MAX_RES_BLOCKS);
    if (n_up < 1 || n_up > MAX_UP_BLOCKS)
        return sr_fail(err, SR_ERR_MODEL,
                       "%d upsample blocks (up_blocks.N): SRPGAN has 1 to %d (scale 2 to 8)",
                       n_up, MAX_UP_BLOCKS);

    builder b = {.w = w, .g = g, .err = err, .used = used};
    sr_node input = {.op = SR_OP_INPUT};
    int x = add_node(&b, &input, "input");
    x = x < 0 ? x : conv(&b, x, "block1.0", 3, f, 9);
    const int block1 = x < 0 ? x : prelu(&b, x, "block1.1", f);
    x = block1;
    for (int i = 0; i < n_res && x >= 0; i++)
        x = residual_block(&b, x, i, f);
    x = x < 0 ? x : conv(&b, x, "block3.0", f, f, 3);
    x = x < 0 ? x : prelu(&b, x, "block3.1", f);
    x = x < 0 ? x : simple(&b, SR_OP_ADD, block1, x, "skip.add");
    for (int i = 0; i < n_up && x >= 0; i++)
        x = up_block(&b, x, i, f);
    x = x < 0 ? x : conv(&b, x, "block4", f, 3, 9);
    x = x < 0 ? x : simple(&b, SR_OP_TANH_AFFINE, x, -1, "output");
    if (x >= 0)
        b.status = report_unused(&b, strict, notices);
    if (x < 0 || b.status != SR_OK)
        return b.status;
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
