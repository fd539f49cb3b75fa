/* The convolutions' products, C [m x n] = A [m x k] B [k x n], without
 * OpenBLAS where the CPU has AVX2 and FMA or AVX-512. Winograd's 36
 * products of a piece are small (m 32 or 64 output channels, n up to 64
 * tiles, k 64 to 192 input channels) and OpenBLAS packs both operands and
 * scales C on every call: its copies took 15-20% of RealESRGAN_x4plus's
 * run. Here B's rows are read where they lie, A's values are broadcast
 * from theirs, and a block of C stays in registers while k runs: up to
 * 6 x 16 with AVX2, 6 x 64 to 12 x 32 with AVX-512.
 *
 * Every C value is fma(a, b, sum) over k in order from zero, whichever
 * block or tail it falls in, so a value does not depend on where it falls
 * in a call (bands and whole images agree). */
#include "backends/cpu/cpu.h"

#if SR_CPU_HAVE_SMALL_GEMM
#include <immintrin.h>

bool sr_cpu_small_gemm_avx2_usable(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Rows [0, rows) of C, columns [0, 8 vecs) (the lanes in m0 and m1 of
 * them, when `masked`), its rows x vecs sums in registers: inlined with
 * constant rows, vecs and masked, so that every branch on them goes. */
#define ROW_STEP(r)                                                                               \
    if (rows > r) {                                                                               \
        const __m256 x = _mm256_broadcast_ss(a + r * (int64_t)lda + i);                          \
        s##r##0 = _mm256_fmadd_ps(x, b0, s##r##0);                                                \
        if (vecs > 1)                                                                             \
            s##r##1 = _mm256_fmadd_ps(x, b1, s##r##1);                                            \
    }
#define ROW_STORE(r)                                                                              \
    if (rows > r) {                                                                               \
        float *o = c + r * (int64_t)ldc;                                                          \
        if (masked)                                                                               \
            _mm256_maskstore_ps(o, m0, s##r##0);                                                  \
        else                                                                                      \
            _mm256_storeu_ps(o, s##r##0);                                                         \
        if (vecs > 1 && masked)                                                                   \
            _mm256_maskstore_ps(o + 8, m1, s##r##1);                                              \
        else if (vecs > 1)                                                                        \
            _mm256_storeu_ps(o + 8, s##r##1);                                                     \
    }

static inline __attribute__((always_inline, target("avx2,fma"))) void
block(const int rows, const int vecs, const bool masked, int k, const float *a, int lda,
      const float *b, int ldb, float *c, int ldc, __m256i m0, __m256i m1)
{
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00;
    __m256 s30 = s00, s31 = s00, s40 = s00, s41 = s00, s50 = s00, s51 = s00;
    __m256 b1 = s00;
    for (int i = 0; i < k; i++) {
        const float *row = b + (int64_t)i * ldb;
        const __m256 b0 = masked ? _mm256_maskload_ps(row, m0) : _mm256_loadu_ps(row);
        if (vecs > 1)
            b1 = masked ? _mm256_maskload_ps(row + 8, m1) : _mm256_loadu_ps(row + 8);
        ROW_STEP(0)
        ROW_STEP(1)
        ROW_STEP(2)
        ROW_STEP(3)
        ROW_STEP(4)
        ROW_STEP(5)
    }
    ROW_STORE(0)
    ROW_STORE(1)
    ROW_STORE(2)
    ROW_STORE(3)
    ROW_STORE(4)
    ROW_STORE(5)
}

typedef void block_fn(int, const float *, int, const float *, int, float *, int, __m256i, __m256i);

/* The block functions of one kind of column block, for 1 to 6 rows. */
#define BLOCKS(VECS, MASKED, NAME)                                                                \
    BLOCK(1, VECS, MASKED, NAME##_1)                                                              \
    BLOCK(2, VECS, MASKED, NAME##_2)                                                              \
    BLOCK(3, VECS, MASKED, NAME##_3)                                                              \
    BLOCK(4, VECS, MASKED, NAME##_4)                                                              \
    BLOCK(5, VECS, MASKED, NAME##_5)                                                              \
    BLOCK(6, VECS, MASKED, NAME##_6)                                                              \
    static block_fn *const NAME[7] = {NULL,    NAME##_1, NAME##_2, NAME##_3,                      \
                                      NAME##_4, NAME##_5, NAME##_6};
#define BLOCK(ROWS, VECS, MASKED, NAME)                                                           \
    static __attribute__((target("avx2,fma"))) void NAME(int k, const float *a, int lda,          \
                                                         const float *b, int ldb, float *c,       \
                                                         int ldc, __m256i m0, __m256i m1)         \
    {                                                                                             \
        block(ROWS, VECS, MASKED, k, a, lda, b, ldb, c, ldc, m0, m1);                             \
    }
BLOCKS(2, false, full)          /* 16 columns */
BLOCKS(2, true, masked_two)     /* 9 to 15 */
BLOCKS(1, true, masked_one)     /* 1 to 8 */
#undef BLOCKS
#undef BLOCK
#undef ROW_STORE
#undef ROW_STEP

/* The lanes of 8 columns from column `from` that lie before n. */
static __attribute__((target("avx2"))) __m256i lanes(int from, int n)
{
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n - from), index);
}

__attribute__((target("avx2,fma"))) void sr_cpu_small_gemm_avx2(int m, int n, int k,
                                                                const float *a, int lda,
                                                                const float *b, int ldb, float *c,
                                                                int ldc)
{
    /* A column block's B rows (k x 16 floats) stay in L1 while every row
     * block of A passes over them. */
    for (int j = 0; j < n; j += 16) {
        block_fn *const *kind = n - j >= 16 ? full : n - j > 8 ? masked_two : masked_one;
        const __m256i m0 = lanes(j, n), m1 = lanes(j + 8, n);
        /* Blocks of 6 rows, the last 7 to 9 as two, so that few blocks
         * have fewer than 4 rows: those have too few sums to hide the
         * FMAs' latency (m = 32: 6 6 6 6 4 4, not 6 6 6 6 6 2). */
        for (int r = 0, rows; r < m; r += rows) {
            const int left = m - r;
            rows = left <= 6 ? left : left <= 9 ? (left + 1) / 2 : 6;
            kind[rows](k, a + (int64_t)r * lda, lda, b + j, ldb, c + (int64_t)r * ldc + j, ldc,
                       m0, m1);
        }
    }
}

/* ---- AVX-512 ----
 * The same products with 16-lane vectors. A block is up to 4 vectors wide
 * (64 columns, the widest piece Winograd makes) and as many rows as keep
 * 24 sums in registers, of 32: 6 x 64, 8 x 48, 12 x 32. Wider blocks load
 * fewer values per FMA, and one block across a whole piece reads each A
 * value once per call: 12 x 32 blocks ran 48-column pieces (96-column
 * images) as 32 + 16 at 150 GFLOP/s a core, 8 x 48 at 185 (of 220). Only a
 * block's last vector may be partial; its mask costs nothing and its lanes
 * past n never fault. Each value is the same FMA chain as above, so both
 * kernels give the same bits. */

bool sr_cpu_small_gemm_avx512_usable(void)
{
    return __builtin_cpu_supports("avx512f");
}

#define SUMS 24 /* accumulators a block keeps in registers */

static inline __attribute__((always_inline, target("avx512f"))) void
block16(const int rows, const int vecs, int k, const float *a, int lda, const float *b, int ldb,
        float *c, int ldc, __mmask16 last)
{
    __m512 s[12][4];
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++)
            s[r][v] = _mm512_setzero_ps();
    for (int i = 0; i < k; i++) {
        const float *row = b + (int64_t)i * ldb;
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < vecs - 1; v++)
            bv[v] = _mm512_loadu_ps(row + 16 * v);
        bv[vecs - 1] = _mm512_maskz_loadu_ps(last, row + 16 * (vecs - 1));
#pragma GCC unroll 12
        for (int r = 0; r < rows; r++) {
            const __m512 x = _mm512_set1_ps(a[r * (int64_t)lda + i]);
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++)
                s[r][v] = _mm512_fmadd_ps(x, bv[v], s[r][v]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++) {
        float *o = c + r * (int64_t)ldc;
#pragma GCC unroll 4
        for (int v = 0; v < vecs - 1; v++)
            _mm512_storeu_ps(o + 16 * v, s[r][v]);
        _mm512_mask_storeu_ps(o + 16 * (vecs - 1), last, s[r][vecs - 1]);
    }
}

typedef void block16_fn(int, const float *, int, const float *, int, float *, int, __mmask16);

#define BLOCK(ROWS, VECS)                                                                         \
    static __attribute__((target("avx512f"))) void block16_##ROWS##_##VECS(                      \
        int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc,               \
        __mmask16 last)                                                                           \
    {                                                                                             \
        _Static_assert(ROWS * VECS <= SUMS, "too many sums for the registers");     \
        block16(ROWS, VECS, k, a, lda, b, ldb, c, ldc, last);                                     \
    }
#define ROWS_6(V) BLOCK(1, V) BLOCK(2, V) BLOCK(3, V) BLOCK(4, V) BLOCK(5, V) BLOCK(6, V)
#define ROWS_8(V) ROWS_6(V) BLOCK(7, V) BLOCK(8, V)
#define ROWS_12(V) ROWS_8(V) BLOCK(9, V) BLOCK(10, V) BLOCK(11, V) BLOCK(12, V)
ROWS_12(1)
ROWS_12(2)
ROWS_8(3)
ROWS_6(4)
#undef ROWS_12
#undef ROWS_8
#undef ROWS_6
#undef BLOCK
/* [vecs - 1][rows]: the block function for 1 to 4 vectors and 1 to
 * max_rows(vecs) rows. */
#define R6(V)                                                                                     \
    block16_1_##V, block16_2_##V, block16_3_##V, block16_4_##V, block16_5_##V, block16_6_##V
#define R8(V) R6(V), block16_7_##V, block16_8_##V
#define R12(V) R8(V), block16_9_##V, block16_10_##V, block16_11_##V, block16_12_##V
static block16_fn *const blocks16[4][13] = {
    {NULL, R12(1)}, {NULL, R12(2)}, {NULL, R8(3)}, {NULL, R6(4)}};
#undef R12
#undef R8
#undef R6

/* The most rows a block of `vecs` vectors takes: its share of the sums,
 * and 12 for one vector (a column tail), as the blocks go to 12 rows. */
static int max_rows(int vecs)
{
    const int rows = SUMS / vecs;
    return rows < 12 ? rows : 12;
}

__attribute__((target("avx512f"))) void sr_cpu_small_gemm_avx512(int m, int n, int k,
                                                                 const float *a, int lda,
                                                                 const float *b, int ldb,
                                                                 float *c, int ldc)
{
    for (int j = 0; j < n;) {
        const int left = n - j, vecs = left > 48 ? 4 : (left + 15) / 16;
        const int cols = left < 16 * vecs ? left : 16 * vecs, tail = cols - 16 * (vecs - 1);
        const __mmask16 last = (__mmask16)((1u << tail) - 1);
        /* The row blocks as even as max_rows allows (m = 32 at 64
         * columns: 6 6 5 5 5 5, not 6 6 6 6 6 2), so that none has too
         * few sums to hide the FMAs' latency. */
        const int n_blocks = (m + max_rows(vecs) - 1) / max_rows(vecs);
        for (int q = 0, r = 0; q < n_blocks; q++) {
            const int rows = (m - r) / (n_blocks - q);
            blocks16[vecs - 1][rows](k, a + (int64_t)r * lda, lda, b + j, ldb,
                                     c + (int64_t)r * ldc + j, ldc, last);
            r += rows;
        }
        j += cols;
    }
}

sr_cpu_gemm_fn *sr_cpu_small_gemm_best(void)
{
    if (sr_cpu_small_gemm_avx512_usable())
        return sr_cpu_small_gemm_avx512;
    return sr_cpu_small_gemm_avx2_usable() ? sr_cpu_small_gemm_avx2 : NULL;
}

#else

sr_cpu_gemm_fn *sr_cpu_small_gemm_best(void)
{
    return NULL;
}
#endif
