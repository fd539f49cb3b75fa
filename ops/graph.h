/* A network as a list of nodes in execution order; each node's inputs are
 * earlier nodes, node 0 is the image and the last node is the output.
 * Immutable once built: shapes depend on the image and live outside. */
#ifndef SR_OPS_GRAPH_H
#define SR_OPS_GRAPH_H

#include "ops/op.h"

typedef struct sr_graph {
    sr_node *nodes;
    int n_nodes, capacity;
    /* Parameters a builder derived from the file's (a weight rescaled, say),
     * which nodes view like the file's own: the graph owns them. */
    float **constants;
    int n_constants;
} sr_graph;

/* Appends a copy of node and returns its index, or -1 (err set). */
int sr_graph_add(sr_graph *g, const sr_node *node, sr_error *err);

/* n floats, zeroed, that live as long as the graph; NULL (err set) when out
 * of memory. */
float *sr_graph_constants(sr_graph *g, int64_t n, sr_error *err);

void sr_graph_free(sr_graph *g);

/* Every node's output shape for an input image of `input` (3 x H x W);
 * the input node's is what it makes of the image (sr_input_shape), and an
 * unshuffled input's padding stays in every shape after it. */
sr_status sr_graph_shapes(const sr_graph *g, sr_shape input, sr_shape *shapes,
                          sr_error *err);

/* Folds each PReLU, LeakyReLU and pixel shuffle into the epilogue (ops/op.h) of the
 * convolution or InstanceNorm that feeds it, when nothing else reads that
 * (or the node it folded into), in graph order and while the epilogue has
 * room: a shuffle into a convolution only, once, and after a shuffle only
 * a shared slope (the per-channel slopes go by the shuffled channels). The
 * same float operations happen in the same order, so results do not
 * change; passes over the largest tensors go. Then each residual add
 * x + s conv(x, ...) folds into the conv's epilogue: the conv adds its
 * input's first channels where it writes. Then each nearest upsample
 * that one conv alone reads folds into it (ops/op.h, sr_conv2d_params):
 * the conv reads the smaller tensor. Then each concatenation that
 * only convolutions read (RRDB's dense blocks) folds into them: they read
 * its inputs' channels in order, and the copy goes. Returns how many
 * nodes folded, or -1. */
int sr_graph_fuse(sr_graph *g, sr_error *err);

/* FLOPs of each node (may be NULL) and in total, for the given shapes. */
int64_t sr_graph_flops(const sr_graph *g, const sr_shape *shapes, int64_t *per_node);

#endif
