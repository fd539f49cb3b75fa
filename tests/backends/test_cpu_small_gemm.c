/* The CPU backend's small GEMMs for the convolutions' products
 * (backends/cpu/small_gemm.c), each kernel the CPU runs (AVX2, AVX-512):
 * against a product summed in double, over shapes that reach every row
 * block (1 to 12 rows of 1 to 4 vectors) and full and partial column
 * blocks, with leading dimensions wider than the rows; a value the same bits wherever it falls
 * in a call (a sub-range of the columns or of the rows computed alone);
 * and the kernels the same bits as each other. A kernel the CPU lacks is
 * skipped.
 * (That Winograd with it matches the reference, banded bit for bit:
 * test_ops.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

#if SR_CPU_HAVE_SMALL_GEMM

static float *random_floats(test_rng *r, size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)test_rng_int(r, -1000, 1000) / 997.0f;
    return x;
}

typedef struct kernel {
    const char *name;
    bool (*usable)(void);
    sr_cpu_gemm_fn *run;
} kernel;

static const kernel kernels[] = {
    {"avx2", sr_cpu_small_gemm_avx2_usable, sr_cpu_small_gemm_avx2},
    {"avx512", sr_cpu_small_gemm_avx512_usable, sr_cpu_small_gemm_avx512},
};
enum { N_KERNELS = sizeof kernels / sizeof *kernels };

static void check_matches_double(const kernel *kn)
{
    static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 23, 32, 64};
    static const int ns[] = {1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 49, 50, 63, 64, 65, 100};
    static const int ks[] = {1, 3, 64, 192};
    test_rng r = {7};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                const int m = ms[a], n = ns[b], k = ks[c];
                const int lda = k + 3, ldb = n + 5, ldc = n + 2;
                /* B and C end where their last row's columns do, so that
                 * AddressSanitizer sees any read or write past them. */
                float *A = random_floats(&r, (size_t)m * lda);
                float *B = random_floats(&r, (size_t)(k - 1) * ldb + n);
                float *C = random_floats(&r, (size_t)(m - 1) * ldc + n); /* overwritten */
                float *before = malloc(((size_t)(m - 1) * ldc + n) * sizeof *before);
                assert_non_null(before);
                memcpy(before, C, ((size_t)(m - 1) * ldc + n) * sizeof *before);
                kn->run(m, n, k, A, lda, B, ldb, C, ldc);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double want = 0.0, size = 0.0;
                        for (int t = 0; t < k; t++) {
                            want += (double)A[i * lda + t] * B[t * ldb + j];
                            size += fabs((double)A[i * lda + t] * B[t * ldb + j]);
                        }
                        if (fabs(C[i * ldc + j] - want) > 1e-6 * size + 1e-30)
                            fail_msg("%s %dx%dx%d: C[%d][%d] = %.9g, want %.9g", kn->name, m,
                                     n, k, i, j, C[i * ldc + j], want);
                    }
                for (int i = 0; i + 1 < m; i++) /* the gaps between rows: untouched */
                    assert_memory_equal(C + i * ldc + n, before + i * ldc + n,
                                        (size_t)(ldc - n) * sizeof *C);
                free(before);
                free(A);
                free(B);
                free(C);
            }
}

static void check_value_independent_of_place(const kernel *kn)
{
    enum { M = 32, N = 64, K = 160 };
    test_rng r = {8};
    float *A = random_floats(&r, (size_t)M * K), *B = random_floats(&r, (size_t)K * N);
    float *whole = malloc(sizeof(float) * M * N), *part = malloc(sizeof(float) * M * N);
    assert_non_null(whole);
    assert_non_null(part);
    kn->run(M, N, K, A, K, B, N, whole, N);
    /* Columns [j0, j1) and rows [i0, i1) alone, at every kind of offset. */
    static const int cuts[][4] = {{0, 32, 3, 20}, {5, 45, 0, 32}, {17, 18, 6, 7}, {1, 64, 2, 31}};
    for (size_t t = 0; t < sizeof cuts / sizeof *cuts; t++) {
        const int i0 = cuts[t][2], i1 = cuts[t][3], j0 = cuts[t][0], j1 = cuts[t][1];
        kn->run(i1 - i0, j1 - j0, K, A + i0 * K, K, B + j0, N, part, N);
        for (int i = i0; i < i1; i++)
            assert_memory_equal(part + (i - i0) * N, whole + i * N + j0,
                                (size_t)(j1 - j0) * sizeof(float));
    }
    free(A);
    free(B);
    free(whole);
    free(part);
}

/* Runs check on each kernel the CPU has; skips when it has none. */
static void for_each_kernel(void (*check)(const kernel *))
{
    int ran = 0;
    for (int i = 0; i < N_KERNELS; i++)
        if (kernels[i].usable()) {
            check(&kernels[i]);
            ran++;
        }
    if (!ran)
        skip();
}

static void test_small_gemm_matches_double(void **state)
{
    (void)state;
    for_each_kernel(check_matches_double);
}

static void test_small_gemm_value_independent_of_place(void **state)
{
    (void)state;
    for_each_kernel(check_value_independent_of_place);
}

/* Every kernel the CPU has gives the first's bits, on the shapes of
 * RealESRGAN_x4plus's and SRPGAN's products and odd ones. */
static void test_small_gemm_kernels_agree(void **state)
{
    (void)state;
    if (!sr_cpu_small_gemm_avx2_usable() || !sr_cpu_small_gemm_avx512_usable())
        skip();
    static const int shapes[][3] = {{32, 64, 64}, {64, 64, 192}, {32, 24, 160}, {3, 40, 64},
                                    {64, 17, 128}, {13, 33, 7}, {32, 48, 192}, {7, 100, 64}};
    test_rng r = {9};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int m = shapes[t][0], n = shapes[t][1], k = shapes[t][2];
        float *A = random_floats(&r, (size_t)m * k), *B = random_floats(&r, (size_t)k * n);
        float *c2 = malloc(sizeof(float) * m * n), *c5 = malloc(sizeof(float) * m * n);
        assert_non_null(c2);
        assert_non_null(c5);
        sr_cpu_small_gemm_avx2(m, n, k, A, k, B, n, c2, n);
        sr_cpu_small_gemm_avx512(m, n, k, A, k, B, n, c5, n);
        assert_memory_equal(c2, c5, sizeof(float) * m * n);
        free(A);
        free(B);
        free(c2);
        free(c5);
    }
}

#else

static void test_small_gemm_matches_double(void **state)
{
    (void)state;
    skip(); /* not built for this CPU */
}

static void test_small_gemm_value_independent_of_place(void **state)
{
    (void)state;
    skip();
}

static void test_small_gemm_kernels_agree(void **state)
{
    (void)state;
    skip();
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_gemm_matches_double),
        cmocka_unit_test(test_small_gemm_value_independent_of_place),
        cmocka_unit_test(test_small_gemm_kernels_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
