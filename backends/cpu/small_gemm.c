/* The convolutions' products, C [m x n] = A [m x k] B [k x n], without
 * OpenBLAS where the CPU has AVX2 and FMA or AVX-512. Winograd's 36
 * products of a piece are small (m 32 or 64 output channels, n up to 64
 * tiles, k 64 to 192 input channels) and OpenBLAS packs both operands and
 * scales C on every call: its copies took 15-20% of RealESRGAN_x4plus's
 * run. Here B's rows are read where they lie, A's values are broadcast
 * from theirs, and a block of C stays in registers while k runs: up to
 * 6 x 16 with AVX2, 12 x 32 with AVX-512.
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
 * The same products with 16-lane vectors: blocks of up to 12 rows x 32
 * columns (24 sums in registers, of 32), every load and store masked, as
 * AVX-512's masks cost nothing and the lanes past n never fault. Each value
 * is the same FMA chain as above, so both kernels give the same bits. */

bool sr_cpu_small_gemm_avx512_usable(void)
{
    return __builtin_cpu_supports("avx512f");
}

static inline __attribute__((always_inline, target("avx512f"))) void
block16(const int rows, const int vecs, int k, const float *a, int lda, const float *b, int ldb,
        float *c, int ldc, __mmask16 m0, __mmask16 m1)
{
    __m512 s[12][2];
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++)
        s[r][0] = s[r][1] = _mm512_setzero_ps();
    for (int i = 0; i < k; i++) {
        const float *row = b + (int64_t)i * ldb;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, row);
        const __m512 b1 = vecs > 1 ? _mm512_maskz_loadu_ps(m1, row + 16) : b0;
#pragma GCC unroll 12
        for (int r = 0; r < rows; r++) {
            const __m512 x = _mm512_set1_ps(a[r * (int64_t)lda + i]);
            s[r][0] = _mm512_fmadd_ps(x, b0, s[r][0]);
            if (vecs > 1)
                s[r][1] = _mm512_fmadd_ps(x, b1, s[r][1]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(c + r * (int64_t)ldc, m0, s[r][0]);
        if (vecs > 1)
            _mm512_mask_storeu_ps(c + r * (int64_t)ldc + 16, m1, s[r][1]);
    }
}

typedef void block16_fn(int, const float *, int, const float *, int, float *, int, __mmask16,
                        __mmask16);

#define BLOCK(ROWS, VECS)                                                                         \
    static __attribute__((target("avx512f"))) void block16_##ROWS##_##VECS(                      \
        int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc,               \
        __mmask16 m0, __mmask16 m1)                                                               \
    {                                                                                             \
        block16(ROWS, VECS, k, a, lda, b, ldb, c, ldc, m0, m1);                                   \
    }
#define BLOCKS(VECS)                                                                              \
    BLOCK(1, VECS) BLOCK(2, VECS) BLOCK(3, VECS) BLOCK(4, VECS) BLOCK(5, VECS) BLOCK(6, VECS)    \
    BLOCK(7, VECS) BLOCK(8, VECS) BLOCK(9, VECS) BLOCK(10, VECS) BLOCK(11, VECS) BLOCK(12, VECS)
BLOCKS(1)
BLOCKS(2)
#undef BLOCKS
#undef BLOCK
/* [vecs - 1][rows]: the block function for 1 to 12 rows of 1 or 2 vectors. */
#define ROW_BLOCKS(VECS)                                                                          \
    {NULL, block16_1_##VECS, block16_2_##VECS, block16_3_##VECS, block16_4_##VECS,                \
     block16_5_##VECS, block16_6_##VECS, block16_7_##VECS, block16_8_##VECS, block16_9_##VECS,    \
     block16_10_##VECS, block16_11_##VECS, block16_12_##VECS}
static block16_fn *const blocks16[2][13] = {ROW_BLOCKS(1), ROW_BLOCKS(2)};
#undef ROW_BLOCKS

/* The lanes of 16 columns from column `from` that lie before n. */
static __mmask16 lanes16(int from, int n)
{
    const int left = n - from;
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

__attribute__((target("avx512f"))) void sr_cpu_small_gemm_avx512(int m, int n, int k,
                                                                 const float *a, int lda,
                                                                 const float *b, int ldb,
                                                                 float *c, int ldc)
{
    /* The row blocks as even as 12 rows at most allow (m = 64: four of 11
     * and two of 10), so that none has too few sums to hide the FMAs'
     * latency. */
    const int n_blocks = (m + 11) / 12;
    for (int j = 0; j < n; j += 32) {
        block16_fn *const *kind = blocks16[n - j > 16];
        const __mmask16 m0 = lanes16(j, n), m1 = lanes16(j + 16, n);
        for (int q = 0, r = 0; q < n_blocks; q++) {
            const int rows = (m - r) / (n_blocks - q);
            kind[rows](k, a + (int64_t)r * lda, lda, b + j, ldb, c + (int64_t)r * ldc + j, ldc,
                       m0, m1);
            r += rows;
        }
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
