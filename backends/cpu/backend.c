/* The CPU backend's interface table, context and workspace. */
#include <omp.h>
#include <stdlib.h>

#include "backends/cpu/cpu.h"
#include "base/pages.h"

float *sr_cpu_workspace(sr_cpu_context *ctx, int64_t n)
{
    if (n > ctx->workspace_size) {
        sr_pages_free(ctx->workspace, ctx->workspace_size * (int64_t)sizeof(float));
        ctx->workspace = sr_pages_alloc(n * (int64_t)sizeof(float));
        ctx->workspace_size = ctx->workspace ? n : 0;
    }
    return ctx->workspace;
}

static bool cpu_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    return sr_op_get(node->op)->reference != NULL;
}

static int64_t cpu_workspace_bytes(void *ctx, const sr_node *node, sr_shape out)
{
    return node->op == SR_OP_CONV2D ? sr_cpu_conv2d_workspace_bytes(ctx, node, out) : 0;
}

static sr_row_tiling cpu_row_tiling(void *ctx, const sr_node *node, sr_shape out)
{
    (void)out;
    if (node->op == SR_OP_CONV2D)
        return sr_cpu_conv2d_row_tiling(ctx, node);
    return sr_row_tiling_plain(node);
}

/* The other ops are light and memory-bound: a kernel with the reference's
 * signature (theirs, or tanh_affine's), each thread on its own rows of the
 * band (kernels take any band, and an op that writes over its input reads
 * only the rows it writes). */
static void by_rows(const sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                    sr_tensor *out, const float *stats,
                    void (*kernel)(const sr_node *, const sr_tensor *, sr_tensor *,
                                   const float *))
{
    const int n = ctx->n_threads;
    const int64_t rows = out->shape.h;
#pragma omp parallel for num_threads(n) schedule(static)
    for (int t = 0; t < n; t++) {
        const int64_t a = out->y0 + rows * t / n, b = out->y0 + rows * (t + 1) / n;
        if (a < b) {
            sr_tensor part = sr_tensor_rows(out, a, b);
            kernel(node, in, &part, stats);
        }
    }
}

static sr_status cpu_run(void *ctx, const sr_node *node, const sr_tensor *in,
                         sr_tensor *out, const float *stats, sr_error *err)
{
    if (node->op == SR_OP_CONV2D)
        return sr_cpu_conv2d(ctx, node, in, out, err);
    by_rows(ctx, node, in, out, stats,
            node->op == SR_OP_TANH_AFFINE ? sr_cpu_tanh_affine : sr_op_get(node->op)->reference);
    return SR_OK;
}

static void cpu_free(void *ctx)
{
    sr_cpu_context *c = ctx;
    if (c) {
        sr_pages_free(c->workspace, c->workspace_size * (int64_t)sizeof(float));
        sr_page_pool_drain(&c->host.pool);
    }
    free(c);
}

static const char *cpu_algorithm(void *ctx, const sr_node *node)
{
    return node->op == SR_OP_CONV2D ? sr_cpu_conv2d_select(ctx, &node->p.conv2d)->name : NULL;
}

static const sr_backend_iface cpu_iface = {
    .name = "cpu",
    .supports_op = cpu_supports_op,
    .workspace_bytes = cpu_workspace_bytes,
    .row_tiling = cpu_row_tiling,
    .run = cpu_run,
    .accumulate = sr_host_accumulate,
    .free = cpu_free,
    .memory = &sr_host_memory,
    .algorithm = cpu_algorithm,
};

sr_status sr_cpu_backend_new(int n_threads, sr_backend_handle *backend, sr_error *err)
{
    sr_cpu_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    ctx->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs();
    ctx->small_gemm = sr_cpu_small_gemm_best();
    backend->iface = &cpu_iface;
    backend->ctx = ctx;
    return SR_OK;
}
