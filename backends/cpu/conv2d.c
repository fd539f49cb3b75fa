/* Convolution on the CPU as GEMM, in pieces of one output row and at most
 * CHUNK columns: each thread unfolds a piece (im2col) into its own small
 * workspace and multiplies the [c_out x c_in k k] weights by it with a
 * single-threaded sgemm that writes straight into the output.
 *
 * The pieces sit at fixed places in the image (a row, columns from a
 * multiple of CHUNK), so every output value comes from the same sgemm call
 * shape whatever band it is computed in: OpenBLAS's result for a column
 * depends on where it falls in a call, and this keeps a banded run
 * bit-identical to a whole-image run. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"

#define CHUNK 256

static int64_t chunk_width(int64_t ow) { return ow < CHUNK ? ow : CHUNK; }

int64_t sr_cpu_conv2d_workspace_bytes(const sr_cpu_context *ctx, const sr_node *node,
                                      sr_shape out)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    return ctx->n_threads * p->c_in * p->k * p->k * chunk_width(out.w) * (int64_t)sizeof(float);
}

/* Unfolds output row y, columns [x0, x0 + cw), into col[(ci k + ky) k + kx][cw]. */
static void im2col(const sr_conv2d_params *p, const sr_tensor *in, int64_t y, int64_t x0,
                   int64_t cw, float *col)
{
    const int64_t W = in->shape.w, k = p->k;
    for (int64_t ci = 0; ci < p->c_in; ci++)
        for (int64_t ky = 0; ky < k; ky++) {
            const int64_t iy = y + ky - p->pad;
            const bool inside = iy >= 0 && iy < in->image_h;
            const float *src = inside ? sr_tensor_row(in, ci, iy) : NULL;
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
                memcpy(col + a, src + x0 + a + kx - p->pad, (size_t)(b - a) * sizeof *col);
                memset(col + b, 0, (size_t)(cw - b) * sizeof *col);
            }
        }
}

sr_status sr_cpu_conv2d(sr_cpu_context *ctx, const sr_node *node,
                        const sr_tensor *in, sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const int64_t OW = out->shape.w, OH = out->shape.h, kdim = p->c_in * p->k * p->k;
    /* cblas takes int sizes; the output's channel stride is the largest. */
    if (out->cstride > INT_MAX || kdim > INT_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "%s: %lldx%lld output band is too large for one pass",
                       node->name, (long long)OW, (long long)OH);
    const int64_t cw_max = chunk_width(OW), n_chunks = (OW + cw_max - 1) / cw_max;
    float *workspace = sr_cpu_workspace(ctx, ctx->n_threads * kdim * cw_max);
    if (!workspace)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t item = 0; item < OH * n_chunks; item++) {
        float *col = workspace + omp_get_thread_num() * kdim * cw_max;
        const int64_t y = out->y0 + item / n_chunks, x0 = item % n_chunks * cw_max;
        const int64_t cw = x0 + cw_max <= OW ? cw_max : OW - x0;
        float *c = sr_tensor_row(out, 0, y) + x0;
        im2col(p, in, y, x0, cw, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->c_out, (int)cw,
                    (int)kdim, 1.0f, p->weight, (int)kdim, col, (int)cw, 0.0f, c,
                    (int)out->cstride);
        if (p->bias)
            for (int64_t co = 0; co < p->c_out; co++)
                for (int64_t i = 0; i < cw; i++)
                    c[co * out->cstride + i] += p->bias[co];
    }
    return SR_OK;
}
