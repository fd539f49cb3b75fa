/* Convolution on the CPU as GEMM, by one of four algorithms: Winograd and
 * split Winograd (winograd.c), and two here:
 * - im2col, for any convolution: a piece of one output row and at most
 *   CHUNK columns is unfolded into the thread's workspace and multiplied by
 *   the [c_out x c_in k k] weights, straight into the output;
 * - kn2row, for any without a folded shuffle: each input row is multiplied
 *   by the weights of every tap at once, [c_out k k x c_in] x [c_in x
 *   columns], and the output sums those per-tap rows shifted into place.
 * sr_cpu_conv2d_select chooses, in one place, which a convolution gets.
 * Each thread calls a single-threaded sgemm on pieces at fixed places in
 * the image (one row, columns from a multiple of CHUNK): OpenBLAS's result
 * for a column depends on where it falls in a call, so a value always made
 * by the same call shape keeps a banded run bit-identical to a whole-image
 * run. A convolution of several inputs (a concatenation folded in) reads
 * each channel where it lies, and one that folds an upsample reads each
 * input value f times across and down (sr_conv2d_read_row): each computes
 * what it would on the copy. */
#include <limits.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "backends/cpu/cpu.h"

#define CHUNK 256

static int64_t chunk_width(int64_t ow) { return ow < CHUNK ? ow : CHUNK; }

/* kn2row per thread: the input slice [c_in][cw + k - 1] and a ring of k
 * per-tap rows [c_out k k][cw + k - 1]; shared: the weights as
 * [c_out k k][c_in]. */
static int64_t kn2row_thread_floats(const sr_conv2d_params *p, int64_t cw)
{
    const int64_t cwp = cw + p->k - 1, m = p->c_out * p->k * p->k;
    return p->c_in * cwp + p->k * m * cwp;
}

/* im2col per thread: the unfolded piece [c_in k k][cw] and, with a folded
 * shuffle, the product [c_out][cw] to scatter from. */
static int64_t im2col_thread_floats(const sr_conv2d_params *p, int64_t cw)
{
    return (p->c_in * p->k * p->k + (sr_conv2d_shuffle(p) > 1 ? p->c_out : 0)) * cw;
}

static int64_t im2col_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                       sr_shape out)
{
    return ctx->n_threads * im2col_thread_floats(p, chunk_width(out.w / sr_conv2d_shuffle(p)));
}

/* kn2row's shared weights come first. */
static int64_t kn2row_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                       sr_shape out)
{
    return p->c_out * p->k * p->k * p->c_in +
           ctx->n_threads * kn2row_thread_floats(p, chunk_width(out.w));
}

/* Unfolds output row y, columns [x0, x0 + cw), into col[(ci k + ky) k + kx][cw],
 * from the n_in inputs' channels in order. */
static void im2col(const sr_conv2d_params *p, const sr_tensor *in, int n_in, int64_t y,
                   int64_t x0, int64_t cw, float *col)
{
    const int64_t f = sr_conv2d_upsample(p), W = in->shape.w * f, k = p->k;
    for (int64_t ci = 0; ci < p->c_in; ci++)
        for (int64_t ky = 0; ky < k; ky++) {
            const int64_t iy = y + ky - p->pad;
            const bool inside = iy >= 0 && iy < in->image_h * f;
            for (int64_t kx = 0; kx < k; kx++, col += cw) {
                /* Columns x whose input column x + kx - pad lies inside. */
                int64_t a = p->pad - kx - x0, b = W + p->pad - kx - x0;
                a = a < 0 ? 0 : a > cw ? cw : a;
                b = b > cw ? cw : b < a ? a : b;
                if (!inside) {
                    memset(col, 0, (size_t)cw * sizeof *col);
                    continue;
                }
                memset(col, 0, (size_t)a * sizeof *col);
                sr_conv2d_read_row(p, in, n_in, ci, iy, x0 + a + kx - p->pad, b - a, col + a);
                memset(col + b, 0, (size_t)(cw - b) * sizeof *col);
            }
        }
}

/* Input row iy of the n_in inputs' channels, columns [x0 - pad, x0 - pad +
 * cwp), zero outside the image, into x[c_in][cwp]. */
static void gather_row(const sr_conv2d_params *p, const sr_tensor *in, int n_in, int64_t iy,
                       int64_t x0, int64_t cwp, float *x)
{
    const int64_t W = in->shape.w * sr_conv2d_upsample(p), start = x0 - p->pad;
    int64_t a = -start, b = W - start; /* the part of [0, cwp) inside the image */
    a = a < 0 ? 0 : a > cwp ? cwp : a;
    b = b > cwp ? cwp : b < a ? a : b;
    for (int64_t ci = 0; ci < p->c_in; ci++, x += cwp) {
        memset(x, 0, (size_t)a * sizeof *x);
        sr_conv2d_read_row(p, in, n_in, ci, iy, start + a, b - a, x + a);
        memset(x + b, 0, (size_t)(cwp - b) * sizeof *x);
    }
}

/* Output rows [y0, y1), columns [x0, x0 + cw), from per-tap rows: taps[iy %
 * k] holds, for input row iy, every (output channel, tap) product summed
 * over input channels. Rows are made once each as the window slides. */
static void kn2row_piece(sr_cpu_gemm_fn *gemm, const sr_conv2d_params *p, const float *weights,
                         const sr_tensor *in, int n_in, sr_tensor *out, int64_t y0, int64_t y1,
                         int64_t x0, int64_t cw, float *work)
{
    const int64_t k = p->k, cwp = cw + k - 1, m = p->c_out * k * k;
    const int64_t H = in->image_h * sr_conv2d_upsample(p); /* the rows it convolves */
    float *x = work, *taps = work + p->c_in * cwp;
    int64_t made = y0 - p->pad; /* input rows below this are in the ring */
    for (int64_t y = y0; y < y1; y++) {
        for (; made < y - p->pad + k; made++) {
            if (made < 0 || made >= H)
                continue; /* zero padding: such rows add nothing */
            gather_row(p, in, n_in, made, x0, cwp, x);
            gemm((int)m, (int)cwp, (int)p->c_in, weights, (int)p->c_in, x, (int)cwp,
                 taps + made % k * m * cwp, (int)cwp);
        }
        for (int64_t co = 0; co < p->c_out; co++) {
            float *o = sr_tensor_row(out, co, y) + x0;
            for (int64_t i = 0; i < cw; i++)
                o[i] = p->bias ? p->bias[co] : 0.0f;
            for (int64_t ky = 0; ky < k; ky++) {
                const int64_t iy = y + ky - p->pad;
                if (iy < 0 || iy >= H)
                    continue;
                const float *t = taps + iy % k * m * cwp + (co * k + ky) * k * cwp;
                for (int64_t kx = 0; kx < k; kx++, t += cwp)
                    for (int64_t i = 0; i < cw; i++)
                        o[i] += t[i + kx];
            }
            sr_epilogue_apply(&p->epilogue, co, o, cw);
            sr_conv2d_add_residual(p, in, n_in, co, y, x0, o, cw);
        }
    }
}

/* Pieces: column chunks, and when there are fewer chunks than threads,
 * row ranges too (a piece of any rows gives the same values: every per-tap
 * row is its own sgemm call). */
static sr_status conv2d_kn2row(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                               sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const int64_t OW = out->shape.w, OH = out->shape.h, k = p->k, m = p->c_out * k * k;
    const int64_t cw_max = chunk_width(OW), n_chunks = (OW + cw_max - 1) / cw_max;
    const int64_t per_thread = kn2row_thread_floats(p, cw_max);
    float *work = sr_cpu_workspace(ctx, kn2row_workspace_floats(ctx, p, out->shape));
    if (!work)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
    float *weights = work; /* [(co k + ky) k + kx][ci] */
    for (int64_t co = 0; co < p->c_out; co++)
        for (int64_t ci = 0; ci < p->c_in; ci++)
            for (int64_t t = 0; t < k * k; t++)
                weights[(co * k * k + t) * p->c_in + ci] = p->weight[(co * p->c_in + ci) * k * k + t];
    const int64_t n_ranges = n_chunks >= ctx->n_threads ? 1 : ctx->n_threads;
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t item = 0; item < n_chunks * n_ranges; item++) {
        float *mine = work + m * p->c_in + omp_get_thread_num() * per_thread;
        const int64_t c = item / n_ranges, r = item % n_ranges, x0 = c * cw_max;
        const int64_t cw = x0 + cw_max <= OW ? cw_max : OW - x0;
        const int64_t y0 = out->y0 + OH * r / n_ranges, y1 = out->y0 + OH * (r + 1) / n_ranges;
        if (y0 < y1)
            kn2row_piece(sr_cpu_gemm(ctx), p, weights, in, node->n_inputs, out, y0, y1, x0, cw,
                         mine);
    }
    return SR_OK;
}

static sr_status conv2d_im2col(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                               sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const int64_t OW = out->shape.w, OH = out->shape.h, kdim = p->c_in * p->k * p->k;
    /* Rows and width of the convolution's own output, before any shuffle. */
    const int64_t r = sr_conv2d_shuffle(p), CW = OW / r;
    const int64_t cy0 = out->y0 / r, cy1 = (out->y0 + OH + r - 1) / r;
    const int64_t cw_max = chunk_width(CW), n_chunks = (CW + cw_max - 1) / cw_max;
    const int64_t per_thread = im2col_thread_floats(p, cw_max);
    float *workspace = sr_cpu_workspace(ctx, im2col_workspace_floats(ctx, p, out->shape));
    if (!workspace)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t item = 0; item < (cy1 - cy0) * n_chunks; item++) {
        float *col = workspace + omp_get_thread_num() * per_thread, *product = col + kdim * cw_max;
        const int64_t y = cy0 + item / n_chunks, x0 = item % n_chunks * cw_max;
        const int64_t cw = x0 + cw_max <= CW ? cw_max : CW - x0;
        /* Straight into the output, or beside it to be shuffled. */
        float *c = r == 1 ? sr_tensor_row(out, 0, y) + x0 : product;
        const int64_t ldc = r == 1 ? out->cstride : cw;
        im2col(p, in, node->n_inputs, y, x0, cw, col);
        sr_cpu_gemm(ctx)((int)p->c_out, (int)cw, (int)kdim, p->weight, (int)kdim, col, (int)cw, c,
                         (int)ldc);
        for (int64_t co = 0; co < p->c_out; co++) {
            float *o = c + co * ldc;
            if (p->bias)
                for (int64_t i = 0; i < cw; i++)
                    o[i] += p->bias[co];
            sr_epilogue_apply(&p->epilogue, co, o, cw);
            sr_conv2d_add_residual(p, in, node->n_inputs, co, y, x0, o, cw);
            int64_t lo, hi;
            sr_conv2d_band_rows(p, out, co, &lo, &hi);
            if (r > 1 && y >= lo && y < hi) {
                float *dst = sr_conv2d_out_row(p, out, co, y) + x0 * r;
                for (int64_t i = 0; i < cw; i++)
                    dst[i * r] = o[i];
            }
        }
    }
    return SR_OK;
}

static bool im2col_can_run(const sr_conv2d_params *p)
{
    (void)p;
    return true;
}

/* Its per-tap rows cannot be written through a shuffle. */
static bool kn2row_can_run(const sr_conv2d_params *p)
{
    return sr_conv2d_shuffle(p) == 1;
}

const sr_cpu_conv_algorithm sr_cpu_conv_im2col = {
    .name = "im2col",
    .can_run = im2col_can_run,
    .workspace_floats = im2col_workspace_floats,
    .row_tiling = sr_row_tiling_plain,
    .run = conv2d_im2col,
};

const sr_cpu_conv_algorithm sr_cpu_conv_kn2row = {
    .name = "kn2row",
    .can_run = kn2row_can_run,
    .workspace_floats = kn2row_workspace_floats,
    .row_tiling = sr_row_tiling_plain,
    .run = conv2d_kn2row,
};

const sr_cpu_conv_algorithm *const sr_cpu_conv_algorithms[SR_CPU_CONV_ALGORITHMS] = {
    &sr_cpu_conv_im2col, &sr_cpu_conv_kn2row, &sr_cpu_conv_winograd,
    &sr_cpu_conv_winograd_split,
};

const sr_cpu_conv_algorithm *sr_cpu_conv2d_select(const sr_cpu_context *ctx,
                                                  const sr_conv2d_params *p)
{
    if (ctx->conv_forced && ctx->conv_forced->can_run(p))
        return ctx->conv_forced;
    /* 3x3 with many channels: most of SRPGAN's FLOPs, 4 times fewer
     * multiplies. */
    if (sr_cpu_conv_winograd.can_run(p) && p->c_in >= 16 && p->c_out >= 16)
        return &sr_cpu_conv_winograd;
    /* k = 3 q with many inputs and few outputs (SRPGAN's 64 -> 3 9x9). */
    if (sr_cpu_conv_winograd_split.can_run(p) && p->c_in >= 16)
        return &sr_cpu_conv_winograd_split;
    /* Few output channels: as im2col, M = c_out would starve sgemm (a
     * 64 -> 3 9x9 conv ran at a tenth of the machine's rate). */
    if (sr_cpu_conv_kn2row.can_run(p) && p->c_out < 16 && p->k > 1)
        return &sr_cpu_conv_kn2row;
    return &sr_cpu_conv_im2col;
}

sr_status sr_cpu_backend_new_forcing(int n_threads, const char *conv_algorithm,
                                     sr_backend_handle *backend, sr_error *err)
{
    const sr_cpu_conv_algorithm *forced = NULL;
    char names[128] = "";
    for (int i = 0; conv_algorithm && i < SR_CPU_CONV_ALGORITHMS; i++) {
        if (strcmp(conv_algorithm, sr_cpu_conv_algorithms[i]->name) == 0)
            forced = sr_cpu_conv_algorithms[i];
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 sr_cpu_conv_algorithms[i]->name);
    }
    if (conv_algorithm && !forced)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "unknown convolution algorithm '%s' (known: %s)", conv_algorithm, names);
    const sr_status st = sr_cpu_backend_new(n_threads, backend, err);
    if (st == SR_OK)
        ((sr_cpu_context *)backend->ctx)->conv_forced = forced;
    return st;
}

int64_t sr_cpu_conv2d_workspace_bytes(const sr_cpu_context *ctx, const sr_node *node,
                                      sr_shape out)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    return sr_cpu_conv2d_select(ctx, p)->workspace_floats(ctx, p, out) * (int64_t)sizeof(float);
}

sr_row_tiling sr_cpu_conv2d_row_tiling(const sr_cpu_context *ctx, const sr_node *node)
{
    return sr_cpu_conv2d_select(ctx, &node->p.conv2d)->row_tiling(node);
}

sr_status sr_cpu_conv2d(sr_cpu_context *ctx, const sr_node *node,
                        const sr_tensor *in, sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    /* cblas takes int sizes; the output's channel stride is the largest. */
    if (out->cstride > INT_MAX || p->c_in * p->k * p->k > INT_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "%s: %lldx%lld output band is too large for one pass",
                       node->name, (long long)out->shape.w, (long long)out->shape.h);
    return sr_cpu_conv2d_select(ctx, p)->run(ctx, node, in, out, err);
}
