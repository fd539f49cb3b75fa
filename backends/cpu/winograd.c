/* Winograd F(4x4, 3x3) for the 3x3 convolutions with many channels (most
 * of SRPGAN's FLOPs): each 4x4 output tile comes from a 6x6 input tile as
 * A^T [(G g G^T) . (B^T d B)] A, so 36 multiplies per channel pair replace
 * 144. The products are 36 GEMMs, one per point of the 6x6 transform
 * domain: [c_out x c_in] x [c_in x tiles].
 *
 * Tiles sit at fixed places in the image (rows and columns from multiples
 * of 4, GEMM pieces of one tile row from multiples of TILES tiles), so
 * every value is computed the same way whatever band it falls in; a band
 * computes the whole tiles its rows touch, which is why the backend
 * reports a row alignment of 4 to the planner (its inputs cover whole
 * tiles). OpenBLAS's products depend on the call's shape; the small
 * GEMM's do not (small_gemm.c), so with it a piece may also take several
 * tile rows, whichever the band starts from.
 *
 * Larger kernels with k = 3 q (SRPGAN's 64 -> 3 9x9 output conv) with few
 * output channels are split into q x q pieces of 3x3: with z_ab the 3x3
 * convolution (pad 1) by the kernel's rows 3 a ... 3 a + 2 and columns
 * 3 b ... 3 b + 2, the output is
 *     y(p) = sum over a, b of z_ab(p + (3 a - pad + 1, 3 b - pad + 1)),
 * so one Winograd convolution to q q c_out channels and shifted sums
 * replace the k k taps: 4 times fewer multiplies again. z extends pad - 1
 * rows and columns beyond the image, in the same tile grid, so a band's
 * tiles read a few rows more than the op's halo (split_row_tiling).
 *
 * Transforms of Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks" (2015), interpolation points 0, +-1, +-2, infinity. */
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"

/* The same bits from every clone (cpu.h): nothing fused into an FMA where
 * the AVX-512 clone has one. GCC's ISO C mode (-std=c11) fuses nothing;
 * clang's needs telling. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define TILES 64     /* tiles per GEMM piece: 256 output columns */
#define CO_BLOCK 64  /* output channels per round of GEMMs */

/* Its input transform reads the tile's rows and columns from one before. */
static bool winograd_can_run(const sr_conv2d_params *p)
{
    return p->k == 3 && p->pad == 1;
}

/* Its q q c_out channels of z must fit one round of GEMMs; it sums them
 * into the output without a shuffle. */
static bool split_can_run(const sr_conv2d_params *p)
{
    const int64_t q = p->k / 3;
    return p->k > 3 && p->k % 3 == 0 && 2 * p->pad + 1 == p->k && q * q * p->c_out <= CO_BLOCK &&
           sr_conv2d_shuffle(p) == 1;
}

/* z is needed pad - 1 rows beyond an output band; its tiles start at
 * multiples of 4 and read one row beyond their own. */
static int split_halo(const sr_conv2d_params *p)
{
    return (int)(4 * sr_div_ceil(p->pad - 1, 4) + 1);
}

/* A GEMM piece: up to TILES tiles of one tile row, or, where a row has
 * fewer and the products are the small GEMM's, as many whole rows as fit.
 * A piece of a narrow image's one row wasted the vector lanes past its
 * last tile: RealESRGAN_x4plus's 24-tile rows at 96 columns filled 24 of
 * the AVX-512 kernel's 32, and 128x48 ran in less time than 96x60 on 7%
 * more pixels. */
typedef struct pieces {
    int64_t row_tiles;  /* tiles per tile row */
    int64_t nt;         /* tiles of a piece's row (its columns) */
    int64_t rows;       /* tile rows per piece */
    int64_t per_row;    /* pieces per tile row (rows == 1) */
} pieces;

static pieces pieces_of(const sr_cpu_context *ctx, int64_t width)
{
    pieces g;
    g.row_tiles = (width + 3) / 4;
    g.nt = g.row_tiles < TILES ? g.row_tiles : TILES;
    g.rows = ctx->small_gemm ? TILES / g.nt : 1;
    g.per_row = (g.row_tiles + g.nt - 1) / g.nt;
    return g;
}

/* The most tiles a piece holds. */
static int64_t tiles_per_piece(const sr_cpu_context *ctx, int64_t width)
{
    const pieces g = pieces_of(ctx, width);
    return g.rows * g.nt;
}

/* Output channels are done CO_BLOCK at a time (a multiple of the shuffle,
 * whose r channels share output rows) so that a piece's transformed input
 * and products stay in the core's L2 cache. */
static int64_t co_block(const sr_conv2d_params *p)
{
    const int64_t r = sr_conv2d_shuffle(p), block = CO_BLOCK >= r ? CO_BLOCK / r * r : r;
    return p->c_out < block ? p->c_out : block;
}

/* The transforms' scratch, transform_input's (and its 6 upsampled rows
 * where the conv folds an upsample) or transform_output's. */
static int64_t scratch_floats(const sr_conv2d_params *p, int64_t nt)
{
    const int64_t up = sr_conv2d_upsample(p) > 1 ? 6 * (4 * nt + 4) : 0;
    const int64_t in = 7 * (4 * nt + 4) + 4 * (nt + 1) + up;
    const int64_t out = (40 + 16 * sr_conv2d_shuffle(p)) * nt;
    return in > out ? in : out;
}

/* Per thread: the transformed input [36][c_in][TILES], the products
 * [36][co_block][TILES] and the transforms' scratch; shared: the
 * transformed weights [36][c_out][c_in]. */
static int64_t thread_floats(const sr_conv2d_params *p, int64_t nt)
{
    return 36 * (p->c_in + co_block(p)) * nt + scratch_floats(p, nt);
}

/* width: of the convolution's own output, before any shuffle. */
static int64_t workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                int64_t width)
{
    return 36 * p->c_out * p->c_in + ctx->n_threads * thread_floats(p, tiles_per_piece(ctx, width));
}

static int64_t winograd_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                         sr_shape out)
{
    return workspace_floats(ctx, p, out.w / sr_conv2d_shuffle(p));
}

/* U[a 6 + b][c][ci] = (G g G^T)[a][b] for each 3x3 kernel g: output
 * channel co's, or with k = 3 q its piece (pa, pb) as channel c = (co q +
 * pa) q + pb. Redone for every band (spread over the threads) rather than
 * kept per node, which would hold four times the weights outside the
 * memory plan: so it runs across WT_CHUNK input channels at a time, each
 * step a loop the compiler vectorises (a scalar loop over the 36 points
 * took a quarter of realesr-animevideov3's time at 256x256). */
#define WT_CHUNK 64

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
    const int64_t k = p->k, q = k / 3, n = q * q * p->c_out, plane = n * p->c_in;
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t c = 0; c < n; c++) {
        const int64_t co = c / (q * q), pa = c / q % q, pb = c % q;
        for (int64_t ci0 = 0; ci0 < p->c_in; ci0 += WT_CHUNK) {
            const int64_t nc = p->c_in - ci0 < WT_CHUNK ? p->c_in - ci0 : WT_CHUNK;
            float g[3][3][WT_CHUNK], gg[6][3][WT_CHUNK]; /* g, and G g */
            for (int64_t i = 0; i < nc; i++) {
                const float *w = p->weight + ((co * p->c_in + ci0 + i) * k + 3 * pa) * k + 3 * pb;
                for (int r = 0; r < 3; r++)
                    for (int j = 0; j < 3; j++)
                        g[r][j][i] = w[r * k + j];
            }
            for (int a = 0; a < 6; a++)
                for (int j = 0; j < 3; j++)
                    for (int64_t i = 0; i < nc; i++)
                        gg[a][j][i] = G[a][0] * g[0][j][i] + G[a][1] * g[1][j][i] +
                                      G[a][2] * g[2][j][i];
            for (int a = 0; a < 6; a++)
                for (int b = 0; b < 6; b++) {
                    float *restrict row = u + (a * 6 + b) * plane + c * p->c_in + ci0;
                    for (int64_t i = 0; i < nc; i++)
                        row[i] = gg[a][0][i] * G[b][0] + gg[a][1][i] * G[b][1] +
                                 gg[a][2][i] * G[b][2];
                }
        }
    }
}

/* M = U V, [rows x nt]: the product at one of the 36 transform points. */
static void product(const sr_cpu_context *ctx, int64_t rows, int64_t nt, int64_t c_in,
                    const float *u, const float *v, float *m)
{
    sr_cpu_gemm(ctx)((int)rows, (int)nt, (int)c_in, u, (int)c_in, v, (int)nt, m, (int)nt);
}

/* The transforms run across the tiles of a piece, nt at a time, so that
 * each step is a loop over contiguous floats that the compiler vectorises. */

/* r[i][j] = (B^T d)[i] for the six vectors d[0] ... d[5] of n. */
static inline void input_1d(const float *const d[6], float *restrict r, int64_t rs, int64_t n)
{
    const float *restrict e0 = d[0], *restrict e1 = d[1], *restrict e2 = d[2];
    const float *restrict e3 = d[3], *restrict e4 = d[4], *restrict e5 = d[5];
#pragma omp simd /* GCC 12 cannot tell the six rows apart */
    for (int64_t j = 0; j < n; j++) {
        const float d0 = e0[j], d1 = e1[j], d2 = e2[j], d3 = e3[j], d4 = e4[j], d5 = e5[j];
        r[j] = 4 * d0 - 5 * d2 + d4;
        r[rs + j] = -4 * (d1 + d2) + d3 + d4;
        r[2 * rs + j] = 4 * (d1 - d2) - d3 + d4;
        r[3 * rs + j] = 2 * (d3 - d1) - d2 + d4;
        r[4 * rs + j] = 2 * (d1 - d3) - d2 + d4;
        r[5 * rs + j] = 4 * d1 - 5 * d3 + d5;
    }
}

/* o[i][j] = (A^T m)[i] for six vectors m[0], m[s], ..., m[5 s] of n. */
static inline void output_1d(const float *m, int64_t s, float *o, int64_t os, int64_t n)
{
#pragma omp simd
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

/* Asks for the n_rows rows from y0, columns [x0, x0 + n), of channel c
 * that transform_input reads next (the input's under them, where the conv
 * upsamples). Its rows are short where the image is
 * narrow (384 bytes at 96 columns) and a channel's are a plane apart, too
 * little for the hardware to see a stream: RealESRGAN_x4plus at 96x60
 * waited on them for a sixth of its input transforms' time. */
static inline void prefetch_rows(const sr_conv2d_params *p, const sr_tensor *in, int n_in,
                                 int64_t c, int64_t y0, int64_t n_rows, int64_t x0, int64_t n)
{
    const int64_t f = sr_conv2d_upsample(p), y1 = sr_div_floor(y0 + n_rows - 1, f);
    for (int64_t y = y0 < 0 ? 0 : y0 / f; y <= y1 && y < in->image_h && n > 0; y++) {
        const float *row = sr_conv2d_in_row(in, n_in, c, y);
        /* From the cache line the first column lies in to the last's. */
        const uintptr_t end = (uintptr_t)(row + (x0 + n - 1) / f + 1);
        for (uintptr_t line = (uintptr_t)(row + x0 / f) & ~(uintptr_t)63; line < end; line += 64)
            __builtin_prefetch((const void *)line);
    }
}

/* Tile rows [t, t + n_rows), columns from 4 j0 - 1, of every channel of
 * the n_in inputs, into v[36][c_in][ld]: tiles [0, nt) of tile row t + i
 * at i nt (zero outside the image). Channel by channel, so that a
 * channel's input rows 4 t - 1 ... 4 (t + n_rows), one run of memory
 * where the tensor is packed, are read once for all its tile rows. The
 * transform runs down the columns first, straight from the tensors' rows,
 * then along the six rows it made, each split into its four phases
 * (columns 4 j + c) so that tile j's six columns are phase[0 ... 3][j] and
 * phase[0, 1][j + 1]. Where the conv folds an upsample, the six rows are
 * first made upsampled from the input's.
 * scratch: a zero row and 6 rows of 4 nt + 4 columns, then [4][nt + 1],
 * then (upsampling) 6 rows of 4 nt + 4. */
SR_CPU_VECTOR_CLONES
static void transform_input(const sr_conv2d_params *p, const sr_tensor *in, int n_in,
                            int64_t t, int64_t n_rows, int64_t j0, int64_t nt, int64_t ld,
                            float *scratch, float *v)
{
    const int64_t f = sr_conv2d_upsample(p), W = in->shape.w * f, H = in->image_h * f;
    const int64_t len = 4 * nt + 4, start = 4 * j0 - 1;
    int64_t a = -start, b = W - start; /* the part of [0, 4 nt + 2) inside the image */
    a = a < 0 ? 0 : a > len ? len : a;
    b = b > 4 * nt + 2 ? 4 * nt + 2 : b < a ? a : b;
    float *zero = scratch, *rows = zero + len, *phase = rows + 6 * len, *up = phase + 4 * (nt + 1);
    const int64_t plane = p->c_in * ld, pn = nt + 1;
    memset(zero, 0, (size_t)len * sizeof *zero);
    for (int r = 0; r < 6; r++) {
        memset(rows + r * len, 0, (size_t)a * sizeof *rows);
        memset(rows + r * len + b, 0, (size_t)(len - b) * sizeof *rows);
    }
    for (int64_t ci = 0; ci < p->c_in; ci++) {
        if (ci + 1 < p->c_in)
            prefetch_rows(p, in, n_in, ci + 1, 4 * t - 1, 4 * n_rows + 2, start + a, b - a);
        for (int64_t i = 0; i < n_rows; i++) {
            const float *d[6];
            for (int r = 0; r < 6; r++) {
                const int64_t iy = 4 * (t + i) - 1 + r;
                if (iy < 0 || iy >= H) {
                    d[r] = zero;
                } else if (f == 1) {
                    d[r] = sr_conv2d_in_row(in, n_in, ci, iy) + start + a;
                } else if (r > 0 && iy - 1 >= 0 && (iy - 1) / f == iy / f) {
                    d[r] = d[r - 1]; /* the same input row, upsampled already */
                } else {
                    sr_conv2d_read_row(p, in, n_in, ci, iy, start + a, b - a, up + r * len);
                    d[r] = up + r * len;
                }
            }
            input_1d(d, rows + a, len, b - a);
            for (int r = 0; r < 6; r++) {
                const float *row = rows + r * len;
                for (int64_t j = 0; j < pn; j++)
                    for (int c = 0; c < 4; c++)
                        phase[c * pn + j] = row[4 * j + c];
                const float *h[6] = {phase, phase + pn, phase + 2 * pn, phase + 3 * pn,
                                     phase + 1, phase + pn + 1};
                input_1d(h, v + r * 6 * plane + ci * ld + i * nt, plane, nt);
            }
        }
    }
}

/* Channel c of the products m[36][n][ld], tiles [0, nt), back to its
 * tiles: tile[r][x][j] holds row r, column 4 j + x of tile j. half:
 * [6][4][nt] of scratch. */
static inline void untransform(const float *m, int64_t c, int64_t n, int64_t nt, int64_t ld,
                               float *half, float *tile)
{
    const int64_t plane = n * ld;
    /* Along the transform's columns: half[i][x][j] for its row i. */
    for (int i = 0; i < 6; i++)
        output_1d(m + i * 6 * plane + c * ld, plane, half + i * 4 * nt, nt, nt);
    /* Along its rows. */
    for (int x = 0; x < 4; x++)
        output_1d(half + x * nt, 4 * nt, tile + x * nt, 4 * nt, nt);
}

/* v[x] = tile row tr's column x (tr[x % 4][x / 4], tiles side by side)
 * plus bias, for x < width. */
static inline void interleave_row(const float *tr, int64_t nt, float bias, float *restrict v,
                           int64_t width)
{
    const float *restrict t0 = tr, *restrict t1 = tr + nt, *restrict t2 = tr + 2 * nt,
                          *restrict t3 = tr + 3 * nt;
    int64_t j = 0;
    for (; 4 * j + 4 <= width; j++) {
        v[4 * j] = t0[j] + bias;
        v[4 * j + 1] = t1[j] + bias;
        v[4 * j + 2] = t2[j] + bias;
        v[4 * j + 3] = t3[j] + bias;
    }
    for (int64_t x = 4 * j; x < width; x++)
        v[x] = tr[(x & 3) * nt + j] + bias;
}

/* o[x r + i] = rows[i][x]: the r channels that a shuffle puts side by side. */
static inline void interleave_channels(const float *rows, int64_t stride, int64_t r, float *restrict o,
                                int64_t width)
{
    if (r == 2) { /* SRPGAN's, vectorised */
        const float *restrict a = rows, *restrict b = rows + stride;
        for (int64_t x = 0; x < width; x++) {
            o[2 * x] = a[x];
            o[2 * x + 1] = b[x];
        }
        return;
    }
    for (int64_t x = 0; x < width; x++)
        for (int64_t i = 0; i < r; i++)
            o[x * r + i] = rows[i * stride + x];
}

/* m[36][cb][ld], tiles [0, nt), of output channels [co0, co0 + cb) ->
 * their rows 4 t ... 4 t + 3 that land in the band, columns from 4 j0, plus bias and
 * epilogue, r channels at a time (those whose values sit side by side in the
 * shuffled rows). scratch: [6][4][nt], then [4][4][nt], then the r
 * channels' 4 rows of 4 nt. */
SR_CPU_VECTOR_CLONES
static void transform_output(const sr_conv2d_params *p, const float *m, int64_t co0, int64_t cb,
                             int64_t t, int64_t j0, int64_t nt, int64_t ld, float *scratch,
                             const sr_tensor *in, int n_in, sr_tensor *out)
{
    const int64_t r_shuffle = sr_conv2d_shuffle(p), W = out->shape.w / r_shuffle;
    const int64_t x0 = 4 * j0, width = W - x0 < 4 * nt ? W - x0 : 4 * nt;
    float *half = scratch, *tile = scratch + 24 * nt, *rows = scratch + 40 * nt;
    for (int64_t group = co0; group < co0 + cb; group += r_shuffle) {
        int64_t y_lo, y_hi;
        sr_conv2d_band_rows(p, out, group, &y_lo, &y_hi);
        for (int64_t co = group; co < group + r_shuffle; co++) {
            untransform(m, co - co0, cb, nt, ld, half, tile);
            for (int r = 0; r < 4; r++) {
                const int64_t y = 4 * t + r;
                if (y < y_lo || y >= y_hi)
                    continue;
                float *v = r_shuffle == 1 ? sr_conv2d_out_row(p, out, co, y) + x0
                                          : rows + ((co - group) * 4 + r) * 4 * nt;
                interleave_row(tile + r * 4 * nt, nt, p->bias ? p->bias[co] : 0.0f, v, width);
                sr_epilogue_apply(&p->epilogue, co, v, width);
                sr_conv2d_add_residual(p, in, n_in, co, y, x0, v, width);
            }
        }
        for (int r = 0; r < 4 && r_shuffle > 1; r++) {
            const int64_t y = 4 * t + r;
            if (y >= y_lo && y < y_hi)
                interleave_channels(rows + r * 4 * nt, 16 * nt, r_shuffle,
                                    sr_conv2d_out_row(p, out, group, y) + x0 * r_shuffle, width);
        }
    }
}

static sr_status winograd_run(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                              sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    /* Width and rows of the convolution's own output, before any shuffle. */
    const int64_t r = sr_conv2d_shuffle(p), W = out->shape.w / r;
    const int64_t nt_max = tiles_per_piece(ctx, W);
    const pieces g = pieces_of(ctx, W);
    const int64_t cy0 = out->y0 / r, cy1 = (out->y0 + out->shape.h + r - 1) / r;
    const int64_t t0 = cy0 / 4, t1 = (cy1 + 3) / 4;
    const int64_t n_items = (t1 - t0 + g.rows - 1) / g.rows * g.per_row;
    const int64_t per_thread = thread_floats(p, nt_max), cb_max = co_block(p);
    float *work = sr_cpu_workspace(ctx, workspace_floats(ctx, p, W));
    if (!work)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
    float *u = work;
    transform_weights(p, u, ctx->n_threads);
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t item = 0; item < n_items; item++) {
        float *v = work + 36 * p->c_out * p->c_in + omp_get_thread_num() * per_thread;
        float *m = v + 36 * p->c_in * nt_max, *scratch = m + 36 * cb_max * nt_max;
        /* Tile rows [t, t + rows), columns [j0, j0 + nt) of each. */
        const int64_t t = t0 + item / g.per_row * g.rows, j0 = item % g.per_row * g.nt;
        const int64_t rows = t1 - t < g.rows ? t1 - t : g.rows;
        const int64_t nt = g.row_tiles - j0 < g.nt ? g.row_tiles - j0 : g.nt, ld = rows * nt;
        transform_input(p, in, node->n_inputs, t, rows, j0, nt, ld, scratch, v);
        for (int64_t co0 = 0; co0 < p->c_out; co0 += cb_max) {
            const int64_t cb = p->c_out - co0 < cb_max ? p->c_out - co0 : cb_max;
            for (int k = 0; k < 36; k++)
                product(ctx, cb, ld, p->c_in, u + (k * p->c_out + co0) * p->c_in,
                        v + k * p->c_in * ld, m + k * cb * ld);
            for (int64_t i = 0; i < rows; i++)
                transform_output(p, m + i * nt, co0, cb, t + i, j0, nt, ld, scratch, in,
                                 node->n_inputs, out);
        }
    }
    return SR_OK;
}

/* ---- larger kernels, split into 3x3 pieces ----
 * A thread makes the output rows of its strip in order, keeping z in a
 * ring of rows: each tile row of z (every column, every piece) is made
 * once, and output rows are summed as soon as the z rows they read exist. */

typedef struct split_geometry {
    int64_t q, n;      /* pieces per side; z channels, q q c_out */
    int64_t reach;     /* pad - 1: z rows and columns read beyond the output's */
    int64_t j_lo;      /* z's first tile column; z column 0 is image column 4 j_lo */
    int64_t n_tiles;   /* z tile columns */
    int64_t ring;      /* z rows kept */
    int64_t nt_max;    /* tiles per GEMM piece */
} split_geometry;

static split_geometry split_geometry_of(const sr_conv2d_params *p, int64_t width)
{
    split_geometry s;
    s.q = p->k / 3;
    s.n = s.q * s.q * p->c_out;
    s.reach = p->pad - 1;
    s.j_lo = sr_div_floor(-s.reach, 4);
    s.n_tiles = sr_div_ceil(width + s.reach, 4) - s.j_lo;
    /* Output row y is summed once z rows up to y + reach exist, and reads
     * back to y - reach while the next tile row's 4 rows are made. */
    s.ring = 2 * s.reach + 4;
    s.nt_max = s.n_tiles < TILES ? s.n_tiles : TILES;
    return s;
}

/* Per thread: the transformed input [36][c_in][nt], the products
 * [36][n][nt], the transforms' scratch and the ring [ring][n][4 n_tiles];
 * shared: the transformed weights [36][n][c_in]. */
static int64_t split_thread_floats(const sr_conv2d_params *p, const split_geometry *s)
{
    return 36 * (p->c_in + s->n) * s->nt_max + scratch_floats(p, s->nt_max) +
           s->ring * s->n * 4 * s->n_tiles;
}

static int64_t split_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                      sr_shape out)
{
    const split_geometry s = split_geometry_of(p, out.w);
    return 36 * s.n * p->c_in + ctx->n_threads * split_thread_floats(p, &s);
}

static float *ring_row(const split_geometry *s, float *ring, int64_t zy)
{
    const int64_t slot = (zy % s->ring + s->ring) % s->ring;
    return ring + slot * s->n * 4 * s->n_tiles;
}

/* Tile row t of z, every column, into the ring. */
static void split_tile_row(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                           const split_geometry *s, const float *u,
                           const sr_tensor *in, int n_in, int64_t t, float *v, float *m,
                           float *scratch, float *ring)
{
    float *half = scratch, *tile = scratch + 24 * s->nt_max;
    for (int64_t j = 0; j < s->n_tiles; j += s->nt_max) {
        const int64_t nt = s->n_tiles - j < s->nt_max ? s->n_tiles - j : s->nt_max;
        transform_input(p, in, n_in, t, 1, s->j_lo + j, nt, nt, scratch, v);
        for (int k = 0; k < 36; k++)
            product(ctx, s->n, nt, p->c_in, u + k * s->n * p->c_in, v + k * p->c_in * nt,
                    m + k * s->n * nt);
        for (int64_t c = 0; c < s->n; c++) {
            untransform(m, c, s->n, nt, nt, half, tile);
            for (int r = 0; r < 4; r++)
                interleave_row(tile + r * 4 * nt, nt, 0.0f,
                               ring_row(s, ring, 4 * t + r) + c * 4 * s->n_tiles + 4 * j, 4 * nt);
        }
    }
}

/* Output row y of every channel: bias plus the q q shifted rows of z. */
SR_CPU_VECTOR_CLONES
static void split_sum_row(const sr_conv2d_params *p, const split_geometry *s, float *ring,
                          int64_t y, const sr_tensor *in, int n_in, sr_tensor *out)
{
    const int64_t W = out->shape.w, zw = 4 * s->n_tiles;
    for (int64_t co = 0; co < p->c_out; co++) {
        float *o = sr_tensor_row(out, co, y);
        const float bias = p->bias ? p->bias[co] : 0.0f;
        for (int64_t x = 0; x < W; x++)
            o[x] = bias;
        for (int64_t a = 0; a < s->q; a++) {
            const float *zrow = ring_row(s, ring, y + 3 * a - s->reach);
            for (int64_t b = 0; b < s->q; b++) {
                const float *z = zrow + ((co * s->q + a) * s->q + b) * zw +
                                 (3 * b - s->reach - 4 * s->j_lo);
                for (int64_t x = 0; x < W; x++)
                    o[x] += z[x];
            }
        }
        sr_epilogue_apply(&p->epilogue, co, o, W);
        sr_conv2d_add_residual(p, in, n_in, co, y, 0, o, W);
    }
}

static sr_status split_run(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                           sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const split_geometry s = split_geometry_of(p, out->shape.w);
    const int64_t per_thread = split_thread_floats(p, &s), rows = out->shape.h;
    float *work = sr_cpu_workspace(ctx, split_workspace_floats(ctx, p, out->shape));
    if (!work)
        return sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for the workspace", node->name);
    float *u = work;
    transform_weights(p, u, ctx->n_threads);
    /* A strip remakes the z rows its neighbours share (reach rows each
     * side, rounded to tiles): strips of 16 rows or more. */
    int64_t n_strips = rows / 16 < ctx->n_threads ? rows / 16 : ctx->n_threads;
    n_strips = n_strips < 1 ? 1 : n_strips;
#pragma omp parallel for num_threads(ctx->n_threads) schedule(static)
    for (int64_t strip = 0; strip < n_strips; strip++) {
        float *v = work + 36 * s.n * p->c_in + omp_get_thread_num() * per_thread;
        float *m = v + 36 * p->c_in * s.nt_max, *scratch = m + 36 * s.n * s.nt_max;
        float *ring = scratch + scratch_floats(p, s.nt_max);
        const int64_t y0 = out->y0 + rows * strip / n_strips;
        const int64_t y1 = out->y0 + rows * (strip + 1) / n_strips;
        int64_t y = y0;
        for (int64_t t = sr_div_floor(y0 - s.reach, 4); y < y1; t++) {
            split_tile_row(ctx, p, &s, u, in, node->n_inputs, t, v, m, scratch, ring);
            for (; y < y1 && y + s.reach <= 4 * t + 3; y++)
                split_sum_row(p, &s, ring, y, in, node->n_inputs, out);
        }
    }
    return SR_OK;
}

/* A band computes the whole tiles its rows touch: 4 rows before the
 * shuffle, reading one row beyond. */
static sr_row_tiling winograd_row_tiling(const sr_node *node)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    return (sr_row_tiling){4 * (int)sr_conv2d_shuffle(p), (int)sr_conv2d_input_rows(p, 1)};
}

static sr_row_tiling split_row_tiling(const sr_node *node)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    return (sr_row_tiling){4, (int)sr_conv2d_input_rows(p, split_halo(p))};
}

const sr_cpu_conv_algorithm sr_cpu_conv_winograd = {
    .name = "winograd",
    .can_run = winograd_can_run,
    .workspace_floats = winograd_workspace_floats,
    .row_tiling = winograd_row_tiling,
    .run = winograd_run,
};

const sr_cpu_conv_algorithm sr_cpu_conv_winograd_split = {
    .name = "winograd_split",
    .can_run = split_can_run,
    .workspace_floats = split_workspace_floats,
    .row_tiling = split_row_tiling,
    .run = split_run,
};
