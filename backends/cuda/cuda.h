/* The CUDA backend's kernels (kernels.cu), launched by backend.cu on the
 * default stream. Tensors are bands as in ops/op.h, in device memory; each
 * launcher returns at once and leaves errors to cudaGetLastError. */
#ifndef SR_BACKENDS_CUDA_CUDA_H
#define SR_BACKENDS_CUDA_CUDA_H

#include <cuda_runtime.h>

extern "C" {
#include "ops/op.h"
}

/* Bytes of one value that a matrix product at this precision reads: the
 * 16-bit types for FP16 and BF16, float for FP32 and TF32 (which cuBLAS
 * rounds itself). */
int64_t sr_cuda_gemm_bytes(sr_precision precision);

/* Conv output rows [cy0, cy0 + rows) before any shuffle, every column x <
 * W (the conv's output width), unfolded: col[(ci k + ky) k + kx][(cy - cy0)
 * W + x], zero outside the image, as sr_cuda_gemm_bytes(precision) values.
 * ci: a channel of the n_in inputs in[0 .. n_in), one after another. */
void sr_cuda_im2col(const sr_conv2d_params *p, const sr_tensor *in, int n_in, int64_t width,
                    int64_t cy0, int64_t rows, sr_precision precision, void *col);

/* to[i] = from[i] rounded to the precision's values (a copy for FP32). */
void sr_cuda_narrow(const float *from, int64_t n, sr_precision precision, void *to);

/* A conv of at most SR_CUDA_DIRECT_OUTPUTS output channels (the one that
 * makes the image), straight from its n_in inputs, bias and epilogue included,
 * in float32: out's band. weight, bias and the epilogue's slopes are
 * device copies (the epilogue itself is a host struct, passed by value). */
#define SR_CUDA_DIRECT_OUTPUTS 4
void sr_cuda_conv_direct(const sr_conv2d_params *p, const float *weight, const float *bias,
                         const sr_epilogue *epilogue, const sr_tensor *in, int n_in,
                         const sr_tensor *out);

/* gemm[co][(cy - cy0) W + x] plus bias and epilogue into out, for the rows
 * that land in its band; a residual reads the conv's n_in inputs. bias (or
 * NULL) and the slopes are device copies. */
void sr_cuda_conv_epilogue(const sr_conv2d_params *p, const float *bias,
                           const sr_epilogue *epilogue, const float *gemm, int64_t cy0,
                           int64_t rows, const sr_tensor *in, int n_in, const sr_tensor *out);

/* The elementwise ops over out's band; slopes and stats in device memory. */
void sr_cuda_prelu(const sr_tensor *in, const float *slopes, int64_t n_slopes,
                   const sr_tensor *out);
void sr_cuda_instance_norm(const sr_tensor *in, const float *stats, const sr_epilogue *epilogue,
                           const sr_tensor *out);
void sr_cuda_add(const sr_tensor *a, const sr_tensor *b, float scale, const sr_tensor *out);
void sr_cuda_tanh_affine(const sr_tensor *in, const sr_tensor *out);
void sr_cuda_pixel_shuffle(const sr_tensor *in, int r, const sr_tensor *out);
void sr_cuda_leaky_relu(const sr_tensor *in, float slope, const sr_tensor *out);
void sr_cuda_concat(const sr_tensor *in, int n_inputs, const sr_tensor *out);
void sr_cuda_upsample(const sr_tensor *in, const sr_upsample_params *p, const sr_tensor *out);

/* sums[(c rows + y - y0) 2 + {0, 1}] = the sum and the sum of squares of
 * channel c's row y, in double, reduced in a fixed order (the same result
 * whatever band the row is in). */
void sr_cuda_row_sums(const sr_tensor *rows, double *sums);

#endif
