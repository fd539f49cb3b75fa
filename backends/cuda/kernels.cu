/* The CUDA backend's kernels. Each but the row sums is the body of a loop
 * over its output values (channel, row, column), which for_each_cyx runs:
 * on the GPU a thread per value, the three indices from the grid's three
 * dimensions; in the host build (SR_CUDA_ON_HOST, which the tests make on
 * machines without a GPU) as plain loops, so that the index arithmetic is
 * checked everywhere. A body captures values and device pointers only.
 * Indices are 64-bit (a band of a large image passes 2^31 values), and
 * they come from the grid rather than from dividing a flat index: a 64-bit
 * division is a long software routine on the GPU, and im2col and the conv
 * epilogue, run on every value of every convolution, paid four and seven
 * of them per value. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "backends/cuda/cuda.h"

namespace {

const int THREADS = 256;

/* A band as the kernels see it. */
struct band {
    float *data;
    int64_t cstride, y0, h, w;
    __host__ __device__ float *row(int64_t c, int64_t y) const
    {
        return data + c * cstride + (y - y0) * w;
    }
};

band band_of(const sr_tensor *t)
{
    return band{t->data, t->cstride, t->y0, t->shape.h, t->shape.w};
}

/* A conv's inputs: their channels one after another (ops/op.h,
 * sr_conv2d_in_row), upsampled by f where the conv folds an upsample. */
struct sources {
    band b[SR_NODE_MAX_INPUTS];
    int64_t c[SR_NODE_MAX_INPUTS];
    int n, f;
    __host__ __device__ const float *row(int64_t ci, int64_t y) const
    {
        int j = 0;
        for (; j < n - 1 && ci >= c[j]; j++)
            ci -= c[j];
        return b[j].row(ci, y);
    }
    /* The input's row or column under row or column v of what the conv
     * convolves (v >= 0): a 32-bit division, as a 64-bit one is a software
     * routine on the GPU. */
    __host__ __device__ int64_t down(int64_t v) const { return f == 1 ? v : (int)v / f; }
};

sources sources_of(const sr_tensor *in, int n, int f = 1)
{
    sources s = {};
    s.n = n;
    s.f = f;
    for (int j = 0; j < n; j++) {
        s.b[j] = band_of(&in[j]);
        s.c[j] = in[j].shape.c;
    }
    return s;
}

template <class T> __host__ __device__ T narrow(float v);
template <> __host__ __device__ float narrow<float>(float v) { return v; }
template <> __host__ __device__ __half narrow<__half>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ __nv_bfloat16 narrow<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

} // namespace

#ifdef SR_CUDA_ON_HOST
template <class F> static void for_each_cyx(int64_t nc, int64_t ny, int64_t nx, F f)
{
    for (int64_t c = 0; c < nc; c++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++)
                f(c, y, x);
}
#else
template <class F> __global__ void for_each_cyx_kernel(int64_t nc, int64_t ny, int64_t nx, F f)
{
    const int64_t x = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (x >= nx)
        return;
    for (int64_t c = blockIdx.z; c < nc; c += gridDim.z)
        for (int64_t y = blockIdx.y; y < ny; y += gridDim.y)
            f(c, y, x);
}

/* Columns across a block's threads (a row's values are adjacent, so its
 * loads and stores coalesce), rows and channels across the grid, 65535 of
 * each at most: the kernel's loops cover the rest. A block no wider than
 * the row, in whole warps. An empty grid would be a launch error. */
template <class F> static void for_each_cyx(int64_t nc, int64_t ny, int64_t nx, F f)
{
    if (nc <= 0 || ny <= 0 || nx <= 0)
        return;
    const int64_t threads = nx < THREADS ? (nx + 31) / 32 * 32 : THREADS;
    const dim3 grid((unsigned)((nx + threads - 1) / threads), (unsigned)(ny < 65535 ? ny : 65535),
                    (unsigned)(nc < 65535 ? nc : 65535));
    for_each_cyx_kernel<<<grid, (unsigned)threads>>>(nc, ny, nx, f);
}
#endif

/* The values of out's band: f(ch, y, x), y in the image's rows. */
template <class F> static void for_each_value(const sr_tensor *out, F f)
{
    const int64_t y0 = out->y0;
    for_each_cyx(out->shape.c, out->shape.h, out->shape.w,
                 [=] __device__(int64_t ch, int64_t y, int64_t x) { f(ch, y0 + y, x); });
}

int64_t sr_cuda_gemm_bytes(sr_precision precision)
{
    return precision == SR_PRECISION_FP16 || precision == SR_PRECISION_BF16 ? 2 : 4;
}

/* A thread per input channel and output pixel makes that pixel's k x k
 * taps of the channel: reads and writes stay coalesced across threads and
 * the index arithmetic is paid once per k^2 values. */
template <class T>
static void im2col(const sr_conv2d_params *p, const sr_tensor *in, int n_in, int64_t width,
                   int64_t cy0, int64_t rows, T *col)
{
    const int f = (int)sr_conv2d_upsample(p);
    const sources src = sources_of(in, n_in, f);
    const int64_t image_h = in->image_h * f, k = p->k, pad = p->pad, pixels = rows * width;
    const int64_t in_w = in->shape.w * f;
    for_each_cyx(p->c_in, rows, width, [=] __device__(int64_t ci, int64_t row, int64_t column) {
        const int64_t y = cy0 + row - pad, x = column - pad;
        T *to = col + ci * k * k * pixels + row * width + column;
        for (int64_t iy = y; iy < y + k; iy++) {
            const bool inside = iy >= 0 && iy < image_h;
            for (int64_t ix = x; ix < x + k; ix++, to += pixels)
                *to = narrow<T>(inside && ix >= 0 && ix < in_w
                                    ? src.row(ci, src.down(iy))[src.down(ix)]
                                    : 0.0f);
        }
    });
}

void sr_cuda_im2col(const sr_conv2d_params *p, const sr_tensor *in, int n_in, int64_t width,
                    int64_t cy0, int64_t rows, sr_precision precision, void *col)
{
    if (precision == SR_PRECISION_FP16)
        im2col(p, in, n_in, width, cy0, rows, (__half *)col);
    else if (precision == SR_PRECISION_BF16)
        im2col(p, in, n_in, width, cy0, rows, (__nv_bfloat16 *)col);
    else
        im2col(p, in, n_in, width, cy0, rows, (float *)col);
}

template <class T> static void narrow_all(const float *from, int64_t n, T *to)
{
    for_each_cyx(1, 1, n,
                 [=] __device__(int64_t, int64_t, int64_t i) { to[i] = narrow<T>(from[i]); });
}

void sr_cuda_narrow(const float *from, int64_t n, sr_precision precision, void *to)
{
    if (precision == SR_PRECISION_FP16)
        narrow_all(from, n, (__half *)to);
    else if (precision == SR_PRECISION_BF16)
        narrow_all(from, n, (__nv_bfloat16 *)to);
    else
        narrow_all(from, n, (float *)to);
}

/* x + scale v, the product rounded first as sr_op_add's: the _rn
 * intrinsics are never contracted into an FMA. */
static __device__ float add_residual(const sources &src, float scale, int64_t co, int64_t y,
                                     int64_t x, float v)
{
    return __fadd_rn(src.row(co, y)[x], __fmul_rn(scale, v));
}

void sr_cuda_conv_epilogue(const sr_conv2d_params *p, const float *bias,
                           const sr_epilogue *epilogue, const float *gemm, int64_t cy0,
                           int64_t rows, const sr_tensor *in, int n_in, const sr_tensor *out)
{
    const band dst = band_of(out);
    const sources src = sources_of(in, n_in);
    const int r = sr_conv2d_shuffle(p);
    const int64_t W = out->shape.w / r, pixels = rows * W;
    const sr_epilogue e = *epilogue;
    float scale = 0.0f;
    const bool residual = sr_epilogue_residual(&e, &scale);
    for_each_cyx(p->c_out, rows, W, [=] __device__(int64_t co, int64_t row, int64_t x) {
        /* co is channel (co / r^2) at sub-pixel (co / r % r, co % r): 32-bit
         * divisions by the small shuffle factor. */
        const int shuffled = (int)co / r, dx = (int)co - shuffled * r;
        const int channel = shuffled / r, dy = shuffled - channel * r;
        const int64_t oy = (cy0 + row) * r + dy;
        if (oy < dst.y0 || oy >= dst.y0 + dst.h)
            return;
        float v = sr_epilogue_value(
            &e, co, gemm[co * pixels + row * W + x] + (bias ? bias[co] : 0.0f));
        if (residual) /* no shuffle: oy is the conv's own row */
            v = add_residual(src, scale, co, oy, x, v);
        dst.row(channel, oy)[x * r + dx] = v;
    });
}

/* A thread per output pixel sums its C_OUT values over every input
 * channel and tap in one fixed order (the same in any band). im2col would
 * write c_in k^2 values per pixel to read them once, 5184 for SRPGAN's last
 * conv, for 3 products each: this reads the input where it lies, and
 * neighbouring threads find it in cache. */
template <int C_OUT>
static void conv_direct(const sr_conv2d_params *p, const float *weight, const float *bias,
                        const sr_epilogue *epilogue, const sr_tensor *in, int n_in,
                        const sr_tensor *out)
{
    const int f = (int)sr_conv2d_upsample(p);
    const sources src = sources_of(in, n_in, f);
    const band dst = band_of(out);
    const int r = sr_conv2d_shuffle(p);
    const int64_t W = out->shape.w / r, image_h = in->image_h * f, in_w = in->shape.w * f;
    const int64_t cy0 = out->y0 / r, cy1 = (out->y0 + out->shape.h + r - 1) / r;
    const int64_t c_in = p->c_in, k = p->k, pad = p->pad, taps = p->c_in * p->k * p->k;
    const sr_epilogue e = *epilogue;
    float scale = 0.0f;
    const bool residual = sr_epilogue_residual(&e, &scale);
    for_each_cyx(1, cy1 - cy0, W, [=] __device__(int64_t, int64_t row, int64_t x) {
        const int64_t cy = cy0 + row;
        float sum[C_OUT] = {};
        const float *w = weight;
        for (int64_t ci = 0; ci < c_in; ci++)
            for (int64_t iy = cy - pad; iy < cy - pad + k; iy++, w += k) {
                if (iy < 0 || iy >= image_h)
                    continue;
                const float *row = src.row(ci, src.down(iy));
                for (int64_t kx = 0; kx < k; kx++) {
                    const int64_t ix = x + kx - pad;
                    if (ix < 0 || ix >= in_w)
                        continue;
                    const float v = row[src.down(ix)];
                    for (int co = 0; co < C_OUT; co++)
                        sum[co] += w[co * taps + kx] * v;
                }
            }
        for (int co = 0; co < C_OUT; co++) {
            const int64_t oy = cy * r + co / r % r;
            if (oy < dst.y0 || oy >= dst.y0 + dst.h)
                continue;
            float v = sr_epilogue_value(&e, co, sum[co] + (bias ? bias[co] : 0.0f));
            if (residual)
                v = add_residual(src, scale, co, oy, x, v);
            dst.row(co / (r * r), oy)[x * r + co % r] = v;
        }
    });
}

void sr_cuda_conv_direct(const sr_conv2d_params *p, const float *weight, const float *bias,
                         const sr_epilogue *epilogue, const sr_tensor *in, int n_in,
                         const sr_tensor *out)
{
    static_assert(SR_CUDA_DIRECT_OUTPUTS == 4, "one instance per output count");
    switch (p->c_out) {
    case 1: conv_direct<1>(p, weight, bias, epilogue, in, n_in, out); break;
    case 2: conv_direct<2>(p, weight, bias, epilogue, in, n_in, out); break;
    case 3: conv_direct<3>(p, weight, bias, epilogue, in, n_in, out); break;
    default: conv_direct<4>(p, weight, bias, epilogue, in, n_in, out); break;
    }
}

void sr_cuda_prelu(const sr_tensor *in, const float *slopes, int64_t n_slopes,
                   const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    const sr_prelu_params p = {n_slopes, slopes};
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        dst.row(ch, y)[x] = sr_prelu(src.row(ch, y)[x], sr_prelu_slope(&p, ch));
    });
}

void sr_cuda_instance_norm(const sr_tensor *in, const float *stats, const sr_epilogue *epilogue,
                           const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    const int64_t c = out->shape.c;
    const sr_epilogue e = *epilogue;
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        dst.row(ch, y)[x] = sr_epilogue_value(&e, ch, (src.row(ch, y)[x] - stats[ch]) * stats[c + ch]);
    });
}

/* Rounded product, then rounded sum, as the reference: the _rn intrinsics
 * are never contracted into an FMA. */
void sr_cuda_add(const sr_tensor *a, const sr_tensor *b, float scale, const sr_tensor *out)
{
    const band x0 = band_of(a), x1 = band_of(b), dst = band_of(out);
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        dst.row(ch, y)[x] = __fadd_rn(x0.row(ch, y)[x], __fmul_rn(scale, x1.row(ch, y)[x]));
    });
}

void sr_cuda_tanh_affine(const sr_tensor *in, const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        dst.row(ch, y)[x] = (tanhf(src.row(ch, y)[x]) + 1.0f) * 0.5f;
    });
}

void sr_cuda_pixel_shuffle(const sr_tensor *in, int r, const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    for_each_value(out, [=] __device__(int64_t ch, int64_t oy, int64_t ox) {
        const int64_t from = (ch * r + oy % r) * r + ox % r;
        dst.row(ch, oy)[ox] = src.row(from, oy / r)[ox / r];
    });
}

void sr_cuda_leaky_relu(const sr_tensor *in, float slope, const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        dst.row(ch, y)[x] = sr_leaky_relu(src.row(ch, y)[x], slope);
    });
}

/* One launch per input, into its channels of out. */
void sr_cuda_concat(const sr_tensor *in, int n_inputs, const sr_tensor *out)
{
    int64_t c0 = 0;
    for (int j = 0; j < n_inputs; j++) {
        const band src = band_of(&in[j]);
        band dst = band_of(out);
        dst.data += c0 * dst.cstride;
        sr_tensor part = *out;
        part.shape.c = in[j].shape.c;
        for_each_value(&part, [=] __device__(int64_t ch, int64_t y, int64_t x) {
            dst.row(ch, y)[x] = src.row(ch, y)[x];
        });
        c0 += in[j].shape.c;
    }
}

void sr_cuda_upsample(const sr_tensor *in, const sr_upsample_params *p, const sr_tensor *out)
{
    const band src = band_of(in), dst = band_of(out);
    const int64_t f = p->factor, image_h = in->image_h;
    if (p->mode == SR_UPSAMPLE_NEAREST) {
        for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
            dst.row(ch, y)[x] = src.row(ch, y / f)[x / f];
        });
        return;
    }
    for_each_value(out, [=] __device__(int64_t ch, int64_t y, int64_t x) {
        const sr_upsample_tap ty = sr_upsample_bilinear_tap(f, y, image_h);
        const sr_upsample_tap tx = sr_upsample_bilinear_tap(f, x, src.w);
        dst.row(ch, y)[x] =
            sr_upsample_bilinear_mix(ty, tx, src.row(ch, ty.i0), src.row(ch, ty.i1));
    });
}

#ifdef SR_CUDA_ON_HOST
/* The host build adds in order: the sums differ from the GPU's in double
 * rounding only. */
void sr_cuda_row_sums(const sr_tensor *rows, double *sums)
{
    const band b = band_of(rows);
    for (int64_t i = 0; i < rows->shape.c * b.h; i++) {
        const float *x = b.row(i / b.h, b.y0 + i % b.h);
        double s = 0.0, q = 0.0;
        for (int64_t j = 0; j < b.w; j++) {
            s += x[j];
            q += (double)x[j] * x[j];
        }
        sums[2 * i] = s;
        sums[2 * i + 1] = q;
    }
}
#else
/* One block per (channel, row); a fixed tree within the block. */
static __global__ void row_sums_kernel(band rows, double *sums)
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

void sr_cuda_row_sums(const sr_tensor *rows, double *sums)
{
    const int64_t blocks = rows->shape.c * rows->shape.h;
    if (blocks > 0)
        row_sums_kernel<<<(unsigned)blocks, THREADS>>>(band_of(rows), sums);
}
#endif
