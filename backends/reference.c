/* The reference backend: every node through its op's plain kernel, on
 * host memory (its context is only sr_host_memory's). */
#include <stdlib.h>

#include "backends/backend.h"

static bool reference_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    return sr_op_get(node->op)->reference != NULL;
}

static int64_t reference_workspace_bytes(void *ctx, const sr_node *node, sr_shape out)
{
    (void)ctx;
    (void)node;
    (void)out;
    return 0;
}

static sr_status reference_run(void *ctx, const sr_node *node, const sr_tensor *in,
                               sr_tensor *out, const float *stats, sr_error *err)
{
    (void)ctx;
    (void)err;
    sr_op_get(node->op)->reference(node, in, out, stats);
    return SR_OK;
}

static void reference_free(void *ctx)
{
    sr_host_context *c = ctx;
    if (c)
        sr_page_pool_drain(&c->pool);
    free(c);
}

static const sr_backend_iface reference_iface = {
    .name = "reference",
    .supports_op = reference_supports_op,
    .workspace_bytes = reference_workspace_bytes,
    .run = reference_run,
    .accumulate = sr_host_accumulate,
    .free = reference_free,
    .memory = &sr_host_memory,
};

sr_status sr_reference_backend_new(sr_backend_handle *backend, sr_error *err)
{
    sr_host_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    backend->iface = &reference_iface;
    backend->ctx = ctx;
    return SR_OK;
}
