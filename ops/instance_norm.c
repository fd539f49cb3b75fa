/* InstanceNorm2d without affine parameters, as PyTorch computes it at
 * inference: per channel, (x - mean) / sqrt(var + eps) with the biased
 * variance over H x W, then its epilogue (a folded PReLU, say). Global:
 * the mean and variance need the whole plane, so they are gathered first,
 * row by row in image order (each row summed in double, then added to the
 * running sums): the same arithmetic whatever the bands, so a tiled run
 * gives the whole-image result exactly. A row is summed in ROW_LANES
 * interleaved partial sums (value i in lane i mod ROW_LANES), added in
 * lane order at the end: independent chains that the compiler vectorises,
 * where one running sum waits on each add (2.5x slower, 31M values). */
#include <math.h>

#include "ops/op.h"

static sr_status instance_norm_shape(const sr_node *node, const sr_shape *in, sr_shape *out,
                                     sr_error *err)
{
    sr_status st =
        sr_epilogue_check(node->name, &node->p.instance_norm.epilogue, in[0].c, false, err);
    if (st != SR_OK)
        return st;
    *out = in[0];
    return SR_OK;
}

static int64_t instance_norm_flops(const sr_node *node, sr_shape out)
{
    return (5 + sr_epilogue_flops(&node->p.instance_norm.epilogue)) * sr_shape_numel(out);
}

/* Sums: [0, C) of x, [C, 2C) of x^2. Stats: [0, C) mean, [C, 2C) 1/std. */
static int64_t instance_norm_n_stats(const sr_node *node, sr_shape in)
{
    (void)node;
    return 2 * in.c;
}

#define ROW_LANES 8

/* Adds the row's sum of x and of x^2 to *sum and *sq. */
static void row_sums(const float *x, int64_t n, double *sum, double *sq)
{
    double s[ROW_LANES] = {0}, q[ROW_LANES] = {0};
    int64_t i = 0;
    for (; i + ROW_LANES <= n; i += ROW_LANES)
        for (int k = 0; k < ROW_LANES; k++) {
            const double v = x[i + k];
            s[k] += v;
            q[k] += v * v;
        }
    for (int k = 0; i + k < n; k++) {
        const double v = x[i + k];
        s[k] += v;
        q[k] += v * v;
    }
    double a = 0.0, b = 0.0;
    for (int k = 0; k < ROW_LANES; k++) {
        a += s[k];
        b += q[k];
    }
    *sum += a;
    *sq += b;
}

static void instance_norm_accumulate(const sr_node *node, const sr_tensor *in,
                                     int64_t y0, int64_t y1, double *acc)
{
    (void)node;
    const int64_t C = in->shape.c, W = in->shape.w;
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = y0; y < y1; y++)
            row_sums(sr_tensor_row(in, c, y), W, &acc[c], &acc[C + c]);
}

static void instance_norm_finalize(const sr_node *node, sr_shape in, const double *acc,
                                   float *stats)
{
    const double n = (double)(in.h * in.w);
    for (int64_t c = 0; c < in.c; c++) {
        const double mean = acc[c] / n;
        double var = acc[in.c + c] / n - mean * mean;
        if (var < 0.0)
            var = 0.0; /* rounding on a constant plane */
        stats[c] = (float)mean;
        stats[in.c + c] = (float)(1.0 / sqrt(var + node->p.instance_norm.eps));
    }
}

static void instance_norm_reference(const sr_node *node, const sr_tensor *in,
                                    sr_tensor *out, const float *stats)
{
    const sr_instance_norm_params *p = &node->p.instance_norm;
    const int64_t C = out->shape.c, W = out->shape.w;
    for (int64_t c = 0; c < C; c++) {
        const float mean = stats[c], inv = stats[C + c];
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *x = sr_tensor_row(in, c, y);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++)
                o[i] = (x[i] - mean) * inv;
            sr_epilogue_apply(&p->epilogue, c, o, W);
        }
    }
}

const sr_op_desc sr_op_instance_norm = {
    .name = "instance_norm",
    .n_inputs = 1,
    .scale = sr_op_unit_scale,
    .is_global = true,
    .in_place = true,
    .halo = sr_op_no_halo,
    .shape = instance_norm_shape,
    .flops = instance_norm_flops,
    .reference = instance_norm_reference,
    .n_stats = instance_norm_n_stats,
    .accumulate = instance_norm_accumulate,
    .finalize = instance_norm_finalize,
};
