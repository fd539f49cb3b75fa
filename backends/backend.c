/* What every backend handle shares: its release. */
#include "backends/backend.h"

void sr_backend_free(sr_backend_handle *backend)
{
    if (backend->iface)
        backend->iface->free(backend->ctx);
    backend->iface = NULL;
    backend->ctx = NULL;
}
