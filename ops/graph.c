/* Graph storage (nodes and the constants builders derive), the per-image
 * passes over it (shapes, FLOPs) and fusion. */
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

float *sr_graph_constants(sr_graph *g, int64_t n, sr_error *err)
{
    float **list = realloc(g->constants, (size_t)(g->n_constants + 1) * sizeof *list);
    float *data = n > 0 && (uint64_t)n <= SIZE_MAX / sizeof(float) ? calloc((size_t)n, sizeof(float))
                                                                   : NULL;
    if (list)
        g->constants = list;
    if (!list || !data) {
        free(data);
        sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    return g->constants[g->n_constants++] = data;
}

void sr_graph_free(sr_graph *g)
{
    for (int i = 0; i < g->n_constants; i++)
        free(g->constants[i]);
    free(g->constants);
    free(g->nodes);
    *g = (sr_graph){0};
}

sr_status sr_graph_shapes(const sr_graph *g, sr_shape input, sr_shape *shapes,
                          sr_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const sr_node *node = &g->nodes[i];
        if (node->op == SR_OP_INPUT) {
            if (node->p.input.unshuffle < 0 || node->p.input.unshuffle > SR_INPUT_MAX_UNSHUFFLE)
                return sr_fail(err, SR_ERR_MODEL, "%s: unshuffle factor %d is not 0 to %d",
                               node->name, node->p.input.unshuffle, SR_INPUT_MAX_UNSHUFFLE);
            shapes[i] = sr_input_shape(node, input);
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

/* The node whose tensor node i's is: i, or where i folded, what it folded
 * into (its readers read its input). */
static int unfolded(const sr_graph *g, int i)
{
    while (g->nodes[i].op == SR_OP_COUNT)
        i = g->nodes[i].inputs[0];
    return i;
}

/* The epilogue step that node stands for, if it is one that folds. */
static bool fold_step(const sr_node *node, sr_epilogue_step *step)
{
    switch (node->op) {
    case SR_OP_PRELU:
        *step = (sr_epilogue_step){SR_EPILOGUE_PRELU, .p.prelu = node->p.prelu};
        return true;
    case SR_OP_PIXEL_SHUFFLE: /* a bad factor stays, for its own shape rule to name */
        *step = (sr_epilogue_step){SR_EPILOGUE_SHUFFLE, .p.shuffle.r = node->p.pixel_shuffle.r};
        return node->p.pixel_shuffle.r >= 1;
    case SR_OP_LEAKY_RELU: /* folded, a ReLU makes -0.0 of negatives, not +0.0: equal values */
        *step = (sr_epilogue_step){SR_EPILOGUE_LEAKY_RELU,
                                   .p.leaky_relu.slope = node->p.leaky_relu.slope};
        return true;
    default:
        return false;
    }
}

/* The epilogue of the conv or InstanceNorm that node i (a step) can fold
 * into, or NULL: its input's, when nothing else reads that, or the
 * epilogue its input was folded into. A shuffle folds into a conv only,
 * once; after it only slopes shared by every channel (they are not the
 * conv's channels). */
static sr_epilogue *fold_target(sr_graph *g, const int *readers, int i,
                                const sr_epilogue_step *step)
{
    if (readers[g->nodes[i].inputs[0]] != 1)
        return NULL;
    sr_node *target = &g->nodes[unfolded(g, g->nodes[i].inputs[0])];
    sr_epilogue *e = target->op == SR_OP_CONV2D          ? &target->p.conv2d.epilogue
                     : target->op == SR_OP_INSTANCE_NORM ? &target->p.instance_norm.epilogue
                                                         : NULL;
    if (!e || e->n_steps == SR_EPILOGUE_MAX_STEPS)
        return NULL;
    bool shuffled = false;
    for (int s = 0; s < e->n_steps; s++)
        shuffled |= e->steps[s].kind == SR_EPILOGUE_SHUFFLE;
    if (step->kind == SR_EPILOGUE_SHUFFLE)
        return target->op == SR_OP_CONV2D && !shuffled ? e : NULL;
    if (step->kind == SR_EPILOGUE_PRELU && step->p.prelu.n_slopes != 1 && shuffled)
        return NULL;
    return e;
}

/* Each concatenation (not the output) that only convolutions read folds
 * into them: they read the concatenated tensors themselves, and the copy
 * goes. readers: each node's readers; convs: scratch of g->n_nodes ints.
 * The activations already folded never read a concatenation. Returns how
 * many folded. */
static int fold_concats(sr_graph *g, const int *readers, int *convs)
{
    const int n = g->n_nodes;
    for (int i = 0; i < n; i++)
        convs[i] = 0;
    for (int i = 0; i < n; i++) /* a conv of several inputs already reads no concat */
        if (g->nodes[i].op == SR_OP_CONV2D && g->nodes[i].n_inputs == 1)
            convs[g->nodes[i].inputs[0]]++;
    for (int i = 0; i < n; i++) {
        sr_node *conv = &g->nodes[i];
        const int c = conv->inputs[0];
        if (conv->op != SR_OP_CONV2D || conv->n_inputs != 1 || g->nodes[c].op != SR_OP_CONCAT ||
            c == n - 1 || convs[c] != readers[c])
            continue;
        conv->n_inputs = g->nodes[c].n_inputs;
        for (int j = 0; j < conv->n_inputs; j++)
            conv->inputs[j] = g->nodes[c].inputs[j];
    }
    int folded = 0;
    for (int i = 0; i < n - 1; i++)
        if (g->nodes[i].op == SR_OP_CONCAT && readers[i] > 0 && convs[i] == readers[i]) {
            g->nodes[i].op = SR_OP_COUNT; /* gone: nothing reads it now */
            folded++;
        }
    return folded;
}

/* Each add x + scale y whose y is a conv (its activations folded) that
 * nothing else reads, and whose x is the conv's input or that input's
 * first concatenated tensor (RRDB's dense blocks), folds into the conv's
 * epilogue as its last step; the add's readers read the conv. Before the
 * concatenations fold, so that a concatenation the add also read may
 * fold too. readers: each node's readers, the adds' reads of x taken off.
 * Returns how many folded. */
static int fold_residuals(sr_graph *g, int *readers)
{
    int folded = 0;
    for (int i = 0; i < g->n_nodes - 1; i++) {
        sr_node *add = &g->nodes[i];
        if (add->op != SR_OP_ADD || readers[add->inputs[1]] != 1)
            continue;
        const int c = unfolded(g, add->inputs[1]), x = unfolded(g, add->inputs[0]);
        sr_node *conv = &g->nodes[c];
        if (conv->op != SR_OP_CONV2D || sr_conv2d_shuffle(&conv->p.conv2d) != 1)
            continue;
        const sr_node *in = &g->nodes[unfolded(g, conv->inputs[0])];
        const bool first = in == &g->nodes[x] ||
                           (in->op == SR_OP_CONCAT && unfolded(g, in->inputs[0]) == x);
        if (!first || !sr_epilogue_append(&conv->p.conv2d.epilogue,
                                          (sr_epilogue_step){SR_EPILOGUE_RESIDUAL,
                                                             .p.residual.scale = add->p.add.scale}))
            continue;
        readers[add->inputs[0]]--;
        add->op = SR_OP_COUNT; /* gone: its readers read the conv */
        add->n_inputs = 1;
        add->inputs[0] = c;
        folded++;
    }
    return folded;
}

/* Each nearest upsample (not the output) that only one convolution reads,
 * one without a residual, folds into it: the conv reads the upsample's
 * input, each value f times across and down, and the upsampled tensor
 * (f^2 times its input) is never made. Returns how many folded. */
static int fold_upsamples(sr_graph *g, const int *readers)
{
    int folded = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        sr_node *conv = &g->nodes[i];
        float scale;
        if (conv->op != SR_OP_CONV2D || conv->n_inputs != 1 || conv->p.conv2d.upsample > 1 ||
            sr_epilogue_residual(&conv->p.conv2d.epilogue, &scale))
            continue;
        const int u = conv->inputs[0];
        sr_node *up = &g->nodes[u];
        if (up->op != SR_OP_UPSAMPLE || up->p.upsample.mode != SR_UPSAMPLE_NEAREST ||
            readers[u] != 1 || u == g->n_nodes - 1)
            continue;
        conv->inputs[0] = up->inputs[0];
        conv->p.conv2d.upsample = up->p.upsample.factor;
        up->op = SR_OP_COUNT; /* gone: nothing reads it now */
        folded++;
    }
    return folded;
}

int sr_graph_fuse(sr_graph *g, sr_error *err)
{
    const int n = g->n_nodes;
    int *readers = calloc(2 * (size_t)n, sizeof *readers); /* then fold_concats' scratch */
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
    /* In graph order, so that each epilogue lists its steps in the order
     * they ran; the output node stays. */
    int kept = 0, folded = 0;
    for (int i = 0; i < n - 1; i++) {
        sr_node *node = &g->nodes[i];
        sr_epilogue_step step;
        sr_epilogue *into = fold_step(node, &step) ? fold_target(g, readers, i, &step) : NULL;
        if (!into)
            continue;
        sr_epilogue_append(into, step);
        node->op = SR_OP_COUNT; /* gone: its readers read its input */
        folded++;
    }
    folded += fold_residuals(g, readers);
    folded += fold_upsamples(g, readers);
    folded += fold_concats(g, readers, readers + n);
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
