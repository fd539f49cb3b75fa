/* The CPU backend's interface table, context and workspace. */
#include <omp.h>
#include <stdlib.h>

#include "backends/cpu/cpu.h"

float *sr_cpu_workspace(sr_cpu_context *ctx, int64_t n)
{
    if (n > ctx->workspace_size) {
        free(ctx->workspace);
        ctx->workspace = malloc((size_t)n * sizeof(float));
        ctx->workspace_size = ctx->workspace ? n : 0;
    }
    return ctx->workspace;
}

static bool cpu_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    return sr_op_get(node->op)->reference != NULL;
}

static sr_status cpu_run(void *ctx, const sr_node *node, const sr_tensor *in,
                         sr_tensor *out, sr_error *err)
{
    if (node->op == SR_OP_CONV2D)
        return sr_cpu_conv2d(ctx, node, in, out, err);
    sr_op_get(node->op)->reference(node, in, out);
    return SR_OK;
}

static void cpu_free(void *ctx)
{
    sr_cpu_context *c = ctx;
    if (c)
        free(c->workspace);
    free(c);
}

static const sr_backend_iface cpu_iface = {
    .api_version = SR_BACKEND_API_VERSION,
    .name = "cpu",
    .supports_op = cpu_supports_op,
    .run = cpu_run,
    .free = cpu_free,
};

sr_status sr_cpu_backend_new(int n_threads, sr_backend_handle *backend, sr_error *err)
{
    sr_cpu_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    ctx->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs();
    backend->iface = &cpu_iface;
    backend->ctx = ctx;
    return SR_OK;
}
