/* cuBLAS's SGEMM for test_cuda_host (see cuda_runtime.h here): OpenBLAS,
 * called with the same column-major arguments, on memory that must have
 * come from cudaMalloc. */
#ifndef SR_TESTS_CUDA_HOST_CUBLAS_H
#define SR_TESTS_CUDA_HOST_CUBLAS_H

#include <cblas.h>

#include "cuda_runtime.h"

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS };
enum cublasOperation_t { CUBLAS_OP_N, CUBLAS_OP_T };
enum cublasMath_t { CUBLAS_DEFAULT_MATH, CUBLAS_PEDANTIC_MATH };

struct cublas_host_context {
    cublasMath_t math;
};
typedef cublas_host_context *cublasHandle_t;

inline cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new cublas_host_context{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t math)
{
    handle->math = math;
    return CUBLAS_STATUS_SUCCESS;
}

inline CBLAS_TRANSPOSE cublas_host_op(cublasOperation_t op)
{
    return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

inline cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta,
                                  cublasOperation_t tb, int m, int n, int k, const float *alpha,
                                  const float *a, int lda, const float *b, int ldb,
                                  const float *beta, float *c, int ldc)
{
    (void)handle;
    const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
    const size_t a_end = (size_t)lda * ((an ? k : m) - 1) + (an ? m : k);
    const size_t b_end = (size_t)ldb * ((bn ? n : k) - 1) + (bn ? k : n);
    if (!cuda_host_on_device(a, sizeof(float) * a_end))
        cuda_host_misuse("cublasSgemm A", a);
    if (!cuda_host_on_device(b, sizeof(float) * b_end))
        cuda_host_misuse("cublasSgemm B", b);
    if (!cuda_host_on_device(c, sizeof(float) * ((size_t)ldc * (n - 1) + m)))
        cuda_host_misuse("cublasSgemm C", c);
    cblas_sgemm(CblasColMajor, cublas_host_op(ta), cublas_host_op(tb), m, n, k, *alpha, a, lda, b,
                ldb, *beta, c, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

#endif
