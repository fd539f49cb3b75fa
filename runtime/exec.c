/* The executor: shapes, then nodes in order on the backend, each buffer
 * released after its last reader. It owns no policy on where work runs
 * (the backend) or how memory is bounded (the planner, to come). */
#include "runtime/exec.h"

#include <stdlib.h>

static int64_t checked_bytes(sr_shape s)
{
    const int64_t limit = INT64_MAX / (int64_t)sizeof(float);
    if (s.c <= 0 || s.h <= 0 || s.w <= 0 || s.c > limit / s.h || s.c * s.h > limit / s.w)
        return -1;
    return sr_shape_numel(s) * (int64_t)sizeof(float);
}

sr_status sr_graph_run(const sr_graph *g, const sr_backend_handle *backend,
                       const sr_tensor *input, sr_tensor *output,
                       sr_exec_progress progress, sr_error *err)
{
    const int n = g->n_nodes;
    sr_shape *shapes = calloc((size_t)n, sizeof *shapes);
    int *last_use = calloc((size_t)n, sizeof *last_use);
    int64_t *flops = calloc((size_t)n, sizeof *flops);
    sr_tensor *values = calloc((size_t)n, sizeof *values);
    sr_status st = SR_OK;
    if (!shapes || !last_use || !flops || !values) {
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        goto done;
    }
    st = sr_graph_shapes(g, input->shape, shapes, err);
    if (st != SR_OK)
        goto done;
    const int64_t total_flops = sr_graph_flops(g, shapes, flops);
    for (int i = 0; i < n; i++) {
        last_use[i] = i == n - 1 ? n : i;
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            last_use[g->nodes[i].inputs[j]] = i;
    }

    int64_t done_flops = 0;
    for (int i = 0; i < n; i++) {
        const sr_node *node = &g->nodes[i];
        if (node->op == SR_OP_INPUT) {
            values[i] = *input;
            continue;
        }
        sr_tensor in[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < node->n_inputs; j++)
            in[j] = values[node->inputs[j]];
        const int first = node->inputs[0];
        sr_tensor out = {shapes[i], NULL};
        if (sr_op_get(node->op)->in_place && last_use[first] == i &&
            g->nodes[first].op != SR_OP_INPUT) {
            out.data = values[first].data; /* write over the dying input */
            values[first].data = NULL;
        } else {
            const int64_t bytes = checked_bytes(shapes[i]);
            out.data = bytes < 0 ? NULL : malloc((size_t)bytes);
            if (!out.data) {
                st = sr_fail(err, SR_ERR_NO_MEMORY, "%s: out of memory for a %lldx%lldx%lld tensor",
                             node->name, (long long)shapes[i].c, (long long)shapes[i].h,
                             (long long)shapes[i].w);
                goto done;
            }
        }
        values[i] = out;
        st = backend->iface->run(backend->ctx, node, in, &values[i], err);
        if (st != SR_OK)
            goto done;
        for (int j = 0; j < node->n_inputs; j++) {
            const int src = node->inputs[j];
            if (last_use[src] == i && g->nodes[src].op != SR_OP_INPUT) {
                free(values[src].data);
                values[src].data = NULL;
            }
        }
        done_flops += flops[i];
        if (progress.fn && progress.fn(progress.user, total_flops ? (double)done_flops / (double)total_flops : 1.0)) {
            st = sr_fail(err, SR_ERR_CANCELLED, "cancelled");
            goto done;
        }
    }
    *output = values[n - 1];
    values[n - 1].data = NULL;

done:
    if (values)
        for (int i = 0; i < n; i++)
            if (g->nodes[i].op != SR_OP_INPUT)
                free(values[i].data);
    free(values);
    free(flops);
    free(last_use);
    free(shapes);
    return st;
}
