/* Graph storage and the per-image passes over it: shapes and FLOPs. */
#include "runtime/graph.h"

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
