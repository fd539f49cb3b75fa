/* The reference backend: every node through its op's plain kernel. */
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
    (void)ctx;
}

static const sr_backend_iface reference_iface = {
    .api_version = SR_BACKEND_API_VERSION,
    .name = "reference",
    .supports_op = reference_supports_op,
    .workspace_bytes = reference_workspace_bytes,
    .run = reference_run,
    .free = reference_free,
};

sr_status sr_reference_backend_new(sr_backend_handle *backend, sr_error *err)
{
    (void)err;
    backend->iface = &reference_iface;
    backend->ctx = NULL;
    return SR_OK;
}
