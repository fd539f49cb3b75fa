/* sr_graph_fuse: which PReLUs, LeakyReLUs and pixel shuffles fold into their
 * convolution, which concatenations into the convolutions that read them,
 * which residual adds into the convolution they add to, which nearest
 * upsamples into the convolution that reads them, that readers are
 * rewired, and that the fused graph computes the same bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ops/graph.h"
#include "testutil.h"

enum { C = 4 };

typedef struct net {
    sr_graph g;
    float weight[5][4 * C * C * 9], bias[5][4 * C], shared, per_channel[C];
} net;

static int add(sr_graph *g, sr_node node)
{
    const int i = sr_graph_add(g, &node, NULL);
    assert_true(i >= 0);
    return i;
}

static int conv(net *n, int input, int layer, int64_t c_in, int64_t c_out)
{
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1, .inputs = {input}};
    node.p.conv2d = (sr_conv2d_params){.c_in = c_in, .c_out = c_out, .k = 3, .pad = 1,
                                       .weight = n->weight[layer], .bias = n->bias[layer]};
    return add(&n->g, node);
}

static int prelu(net *n, int input, int64_t n_slopes)
{
    const float *slopes = n_slopes == 1 ? &n->shared : n->per_channel;
    return add(&n->g, (sr_node){.op = SR_OP_PRELU, .n_inputs = 1, .inputs = {input},
                                .p.prelu = {n_slopes, slopes}});
}

static int norm(net *n, int input)
{
    return add(&n->g, (sr_node){.op = SR_OP_INSTANCE_NORM, .n_inputs = 1, .inputs = {input},
                                .p.instance_norm = {.eps = 1e-5f}});
}

static int shuffle(net *n, int input)
{
    return add(&n->g, (sr_node){.op = SR_OP_PIXEL_SHUFFLE, .n_inputs = 1, .inputs = {input},
                                .p.pixel_shuffle = {2}});
}

/* Every case: a conv's only reader (folds), an InstanceNorm's (folds), a
 * conv read twice (does not),
 * a shared slope after a shuffle (folds), a per-channel one after a
 * shuffle (does not: its channels are not the conv's); both shuffles fold
 * into their convs. */
static void build(net *n)
{
    test_rng r = {5};
    test_fill(&r, &n->weight[0][0], sizeof n->weight / sizeof(float), -0.3f, 0.3f);
    test_fill(&r, &n->bias[0][0], sizeof n->bias / sizeof(float), -0.3f, 0.3f);
    test_fill(&r, &n->shared, 1, 0, 0.5f);
    test_fill(&r, n->per_channel, C, 0, 0.5f);
    n->g = (sr_graph){0};
    int x = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    x = prelu(n, conv(n, x, 0, 3, C), 1);                      /* folds */
    x = prelu(n, norm(n, x), C);                                /* folds */
    const int b = conv(n, x, 1, C, C);
    x = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {b, prelu(n, b, C)}, .p.add = {1.0f}});
    x = prelu(n, shuffle(n, conv(n, x, 2, C, 4 * C)), 1);       /* folds */
    x = prelu(n, shuffle(n, conv(n, x, 3, C, 4 * C)), C);       /* stays */
    conv(n, x, 4, C, 3);
}

/* An empty network with random weights and biases drawn from r. */
static net *net_new(test_rng *r)
{
    net *n = calloc(1, sizeof *n);
    assert_non_null(n);
    test_fill(r, &n->weight[0][0], sizeof n->weight / sizeof(float), -0.3f, 0.3f);
    test_fill(r, &n->bias[0][0], sizeof n->bias / sizeof(float), -0.3f, 0.3f);
    return n;
}

/* Runs every node's reference kernel on whole tensors; returns the output. */
static float *run(const sr_graph *g, const float *image, sr_shape in, sr_shape *out)
{
    sr_shape *shapes = calloc((size_t)g->n_nodes, sizeof *shapes);
    sr_tensor *t = calloc((size_t)g->n_nodes, sizeof *t);
    assert_int_equal(sr_graph_shapes(g, in, shapes, NULL), SR_OK);
    for (int i = 0; i < g->n_nodes; i++) {
        const int64_t n = sr_shape_numel(shapes[i]);
        t[i] = sr_tensor_whole(shapes[i], malloc((size_t)n * sizeof(float)));
        if (i == 0) {
            memcpy(t[i].data, image, (size_t)n * sizeof(float));
            continue;
        }
        sr_tensor inputs[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            inputs[j] = t[g->nodes[i].inputs[j]];
        const sr_op_desc *d = sr_op_get(g->nodes[i].op);
        float *stats = NULL;
        if (d->is_global) {
            const int64_t k = d->n_stats(&g->nodes[i], inputs[0].shape);
            double *acc = calloc((size_t)k, sizeof *acc);
            stats = malloc((size_t)k * sizeof *stats);
            d->accumulate(&g->nodes[i], &inputs[0], 0, inputs[0].shape.h, acc);
            d->finalize(&g->nodes[i], inputs[0].shape, acc, stats);
            free(acc);
        }
        d->reference(&g->nodes[i], inputs, &t[i], stats);
        free(stats);
    }
    float *result = t[g->n_nodes - 1].data;
    *out = shapes[g->n_nodes - 1];
    for (int i = 0; i < g->n_nodes - 1; i++)
        free(t[i].data);
    free(t);
    free(shapes);
    return result;
}

/* A random image and what the network computes on it before fusion. */
typedef struct sample {
    sr_shape in, want_shape;
    float *image, *want;
} sample;

/* in's values drawn from r in [lo, hi). */
static sample sample_new(net *n, test_rng *r, sr_shape in, float lo, float hi)
{
    sample s = {.in = in, .image = malloc((size_t)sr_shape_numel(in) * sizeof(float))};
    assert_non_null(s.image);
    test_fill(r, s.image, sr_shape_numel(in), lo, hi);
    s.want = run(&n->g, s.image, in, &s.want_shape);
    return s;
}

/* Runs the fused network on s's image and checks that it computes s's
 * output (the same bits, or where bitwise is false the same values: a
 * folded ReLU's -0.0 for the op's +0.0); frees s and the network. */
static void expect_output(net *n, sample s, bool bitwise)
{
    sr_shape got_shape;
    float *got = run(&n->g, s.image, s.in, &got_shape);
    assert_memory_equal(&got_shape, &s.want_shape, sizeof got_shape);
    const int64_t count = sr_shape_numel(s.want_shape);
    if (bitwise)
        assert_memory_equal(got, s.want, (size_t)count * sizeof(float));
    for (int64_t i = 0; !bitwise && i < count; i++)
        assert_true(got[i] == s.want[i]);
    free(s.image);
    free(s.want);
    free(got);
    sr_graph_free(&n->g);
    free(n);
}

static void test_fuse_folds_where_it_may_and_keeps_the_bits(void **state)
{
    (void)state;
    net *n = calloc(1, sizeof *n);
    build(n);
    const int before = n->g.n_nodes;
    test_rng r = {9};
    const sample s = sample_new(n, &r, (sr_shape){3, 5, 7}, 0, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 5); /* three PReLUs, two shuffles */
    assert_int_equal(n->g.n_nodes, before - 5);
    int n_prelu = 0;
    for (int i = 0; i < n->g.n_nodes; i++) {
        const sr_node *node = &n->g.nodes[i];
        n_prelu += node->op == SR_OP_PRELU;
        assert_int_not_equal(node->op, SR_OP_PIXEL_SHUFFLE);
        for (int j = 0; j < node->n_inputs; j++)
            assert_true(node->inputs[j] >= 0 && node->inputs[j] < i);
    }
    assert_int_equal(n_prelu, 2);
    const sr_epilogue *e = &n->g.nodes[1].p.conv2d.epilogue;
    assert_int_equal(e->n_steps, 1);
    assert_int_equal(e->steps[0].kind, SR_EPILOGUE_PRELU);
    assert_int_equal(e->steps[0].p.prelu.n_slopes, 1);
    e = &n->g.nodes[2].p.instance_norm.epilogue;
    assert_int_equal(e->n_steps, 1);
    assert_int_equal(e->steps[0].p.prelu.n_slopes, C);

    /* Nothing is left to fold a second time. */
    assert_int_equal(sr_graph_fuse(&n->g, NULL), 0);
    expect_output(n, s, true);
}

/* Steps fold in graph order, through the nodes already folded, until the
 * epilogue is full: conv, PReLU, shuffle, then shared PReLUs. */
static void test_fuse_lists_steps_in_order_until_full(void **state)
{
    (void)state;
    net *n = calloc(1, sizeof *n);
    test_rng r = {6};
    test_fill(&r, &n->weight[0][0], sizeof n->weight / sizeof(float), -0.3f, 0.3f);
    test_fill(&r, &n->bias[0][0], sizeof n->bias / sizeof(float), -0.3f, 0.3f);
    test_fill(&r, &n->shared, 1, -0.5f, 0.5f);
    test_fill(&r, n->per_channel, C, -0.5f, 0.5f);
    int x = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    x = conv(n, x, 0, 3, 4 * C);
    x = prelu(n, x, 1);
    x = shuffle(n, x);
    for (int i = 0; i < 3; i++) /* the last one stays: the list is full */
        x = prelu(n, x, 1);
    conv(n, x, 1, C, 3);
    const sample s = sample_new(n, &r, (sr_shape){3, 4, 6}, 0, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 4);
    assert_int_equal(n->g.n_nodes, 4);
    const sr_epilogue *e = &n->g.nodes[1].p.conv2d.epilogue;
    assert_int_equal(e->n_steps, SR_EPILOGUE_MAX_STEPS);
    const sr_epilogue_kind kinds[] = {SR_EPILOGUE_PRELU, SR_EPILOGUE_SHUFFLE, SR_EPILOGUE_PRELU,
                                      SR_EPILOGUE_PRELU};
    for (int i = 0; i < SR_EPILOGUE_MAX_STEPS; i++)
        assert_int_equal(e->steps[i].kind, kinds[i]);
    assert_int_equal(n->g.nodes[2].op, SR_OP_PRELU);
    assert_int_equal(n->g.nodes[2].inputs[0], 1);

    expect_output(n, s, true);
}

/* A LeakyReLU and a ReLU after convolutions fold as epilogue steps with
 * their slopes; the values stay (a folded ReLU may make -0.0 where the op
 * makes +0.0, which compares equal). */
static void test_fuse_folds_leaky_relu_and_relu(void **state)
{
    (void)state;
    test_rng r = {8};
    net *n = net_new(&r);
    int x = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    x = conv(n, x, 0, 3, C);
    x = add(&n->g, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .inputs = {x},
                             .p.leaky_relu = {0.2f}});
    x = conv(n, x, 1, C, C);
    x = add(&n->g, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .inputs = {x},
                             .p.leaky_relu = {0.0f}});
    conv(n, x, 2, C, 3);
    const sample s = sample_new(n, &r, (sr_shape){3, 5, 6}, 0, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 2);
    assert_int_equal(n->g.n_nodes, 4);
    const float slopes[] = {0.2f, 0.0f};
    for (int i = 0; i < 2; i++) {
        const sr_epilogue *e = &n->g.nodes[1 + i].p.conv2d.epilogue;
        assert_int_equal(e->n_steps, 1);
        assert_int_equal(e->steps[0].kind, SR_EPILOGUE_LEAKY_RELU);
        assert_true(e->steps[0].p.leaky_relu.slope == slopes[i]);
    }
    expect_output(n, s, false);
}

static int concat(net *n, int n_inputs, const int *inputs)
{
    sr_node node = {.op = SR_OP_CONCAT, .n_inputs = n_inputs};
    memcpy(node.inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    return add(&n->g, node);
}

/* A concatenation that convolutions alone read folds into each of them
 * (a dense block's, one read by two convs, and one that a residual add
 * folded into its conv read); one that something else also reads stays,
 * and so does one that is the output; the bits stay. */
static void test_fuse_folds_concatenations_into_convs(void **state)
{
    (void)state;
    test_rng r = {10};
    net *n = net_new(&r);
    const int x = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    const int a = add(&n->g, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1,
                                       .inputs = {conv(n, x, 0, 3, 2)}, .p.leaky_relu = {0.2f}});
    const int cat1 = concat(n, 2, (int[]){x, a});                       /* folds into two */
    const int b = conv(n, cat1, 1, 5, 3), c = conv(n, cat1, 2, 5, 2);
    const int cat2 = concat(n, 3, (int[]){a, b, c}); /* an add reads it, but folds into d */
    const int d = conv(n, cat2, 3, 7, 7);
    const int sum = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {cat2, d},
                                         .p.add = {1.0f}});
    const int stays = concat(n, 2, (int[]){a, c});                      /* stays: an add reads it */
    const int f = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {stays, stays},
                                       .p.add = {1.0f}});
    const int e = conv(n, sum, 4, 7, 1);
    concat(n, 4, (int[]){e, x, b, f}); /* the output: stays */
    const sample s = sample_new(n, &r, (sr_shape){3, 6, 5}, 0, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 4); /* the LeakyReLU, the add, cat1, cat2 */
    /* input, conv 0, b, c, d, stays, f, e, output */
    assert_int_equal(n->g.n_nodes, 9);
    for (int i = 2; i <= 3; i++) {
        const sr_node *conv = &n->g.nodes[i];
        assert_int_equal(conv->op, SR_OP_CONV2D);
        assert_int_equal(conv->n_inputs, 2);
        assert_int_equal(conv->inputs[0], 0);
        assert_int_equal(conv->inputs[1], 1); /* conv 0, its LeakyReLU folded */
    }
    const sr_node *d_fused = &n->g.nodes[4];
    assert_int_equal(d_fused->n_inputs, 3); /* a (conv 0), b, c */
    assert_int_equal(d_fused->inputs[0], 1);
    assert_int_equal(d_fused->p.conv2d.epilogue.steps[0].kind, SR_EPILOGUE_RESIDUAL);
    assert_int_equal(n->g.nodes[5].op, SR_OP_CONCAT);
    assert_int_equal(n->g.nodes[7].inputs[0], 4); /* e reads d, its residual added */
    assert_int_equal(n->g.nodes[8].op, SR_OP_CONCAT);
    assert_int_equal(sr_graph_fuse(&n->g, NULL), 0);
    expect_output(n, s, true);
}

/* RRDB's dense block: x + 0.2 conv(x, x1) folds into the conv's epilogue
 * as its last step, after the conv's own LeakyReLU, and its readers read
 * the conv; not where the add's first input is not the conv's first
 * input, nor where something else reads the conv. The bits stay. */
static void test_fuse_folds_residual_adds(void **state)
{
    (void)state;
    test_rng r = {12};
    net *n = net_new(&r);
    const int input = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    const int x = conv(n, input, 0, 3, C);
    const int x1 = conv(n, x, 1, C, 2);
    const int dense = conv(n, concat(n, 2, (int[]){x, x1}), 2, C + 2, C);
    const int relu = add(&n->g, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1,
                                          .inputs = {dense}, .p.leaky_relu = {0.2f}});
    const int sum = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {x, relu},
                                         .p.add = {0.2f}}); /* folds */
    const int y = conv(n, sum, 3, C, C);
    const int other = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {x, y},
                                           .p.add = {0.2f}}); /* stays: y reads sum */
    const int z = conv(n, other, 4, C, C);
    const int twice = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {other, z},
                                           .p.add = {0.5f}}); /* stays: z is read twice */
    add(&n->g, (sr_node){.op = SR_OP_CONCAT, .n_inputs = 2, .inputs = {twice, z}});
    const sample s = sample_new(n, &r, (sr_shape){3, 7, 6}, -1, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 3); /* the concat, the LeakyReLU, the add */
    /* input, x, x1, dense, y, other, z, twice, output */
    assert_int_equal(n->g.n_nodes, 9);
    const sr_epilogue *e = &n->g.nodes[3].p.conv2d.epilogue;
    assert_int_equal(e->n_steps, 2);
    assert_int_equal(e->steps[0].kind, SR_EPILOGUE_LEAKY_RELU);
    assert_int_equal(e->steps[1].kind, SR_EPILOGUE_RESIDUAL);
    assert_true(e->steps[1].p.residual.scale == 0.2f);
    assert_int_equal(n->g.nodes[4].inputs[0], 3);
    assert_int_equal(n->g.nodes[5].op, SR_OP_ADD);
    assert_int_equal(n->g.nodes[7].op, SR_OP_ADD);
    assert_int_equal(n->g.nodes[6].p.conv2d.epilogue.n_steps, 0);
    expect_output(n, s, true);
}

static int upsample(net *n, int input, int factor, int mode)
{
    return add(&n->g, (sr_node){.op = SR_OP_UPSAMPLE, .n_inputs = 1, .inputs = {input},
                                .p.upsample = {factor, mode}});
}

/* A nearest upsample that one conv alone reads folds into it (RRDBNet's
 * conv_up1 and conv_up2): the conv reads the small tensor, f times across
 * and down, and computes the same bits. A bilinear one and one read twice
 * stay. */
static void test_fuse_folds_nearest_upsamples(void **state)
{
    (void)state;
    test_rng r = {13};
    net *n = net_new(&r);
    const int input = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    const int x = conv(n, input, 0, 3, C);
    const int y = conv(n, upsample(n, x, 2, SR_UPSAMPLE_NEAREST), 1, C, C); /* folds */
    const int z = conv(n, upsample(n, y, 2, SR_UPSAMPLE_BILINEAR), 2, C, C); /* stays */
    const int twice = upsample(n, z, 3, SR_UPSAMPLE_NEAREST);                 /* stays */
    add(&n->g, (sr_node){.op = SR_OP_CONCAT, .n_inputs = 2,
                         .inputs = {twice, conv(n, twice, 3, C, C)}});
    const sample s = sample_new(n, &r, (sr_shape){3, 5, 4}, -1, 1);

    assert_int_equal(sr_graph_fuse(&n->g, NULL), 1);
    /* input, x, y, the bilinear upsample, z, twice, its conv, output */
    assert_int_equal(n->g.n_nodes, 8);
    assert_int_equal(n->g.nodes[2].op, SR_OP_CONV2D);
    assert_int_equal(n->g.nodes[2].inputs[0], 1);
    assert_int_equal(n->g.nodes[2].p.conv2d.upsample, 2);
    assert_int_equal(n->g.nodes[3].op, SR_OP_UPSAMPLE);
    assert_int_equal(n->g.nodes[5].op, SR_OP_UPSAMPLE);
    assert_int_equal(n->g.nodes[6].p.conv2d.upsample, 0);
    expect_output(n, s, true);
}

/* A conv with a residual reads its input where it writes: the residual
 * folds first, and the upsample before the conv then stays. */
static void test_fuse_keeps_upsample_before_a_residual(void **state)
{
    (void)state;
    test_rng r = {14};
    net *n = net_new(&r);
    const int input = add(&n->g, (sr_node){.op = SR_OP_INPUT});
    const int x = upsample(n, conv(n, input, 0, 3, C), 2, SR_UPSAMPLE_NEAREST);
    const int sum = add(&n->g, (sr_node){.op = SR_OP_ADD, .n_inputs = 2,
                                         .inputs = {x, conv(n, x, 1, C, C)}, .p.add = {0.2f}});
    conv(n, sum, 2, C, 3);
    const sample s = sample_new(n, &r, (sr_shape){3, 4, 6}, -1, 1);
    assert_int_equal(sr_graph_fuse(&n->g, NULL), 1); /* the add */
    assert_int_equal(n->g.nodes[2].op, SR_OP_UPSAMPLE);
    assert_int_equal(n->g.nodes[3].p.conv2d.upsample, 0);
    assert_int_equal(n->g.nodes[3].p.conv2d.epilogue.steps[0].kind, SR_EPILOGUE_RESIDUAL);
    expect_output(n, s, true);
}

/* An unshuffled input by f is 3 f^2 channels of the image padded to a
 * multiple of f; a factor past SR_INPUT_MAX_UNSHUFFLE is named. */
static void test_unshuffled_input_shape(void **state)
{
    (void)state;
    sr_graph g = {0};
    sr_node input = {.op = SR_OP_INPUT, .name = "input", .p.input.unshuffle = 4};
    assert_int_equal(sr_graph_add(&g, &input, NULL), 0);
    sr_shape shape;
    assert_int_equal(sr_graph_shapes(&g, (sr_shape){3, 13, 8}, &shape, NULL), SR_OK);
    assert_int_equal(shape.c, 48);
    assert_int_equal(shape.h, 4);
    assert_int_equal(shape.w, 2);
    g.nodes[0].p.input.unshuffle = 0; /* as it is, like 1 */
    assert_int_equal(sr_graph_shapes(&g, (sr_shape){3, 13, 8}, &shape, NULL), SR_OK);
    assert_int_equal(shape.c, 3);
    assert_int_equal(shape.h, 13);
    g.nodes[0].p.input.unshuffle = SR_INPUT_MAX_UNSHUFFLE + 1;
    sr_error err = {0};
    assert_int_equal(sr_graph_shapes(&g, (sr_shape){3, 13, 8}, &shape, &err), SR_ERR_MODEL);
    assert_string_equal(err.message, "input: unshuffle factor 9 is not 0 to 8");
    sr_graph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuse_folds_where_it_may_and_keeps_the_bits),
        cmocka_unit_test(test_fuse_lists_steps_in_order_until_full),
        cmocka_unit_test(test_fuse_folds_leaky_relu_and_relu),
        cmocka_unit_test(test_fuse_folds_concatenations_into_convs),
        cmocka_unit_test(test_fuse_folds_residual_adds),
        cmocka_unit_test(test_fuse_folds_nearest_upsamples),
        cmocka_unit_test(test_fuse_keeps_upsample_before_a_residual),
        cmocka_unit_test(test_unshuffled_input_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
