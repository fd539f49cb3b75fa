/* The CUDA backend's kernels: one thread per output value, except the row
 * sums (one block per row). Indices are 64-bit: a band of a large image
 * passes 2^31 values. */
#include "backends/cuda/cuda.h"

namespace {

const int THREADS = 256;

/* A band as the kernels see it. */
struct band {
    float *data;
    int64_t cstride, y0, h, w;
    __device__ float *row(int64_t c, int64_t y) const { return data + c * cstride + (y - y0) * w; }
};

band band_of(const sr_tensor *t)
{
    return band{t->data, t->cstride, t->y0, t->shape.h, t->shape.w};
}

/* Blocks for n values: grid-stride loops (FOR_EACH) let 65535 of them
 * cover any size. */
unsigned grid_for(int64_t n)
{
    const int64_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 65535 ? b : 65535);
}

#define FOR_EACH(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)gridDim.x * blockDim.x)

__device__ float prelu_of(float v, const float *slopes, int64_t n_slopes, int64_t c)
{
    if (n_slopes == 0)
        return v;
    const float a = slopes[n_slopes == 1 ? 0 : c];
    return v >= 0.0f ? v : a * v;
}

/* W: the conv's output width, which differs from in.w when 2 pad != k - 1. */
__global__ void im2col_kernel(band in, int64_t image_h, int64_t c_in, int k, int pad, int64_t W,
                              int64_t cy0, int64_t rows, float *col)
{
    const int64_t pixels = rows * W, n = c_in * k * k * pixels;
    FOR_EACH(i, n) {
        const int64_t p = i % pixels, tap = i / pixels;
        const int64_t kx = tap % k, ky = tap / k % k, ci = tap / (k * k);
        const int64_t iy = cy0 + p / W + ky - pad, ix = p % W + kx - pad;
        col[i] = iy >= 0 && iy < image_h && ix >= 0 && ix < in.w ? in.row(ci, iy)[ix] : 0.0f;
    }
}

__global__ void conv_epilogue_kernel(const float *gemm, const float *bias, const float *slopes,
                                     int64_t n_slopes, int64_t c_out, int r, int64_t cy0,
                                     int64_t rows, int64_t W, band out)
{
    const int64_t pixels = rows * W, n = c_out * pixels;
    FOR_EACH(i, n) {
        const int64_t co = i / pixels, p = i % pixels, cy = cy0 + p / W, x = p % W;
        const int64_t oy = cy * r + co / r % r;
        if (oy < out.y0 || oy >= out.y0 + out.h)
            continue;
        const float v = prelu_of(gemm[i] + (bias ? bias[co] : 0.0f), slopes, n_slopes, co);
        out.row(co / (r * r), oy)[x * r + co % r] = v;
    }
}

__global__ void prelu_kernel(band in, const float *slopes, int64_t n_slopes, band out, int64_t c)
{
    const int64_t n = c * out.h * out.w;
    FOR_EACH(i, n) {
        const int64_t x = i % out.w, y = out.y0 + i / out.w % out.h, ch = i / (out.w * out.h);
        out.row(ch, y)[x] = prelu_of(in.row(ch, y)[x], slopes, n_slopes, ch);
    }
}

__global__ void instance_norm_kernel(band in, const float *stats, const float *slopes,
                                     int64_t n_slopes, band out, int64_t c)
{
    const int64_t n = c * out.h * out.w;
    FOR_EACH(i, n) {
        const int64_t x = i % out.w, y = out.y0 + i / out.w % out.h, ch = i / (out.w * out.h);
        const float v = (in.row(ch, y)[x] - stats[ch]) * stats[c + ch];
        out.row(ch, y)[x] = prelu_of(v, slopes, n_slopes, ch);
    }
}

__global__ void add_kernel(band a, band b, band out, int64_t c)
{
    const int64_t n = c * out.h * out.w;
    FOR_EACH(i, n) {
        const int64_t x = i % out.w, y = out.y0 + i / out.w % out.h, ch = i / (out.w * out.h);
        out.row(ch, y)[x] = a.row(ch, y)[x] + b.row(ch, y)[x];
    }
}

__global__ void tanh_affine_kernel(band in, band out, int64_t c)
{
    const int64_t n = c * out.h * out.w;
    FOR_EACH(i, n) {
        const int64_t x = i % out.w, y = out.y0 + i / out.w % out.h, ch = i / (out.w * out.h);
        out.row(ch, y)[x] = (tanhf(in.row(ch, y)[x]) + 1.0f) * 0.5f;
    }
}

__global__ void pixel_shuffle_kernel(band in, int r, band out, int64_t c)
{
    const int64_t n = c * out.h * out.w;
    FOR_EACH(i, n) {
        const int64_t ox = i % out.w, oy = out.y0 + i / out.w % out.h, ch = i / (out.w * out.h);
        const int64_t src = (ch * r + oy % r) * r + ox % r;
        out.row(ch, oy)[ox] = in.row(src, oy / r)[ox / r];
    }
}

/* One block per (channel, row); a fixed tree within the block. */
__global__ void row_sums_kernel(band rows, double *sums)
{
    __shared__ double sum[THREADS], sq[THREADS];
    const int64_t ch = blockIdx.x / rows.h, y = rows.y0 + blockIdx.x % rows.h;
    const float *x = rows.row(ch, y);
    double s = 0.0, q = 0.0;
    for (int64_t i = threadIdx.x; i < rows.w; i += THREADS) {
        s += x[i];
        q += (double)x[i] * x[i];
    }
    sum[threadIdx.x] = s;
    sq[threadIdx.x] = q;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            sum[threadIdx.x] += sum[threadIdx.x + half];
            sq[threadIdx.x] += sq[threadIdx.x + half];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        sums[2 * blockIdx.x] = sum[0];
        sums[2 * blockIdx.x + 1] = sq[0];
    }
}

} // namespace

void sr_cuda_im2col(const sr_conv2d_params *p, const sr_tensor *in, int64_t width, int64_t cy0,
                    int64_t rows, float *col)
{
    const int64_t n = p->c_in * p->k * p->k * rows * width;
    im2col_kernel<<<grid_for(n), THREADS>>>(band_of(in), in->image_h, p->c_in, p->k, p->pad,
                                            width, cy0, rows, col);
}

void sr_cuda_conv_epilogue(const sr_conv2d_params *p, const float *bias, const float *slopes,
                           const float *gemm, int64_t cy0, int64_t rows, const sr_tensor *out)
{
    const int r = (int)sr_conv2d_shuffle(p);
    const int64_t W = out->shape.w / r, n = p->c_out * rows * W;
    conv_epilogue_kernel<<<grid_for(n), THREADS>>>(gemm, bias, slopes, p->n_slopes, p->c_out, r,
                                                   cy0, rows, W, band_of(out));
}

void sr_cuda_prelu(const sr_tensor *in, const float *slopes, int64_t n_slopes,
                   const sr_tensor *out)
{
    prelu_kernel<<<grid_for(sr_shape_numel(out->shape)), THREADS>>>(
        band_of(in), slopes, n_slopes, band_of(out), out->shape.c);
}

void sr_cuda_instance_norm(const sr_tensor *in, const float *stats, const float *slopes,
                           int64_t n_slopes, const sr_tensor *out)
{
    instance_norm_kernel<<<grid_for(sr_shape_numel(out->shape)), THREADS>>>(
        band_of(in), stats, slopes, n_slopes, band_of(out), out->shape.c);
}

void sr_cuda_add(const sr_tensor *a, const sr_tensor *b, const sr_tensor *out)
{
    add_kernel<<<grid_for(sr_shape_numel(out->shape)), THREADS>>>(band_of(a), band_of(b),
                                                                   band_of(out), out->shape.c);
}

void sr_cuda_tanh_affine(const sr_tensor *in, const sr_tensor *out)
{
    tanh_affine_kernel<<<grid_for(sr_shape_numel(out->shape)), THREADS>>>(
        band_of(in), band_of(out), out->shape.c);
}

void sr_cuda_pixel_shuffle(const sr_tensor *in, int r, const sr_tensor *out)
{
    pixel_shuffle_kernel<<<grid_for(sr_shape_numel(out->shape)), THREADS>>>(
        band_of(in), r, band_of(out), out->shape.c);
}

void sr_cuda_row_sums(const sr_tensor *rows, double *sums)
{
    row_sums_kernel<<<(unsigned)(rows->shape.c * rows->shape.h), THREADS>>>(band_of(rows), sums);
}
