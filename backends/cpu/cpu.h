/* The CPU backend's context and its kernels, one per op it speeds up; ops
 * it does not speed up run through their reference kernels, in parallel
 * over rows. */
#ifndef SR_BACKENDS_CPU_CPU_H
#define SR_BACKENDS_CPU_CPU_H

#include "backends/backend.h"

typedef struct sr_cpu_context {
    sr_host_context host; /* first: sr_host_memory's */
    int n_threads;
    float *workspace; /* reused between nodes; grows to the largest need */
    int64_t workspace_size;
} sr_cpu_context;

/* Returns a workspace of at least n floats, or NULL. */
float *sr_cpu_workspace(sr_cpu_context *ctx, int64_t n);

sr_status sr_cpu_conv2d(sr_cpu_context *ctx, const sr_node *node,
                        const sr_tensor *in, sr_tensor *out, sr_error *err);
int64_t sr_cpu_conv2d_workspace_bytes(const sr_cpu_context *ctx, const sr_node *node,
                                      sr_shape out);
sr_row_tiling sr_cpu_conv2d_row_tiling(const sr_node *node);

/* Applies the folded PReLU, if any, to n outputs of channel co. */
void sr_cpu_conv2d_prelu(const sr_conv2d_params *p, int64_t co, float *o, int64_t n);

/* Winograd F(4x4, 3x3) (winograd.c): its output rows come in groups of 4
 * aligned in the image, so its inputs must cover whole groups. */
bool sr_cpu_winograd_applies(const sr_conv2d_params *p);
int64_t sr_cpu_winograd_workspace_floats(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                         int64_t width);
sr_status sr_cpu_winograd(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                          sr_tensor *out, sr_error *err);

/* The same for k = 3 q kernels with few outputs, split into 3x3 pieces:
 * its tiles read sr_cpu_winograd_split_halo input rows beyond their own. */
bool sr_cpu_winograd_split_applies(const sr_conv2d_params *p);
int sr_cpu_winograd_split_halo(const sr_conv2d_params *p);
int64_t sr_cpu_winograd_split_workspace_floats(const sr_cpu_context *ctx,
                                               const sr_conv2d_params *p, int64_t width);
sr_status sr_cpu_winograd_split(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                                sr_tensor *out, sr_error *err);

#endif
