/* Convolution on the CPU as GEMM over bands of output rows: each band is
 * unfolded (im2col) into a bounded workspace, then one sgemm multiplies the
 * [c_out x c_in k k] weights by it, writing straight into the output. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "backends/cpu/cpu.h"

/* Workspace per band: big enough to keep sgemm efficient, small enough
 * never to matter next to the activations. */
#define CONV_WORKSPACE_FLOATS (INT64_C(8) << 20)

/* Unfolds output rows [y0, y0 + rows) into col[(ci k + ky) k + kx][pixel]. */
static void im2col(const sr_conv2d_params *p, const sr_tensor *in, int64_t OW,
                   int64_t y0, int64_t rows, float *col, int n_threads)
{
    const int64_t H = in->shape.h, W = in->shape.w, k = p->k;
    const int64_t n_rows = p->c_in * k * k, n = rows * OW;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t ci = r / (k * k), ky = r / k % k, kx = r % k;
        const float *x = in->data + ci * H * W;
        float *dst = col + r * n;
        /* Output columns whose input column ox + kx - pad lies inside. */
        int64_t x0 = p->pad - kx, x1 = W + p->pad - kx;
        if (x0 < 0) x0 = 0;
        if (x1 > OW) x1 = OW;
        for (int64_t oy = y0; oy < y0 + rows; oy++, dst += OW) {
            const int64_t iy = oy + ky - p->pad;
            if (iy < 0 || iy >= H || x1 <= x0) {
                memset(dst, 0, (size_t)OW * sizeof *dst);
                continue;
            }
            memset(dst, 0, (size_t)x0 * sizeof *dst);
            memcpy(dst + x0, x + iy * W + x0 + kx - p->pad, (size_t)(x1 - x0) * sizeof *dst);
            memset(dst + x1, 0, (size_t)(OW - x1) * sizeof *dst);
        }
    }
}

sr_status sr_cpu_conv2d(sr_cpu_context *ctx, const sr_node *node,
                        const sr_tensor *in, sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const int64_t OH = out->shape.h, OW = out->shape.w;
    const int64_t kdim = p->c_in * p->k * p->k;
    /* cblas takes int sizes; the output plane is the largest of them. */
    if (OH * OW > INT_MAX || kdim > INT_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "%s: %lldx%lld output is too large for one pass",
                       node->name, (long long)OW, (long long)OH);
    int64_t band = CONV_WORKSPACE_FLOATS / (kdim * OW);
    if (band < 1)
        band = 1;
    if (band > OH)
        band = OH;
    float *col = sr_cpu_workspace(ctx, band * OW * kdim);
    if (!col)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
    openblas_set_num_threads(ctx->n_threads);
    for (int64_t y0 = 0; y0 < OH; y0 += band) {
        const int64_t rows = y0 + band <= OH ? band : OH - y0;
        const int64_t n = rows * OW;
        float *c = out->data + y0 * OW;
        im2col(p, in, OW, y0, rows, col, ctx->n_threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->c_out, (int)n,
                    (int)kdim, 1.0f, p->weight, (int)kdim, col, (int)n, 0.0f, c,
                    (int)(OH * OW));
        if (p->bias) {
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
            for (int64_t co = 0; co < p->c_out; co++) {
                float *o = c + co * OH * OW;
                for (int64_t i = 0; i < n; i++)
                    o[i] += p->bias[co];
            }
        }
    }
    return SR_OK;
}
