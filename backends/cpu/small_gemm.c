/* The Winograd products, C [m x n] = A [m x k] B [k x n], without
 * OpenBLAS where the CPU has AVX2 and FMA. The 36 products of a piece are
 * small (m 32 or 64 output channels, n up to 64 tiles, k 64 to 192 input
 * channels) and OpenBLAS packs both operands and scales C on every call:
 * its copies took 15-20% of RealESRGAN_x4plus's run. Here B's rows are
 * read where they lie (16 tiles a pair of vectors), A's values are
 * broadcast from theirs, and a block of up to 6 x 16 of C stays in
 * registers while k runs.
 *
 * Every C value is fma(a, b, sum) over k in order from zero, whichever
 * block or tail it falls in, so a value does not depend on where it falls
 * in a call (bands and whole images agree). */
#include "backends/cpu/cpu.h"

#if SR_CPU_HAVE_SMALL_GEMM
#include <immintrin.h>

bool sr_cpu_small_gemm_usable(void)
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

__attribute__((target("avx2,fma"))) void sr_cpu_small_gemm(int m, int n, int k, const float *a,
                                                           int lda, const float *b, int ldb,
                                                           float *c, int ldc)
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
#endif
