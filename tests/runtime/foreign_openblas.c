/* A stand-in for another OpenBLAS that a host process loaded before
 * libsrrun.so (numpy's, through libblas.so.3): a library with the soname
 * libopenblas.so.0 and the entry points srrun calls, which compute
 * nothing and count each call. Built by tests/CMakeLists.txt for
 * test_foreign_blas. */
#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

static int n_calls;

EXPORT int foreign_openblas_calls(void)
{
    return __atomic_load_n(&n_calls, __ATOMIC_RELAXED);
}

EXPORT void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                        const float *a, int lda, const float *b, int ldb, float beta, float *c,
                        int ldc)
{
    (void)order, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha;
    (void)a, (void)lda, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    __atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
}

EXPORT char *openblas_get_corename(void)
{
    __atomic_fetch_add(&n_calls, 1, __ATOMIC_RELAXED);
    return "foreign";
}
