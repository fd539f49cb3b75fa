/* What every backend handle shares: defaults and the release. */
#include "backends/backend.h"

sr_row_tiling sr_row_tiling_plain(const sr_node *node)
{
    return (sr_row_tiling){1, sr_op_get(node->op)->halo(node)};
}

sr_row_tiling sr_backend_row_tiling(const sr_backend_handle *backend, const sr_node *node)
{
    if (backend && backend->iface->row_tiling)
        return backend->iface->row_tiling(backend->ctx, node);
    return sr_row_tiling_plain(node);
}

void sr_backend_free(sr_backend_handle *backend)
{
    if (backend->iface)
        backend->iface->free(backend->ctx);
    backend->iface = NULL;
    backend->ctx = NULL;
}
