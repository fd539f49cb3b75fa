/* cuBLAS's GEMMs for test_cuda_host (see cuda_runtime.h here): OpenBLAS's
 * SGEMM, called with the same column-major arguments, on memory that must
 * have come from cudaMalloc. The tensor cores' inputs are emulated: TF32
 * math rounds A and B to 10-bit mantissas first, GemmEx widens FP16 and
 * BF16 to float; products are summed in float as on the GPU. */
#ifndef SR_TESTS_CUDA_HOST_CUBLAS_H
#define SR_TESTS_CUDA_HOST_CUBLAS_H

#include <cblas.h>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS, CUBLAS_STATUS_NOT_SUPPORTED };
enum cublasOperation_t { CUBLAS_OP_N, CUBLAS_OP_T };
enum cublasMath_t { CUBLAS_DEFAULT_MATH, CUBLAS_PEDANTIC_MATH, CUBLAS_TF32_TENSOR_OP_MATH };
enum cudaDataType { CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT };

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

inline cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes)
{
    (void)handle;
    if (!cuda_host_on_device(workspace, bytes))
        cuda_host_misuse("cublasSetWorkspace: not device memory", workspace);
    return CUBLAS_STATUS_SUCCESS;
}

/* Checks that a column-major matrix of `rows` x `cols` values of `size`
 * bytes, `ld` apart, lies in device memory. */
inline void cublas_host_check(const char *what, const void *p, int rows, int cols, int ld,
                              size_t size)
{
    if (!cuda_host_on_device(p, size * ((size_t)ld * (cols - 1) + rows)))
        cuda_host_misuse(what, p);
}

/* C = alpha A B + beta C as cuBLAS does it in one respect: the order of
 * summation depends on the shape (cuBLAS picks its kernel, split-K
 * included, by shape). Here K is summed in 1 to 3 parts as the shape
 * hashes, so a GEMM of another shape than the whole image's gives other
 * bits, and the tests that want the same bits in any band can fail. */
inline void cublas_host_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                              float alpha, const float *a, int lda, const float *b, int ldb,
                              float beta, float *c, int ldc)
{
    const int parts = 1 + (int)(((unsigned)m * 31u + (unsigned)n * 17u + (unsigned)k * 7u) % 3u);
    for (int part = 0, k0 = 0; part < parts; part++) {
        const int k1 = (int)((long long)k * (part + 1) / parts);
        const float *ap = a + (size_t)k0 * (ta == CblasNoTrans ? lda : 1);
        const float *bp = b + (size_t)k0 * (tb == CblasNoTrans ? 1 : ldb);
        if (k1 > k0 || part == 0)
            cblas_sgemm(CblasColMajor, ta, tb, m, n, k1 - k0, alpha, ap, lda, bp, ldb,
                        part == 0 ? beta : 1.0f, c, ldc);
        k0 = k1;
    }
}

/* A as float: rounded to TF32 (nearest, ties away, as cvt.rna.tf32.f32
 * does), or widened from 16 bits. */
inline std::vector<float> cublas_host_widen(const void *a, size_t n, cudaDataType type, bool tf32)
{
    std::vector<float> out(n);
    for (size_t i = 0; i < n; i++) {
        if (type == CUDA_R_16F) {
            out[i] = __half2float(((const __half *)a)[i]);
        } else if (type == CUDA_R_16BF) {
            out[i] = __bfloat162float(((const __nv_bfloat16 *)a)[i]);
        } else {
            uint32_t u;
            memcpy(&u, (const float *)a + i, sizeof u);
            if (tf32 && (u & 0x7f800000u) != 0x7f800000u)
                u = (u + 0x1000u) & ~0x1fffu;
            memcpy(&out[i], &u, sizeof u);
        }
    }
    return out;
}

inline cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta,
                                   cublasOperation_t tb, int m, int n, int k, const void *alpha,
                                   const void *a, cudaDataType a_type, int lda, const void *b,
                                   cudaDataType b_type, int ldb, const void *beta, void *c,
                                   cudaDataType c_type, int ldc, cublasComputeType_t compute,
                                   cublasGemmAlgo_t algo)
{
    (void)compute;
    (void)algo;
    if (c_type != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
    const size_t a_size = a_type == CUDA_R_32F ? 4 : 2, b_size = b_type == CUDA_R_32F ? 4 : 2;
    cublas_host_check("cuBLAS GEMM: A is not all device memory", a, an ? m : k, an ? k : m,
                      lda, a_size);
    cublas_host_check("cuBLAS GEMM: B is not all device memory", b, bn ? k : n, bn ? n : k,
                      ldb, b_size);
    cublas_host_check("cuBLAS GEMM: C is not all device memory", c, m, n, ldc, sizeof(float));
    const bool tf32 = handle->math == CUBLAS_TF32_TENSOR_OP_MATH;
    const CBLAS_TRANSPOSE ca = an ? CblasNoTrans : CblasTrans, cb = bn ? CblasNoTrans : CblasTrans;
    if (!tf32 && a_type == CUDA_R_32F && b_type == CUDA_R_32F) {
        cublas_host_sgemm(ca, cb, m, n, k, *(const float *)alpha, (const float *)a, lda,
                          (const float *)b, ldb, *(const float *)beta, (float *)c, ldc);
        return CUBLAS_STATUS_SUCCESS;
    }
    const std::vector<float> wa =
        cublas_host_widen(a, (size_t)lda * ((an ? k : m) - 1) + (an ? m : k), a_type, tf32);
    const std::vector<float> wb =
        cublas_host_widen(b, (size_t)ldb * ((bn ? n : k) - 1) + (bn ? k : n), b_type, tf32);
    cublas_host_sgemm(ca, cb, m, n, k, *(const float *)alpha, wa.data(), lda, wb.data(), ldb,
                      *(const float *)beta, (float *)c, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta,
                                  cublasOperation_t tb, int m, int n, int k, const float *alpha,
                                  const float *a, int lda, const float *b, int ldb,
                                  const float *beta, float *c, int ldc)
{
    return cublasGemmEx(handle, ta, tb, m, n, k, alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb,
                        beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

#endif
