/* The seam between the executor and the hardware: a backend is a table of
 * functions and a context. Backends run nodes on tensors they are given;
 * they never parse files and never see the graph as a whole. */
#ifndef SR_BACKENDS_BACKEND_H
#define SR_BACKENDS_BACKEND_H

#include <stdbool.h>

#include "ops/op.h"

#include "base/pages.h"

#define SR_BACKEND_API_VERSION 6

/* How a kernel makes output rows: in groups of `align` rows starting at
 * multiples of align (tiles at fixed image places), each group reading
 * `halo` input rows beyond its own (at least the op's halo). The planner
 * gives every band the inputs of the whole groups its rows touch, so a
 * value is computed the same way whatever band it falls in. */
typedef struct sr_row_tiling {
    int align, halo;
} sr_row_tiling;

/* The memory a backend's kernels read and write. Every tensor that run is
 * given lives in memory from alloc, and data crosses only at the ends: the
 * input is uploaded once, the output's rows are downloaded band by band.
 * run may return before its work is done; download and accumulate see the
 * work of every run before them. Host backends use sr_host_memory. */
typedef struct sr_backend_memory {
    /* The process's own memory (upload and download copy within it): the
     * budget is then shared with the program and the caller's images. */
    bool is_host;
    /* Bytes a run may use when the caller sets no budget. */
    int64_t (*available)(void *ctx);
    void *(*alloc)(void *ctx, int64_t bytes); /* NULL when out of memory */
    /* The run is done with p; the memory may keep it for the next allocs. */
    void (*release)(void *ctx, void *p, int64_t bytes);
    /* Gives back what release kept and alloc did not take again: once a
     * stage has its buffers, and at the end of a run. */
    void (*trim)(void *ctx);
    sr_status (*upload)(void *ctx, void *device, const void *host, int64_t bytes,
                        sr_error *err);
    sr_status (*download)(void *ctx, void *host, const void *device, int64_t bytes,
                          sr_error *err);
    /* Waits until the work run queued is done (for timing each node), and
     * reports its failure. */
    sr_status (*synchronize)(void *ctx, sr_error *err);
} sr_backend_memory;

typedef struct sr_backend_iface {
    const char *name;
    /* Whether run can compute the node; a session refuses a graph with a
     * node its backend cannot. */
    bool (*supports_op)(void *ctx, const sr_node *node);
    /* Scratch memory run needs for an output band of this shape; the
     * planner counts it, the backend owns it. */
    int64_t (*workspace_bytes)(void *ctx, const sr_node *node, sr_shape out);
    /* Optional (NULL: rows one by one, the op's halo), for an output of
     * this shape (the whole image's). A halo below the op's (0, say)
     * counts as the op's. */
    sr_row_tiling (*row_tiling)(void *ctx, const sr_node *node, sr_shape out);
    /* in: the node's inputs in order; out: the band to compute, allocated
     * by the caller (see ops/op.h for bands); stats: a global op's. */
    sr_status (*run)(void *ctx, const sr_node *node, const sr_tensor *in,
                     sr_tensor *out, const float *stats, sr_error *err);
    /* A global op's accumulate (ops/op.h) on rows in this backend's
     * memory; host backends use sr_host_accumulate. */
    sr_status (*accumulate)(void *ctx, const sr_node *node, const sr_tensor *rows, int64_t y0,
                            int64_t y1, double *acc, sr_error *err);
    void (*free)(void *ctx);
    const sr_backend_memory *memory;
    /* Optional (NULL: not said): the name of the way run computes node,
     * e.g. a convolution algorithm, for --stats. */
    const char *(*algorithm)(void *ctx, const sr_node *node);
} sr_backend_iface;

/* What sr_host_memory keeps: the pool through which one stage of a run
 * hands the pages it is done with to the next. A host backend's context
 * begins with one, where sr_host_memory's functions find it. */
typedef struct sr_host_context {
    sr_page_pool pool;
} sr_host_context;

/* Host memory: mapped pages (base/pages.h), reused from stage to stage;
 * upload and download copy. A run may use three quarters of the machine's
 * memory by default. */

extern const sr_backend_memory sr_host_memory;

/* The op's own accumulate, on host memory. */
sr_status sr_host_accumulate(void *ctx, const sr_node *node, const sr_tensor *rows, int64_t y0,
                             int64_t y1, double *acc, sr_error *err);

/* What a backend built as a module (CUDA's) must agree on with the library
 * that loads it: the interface's version, the library's, and the sizes of
 * the structures they share. Both sides compute it from these headers. */
static inline uint64_t sr_backend_abi(void)
{
    return (uint64_t)SR_BACKEND_API_VERSION << 56 ^ (uint64_t)SR_VERSION_MAJOR << 48 ^
           (uint64_t)SR_VERSION_MINOR << 40 ^ (uint64_t)sizeof(sr_backend_iface) << 32 ^
           (uint64_t)sizeof(sr_backend_memory) << 24 ^ (uint64_t)sizeof(sr_node) << 12 ^
           (uint64_t)sizeof(sr_tensor) << 6 ^ (uint64_t)sizeof(sr_conv2d_params);
}

typedef struct sr_backend_handle {
    const sr_backend_iface *iface;
    void *ctx;
} sr_backend_handle;

/* An NVIDIA GPU through the CUDA runtime and cuBLAS: the first device,
 * its matrix products at the given precision. Fails with one line
 * (SR_ERR_UNSUPPORTED) in a build without CUDA or on a machine without a
 * usable device. */
sr_status sr_cuda_backend_new(sr_precision precision, sr_backend_handle *backend, sr_error *err);

/* The CUDA module's entry points (backends/cuda/backend.cu), which
 * sr_cuda_backend_new finds by name: the ABI it was built for, checked
 * first, and the opening. */
typedef uint64_t sr_cuda_module_abi_fn(void);
typedef sr_status sr_cuda_module_open_fn(sr_precision precision, sr_backend_handle *backend,
                                         sr_error *err);

/* The plain kernels of ops/, single-threaded: the oracle. */
sr_status sr_reference_backend_new(sr_backend_handle *backend, sr_error *err);

/* OpenBLAS + OpenMP; n_threads 0 means all cores. */
sr_status sr_cpu_backend_new(int n_threads, sr_backend_handle *backend, sr_error *err);

/* Rows one by one, reading the op's halo: the tiling of a plain kernel. */
sr_row_tiling sr_row_tiling_plain(const sr_node *node);

/* The backend's row tiling of node (out: its output's shape), or the
 * plain one. */
sr_row_tiling sr_backend_row_tiling(const sr_backend_handle *backend, const sr_node *node,
                                    sr_shape out);

void sr_backend_free(sr_backend_handle *backend);

#endif
