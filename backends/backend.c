/* What every backend handle shares: defaults and the release; and the
 * loading of the CUDA backend's module. */
#define _POSIX_C_SOURCE 200809L /* dlopen, access */
#include "backends/backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

sr_row_tiling sr_row_tiling_plain(const sr_node *node)
{
    return (sr_row_tiling){1, sr_op_get(node->op)->halo(node)};
}

sr_row_tiling sr_backend_row_tiling(const sr_backend_handle *backend, const sr_node *node)
{
    const sr_row_tiling plain = sr_row_tiling_plain(node);
    if (!backend || !backend->iface->row_tiling)
        return plain;
    sr_row_tiling t = backend->iface->row_tiling(backend->ctx, node);
    t.halo = t.halo > plain.halo ? t.halo : plain.halo; /* at least the op's */
    return t;
}

void sr_backend_free(sr_backend_handle *backend)
{
    if (backend->iface)
        backend->iface->free(backend->ctx);
    backend->iface = NULL;
    backend->ctx = NULL;
}

/* The CUDA backend is a module of its own (libsrrun_cuda.so), loaded when a
 * session asks for it: linked into the library, cuBLAS would cost every run
 * 70 ms and 210 MB of memory before its first pixel, CUDA or not, and a
 * program built with CUDA could not start on a machine without it. The
 * module stays loaded: the CUDA runtime is not made to be unloaded. */
sr_status sr_cuda_backend_new(sr_backend_handle *backend, sr_error *err)
{
#ifndef SR_CUDA_MODULE_PATHS
    (void)backend;
    return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: this srrun was built without nvcc");
#else
    char why[512] = "";
    const char *path = SR_CUDA_MODULE_PATHS; /* colon-separated */
    void *module = NULL;
    while (!module && *path) {
        const size_t n = strcspn(path, ":");
        char file[1024];
        snprintf(file, sizeof file, "%.*s", (int)n, path);
        module = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        /* The first failure, unless a module that is there fails later. */
        if (!module && (why[0] == '\0' || access(file, F_OK) == 0))
            snprintf(why, sizeof why, "%s", dlerror());
        path += n + (path[n] == ':');
    }
    if (!module)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: %s", why);
    sr_status (*open)(sr_backend_handle *, sr_error *);
    *(void **)&open = dlsym(module, "sr_cuda_module_open");
    if (!open)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: %s", dlerror());
    sr_status st = open(backend, err);
    if (st == SR_OK && backend->iface->api_version != SR_BACKEND_API_VERSION) {
        sr_backend_free(backend);
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "no CUDA backend: its module is from another version of srrun");
    }
    return st;
#endif
}
