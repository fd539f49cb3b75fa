/* The CUDA backend: every tensor of a run in device memory (the executor
 * allocates them through sr_backend_memory), the weights uploaded once per
 * session on first use, convolutions as im2col of a bounded number of rows
 * and one cuBLAS GEMM each (or, with a few outputs, a kernel of their own:
 * sr_cuda_conv_direct). Activations are float32; the GEMMs read float32
 * (pedantic: no TF32 rounding), TF32, FP16 or BF16 as the session asks,
 * and sum in float32. Everything runs on the default stream in order; the
 * executor's downloads synchronise.
 *
 * It is built as a module of its own, libsrrun_cuda.so, that the library
 * loads when a session asks for CUDA (backends/backend.c), and it uses
 * nothing of the library's but its headers' inline functions. */
#include <cublas_v2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends/cuda/cuda.h"

extern "C" {
#include "backends/backend.h"
}

/* A node's parameters in device memory; a conv's weight as its GEMM reads
 * it (sr_cuda_gemm_bytes); a conv's or InstanceNorm's epilogue, its slopes
 * on the device. */
struct device_params {
    const sr_node *node;
    void *weight;
    float *bias, *slopes;
    sr_epilogue epilogue;
};

struct cuda_context {
    cublasHandle_t blas;
    sr_precision precision;
    device_params *params;
    int n_params, cap_params;
    void *workspace; /* grows to the largest asked for */
    int64_t workspace_bytes;
    float *stats; /* a global op's statistics, 2 C floats */
    int64_t stats_bytes;
    double *sums; /* a band's row sums (cuda_accumulate) */
    int64_t sums_bytes;
    double *host_sums; /* and their host copy */
    int64_t host_sums_bytes;
};

/* What a conv's GEMM reads: the session's precision, except that a conv
 * of few output channels stays float32. Its GEMM is too narrow for tensor
 * cores to speed up, and such a conv is where an image is made: trained SR
 * networks cancel large terms there (the default model's last weights
 * reach 380), so 16-bit inputs would cost it tens of levels. */
static const int64_t NARROW_MIN_OUTPUTS = 16;

static sr_precision conv_precision(const cuda_context *ctx, const sr_conv2d_params *p)
{
    return p->c_out < NARROW_MIN_OUTPUTS ? SR_PRECISION_FP32 : ctx->precision;
}

/* base/error.c's sr_fail, which the module cannot link to. */
static sr_status fail(sr_error *err, sr_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* Also clears the runtime's last error, so that a later launch check does
 * not report this failure again. */
static sr_status cuda_fail(sr_error *err, cudaError_t e, const char *what)
{
    cudaGetLastError();
    return fail(err, e == cudaErrorMemoryAllocation ? SR_ERR_NO_MEMORY : SR_ERR_DEVICE, "%s: %s",
                what, cudaGetErrorString(e));
}

/* Fails with the launch's error, if any, naming the node. */
static sr_status launched(const sr_node *node, sr_error *err)
{
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, node->name);
}

/* Device buffer *p of at least bytes, kept for reuse. */
static sr_status grow(void **p, int64_t *have, int64_t bytes, sr_error *err)
{
    if (bytes <= *have)
        return SR_OK;
    cudaFree(*p);
    *p = NULL;
    *have = 0;
    const cudaError_t e = cudaMalloc(p, (size_t)bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        return cuda_fail(err, e, "workspace");
    }
    *have = bytes;
    return SR_OK;
}

static sr_status upload_copy(const float *host, int64_t n, float **device, sr_error *err)
{
    *device = NULL;
    if (!host || n == 0)
        return SR_OK;
    cudaError_t e = cudaMalloc(device, (size_t)n * sizeof(float));
    if (e != cudaSuccess)
        *device = NULL; /* what the caller frees */
    else
        e = cudaMemcpy(*device, host, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, "weights");
}

/* The epilogue with every PReLU step's slopes copied to the device. */
static sr_status upload_epilogue(const sr_epilogue *host, sr_epilogue *device, sr_error *err)
{
    *device = *host;
    for (int i = 0; i < host->n_steps; i++)
        if (host->steps[i].kind == SR_EPILOGUE_PRELU)
            device->steps[i].p.prelu.slopes = NULL; /* what free_epilogue may free */
    for (int i = 0; i < host->n_steps; i++) {
        const sr_epilogue_step *s = &host->steps[i];
        float *slopes;
        if (s->kind != SR_EPILOGUE_PRELU)
            continue;
        const sr_status st = upload_copy(s->p.prelu.slopes, s->p.prelu.n_slopes, &slopes, err);
        if (st != SR_OK)
            return st;
        device->steps[i].p.prelu.slopes = slopes;
    }
    return SR_OK;
}

static void free_epilogue(sr_epilogue *e)
{
    for (int i = 0; i < e->n_steps; i++)
        if (e->steps[i].kind == SR_EPILOGUE_PRELU)
            cudaFree((void *)e->steps[i].p.prelu.slopes);
}

/* A conv's weights at its GEMM's precision: narrowed on the device. */
static sr_status upload_weight(sr_precision precision, const float *host, int64_t n,
                               void **device, sr_error *err)
{
    if (sr_cuda_gemm_bytes(precision) == (int64_t)sizeof(float))
        return upload_copy(host, n, (float **)device, err);
    float *wide;
    sr_status st = upload_copy(host, n, &wide, err);
    if (st != SR_OK)
        return st;
    cudaError_t e = cudaMalloc(device, (size_t)(n * sr_cuda_gemm_bytes(precision)));
    if (e != cudaSuccess) {
        *device = NULL;
    } else {
        sr_cuda_narrow(wide, n, precision, *device);
        e = cudaGetLastError();
    }
    cudaFree(wide);
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, "weights");
}

/* The node's weights on the device, uploaded the first time it runs. */
static sr_status params_of(cuda_context *ctx, const sr_node *node, const device_params **out,
                           sr_error *err)
{
    for (int i = 0; i < ctx->n_params; i++)
        if (ctx->params[i].node == node) {
            *out = &ctx->params[i];
            return SR_OK;
        }
    if (ctx->n_params == ctx->cap_params) {
        const int cap = ctx->cap_params ? 2 * ctx->cap_params : 32;
        void *p = realloc(ctx->params, (size_t)cap * sizeof *ctx->params);
        if (!p)
            return fail(err, SR_ERR_NO_MEMORY, "out of memory");
        ctx->params = (device_params *)p;
        ctx->cap_params = cap;
    }
    device_params *d = &ctx->params[ctx->n_params];
    *d = device_params{node, NULL, NULL, NULL, sr_epilogue{}};
    sr_status st = SR_OK;
    switch (node->op) {
    case SR_OP_CONV2D: {
        const sr_conv2d_params *p = &node->p.conv2d;
        st = upload_weight(conv_precision(ctx, p), p->weight, p->c_out * p->c_in * p->k * p->k,
                           &d->weight, err);
        if (st == SR_OK)
            st = upload_copy(p->bias, p->bias ? p->c_out : 0, &d->bias, err);
        if (st == SR_OK)
            st = upload_epilogue(&p->epilogue, &d->epilogue, err);
        break;
    }
    case SR_OP_PRELU:
        st = upload_copy(node->p.prelu.slopes, node->p.prelu.n_slopes, &d->slopes, err);
        break;
    case SR_OP_INSTANCE_NORM:
        st = upload_epilogue(&node->p.instance_norm.epilogue, &d->epilogue, err);
        break;
    default:
        break;
    }
    if (st != SR_OK) { /* nothing kept: the next run tries again */
        cudaFree(d->weight);
        cudaFree(d->bias);
        cudaFree(d->slopes);
        free_epilogue(&d->epilogue);
        return st;
    }
    ctx->n_params++;
    *out = d;
    return SR_OK;
}

/* A convolution's rows (before any shuffle) are made a group at a time,
 * at multiples of the group's height in the image, so every value comes
 * from a GEMM of the same shape whatever band it falls in: cuBLAS picks its
 * kernel, and so its order of summation, by shape. The planner gives bands
 * whole groups (cuda_row_tiling). A group is about GROUP_COLUMNS pixels:
 * GEMMs wide enough to fill a large GPU (4 rows of a 700-pixel image made
 * too few tiles for an H100's 132 SMs), with a workspace that does not
 * grow with the image; and at most MAX_GROUP_ROWS rows, so that bands stay
 * fine-grained where the memory budget is tight. */
static const int64_t GROUP_COLUMNS = 16384, MAX_GROUP_ROWS = 16;

static int64_t group_rows(int64_t width)
{
    const int64_t rows = (GROUP_COLUMNS + width - 1) / width;
    return rows < MAX_GROUP_ROWS ? rows : MAX_GROUP_ROWS;
}

/* A conv's workspace: cuBLAS's (handed to it, so that the plan counts it:
 * the 32 MiB NVIDIA advises for Hopper), the unfolded input, then
 * (256-byte aligned) the GEMM's float output. */
static const int64_t BLAS_WORKSPACE_BYTES = INT64_C(32) << 20;

static int64_t col_bytes(const sr_conv2d_params *p, int64_t width, sr_precision precision)
{
    const int64_t bytes =
        p->c_in * p->k * p->k * group_rows(width) * width * sr_cuda_gemm_bytes(precision);
    return (bytes + 255) / 256 * 256;
}

static int64_t conv_workspace_bytes(const sr_conv2d_params *p, int64_t width,
                                    sr_precision precision)
{
    return BLAS_WORKSPACE_BYTES + col_bytes(p, width, precision) +
           p->c_out * group_rows(width) * width * (int64_t)sizeof(float);
}

/* Row-major gemm[c_out][n] = weight[c_out][K] col[K][n], as column-major
 * gemm^T = col^T weight^T. */
static cublasStatus_t gemm(const cuda_context *ctx, sr_precision precision, int64_t n,
                           int64_t c_out, int64_t K, const void *col, const void *weight,
                           float *out)
{
    const float one = 1.0f, zero = 0.0f;
    /* float32 means float32: no TF32 rounding behind our back. The 16-bit
     * types reach the tensor cores by their types alone. */
    cublasStatus_t st = cublasSetMathMode(
        ctx->blas, precision == SR_PRECISION_FP32   ? CUBLAS_PEDANTIC_MATH
                   : precision == SR_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                    : CUBLAS_DEFAULT_MATH);
    if (st != CUBLAS_STATUS_SUCCESS)
        return st;
    if (sr_cuda_gemm_bytes(precision) == (int64_t)sizeof(float))
        return cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)c_out, (int)K, &one,
                           (const float *)col, (int)n, (const float *)weight, (int)K, &zero, out,
                           (int)n);
    const cudaDataType type = precision == SR_PRECISION_FP16 ? CUDA_R_16F : CUDA_R_16BF;
    return cublasGemmEx(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)n, (int)c_out, (int)K, &one, col,
                        type, (int)n, weight, type, (int)K, &zero, out, CUDA_R_32F, (int)n,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

/* A conv the kernels make straight from its input, without im2col. */
static bool is_direct(const sr_node *node)
{
    return node->op == SR_OP_CONV2D && node->p.conv2d.c_out <= SR_CUDA_DIRECT_OUTPUTS;
}

static sr_status conv2d(cuda_context *ctx, const sr_node *node, const sr_tensor *in,
                        const sr_tensor *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    const device_params *d;
    sr_status st = params_of(ctx, node, &d, err);
    if (st != SR_OK)
        return st;
    if (is_direct(node)) {
        sr_cuda_conv_direct(p, (const float *)d->weight, d->bias, &d->epilogue, in,
                            node->n_inputs, out);
        return launched(node, err);
    }
    /* The groups of the conv's own rows that reach the band. */
    const int64_t r = sr_conv2d_shuffle(p), W = out->shape.w / r, H = out->image_h / r;
    const int64_t group = group_rows(W), cy0 = out->y0 / r / group * group;
    int64_t cy1 = (out->y0 + out->shape.h + r - 1) / r;
    cy1 = (cy1 + group - 1) / group * group;
    cy1 = cy1 < H ? cy1 : H;
    const int64_t K = p->c_in * p->k * p->k;
    const sr_precision precision = conv_precision(ctx, p);
    const void *before = ctx->workspace;
    st = grow(&ctx->workspace, &ctx->workspace_bytes, conv_workspace_bytes(p, W, precision), err);
    if (st != SR_OK)
        return st;
    if (ctx->workspace != before) {
        const cublasStatus_t b = cublasSetWorkspace(ctx->blas, ctx->workspace,
                                                    BLAS_WORKSPACE_BYTES);
        if (b != CUBLAS_STATUS_SUCCESS)
            return fail(err, SR_ERR_DEVICE, "%s: cuBLAS refused its workspace (status %d)",
                        node->name, (int)b);
    }
    void *col = (char *)ctx->workspace + BLAS_WORKSPACE_BYTES;
    float *product = (float *)((char *)col + col_bytes(p, W, precision));
    for (int64_t y = cy0; y < cy1; y += group) {
        const int64_t rows = cy1 - y < group ? cy1 - y : group, n = rows * W;
        sr_cuda_im2col(p, in, node->n_inputs, W, y, rows, precision, col);
        if ((st = launched(node, err)) != SR_OK)
            return st;
        const cublasStatus_t b = gemm(ctx, precision, n, p->c_out, K, col, d->weight, product);
        if (b != CUBLAS_STATUS_SUCCESS)
            return fail(err, SR_ERR_DEVICE, "%s: cuBLAS GEMM failed (status %d)", node->name,
                        (int)b);
        sr_cuda_conv_epilogue(p, d->bias, &d->epilogue, product, y, rows, in, node->n_inputs,
                              out);
        if ((st = launched(node, err)) != SR_OK)
            return st;
    }
    return SR_OK;
}

static sr_status instance_norm(cuda_context *ctx, const sr_node *node, const sr_tensor *in,
                               const sr_tensor *out, const float *stats, sr_error *err)
{
    const device_params *d;
    sr_status st = params_of(ctx, node, &d, err);
    const int64_t n = 2 * out->shape.c;
    if (st == SR_OK)
        st = grow((void **)&ctx->stats, &ctx->stats_bytes, n * (int64_t)sizeof(float), err);
    if (st != SR_OK)
        return st;
    const cudaError_t e =
        cudaMemcpy(ctx->stats, stats, (size_t)n * sizeof(float), cudaMemcpyHostToDevice);
    if (e != cudaSuccess)
        return cuda_fail(err, e, node->name);
    sr_cuda_instance_norm(in, ctx->stats, &d->epilogue, out);
    return launched(node, err);
}

/* The ops cuda_run has kernels for. */
static bool cuda_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    switch (node->op) {
    case SR_OP_CONV2D:
    case SR_OP_INSTANCE_NORM:
    case SR_OP_PRELU:
    case SR_OP_ADD:
    case SR_OP_TANH_AFFINE:
    case SR_OP_PIXEL_SHUFFLE:
    case SR_OP_LEAKY_RELU:
    case SR_OP_CONCAT:
    case SR_OP_UPSAMPLE:
        return true;
    default:
        return false;
    }
}

static int64_t cuda_workspace_bytes(void *ctx, const sr_node *node, sr_shape out)
{
    if (node->op != SR_OP_CONV2D || is_direct(node))
        return 0;
    const sr_conv2d_params *p = &node->p.conv2d;
    return conv_workspace_bytes(p, out.w / sr_conv2d_shuffle(p),
                                conv_precision((const cuda_context *)ctx, p));
}

/* Convolutions through a GEMM in groups of rows before the shuffle; the
 * op's own halo (0 asks for it). */
static sr_row_tiling cuda_row_tiling(void *ctx, const sr_node *node, sr_shape out)
{
    (void)ctx;
    if (node->op != SR_OP_CONV2D || is_direct(node))
        return sr_row_tiling{1, 0};
    const int64_t r = sr_conv2d_shuffle(&node->p.conv2d);
    return sr_row_tiling{(int)(group_rows(out.w / r) * r), 0};
}

static sr_status cuda_run(void *c, const sr_node *node, const sr_tensor *in, sr_tensor *out,
                          const float *stats, sr_error *err)
{
    cuda_context *ctx = (cuda_context *)c;
    const device_params *d;
    sr_status st;
    switch (node->op) {
    case SR_OP_CONV2D:
        return conv2d(ctx, node, in, out, err);
    case SR_OP_INSTANCE_NORM:
        return instance_norm(ctx, node, in, out, stats, err);
    case SR_OP_PRELU:
        if ((st = params_of(ctx, node, &d, err)) != SR_OK)
            return st;
        sr_cuda_prelu(in, d->slopes, node->p.prelu.n_slopes, out);
        break;
    case SR_OP_ADD:
        sr_cuda_add(&in[0], &in[1], node->p.add.scale, out);
        break;
    case SR_OP_TANH_AFFINE:
        sr_cuda_tanh_affine(in, out);
        break;
    case SR_OP_PIXEL_SHUFFLE:
        sr_cuda_pixel_shuffle(in, node->p.pixel_shuffle.r, out);
        break;
    case SR_OP_LEAKY_RELU:
        sr_cuda_leaky_relu(in, node->p.leaky_relu.slope, out);
        break;
    case SR_OP_CONCAT:
        sr_cuda_concat(in, node->n_inputs, out);
        break;
    case SR_OP_UPSAMPLE:
        sr_cuda_upsample(in, &node->p.upsample, out);
        break;
    default:
        return fail(err, SR_ERR_UNSUPPORTED, "%s: no CUDA kernel for this op", node->name);
    }
    return launched(node, err);
}

static void cuda_free(void *c)
{
    cuda_context *ctx = (cuda_context *)c;
    if (!ctx)
        return;
    for (int i = 0; i < ctx->n_params; i++) {
        cudaFree(ctx->params[i].weight);
        cudaFree(ctx->params[i].bias);
        cudaFree(ctx->params[i].slopes);
        free_epilogue(&ctx->params[i].epilogue);
    }
    free(ctx->params);
    cudaFree(ctx->workspace);
    cudaFree(ctx->stats);
    cudaFree(ctx->sums);
    free(ctx->host_sums);
    if (ctx->blas)
        cublasDestroy(ctx->blas);
    free(ctx);
}

/* ---- memory: the executor's buffers, and the data crossing over ---- */

/* Nine tenths of what is free now (0 when the device cannot tell). */
static int64_t cuda_available(void *ctx)
{
    (void)ctx;
    size_t free_bytes = 0, total = 0;
    return cudaMemGetInfo(&free_bytes, &total) == cudaSuccess ? (int64_t)free_bytes / 10 * 9 : 0;
}

static void *cuda_alloc(void *ctx, int64_t bytes)
{
    (void)ctx;
    void *p = NULL;
    if (cudaMalloc(&p, (size_t)bytes) != cudaSuccess) {
        cudaGetLastError(); /* clear it: the executor reports the failure */
        return NULL;
    }
    return p;
}

static void cuda_release(void *ctx, void *p, int64_t bytes)
{
    (void)ctx;
    (void)bytes;
    cudaFree(p);
}

/* release keeps nothing. */
static void cuda_trim(void *ctx) { (void)ctx; }

static sr_status cuda_upload(void *ctx, void *device, const void *host, int64_t bytes,
                             sr_error *err)
{
    (void)ctx;
    const cudaError_t e = cudaMemcpy(device, host, (size_t)bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, "upload");
}

static sr_status cuda_download(void *ctx, void *host, const void *device, int64_t bytes,
                               sr_error *err)
{
    (void)ctx;
    const cudaError_t e = cudaMemcpy(host, device, (size_t)bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, "download");
}

/* Sums per row on the device; added on the host in row order, as the op's
 * own accumulate does, so that the statistics do not depend on the bands. */
static sr_status cuda_accumulate(void *c, const sr_node *node, const sr_tensor *rows, int64_t y0,
                                 int64_t y1, double *acc, sr_error *err)
{
    cuda_context *ctx = (cuda_context *)c;
    const int64_t C = rows->shape.c, H = y1 - y0, n = 2 * C * H;
    if (node->op != SR_OP_INSTANCE_NORM)
        return fail(err, SR_ERR_UNSUPPORTED, "%s: no CUDA statistics for this op", node->name);
    const int64_t bytes = n * (int64_t)sizeof(double);
    if (bytes > ctx->host_sums_bytes) {
        free(ctx->host_sums);
        ctx->host_sums_bytes = 0;
        ctx->host_sums = (double *)malloc((size_t)bytes);
        if (!ctx->host_sums)
            return fail(err, SR_ERR_NO_MEMORY, "out of memory");
        ctx->host_sums_bytes = bytes;
    }
    sr_status st = grow((void **)&ctx->sums, &ctx->sums_bytes, bytes, err);
    if (st != SR_OK)
        return st;
    const sr_tensor band = sr_tensor_rows(rows, y0, y1);
    sr_cuda_row_sums(&band, ctx->sums);
    if ((st = launched(node, err)) != SR_OK)
        return st;
    const cudaError_t e =
        cudaMemcpy(ctx->host_sums, ctx->sums, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return cuda_fail(err, e, node->name);
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t y = 0; y < H; y++) {
            acc[ch] += ctx->host_sums[2 * (ch * H + y)];
            acc[C + ch] += ctx->host_sums[2 * (ch * H + y) + 1];
        }
    return SR_OK;
}

static sr_status cuda_synchronize(void *ctx, sr_error *err)
{
    (void)ctx;
    const cudaError_t e = cudaDeviceSynchronize();
    return e == cudaSuccess ? SR_OK : cuda_fail(err, e, "running");
}

static const sr_backend_memory cuda_memory = {
    false,       cuda_available, cuda_alloc,    cuda_release,
    cuda_trim,   cuda_upload,    cuda_download, cuda_synchronize,
};

static const sr_backend_iface cuda_iface = {
    "cuda",
    cuda_supports_op,
    cuda_workspace_bytes,
    cuda_row_tiling,
    cuda_run,
    cuda_accumulate,
    cuda_free,
    &cuda_memory,
    NULL, /* algorithm: one way per op */
};

/* The module's two entry points, found by name (backends/backend.c): the
 * headers it was built from, checked before anything else, and the opening. */
extern "C" {
sr_cuda_module_abi_fn sr_cuda_module_abi __attribute__((visibility("default")));
sr_cuda_module_open_fn sr_cuda_module_open __attribute__((visibility("default")));
}

uint64_t sr_cuda_module_abi(void)
{
    return sr_backend_abi();
}

sr_status sr_cuda_module_open(sr_precision precision, sr_backend_handle *backend, sr_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        const char *why = e != cudaSuccess ? cudaGetErrorString(e) : "none found";
        cudaGetLastError();
        return fail(err, SR_ERR_UNSUPPORTED, "no CUDA device: %s", why);
    }
    cuda_context *ctx = (cuda_context *)calloc(1, sizeof *ctx);
    if (!ctx)
        return fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (cublasCreate(&ctx->blas) != CUBLAS_STATUS_SUCCESS) {
        free(ctx);
        return fail(err, SR_ERR_DEVICE, "cuBLAS could not start on the CUDA device");
    }
    ctx->precision = precision;
    backend->iface = &cuda_iface;
    backend->ctx = ctx;
    return SR_OK;
}
