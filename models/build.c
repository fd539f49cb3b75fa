/* The shared steps of building a network from named weights. */
#include "models/build.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? "," : "",
                                (long long)shape[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

static int fail(sr_builder *b, sr_status status)
{
    if (b->status == SR_OK)
        b->status = status;
    return -1;
}

static bool has_shape(const sr_weight *t, int ndim, const int64_t *shape)
{
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    return same;
}

const float *sr_build_peek(const sr_weights *w, const char *name, int ndim,
                           const int64_t *shape)
{
    const sr_weight *t = sr_weights_find(w, name);
    return t && has_shape(t, ndim, shape) ? t->data : NULL;
}

const float *sr_build_weight(sr_builder *b, const char *name, int ndim,
                             const int64_t *shape)
{
    const sr_weight *t = sr_weights_find(b->w, name);
    if (!t) {
        fail(b, sr_fail(b->err, SR_ERR_MODEL, "missing key '%s'", name));
        return NULL;
    }
    if (!has_shape(t, ndim, shape)) {
        char want[96], have[96];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(have, sizeof have, t->ndim, t->shape);
        fail(b, sr_fail(b->err, SR_ERR_MODEL, "%s: expected %s, file has %s", name, want, have));
        return NULL;
    }
    b->used[t - b->w->items] = true;
    b->n_params += sr_weight_numel(t);
    return t->data;
}

/* Names the node from a format and appends it. */
static int add_node(sr_builder *b, sr_node *node, const char *fmt, va_list ap)
{
    vsnprintf(node->name, sizeof node->name, fmt, ap);
    const int index = sr_graph_add(b->g, node, b->err);
    return index < 0 ? fail(b, SR_ERR_NO_MEMORY) : index;
}

int sr_build_input(sr_builder *b)
{
    return sr_build_unshuffled_input(b, 1);
}

int sr_build_unshuffled_input(sr_builder *b, int factor)
{
    sr_node node = {.op = SR_OP_INPUT, .name = "input", .p.input.unshuffle = factor};
    const int index = sr_graph_add(b->g, &node, b->err);
    return index < 0 ? fail(b, SR_ERR_NO_MEMORY) : index;
}

int sr_build_conv(sr_builder *b, int input, int64_t c_in, int64_t c_out, int k,
                  const char *prefix, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1, .inputs = {input}};
    va_list ap;
    va_start(ap, prefix);
    vsnprintf(node.name, sizeof node.name, prefix, ap);
    va_end(ap);
    char key[SR_NODE_NAME_SIZE + 8];
    snprintf(key, sizeof key, "%s.weight", node.name);
    const float *weight = sr_build_weight(b, key, 4, (int64_t[]){c_out, c_in, k, k});
    snprintf(key, sizeof key, "%s.bias", node.name);
    const float *bias = weight ? sr_build_weight(b, key, 1, (int64_t[]){c_out}) : NULL;
    if (!bias)
        return -1;
    node.p.conv2d = (sr_conv2d_params){.c_in = c_in, .c_out = c_out, .k = k, .pad = k / 2,
                                        .weight = weight, .bias = bias};
    const int index = sr_graph_add(b->g, &node, b->err);
    return index < 0 ? fail(b, SR_ERR_NO_MEMORY) : index;
}

int sr_build_prelu(sr_builder *b, int input, int64_t channels, const char *prefix, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_PRELU, .n_inputs = 1, .inputs = {input}};
    va_list ap;
    va_start(ap, prefix);
    vsnprintf(node.name, sizeof node.name, prefix, ap);
    va_end(ap);
    char key[SR_NODE_NAME_SIZE + 8];
    snprintf(key, sizeof key, "%s.weight", node.name);
    const float *slopes = sr_build_weight(b, key, 1, (int64_t[]){channels});
    if (!slopes)
        return -1;
    node.p.prelu = (sr_prelu_params){channels, slopes};
    const int index = sr_graph_add(b->g, &node, b->err);
    return index < 0 ? fail(b, SR_ERR_NO_MEMORY) : index;
}

int sr_build_leaky_relu(sr_builder *b, int input, float slope, const char *name, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .inputs = {input}};
    node.p.leaky_relu.slope = slope;
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_add(sr_builder *b, int in0, int in1, float scale, const char *name, ...)
{
    if (in0 < 0 || in1 < 0)
        return in0 < 0 ? in0 : in1;
    sr_node node = {.op = SR_OP_ADD, .n_inputs = 2, .inputs = {in0, in1}};
    node.p.add.scale = scale;
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_concat(sr_builder *b, int n_inputs, const int *inputs, const char *name, ...)
{
    if (n_inputs < 2 || n_inputs > SR_NODE_MAX_INPUTS)
        return fail(b, sr_fail(b->err, SR_ERR_MODEL, "a concatenation of %d tensors (2 to %d)",
                               n_inputs, SR_NODE_MAX_INPUTS));
    sr_node node = {.op = SR_OP_CONCAT, .n_inputs = n_inputs};
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] < 0)
            return inputs[i];
        node.inputs[i] = inputs[i];
    }
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_pixel_shuffle(sr_builder *b, int input, int r, const char *name, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_PIXEL_SHUFFLE, .n_inputs = 1, .inputs = {input}};
    node.p.pixel_shuffle.r = r;
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_instance_norm(sr_builder *b, int input, float eps, const char *name, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_INSTANCE_NORM, .n_inputs = 1, .inputs = {input}};
    node.p.instance_norm.eps = eps;
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_tanh_affine(sr_builder *b, int input, const char *name, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_TANH_AFFINE, .n_inputs = 1, .inputs = {input}};
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

int sr_build_upsample(sr_builder *b, int input, int factor, sr_upsample_mode mode,
                      const char *name, ...)
{
    if (input < 0)
        return input;
    sr_node node = {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .inputs = {input}};
    node.p.upsample.factor = factor;
    node.p.upsample.mode = (int)mode;
    va_list ap;
    va_start(ap, name);
    const int index = add_node(b, &node, name, ap);
    va_end(ap);
    return index;
}

sr_status sr_build_finish(sr_builder *b, bool strict, sr_notices *notices)
{
    for (int64_t i = 0; i < b->w->n_items && b->status == SR_OK; i++) {
        const char *name = b->w->items[i].name;
        if (b->used[i])
            continue;
        if (b->ignored && b->ignored(name))
            b->n_ignored++;
        else if (strict)
            b->status = sr_fail(b->err, SR_ERR_MODEL,
                                "unexpected key '%s' (refused by strict loading)", name);
        else
            sr_notices_add(notices, "ignoring unexpected key '%s'", name);
    }
    return b->status;
}

int sr_build_count(const sr_weights *w, const char *fmt, int limit)
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

int64_t sr_build_dim(const sr_weights *w, const char *name, int dim)
{
    const sr_weight *t = sr_weights_find(w, name);
    return t && dim < t->ndim ? t->shape[dim] : -1;
}
