/* What every backend handle shares: defaults, host memory and the
 * release; and the loading of the CUDA backend's module. */
#define _POSIX_C_SOURCE 200809L /* access, sysconf */
#include "backends/backend.h"

#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "base/locate.h"

sr_row_tiling sr_row_tiling_plain(const sr_node *node)
{
    return (sr_row_tiling){1, sr_op_get(node->op)->halo(node)};
}

sr_row_tiling sr_backend_row_tiling(const sr_backend_handle *backend, const sr_node *node,
                                    sr_shape out)
{
    const sr_row_tiling plain = sr_row_tiling_plain(node);
    if (!backend || !backend->iface->row_tiling)
        return plain;
    sr_row_tiling t = backend->iface->row_tiling(backend->ctx, node, out);
    t.halo = t.halo > plain.halo ? t.halo : plain.halo; /* at least the op's */
    t.align = t.align > 1 ? t.align : 1;                 /* 0: none, as 1 */
    return t;
}

/* ---- host memory ---- */

static int64_t host_available(void *ctx)
{
    (void)ctx;
    const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    const int64_t physical = pages > 0 && size > 0 ? (int64_t)pages * size : INT64_C(4) << 30;
    return physical / 4 * 3;
}

/* A buffer the last stage gave back, else new pages. Taken in the order a
 * stage asks (largest first), the pool's pages serve before any new ones
 * are mapped. */
static void *host_alloc(void *ctx, int64_t bytes)
{
    void *p = sr_page_pool_take(&((sr_host_context *)ctx)->pool, bytes);
    return p ? p : sr_pages_alloc(bytes);
}

static void host_release(void *ctx, void *p, int64_t bytes)
{
    sr_page_pool_put(&((sr_host_context *)ctx)->pool, p, bytes);
}

static void host_trim(void *ctx) { sr_page_pool_drain(&((sr_host_context *)ctx)->pool); }

static sr_status host_copy(void *ctx, void *to, const void *from, int64_t bytes, sr_error *err)
{
    (void)ctx;
    (void)err;
    memcpy(to, from, (size_t)bytes);
    return SR_OK;
}

static sr_status host_synchronize(void *ctx, sr_error *err)
{
    (void)ctx;
    (void)err;
    return SR_OK;
}

const sr_backend_memory sr_host_memory = {
    .is_host = true,
    .available = host_available,
    .alloc = host_alloc,
    .release = host_release,
    .trim = host_trim,
    .upload = host_copy,
    .download = host_copy,
    .synchronize = host_synchronize,
};

sr_status sr_host_accumulate(void *ctx, const sr_node *node, const sr_tensor *rows, int64_t y0,
                             int64_t y1, double *acc, sr_error *err)
{
    (void)ctx;
    (void)err;
    sr_op_get(node->op)->accumulate(node, rows, y0, y1, acc);
    return SR_OK;
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
 * program built with CUDA could not start on a machine without it. It is
 * found next to the library's code (base/locate.h), so the build tree's
 * programs load the build tree's module and an install's its own, wherever
 * it was moved. The module stays loaded: the CUDA runtime is not made to be
 * unloaded. */
#ifdef SR_HAVE_CUDA
/* Whether the NVIDIA driver is there and sees a GPU, asked of the driver
 * itself (libcuda, which comes with the driver) before the module is
 * loaded: the module brings cuBLAS in, which a machine without a GPU should
 * not pay for when `auto` looks. The driver stays loaded, as the
 * module would load it again. */
static sr_status find_device(sr_error *err)
{
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!driver)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA device: no NVIDIA driver (libcuda.so.1)");
    int (*init)(unsigned);
    int (*count)(int *);
    *(void **)&init = dlsym(driver, "cuInit");
    *(void **)&count = dlsym(driver, "cuDeviceGetCount");
    int (*error_name)(int, const char **);
    *(void **)&error_name = dlsym(driver, "cuGetErrorName");
    int n = 0, e = init && count ? init(0) : -1;
    if (e == 0)
        e = count(&n);
    const char *name = NULL;
    if (e != 0 && error_name && error_name(e, &name) == 0 && name)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA device: the NVIDIA driver failed: %s",
                       name);
    if (e != 0)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "no CUDA device: the NVIDIA driver failed (CUresult %d)", e);
    if (n == 0)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA device: the NVIDIA driver sees none");
    return SR_OK;
}
#endif

sr_status sr_cuda_backend_new(sr_precision precision, sr_backend_handle *backend, sr_error *err)
{
#ifndef SR_HAVE_CUDA
    (void)precision;
    (void)backend;
    return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: this srrun was built without nvcc");
#else
    sr_status st = find_device(err);
    if (st != SR_OK)
        return st;
    sr_locations files;
    st = sr_locate_cuda_module(&files, err);
    if (st != SR_OK)
        return st;
    int i = 0;
    while (i < files.n_paths && access(files.paths[i], F_OK) != 0)
        i++;
    if (i == files.n_paths)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: no module at %s%s%s",
                       files.paths[0], files.n_paths > 1 ? " or " : "",
                       files.n_paths > 1 ? files.paths[1] : "");
    const char *file = files.paths[i];
    void *module = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!module)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "no CUDA backend: %s", dlerror());
    sr_cuda_module_abi_fn *abi;
    sr_cuda_module_open_fn *open;
    *(void **)&abi = dlsym(module, "sr_cuda_module_abi");
    *(void **)&open = dlsym(module, "sr_cuda_module_open");
    /* A mismatched module stays loaded too: what it brought in (the CUDA
     * runtime, libstdc++) does not unload cleanly. */
    if (!abi || !open || abi() != sr_backend_abi())
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "no CUDA backend: %s is from another build of srrun", file);
    return open(precision, backend, err);
#endif
}
