/* The ops that RRDBNet, SRVGGNetCompact, EDSR and MSRResNet add (LeakyReLU
 * and ReLU, concat of two and of five, scaled add, nearest and bilinear
 * upsampling) in one small graph through the planner and executor: every
 * band height gives the bits of a whole-image run node by node, on the
 * reference and the CPU backend. Bilinear reads a row beyond its band's
 * and clamps at the image's edges, not the band's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "ops/graph.h"
#include "runtime/exec.h"
#include "testutil.h"

typedef struct net {
    sr_graph g;
    float weights[4096];
    int used;
    test_rng r;
} net;

static int add(net *n, sr_node node)
{
    const int i = sr_graph_add(&n->g, &node, NULL);
    assert_true(i >= 0);
    return i;
}

static int conv(net *n, int input, int64_t c_in, int64_t c_out)
{
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1, .inputs = {input}};
    const int64_t nw = c_out * c_in * 9;
    assert_true(n->used + nw + c_out <= 4096);
    float *w = n->weights + n->used, *bias = w + nw;
    test_fill(&n->r, w, nw, -0.3f, 0.3f);
    test_fill(&n->r, bias, c_out, -0.1f, 0.1f);
    n->used += (int)(nw + c_out);
    node.p.conv2d = (sr_conv2d_params){.c_in = c_in, .c_out = c_out, .k = 3, .pad = 1,
                                       .weight = w, .bias = bias};
    return add(n, node);
}

static int upsample(net *n, int input, int factor, sr_upsample_mode mode)
{
    return add(n, (sr_node){.op = SR_OP_UPSAMPLE, .n_inputs = 1, .inputs = {input},
                            .p.upsample = {factor, mode}});
}

/* 3 channels in, 3 out, 12 times larger. */
static void build(net *n)
{
    n->r = (test_rng){77};
    const int x = add(n, (sr_node){.op = SR_OP_INPUT});
    const int c1 = conv(n, x, 3, 4);
    const int l1 = add(n, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .inputs = {c1},
                                    .p.leaky_relu = {0.2f}});
    const int cat2 = add(n, (sr_node){.op = SR_OP_CONCAT, .n_inputs = 2, .inputs = {x, l1}});
    const int c2 = conv(n, cat2, 7, 4);
    const int relu = add(n, (sr_node){.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .inputs = {c2}});
    const int cat5 = add(n, (sr_node){.op = SR_OP_CONCAT, .n_inputs = 5,
                                      .inputs = {x, l1, relu, c1, x}});
    const int c3 = conv(n, cat5, 18, 4);
    const int sum = add(n, (sr_node){.op = SR_OP_ADD, .n_inputs = 2, .inputs = {c1, c3},
                                     .p.add = {0.2f}});
    const int c4 = conv(n, upsample(n, sum, 2, SR_UPSAMPLE_NEAREST), 4, 4);
    const int c5 = conv(n, upsample(n, c4, 3, SR_UPSAMPLE_BILINEAR), 4, 3);
    upsample(n, c5, 2, SR_UPSAMPLE_BILINEAR);
}

/* Node by node on whole tensors, through the backend. */
static sr_tensor run_whole(const sr_backend_handle *b, const sr_graph *g, const sr_tensor *input)
{
    sr_shape shapes[32];
    sr_tensor t[32];
    assert_true(g->n_nodes <= 32);
    assert_int_equal(sr_graph_shapes(g, input->shape, shapes, NULL), SR_OK);
    t[0] = *input;
    for (int i = 1; i < g->n_nodes; i++) {
        t[i] = sr_tensor_whole(shapes[i], malloc((size_t)sr_shape_numel(shapes[i]) * 4));
        sr_tensor in[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < g->nodes[i].n_inputs; j++)
            in[j] = t[g->nodes[i].inputs[j]];
        assert_int_equal(b->iface->run(b->ctx, &g->nodes[i], in, &t[i], NULL, NULL), SR_OK);
    }
    for (int i = 1; i < g->n_nodes - 1; i++)
        free(t[i].data);
    return t[g->n_nodes - 1];
}

typedef struct collected {
    sr_tensor whole;
    int bands;
} collected;

static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    collected *c = user;
    for (int64_t ch = 0; ch < rows->shape.c; ch++)
        memcpy(sr_tensor_row(&c->whole, ch, rows->y0), sr_tensor_row(rows, ch, rows->y0),
               (size_t)(rows->shape.h * rows->shape.w) * sizeof(float));
    c->bands++;
    return SR_OK;
}

static void check_bands(const sr_backend_handle *backend, int64_t w, int64_t h)
{
    net n = {0};
    build(&n);
    const sr_shape in_shape = {3, h, w};
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    test_rng r = {(uint64_t)(w * 31 + h)};
    test_fill(&r, input.data, sr_shape_numel(in_shape), 0.0f, 1.0f);
    const sr_tensor want = run_whole(backend, &n.g, &input);
    assert_true(want.shape.h == 12 * h && want.shape.w == 12 * w);
    const int64_t tile_rows[] = {0, 1, 2, 3, 5, 12, 13};
    for (size_t i = 0; i < sizeof tile_rows / sizeof *tile_rows; i++) {
        sr_plan plan;
        sr_error err = {0};
        int64_t least = 0;
        const sr_plan_request req = {in_shape, 0, tile_rows[i], backend, false};
        if (sr_plan_make(&n.g, &req, &plan, &least, &err) != SR_OK)
            fail_msg("%s", err.message);
        collected c = {sr_tensor_whole(want.shape, malloc((size_t)sr_shape_numel(want.shape) * 4)),
                       0};
        test_fill_nan(c.whole.data, sr_shape_numel(want.shape));
        if (sr_plan_execute(&n.g, &plan, backend, NULL, sr_exec_read_tensor, &input, collect, &c,
                            (sr_exec_progress){0}, (sr_exec_timing){0}, NULL, &err) != SR_OK)
            fail_msg("%s", err.message);
        if (memcmp(c.whole.data, want.data, (size_t)sr_shape_numel(want.shape) * 4) != 0)
            fail_msg("%s %lldx%lld, bands of %lld rows (%d bands): not the whole image's bits",
                     backend->iface->name, (long long)w, (long long)h, (long long)tile_rows[i],
                     c.bands);
        assert_true(tile_rows[i] == 0 || tile_rows[i] >= want.shape.h || c.bands > 1);
        sr_plan_free(&plan);
        free(c.whole.data);
    }
    free(want.data);
    free(input.data);
    sr_graph_free(&n.g);
}

static void test_bands_equal_the_whole_image_reference(void **state)
{
    (void)state;
    sr_backend_handle b;
    assert_int_equal(sr_reference_backend_new(&b, NULL), SR_OK);
    check_bands(&b, 7, 5);
    check_bands(&b, 1, 1);
    sr_backend_free(&b);
}

static void test_bands_equal_the_whole_image_cpu(void **state)
{
    (void)state;
    sr_backend_handle b;
    assert_int_equal(sr_cpu_backend_new(2, &b, NULL), SR_OK);
    check_bands(&b, 7, 5);
    check_bands(&b, 4, 2);
    sr_backend_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bands_equal_the_whole_image_reference),
        cmocka_unit_test(test_bands_equal_the_whole_image_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
