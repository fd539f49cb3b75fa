/* What the kernel tests of every backend share (tests/ops for the host
 * backends, tests/backends/test_cuda for the device): band tensors, a
 * global op's statistics, and the cases each kernel is checked on
 * (check_kernel_cases).
 * Header-only, after cmocka.h and testutil.h. */
#ifndef SR_TESTS_KERNEL_CASES_H
#define SR_TESTS_KERNEL_CASES_H

#include <string.h>

#include "ops/op.h"

/* A whole c x h x w tensor, NaN-filled so that an unwritten value fails. */
static inline sr_tensor tensor_new(int64_t c, int64_t h, int64_t w)
{
    sr_tensor t = sr_tensor_whole((sr_shape){c, h, w}, malloc((size_t)(c * h * w) * sizeof(float)));
    assert_non_null(t.data);
    test_fill_nan(t.data, c * h * w);
    return t;
}

/* A packed copy of rows [y0, y1) of t, which knows its place in the image. */
static inline sr_tensor copy_rows(const sr_tensor *t, int64_t y0, int64_t y1)
{
    sr_tensor b = tensor_new(t->shape.c, y1 - y0, t->shape.w);
    b.y0 = y0;
    b.image_h = t->image_h;
    for (int64_t c = 0; c < t->shape.c; c++)
        for (int64_t y = y0; y < y1; y++)
            memcpy(sr_tensor_row(&b, c, y), sr_tensor_row(t, c, y),
                   (size_t)t->shape.w * sizeof(float));
    return b;
}

/* Statistics of a global op over its whole input, in bands of `band` rows;
 * NULL for other ops. */
static inline float *gather_stats(const sr_node *node, const sr_tensor *in, int64_t band)
{
    const sr_op_desc *d = sr_op_get(node->op);
    if (!d->is_global)
        return NULL;
    const int64_t n = d->n_stats(node, in->shape);
    double *acc = calloc((size_t)n, sizeof *acc);
    float *stats = malloc((size_t)n * sizeof *stats);
    for (int64_t y = 0; y < in->shape.h; y += band)
        d->accumulate(node, in, y, y + band < in->shape.h ? y + band : in->shape.h, acc);
    d->finalize(node, in->shape, acc, stats);
    free(acc);
    return stats;
}

typedef struct conv_case {
    int64_t c_in, c_out;
    int k, pad;
    int64_t h, w;
    int shuffle; /* a folded pixel shuffle */
} conv_case;

/* SRPGAN's shapes (its upsampling convs with their shuffle folded), and the
 * edges: width or height 1, images smaller than the kernel, padding other
 * than k / 2, a shuffle by 3 (also on the Winograd path), widths that
 * end mid-tile, large kernels split into 3x3 pieces (15x15, several
 * column pieces, many strips), and one or four outputs (one channel
 * shuffled by 2). */
static const conv_case conv_cases[] = {
    {3, 64, 9, 4, 13, 11, 0},  {64, 3, 9, 4, 9, 14, 0},  {64, 64, 3, 1, 17, 23, 0},
    {64, 256, 3, 1, 6, 5, 2},  {3, 64, 9, 4, 1, 1, 0},   {64, 3, 9, 4, 1, 37, 0},
    {16, 32, 3, 1, 29, 1, 0},  {5, 7, 5, 2, 3, 2, 0},    {4, 6, 1, 0, 8, 9, 0},
    {6, 5, 3, 0, 7, 6, 0},     {2, 3, 5, 1, 6, 8, 0},    {64, 64, 3, 1, 2, 300, 2},
    {64, 256, 3, 1, 9, 7, 0},  {4, 18, 5, 2, 7, 9, 3},   {16, 48, 3, 1, 11, 13, 2},
    {64, 3, 9, 4, 45, 70, 0},  {32, 3, 9, 4, 21, 300, 0}, {16, 2, 15, 7, 19, 20, 0},
    {16, 7, 9, 4, 34, 9, 0},   {16, 144, 3, 1, 7, 9, 3}, {16, 32, 3, 1, 5, 257, 2},
    {7, 1, 5, 2, 10, 6, 0},    {8, 4, 3, 1, 9, 11, 2},
};

/* Case i as a conv node with random weights (free them with
 * conv_node_free): every fourth case without a bias, every third with a
 * folded PReLU, shared or per channel, before its shuffle. */
static inline sr_node conv_node_new(size_t i, test_rng *r)
{
    const conv_case *cc = &conv_cases[i];
    const int64_t nw = cc->c_out * cc->c_in * cc->k * cc->k;
    float *weight = malloc((size_t)nw * sizeof *weight);
    float *bias = malloc((size_t)cc->c_out * sizeof *bias);
    float *slopes = malloc((size_t)cc->c_out * sizeof *slopes);
    test_fill(r, weight, nw, -0.5f, 0.5f);
    test_fill(r, bias, cc->c_out, -0.5f, 0.5f);
    test_fill(r, slopes, cc->c_out, 0, 0.5f);
    if (i % 4 == 3) {
        free(bias);
        bias = NULL;
    }
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1};
    node.p.conv2d = (sr_conv2d_params){
        .c_in = cc->c_in, .c_out = cc->c_out, .k = cc->k, .pad = cc->pad,
        .weight = weight, .bias = bias};
    sr_epilogue *e = &node.p.conv2d.epilogue;
    if (i % 3 != 0)
        sr_epilogue_append(e, (sr_epilogue_step){SR_EPILOGUE_PRELU,
                                                 .p.prelu = {i % 3 == 1 ? 1 : cc->c_out, slopes}});
    else
        free(slopes);
    if (cc->shuffle)
        sr_epilogue_append(e, (sr_epilogue_step){SR_EPILOGUE_SHUFFLE, .p.shuffle.r = cc->shuffle});
    return node;
}

static inline void conv_node_free(sr_node *node)
{
    const sr_epilogue *e = &node->p.conv2d.epilogue;
    free((float *)node->p.conv2d.weight);
    free((float *)node->p.conv2d.bias);
    for (int i = 0; i < e->n_steps; i++)
        if (e->steps[i].kind == SR_EPILOGUE_PRELU)
            free((float *)e->steps[i].p.prelu.slopes);
}

/* in's channels as n tensors of about equal counts, each whole (free each
 * one's data): the inputs of a convolution with a concatenation folded in. */
static inline void split_channels(const sr_tensor *in, int n, sr_tensor *parts)
{
    const int64_t c = in->shape.c, plane = in->shape.h * in->shape.w;
    for (int j = 0; j < n; j++) {
        const int64_t c0 = c * j / n, c1 = c * (j + 1) / n;
        parts[j] = tensor_new(c1 - c0, in->shape.h, in->shape.w);
        parts[j].image_h = in->image_h;
        memcpy(parts[j].data, sr_tensor_row(in, c0, 0),
               (size_t)((c1 - c0) * plane) * sizeof(float));
    }
}

/* The other ops on c channels, with 64 slopes to draw on. */
#define N_OTHER_NODES 17
#define N_OTHER_INPUTS 5 /* the inputs check_kernel_cases draws for them */
static inline void other_nodes(sr_node nodes[N_OTHER_NODES], int64_t c, const float *slopes)
{
    const sr_node all[N_OTHER_NODES] = {
        {.op = SR_OP_PRELU, .n_inputs = 1, .p.prelu = {1, slopes}},
        {.op = SR_OP_PRELU, .n_inputs = 1, .p.prelu = {c, slopes}},
        {.op = SR_OP_INSTANCE_NORM, .n_inputs = 1, .p.instance_norm = {1e-5f}},
        {.op = SR_OP_INSTANCE_NORM, .n_inputs = 1,
         .p.instance_norm = {1e-5f, {1, {{SR_EPILOGUE_PRELU, .p.prelu = {c, slopes}}}}}},
        {.op = SR_OP_INSTANCE_NORM, .n_inputs = 1,
         .p.instance_norm = {1e-5f, {2, {{SR_EPILOGUE_PRELU, .p.prelu = {1, slopes}},
                                         {SR_EPILOGUE_LEAKY_RELU, .p.leaky_relu.slope = 0.1f}}}}},
        {.op = SR_OP_PIXEL_SHUFFLE, .n_inputs = 1, .p.pixel_shuffle = {2}},
        {.op = SR_OP_ADD, .n_inputs = 2, .p.add = {1.0f}},
        {.op = SR_OP_TANH_AFFINE, .n_inputs = 1},
        {.op = SR_OP_ADD, .n_inputs = 2, .p.add = {0.2f}},
        {.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .p.leaky_relu = {0.2f}},
        {.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .p.leaky_relu = {0.0f}},
        {.op = SR_OP_CONCAT, .n_inputs = 2},
        {.op = SR_OP_CONCAT, .n_inputs = N_OTHER_INPUTS},
        {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .p.upsample = {2, SR_UPSAMPLE_NEAREST}},
        {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .p.upsample = {3, SR_UPSAMPLE_NEAREST}},
        {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .p.upsample = {2, SR_UPSAMPLE_BILINEAR}},
        {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .p.upsample = {3, SR_UPSAMPLE_BILINEAR}},
    };
    memcpy(nodes, all, sizeof all);
}

/* Checks a kernel: node on its first n_inputs inputs, named by what
 * ("conv case 3", "prelu"). */
typedef void kernel_check(void *user, const sr_node *node, const sr_tensor *in, test_rng *r,
                          const char *what);

/* check on every conv case (each with more than one input channel also
 * over several inputs), then on the other ops at n_trials random shapes,
 * drawing the inputs and weights from r. */
static inline void check_kernel_cases(test_rng *r, int n_trials, kernel_check *check, void *user)
{
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++) {
        const conv_case *cc = &conv_cases[i];
        sr_tensor in = tensor_new(cc->c_in, cc->h, cc->w);
        test_fill(r, in.data, cc->c_in * cc->h * cc->w, -1, 1);
        sr_node node = conv_node_new(i, r);
        /* Every fifth ends with a LeakyReLU, a ReLU in every tenth. */
        if (i % 5 == 0)
            sr_epilogue_append(&node.p.conv2d.epilogue,
                               (sr_epilogue_step){SR_EPILOGUE_LEAKY_RELU,
                                                  .p.leaky_relu.slope = i % 10 ? 0.2f : 0.0f});
        char what[64];
        snprintf(what, sizeof what, "conv case %zu", i);
        check(user, &node, &in, r, what);
        /* Again over its channels in 2 or 3 tensors (a concatenation
         * folded in), drawing from its own generator: r's draws stay. */
        const int n_parts = cc->c_in < 3 ? (int)cc->c_in : 2 + (int)(i % 2);
        sr_tensor parts[3] = {in};
        if (n_parts > 1) {
            split_channels(&in, n_parts, parts);
            node.n_inputs = n_parts;
            snprintf(what, sizeof what, "conv case %zu over %d inputs", i, n_parts);
            test_rng split_r = {1000 + i};
            check(user, &node, parts, &split_r, what);
        }
        /* And with a residual added, where the output has the input's rows
         * and columns and at most its channels: over the inputs (RRDB's
         * dense blocks read five), the input's first channels added. */
        sr_node residual = node;
        if (!cc->shuffle && cc->k == 2 * cc->pad + 1 && cc->c_in >= cc->c_out &&
            sr_epilogue_append(&residual.p.conv2d.epilogue,
                               (sr_epilogue_step){SR_EPILOGUE_RESIDUAL,
                                                  .p.residual.scale = i % 2 ? 0.2f : 1.0f})) {
            snprintf(what, sizeof what, "conv case %zu with a residual", i);
            test_rng residual_r = {2000 + i};
            check(user, &residual, parts, &residual_r, what);
        }
        /* And reading its input nearest-upsampled (an upsample folded in)
         * by 2, or 3 in every third case, over the inputs: the Winograd
         * tiles, im2col's columns and the bands fall across the repeated
         * rows and columns. The cases of at most 40 MFLOP so: the
         * reference is slow. */
        sr_node up = node;
        up.p.conv2d.upsample = i % 3 == 2 ? 3 : 2;
        const int64_t f = up.p.conv2d.upsample;
        if (2 * cc->c_in * cc->c_out * cc->k * cc->k * cc->h * cc->w * f * f <= 40000000) {
            snprintf(what, sizeof what, "conv case %zu upsampling by %d", i,
                     up.p.conv2d.upsample);
            test_rng up_r = {3000 + i};
            check(user, &up, parts, &up_r, what);
        }
        node.n_inputs = 1;
        for (int j = 0; j < n_parts && n_parts > 1; j++)
            free(parts[j].data);
        conv_node_free(&node);
        free(in.data);
    }
    for (int trial = 0; trial < n_trials; trial++) {
        const int64_t c = 4 * test_rng_int(r, 1, 16), h = test_rng_int(r, 1, 40),
                      w = test_rng_int(r, 1, 40);
        /* Two of c channels (for add); concat's others of other counts. */
        const int64_t channels[N_OTHER_INPUTS] = {c, c, 1, 3, c / 2};
        sr_tensor in[N_OTHER_INPUTS];
        for (int i = 0; i < N_OTHER_INPUTS; i++) {
            in[i] = tensor_new(channels[i], h, w);
            test_fill(r, in[i].data, channels[i] * h * w, -3, 3);
        }
        float slopes[64];
        test_fill(r, slopes, 64, 0, 1);
        sr_node nodes[N_OTHER_NODES];
        other_nodes(nodes, c, slopes);
        for (size_t j = 0; j < N_OTHER_NODES; j++)
            check(user, &nodes[j], in, r, sr_op_name(&nodes[j]));
        for (int i = 0; i < N_OTHER_INPUTS; i++)
            free(in[i].data);
    }
}

#endif
