/* Graph storage and the per-image passes over it: shapes and FLOPs. */
#include "ops/graph.h"

#include <stdlib.h>

int sr_graph_add(sr_graph *g, const sr_node *node, sr_error *err)
{
    if (g->n_nodes == g->capacity) {
        int cap = g->capacity ? 2 * g->capacity : 32;
        sr_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) {
            sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
            return -1;
        }
        g->nodes = nodes;
        g->capacity = cap;
    }
    g->nodes[g->n_nodes] = *node;
    return g->n_nodes++;
}

void sr_graph_free(sr_graph *g)
{
    free(g->nodes);
    *g = (sr_graph){0};
}

sr_status sr_graph_shapes(const sr_graph *g, sr_shape input, sr_shape *shapes,
                          sr_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const sr_node *node = &g->nodes[i];
        if (node->op == SR_OP_INPUT) {
            shapes[i] = input;
            continue;
        }
        sr_shape in[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < node->n_inputs; j++)
            in[j] = shapes[node->inputs[j]];
        sr_status st = sr_op_get(node->op)->shape(node, in, &shapes[i], err);
        if (st != SR_OK)
            return st;
    }
    return SR_OK;
}

int64_t sr_graph_flops(const sr_graph *g, const sr_shape *shapes, int64_t *per_node)
{
    int64_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const sr_op_desc *d = sr_op_get(g->nodes[i].op);
        int64_t f = d->flops ? d->flops(&g->nodes[i], shapes[i]) : 0;
        if (per_node)
            per_node[i] = f;
        total += f;
    }
    return total;
}

/* The node a PReLU at node i can fold into (a convolution or an
 * InstanceNorm that nothing else reads), or -1. */
static int fold_target(const sr_graph *g, const int *readers, int i)
{
    const sr_node *prelu = &g->nodes[i];
    int src = prelu->inputs[0];
    if (readers[src] != 1)
        return -1;
    if (g->nodes[src].op == SR_OP_INSTANCE_NORM)
        return g->nodes[src].p.instance_norm.n_slopes == 0 ? src : -1;
    if (g->nodes[src].op == SR_OP_PIXEL_SHUFFLE && prelu->p.prelu.n_slopes == 1) {
        src = g->nodes[src].inputs[0];
        if (readers[src] != 1)
            return -1;
    }
    const sr_node *conv = &g->nodes[src];
    if (conv->op != SR_OP_CONV2D || conv->p.conv2d.n_slopes != 0)
        return -1;
    /* A conv with a shuffle folded in takes a PReLU after it only when
     * the slope is shared: its slopes go by the channels before the shuffle. */
    return conv->p.conv2d.shuffle <= 1 || prelu->p.prelu.n_slopes == 1 ? src : -1;
}

int sr_graph_fuse(sr_graph *g, sr_error *err)
{
    const int n = g->n_nodes;
    int *readers = calloc((size_t)n, sizeof *readers);
    int *index = malloc((size_t)n * sizeof *index); /* old node -> new */
    if (!readers || !index) {
        free(readers);
        free(index);
        sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            readers[g->nodes[i].inputs[j]]++;
    /* PReLUs first: fold_target looks through the shuffles folded next. */
    int kept = 0, folded = 0;
    for (int i = 0; i < n - 1; i++) {
        sr_node *node = &g->nodes[i];
        const int into = node->op == SR_OP_PRELU ? fold_target(g, readers, i) : -1;
        if (into < 0)
            continue;
        sr_node *target = &g->nodes[into];
        if (target->op == SR_OP_CONV2D) {
            target->p.conv2d.n_slopes = node->p.prelu.n_slopes;
            target->p.conv2d.slopes = node->p.prelu.slopes;
        } else {
            target->p.instance_norm.n_slopes = node->p.prelu.n_slopes;
            target->p.instance_norm.slopes = node->p.prelu.slopes;
        }
        node->op = SR_OP_COUNT; /* gone: its readers read its input */
        folded++;
    }
    for (int i = 0; i < n - 1; i++) {
        sr_node *node = &g->nodes[i];
        const int src = node->inputs[0];
        if (node->op == SR_OP_PIXEL_SHUFFLE && readers[src] == 1 &&
            g->nodes[src].op == SR_OP_CONV2D && g->nodes[src].p.conv2d.shuffle == 0) {
            g->nodes[src].p.conv2d.shuffle = node->p.pixel_shuffle.r;
            node->op = SR_OP_COUNT;
            folded++;
        }
    }
    for (int i = 0; i < n; i++) {
        sr_node node = g->nodes[i];
        for (int j = 0; j < node.n_inputs; j++)
            node.inputs[j] = index[node.inputs[j]];
        if (node.op == SR_OP_COUNT) {
            index[i] = node.inputs[0];
            continue;
        }
        index[i] = kept;
        g->nodes[kept++] = node;
    }
    g->n_nodes = kept;
    free(readers);
    free(index);
    return folded;
}
