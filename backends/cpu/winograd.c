/* Winograd F(4x4, 3x3) for the 3x3 convolutions with many channels (most
 * of SRPGAN's FLOPs): each 4x4 output tile comes from a 6x6 input tile as
 * A^T [(G g G^T) . (B^T d B)] A, so 36 multiplies per channel pair replace
 * 144. The products are 36 GEMMs, one per point of the 6x6 transform
 * domain: [c_out x c_in] x [c_in x tiles].
 *
 * Tiles sit at fixed places in the image (rows and columns from multiples
 * of 4, GEMM pieces from multiples of TILES tiles), so every value is
 * computed the same way whatever band it falls in; a band computes the
 * whole tiles its rows touch, which is why the backend reports a row
 * alignment of 4 to the planner (its inputs cover whole tiles).
 *
 * Transforms of Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks" (2015), interpolation points 0, +-1, +-2, infinity. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"

#define TILES 64     /* tiles per GEMM piece: 256 output columns */
#define CO_BLOCK 64  /* output channels per round of GEMMs */

bool sr_cpu_winograd_applies(const sr_conv2d_params *p)
{
    return p->k == 3 && p->pad == 1 && p->c_in >= 16 && p->c_out >= 16;
}

static int64_t tiles_per_piece(int64_t width)
{
    const int64_t tiles = (width + 3) / 4;
    return tiles < TILES ? tiles : TILES;
}

/* Output channels are done CO_BLOCK at a time so that a piece's
 * transformed input and products stay in the core's L2 cache. */
static int64_t co_block(const sr_conv2d_params *p) { return p->c_out < CO_BLOCK ? p->c_out : CO_BLOCK; }

/* Per thread: the transformed input [36][c_in][TILES], the products
 * [36][co_block][TILES] and the transforms' scratch; shared: the
 * transformed weights [36][c_out][c_in]. */
static int64_t thread_floats(const sr_conv2d_params *p, int64_t nt)
{
    return 36 * (p->c_in + co_block(p)) * nt + 6 * (4 * nt + 2) + 44 * nt;
}

int64_t sr_cpu_winograd_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                         int64_t width)
{
    return 36 * p->c_out * p->c_in + ctx->n_threads * thread_floats(p, tiles_per_piece(width));
}

/* U[a 6 + b][co][ci] = (G g G^T)[a][b]. Redone for every band (a few
 * milliseconds, spread over the threads) rather than kept per node, which
 * would hold four times the 3x3 weights outside the memory plan. */
static void transform_weights(const sr_conv2d_params *p, float *u, int n_threads)
{
    static const float G[6][3] = {
        {1.0f / 4, 0, 0},
        {-1.0f / 6, -1.0f / 6, -1.0f / 6},
        {-1.0f / 6, 1.0f / 6, -1.0f / 6},
        {1.0f / 24, 1.0f / 12, 1.0f / 6},
        {1.0f / 24, -1.0f / 12, 1.0f / 6},
        {0, 0, 1},
    };
    const int64_t plane = p->c_out * p->c_in;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t co = 0; co < p->c_out; co++)
        for (int64_t ci = 0; ci < p->c_in; ci++) {
            const float *g = p->weight + (co * p->c_in + ci) * 9;
            float gg[6][3]; /* G g */
            for (int a = 0; a < 6; a++)
                for (int j = 0; j < 3; j++)
                    gg[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++)
                    u[(a * 6 + b) * plane + co * p->c_in + ci] =
                        gg[a][0] * G[b][0] + gg[a][1] * G[b][1] + gg[a][2] * G[b][2];
        }
}

/* The transforms run across the tiles of a piece, nt at a time, so that
 * each step is a loop over contiguous floats that the compiler vectorises. */

/* r[i][j] = (B^T d)[i] for six vectors d[0], d[s], ..., d[5 s] of n. */
static void input_1d(const float *d, int64_t s, float *r, int64_t rs, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const float d0 = d[j], d1 = d[s + j], d2 = d[2 * s + j], d3 = d[3 * s + j],
                    d4 = d[4 * s + j], d5 = d[5 * s + j];
        r[j] = 4 * d0 - 5 * d2 + d4;
        r[rs + j] = -4 * (d1 + d2) + d3 + d4;
        r[2 * rs + j] = 4 * (d1 - d2) - d3 + d4;
        r[3 * rs + j] = 2 * (d3 - d1) - d2 + d4;
        r[4 * rs + j] = 2 * (d1 - d3) - d2 + d4;
        r[5 * rs + j] = 4 * d1 - 5 * d3 + d5;
    }
}

/* o[i][j] = (A^T m)[i] for six vectors m[0], m[s], ..., m[5 s] of n. */
static void output_1d(const float *m, int64_t s, float *o, int64_t os, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const float m0 = m[j], m1 = m[s + j], m2 = m[2 * s + j], m3 = m[3 * s + j],
                    m4 = m[4 * s + j], m5 = m[5 * s + j];
        const float p12 = m1 + m2, n12 = m1 - m2, p34 = m3 + m4, n34 = m3 - m4;
        o[j] = m0 + p12 + p34;
        o[os + j] = n12 + 2 * n34;
        o[2 * os + j] = p12 + 4 * p34;
        o[3 * os + j] = n12 + 8 * n34 + m5;
    }
}

/* Input rows 4 t - 1 ... 4 t + 4, columns from 4 j0 - 1, of every channel,
 * into v[36][c_in][nt] (zero outside the image). scratch: 6 rows of
 * 4 nt + 2 columns, then [6][6][nt]. */
static void transform_input(const sr_conv2d_params *p, const sr_tensor *in, int64_t t,
                            int64_t j0, int64_t nt, float *scratch, float *v)
{
    const int64_t W = in->shape.w, len = 4 * nt + 2, start = 4 * j0 - 1;
    int64_t a = -start, b = W - start; /* the part of [0, len) inside the image */
    a = a < 0 ? 0 : a > len ? len : a;
    b = b > len ? len : b < a ? a : b;
    float *rows = scratch, *cols = scratch + 6 * len, *phase = cols + 36 * nt;
    const int64_t plane = p->c_in * nt;
    for (int64_t ci = 0; ci < p->c_in; ci++) {
        for (int r = 0; r < 6; r++) {
            float *row = rows + r * len;
            const int64_t iy = 4 * t - 1 + r;
            if (iy < 0 || iy >= in->image_h) {
                memset(row, 0, (size_t)len * sizeof *row);
                continue;
            }
            memset(row, 0, (size_t)a * sizeof *row);
            memcpy(row + a, sr_tensor_row(in, ci, iy) + start + a, (size_t)(b - a) * sizeof *row);
            memset(row + b, 0, (size_t)(len - b) * sizeof *row);
        }
        /* Along rows: tile j's six columns 4 j ... 4 j + 5, split into
         * phases so that tiles are contiguous, then cols[r][c][j]. */
        for (int r = 0; r < 6; r++) {
            for (int c = 0; c < 6; c++)
                for (int64_t j = 0; j < nt; j++)
                    phase[c * nt + j] = rows[r * len + 4 * j + c];
            input_1d(phase, nt, cols + r * 6 * nt, nt, nt);
        }
        /* Along columns: v[(i 6 + c)][ci][j]. */
        for (int c = 0; c < 6; c++)
            input_1d(cols + c * nt, 6 * nt, v + c * plane + ci * nt, 6 * plane, nt);
    }
}

/* m[36][cb][nt] of output channels [co0, co0 + cb) -> their rows 4 t ...
 * 4 t + 3 that land in the band, columns from 4 j0, plus bias, PReLU and
 * shuffle. scratch: [6][4][nt], then [4][4][nt], then a row of 4 nt. */
static void transform_output(const sr_conv2d_params *p, const float *m, int64_t co0, int64_t cb,
                             int64_t t, int64_t j0, int64_t nt, float *scratch, sr_tensor *out)
{
    const int64_t r_shuffle = sr_conv2d_shuffle(p), W = out->shape.w / r_shuffle;
    const int64_t plane = cb * nt, x0 = 4 * j0;
    const int64_t width = W - x0 < 4 * nt ? W - x0 : 4 * nt;
    float *half = scratch, *tile = scratch + 24 * nt, *row = scratch + 40 * nt;
    for (int64_t co = co0; co < co0 + cb; co++) {
        const float bias = p->bias ? p->bias[co] : 0.0f;
        int64_t y_lo, y_hi;
        sr_conv2d_band_rows(p, out, co, &y_lo, &y_hi);
        /* Along the transform's columns: half[i][c][j] for its row i. */
        for (int i = 0; i < 6; i++)
            output_1d(m + i * 6 * plane + (co - co0) * nt, plane, half + i * 4 * nt, nt, nt);
        /* Along its rows: tile[r][c][j], output row 4 t + r, column 4 j + c. */
        for (int c = 0; c < 4; c++)
            output_1d(half + c * nt, 4 * nt, tile + c * nt, 4 * nt, nt);
        for (int r = 0; r < 4; r++) {
            const int64_t y = 4 * t + r;
            if (y < y_lo || y >= y_hi)
                continue;
            float *o = sr_conv2d_out_row(p, out, co, y) + x0 * r_shuffle;
            float *v = r_shuffle == 1 ? o : row;
            const float *tr = tile + r * 4 * nt;
            for (int64_t x = 0; x < width; x++)
                v[x] = tr[(x & 3) * nt + (x >> 2)] + bias;
            sr_cpu_conv2d_prelu(p, co, v, width);
            if (v == row)
                for (int64_t x = 0; x < width; x++)
                    o[x * r_shuffle] = row[x];
        }
    }
}

sr_status sr_cpu_winograd(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                          sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    /* Width and rows of the convolution's own output, before any shuffle. */
    const int64_t r = sr_conv2d_shuffle(p), W = out->shape.w / r, nt_max = tiles_per_piece(W);
    const int64_t n_chunks = ((W + 3) / 4 + nt_max - 1) / nt_max;
    const int64_t cy0 = out->y0 / r, cy1 = (out->y0 + out->shape.h + r - 1) / r;
    const int64_t t0 = cy0 / 4, t1 = (cy1 + 3) / 4;
    const int64_t per_thread = thread_floats(p, nt_max), cb_max = co_block(p);
    float *work = sr_cpu_workspace(ctx, sr_cpu_winograd_workspace_floats(ctx, p, W));
    if (!work)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
    float *u = work;
    transform_weights(p, u, ctx->n_threads);
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t item = 0; item < (t1 - t0) * n_chunks; item++) {
        float *v = work + 36 * p->c_out * p->c_in + omp_get_thread_num() * per_thread;
        float *m = v + 36 * p->c_in * nt_max, *scratch = m + 36 * cb_max * nt_max;
        const int64_t t = t0 + item / n_chunks, j0 = item % n_chunks * nt_max;
        const int64_t nt = (W + 3) / 4 - j0 < nt_max ? (W + 3) / 4 - j0 : nt_max;
        transform_input(p, in, t, j0, nt, scratch, v);
        for (int64_t co0 = 0; co0 < p->c_out; co0 += cb_max) {
            const int64_t cb = p->c_out - co0 < cb_max ? p->c_out - co0 : cb_max;
            for (int k = 0; k < 36; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cb, (int)nt,
                            (int)p->c_in, 1.0f, u + (k * p->c_out + co0) * p->c_in,
                            (int)p->c_in, v + k * p->c_in * nt, (int)nt, 0.0f,
                            m + k * cb * nt, (int)nt);
            transform_output(p, m, co0, cb, t, j0, nt, scratch, out);
        }
    }
    return SR_OK;
}
