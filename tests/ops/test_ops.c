/* Every op: the reference kernels against facts that pin their meaning,
 * and they and the CPU backend against PyTorch's outputs for the same
 * inputs (tests/fixtures/ops, made by make_op_fixtures.py: an oracle that
 * shares no code with srrun), then every backend's kernel against the
 * reference on random shapes and values, with outputs
 * filled with NaN first so an unwritten element fails; and every kernel on
 * bands (the rows a band needs copied alone, so reading others fails)
 * against itself on the whole image, bit for bit; a conv over several
 * inputs (a concatenation folded in) makes the bits of the conv over
 * their copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "backends/cpu/cpu.h"
#include "ops/op.h"
#include "testutil.h"
#include "kernel_cases.h"
#include "tolerance.h"

static sr_shape run_shape(const sr_node *node, const sr_tensor *in)
{
    sr_shape shapes[SR_NODE_MAX_INPUTS], out;
    for (int i = 0; i < node->n_inputs; i++)
        shapes[i] = in[i].shape;
    assert_int_equal(sr_op_get(node->op)->shape(node, shapes, &out, NULL), SR_OK);
    return out;
}

/* Rows [y0, y1) of out computed alone from just the input rows they need,
 * must equal the same rows of the whole-image output exactly. */
static void check_band(const sr_backend_handle *b, const sr_node *node, const sr_tensor *in,
                       const sr_tensor *whole_out, const float *stats, int64_t y0, int64_t y1)
{
    const sr_op_desc *d = sr_op_get(node->op);
    /* A kernel that makes rows in aligned groups reads whole groups' inputs. */
    const sr_row_tiling tiling = sr_backend_row_tiling(b, node, whole_out->shape);
    const int64_t scale = d->scale(node), halo = tiling.halo, a = tiling.align;
    const int64_t a0 = y0 / a * a, a1 = (y1 + a - 1) / a * a;
    int64_t lo = a0 / scale - halo, hi = (a1 + scale - 1) / scale + halo;
    lo = lo < 0 ? 0 : lo;
    hi = hi > in[0].shape.h ? in[0].shape.h : hi;
    sr_tensor band_in[SR_NODE_MAX_INPUTS];
    for (int i = 0; i < node->n_inputs; i++)
        band_in[i] = copy_rows(&in[i], lo, hi);
    sr_tensor out = tensor_new(whole_out->shape.c, y1 - y0, whole_out->shape.w);
    out.y0 = y0;
    out.image_h = whole_out->shape.h;
    assert_int_equal(b->iface->run(b->ctx, node, band_in, &out, stats, NULL), SR_OK);
    for (int64_t c = 0; c < out.shape.c; c++)
        for (int64_t y = y0; y < y1; y++)
            if (memcmp(sr_tensor_row(&out, c, y), sr_tensor_row(whole_out, c, y),
                       (size_t)out.shape.w * sizeof(float)) != 0)
                fail_msg("%s %s: band [%lld, %lld) differs from the whole image at row %lld",
                         b->iface->name, d->name, (long long)y0, (long long)y1, (long long)y);
    for (int i = 0; i < node->n_inputs; i++)
        free(band_in[i].data);
    free(out.data);
}

/* Runs node on a backend and on the reference; returns the max error
 * relative to the largest reference magnitude. Also checks bands. */
static float compare_backend(const sr_backend_handle *b, const sr_node *node,
                             const sr_tensor *in, test_rng *r)
{
    sr_shape s = run_shape(node, in);
    sr_tensor want = tensor_new(s.c, s.h, s.w), got = tensor_new(s.c, s.h, s.w);
    float *stats = gather_stats(node, in, in[0].shape.h);
    sr_op_get(node->op)->reference(node, in, &want, stats);
    assert_int_equal(b->iface->run(b->ctx, node, in, &got, stats, NULL), SR_OK);
    const int64_t n = sr_shape_numel(s);
    float scale = test_max_abs(want.data, n);
    float err = test_max_abs_diff(want.data, got.data, n) / (scale > 0 ? scale : 1);
    /* Bands: one row, the first, the last, and a random one. */
    const int64_t H = s.h, y = test_rng_int(r, 0, (int)H - 1);
    check_band(b, node, in, &got, stats, 0, 1);
    check_band(b, node, in, &got, stats, H - 1, H);
    check_band(b, node, in, &got, stats, y, y + test_rng_int(r, 1, (int)(H - y)));
    free(stats);
    free(want.data);
    free(got.data);
    return err;
}

/* ---- the reference kernels' meaning ---- */

static void test_conv_reference_delta_kernel_shifts(void **state)
{
    (void)state;
    /* A 3x3 kernel with a single 1 at (ky, kx) = (0, 2) reads input pixel
     * (y - 1, x + 1): out = shifted input + bias, zero beyond the border. */
    test_rng r = {11};
    sr_tensor in = tensor_new(1, 4, 5);
    test_fill(&r, in.data, 20, -1, 1);
    float weight[9] = {0, 0, 1, 0, 0, 0, 0, 0, 0}, bias = 0.5f;
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1};
    node.p.conv2d = (sr_conv2d_params){.c_in = 1, .c_out = 1, .k = 3, .pad = 1, .weight = weight, .bias = &bias};
    sr_tensor out = tensor_new(1, 4, 5);
    sr_op_get(SR_OP_CONV2D)->reference(&node, &in, &out, NULL);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) {
            float v = y >= 1 && x + 1 < 5 ? in.data[(y - 1) * 5 + x + 1] : 0.0f;
            assert_float_equal(out.data[y * 5 + x], v + 0.5f, 1e-7);
        }
    free(in.data);
    free(out.data);
}

/* A conv that folds a nearest upsample by f computes, bit for bit, the
 * upsample's output convolved: each value read f times across and down. */
static void test_conv_reference_upsampled_is_upsample_then_conv(void **state)
{
    (void)state;
    test_rng r = {12};
    for (int f = 2; f <= 3; f++) {
        sr_tensor in = tensor_new(3, 5, 7);
        test_fill(&r, in.data, 3 * 5 * 7, -1, 1);
        float weight[2 * 3 * 9], bias[2];
        test_fill(&r, weight, 2 * 3 * 9, -0.5f, 0.5f);
        test_fill(&r, bias, 2, -0.5f, 0.5f);
        const sr_node up = {.op = SR_OP_UPSAMPLE, .n_inputs = 1,
                            .p.upsample = {f, SR_UPSAMPLE_NEAREST}};
        sr_tensor big = tensor_new(3, 5 * f, 7 * f);
        sr_op_get(SR_OP_UPSAMPLE)->reference(&up, &in, &big, NULL);
        sr_node conv = {.op = SR_OP_CONV2D, .n_inputs = 1};
        conv.p.conv2d = (sr_conv2d_params){
            .c_in = 3, .c_out = 2, .k = 3, .pad = 1, .weight = weight, .bias = bias};
        sr_tensor want = tensor_new(2, 5 * f, 7 * f), got = tensor_new(2, 5 * f, 7 * f);
        sr_op_get(SR_OP_CONV2D)->reference(&conv, &big, &want, NULL);
        conv.p.conv2d.upsample = f;
        const sr_shape shape = run_shape(&conv, &in);
        assert_memory_equal(&shape, &want.shape, sizeof shape);
        sr_op_get(SR_OP_CONV2D)->reference(&conv, &in, &got, NULL);
        assert_memory_equal(got.data, want.data, (size_t)(2 * 35 * f * f) * sizeof(float));
        free(in.data);
        free(big.data);
        free(want.data);
        free(got.data);
    }
}

static void test_conv_reference_folded_prelu_is_conv_then_prelu(void **state)
{
    (void)state;
    test_rng r = {13};
    sr_tensor in = tensor_new(4, 7, 6);
    test_fill(&r, in.data, 4 * 7 * 6, -1, 1);
    float weight[5 * 4 * 9], bias[5], slopes[5];
    test_fill(&r, weight, 5 * 4 * 9, -0.5f, 0.5f);
    test_fill(&r, bias, 5, -0.5f, 0.5f);
    test_fill(&r, slopes, 5, 0, 0.5f);
    for (int64_t n_slopes = 1; n_slopes <= 5; n_slopes += 4) {
        sr_node conv = {.op = SR_OP_CONV2D, .n_inputs = 1};
        conv.p.conv2d = (sr_conv2d_params){.c_in = 4, .c_out = 5, .k = 3, .pad = 1,
                                           .weight = weight, .bias = bias};
        sr_node prelu = {.op = SR_OP_PRELU, .n_inputs = 1, .p.prelu = {n_slopes, slopes}};
        sr_tensor plain = tensor_new(5, 7, 6), want = tensor_new(5, 7, 6), got = tensor_new(5, 7, 6);
        sr_op_get(SR_OP_CONV2D)->reference(&conv, &in, &plain, NULL);
        sr_op_get(SR_OP_PRELU)->reference(&prelu, &plain, &want, NULL);
        sr_epilogue_append(&conv.p.conv2d.epilogue,
                           (sr_epilogue_step){SR_EPILOGUE_PRELU, .p.prelu = prelu.p.prelu});
        sr_op_get(SR_OP_CONV2D)->reference(&conv, &in, &got, NULL);
        assert_memory_equal(got.data, want.data, 5 * 7 * 6 * sizeof(float));
        free(plain.data);
        free(want.data);
        free(got.data);
    }
    free(in.data);
}

/* The epilogue's steps in order after the bias: a PReLU then a LeakyReLU
 * (then a ReLU, slope 0) are those selects one after the other. */
static void test_conv_reference_epilogue_steps_in_order(void **state)
{
    (void)state;
    test_rng r = {14};
    sr_tensor in = tensor_new(3, 5, 6);
    test_fill(&r, in.data, 3 * 5 * 6, -1, 1);
    float weight[4 * 3 * 9], bias[4], slopes[4];
    test_fill(&r, weight, 4 * 3 * 9, -0.5f, 0.5f);
    test_fill(&r, bias, 4, -0.5f, 0.5f);
    test_fill(&r, slopes, 4, -0.5f, 0.5f); /* negative too: the order matters */
    sr_node conv = {.op = SR_OP_CONV2D, .n_inputs = 1};
    conv.p.conv2d = (sr_conv2d_params){.c_in = 3, .c_out = 4, .k = 3, .pad = 1,
                                       .weight = weight, .bias = bias};
    sr_tensor plain = tensor_new(4, 5, 6), got = tensor_new(4, 5, 6);
    sr_op_get(SR_OP_CONV2D)->reference(&conv, &in, &plain, NULL);
    sr_epilogue *e = &conv.p.conv2d.epilogue;
    assert_true(sr_epilogue_append(e, (sr_epilogue_step){SR_EPILOGUE_PRELU, .p.prelu = {4, slopes}}));
    assert_true(sr_epilogue_append(e, (sr_epilogue_step){SR_EPILOGUE_LEAKY_RELU,
                                                         .p.leaky_relu.slope = -2.0f}));
    assert_true(sr_epilogue_append(e, (sr_epilogue_step){SR_EPILOGUE_LEAKY_RELU,
                                                         .p.leaky_relu.slope = 0.0f}));
    sr_op_get(SR_OP_CONV2D)->reference(&conv, &in, &got, NULL);
    for (int64_t i = 0; i < 4 * 5 * 6; i++) {
        float v = plain.data[i];
        v = v >= 0 ? v : slopes[i / 30] * v;
        v = v >= 0 ? v : -2.0f * v;
        v = v >= 0 ? v : 0.0f;
        assert_memory_equal(&got.data[i], &v, sizeof v);
    }
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->flops(&conv, (sr_shape){4, 5, 6}),
                     (2 * 3 * 9 + 3) * 4 * 5 * 6);
    free(plain.data);
    free(got.data);
    free(in.data);
}

/* The shape rule checks the epilogue: slope counts, one shuffle (a conv's
 * only), and after it only shared slopes. */
static void test_epilogue_checked_by_the_shape_rule(void **state)
{
    (void)state;
    static const float slopes[16];
    const sr_epilogue_step shared = {SR_EPILOGUE_PRELU, .p.prelu = {1, slopes}};
    const sr_epilogue_step per_channel = {SR_EPILOGUE_PRELU, .p.prelu = {16, slopes}};
    const sr_epilogue_step three = {SR_EPILOGUE_PRELU, .p.prelu = {3, slopes}};
    const sr_epilogue_step shuffle = {SR_EPILOGUE_SHUFFLE, .p.shuffle.r = 2};
    const struct {
        int n;
        sr_epilogue_step steps[3];
        const char *error; /* NULL: valid */
    } cases[] = {
        {3, {per_channel, shuffle, shared}, NULL},
        {1, {three}, "3 slopes for 16 channels"},
        {2, {shuffle, per_channel}, "16 slopes for 1 channels"},
        {2, {shuffle, shuffle}, "a pixel shuffle it cannot fold"},
        {1, {{SR_EPILOGUE_SHUFFLE, .p.shuffle.r = 0}}, "a pixel shuffle it cannot fold"},
        {1, {{(sr_epilogue_kind)7, .p.prelu = {0}}}, "unknown epilogue step 7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_node conv = {.op = SR_OP_CONV2D, .name = "c", .n_inputs = 1};
        conv.p.conv2d = (sr_conv2d_params){.c_in = 2, .c_out = 16, .k = 3, .pad = 1};
        conv.p.conv2d.epilogue.n_steps = cases[i].n;
        memcpy(conv.p.conv2d.epilogue.steps, cases[i].steps, sizeof cases[i].steps);
        const sr_shape in = {2, 4, 5};
        sr_shape out;
        sr_error err = {0};
        const sr_status st = sr_op_get(SR_OP_CONV2D)->shape(&conv, &in, &out, &err);
        if (!cases[i].error) {
            assert_int_equal(st, SR_OK);
            assert_memory_equal(&out, &((sr_shape){4, 8, 10}), sizeof out);
        } else if (st != SR_ERR_MODEL || !strstr(err.message, cases[i].error)) {
            fail_msg("case %zu: '%s', wanted '%s'", i, err.message, cases[i].error);
        }
    }
    /* An InstanceNorm takes activations, not a shuffle. */
    sr_node norm = {.op = SR_OP_INSTANCE_NORM, .name = "n", .n_inputs = 1};
    norm.p.instance_norm.epilogue = (sr_epilogue){2, {shared, per_channel}};
    sr_shape out;
    assert_int_equal(sr_op_get(SR_OP_INSTANCE_NORM)->shape(&norm, &(sr_shape){16, 3, 3}, &out,
                                                           NULL),
                     SR_OK);
    norm.p.instance_norm.epilogue = (sr_epilogue){1, {shuffle}};
    assert_int_equal(sr_op_get(SR_OP_INSTANCE_NORM)->shape(&norm, &(sr_shape){16, 3, 3}, &out,
                                                           NULL),
                     SR_ERR_MODEL);
}

static void test_conv_reference_sums_channels(void **state)
{
    (void)state;
    /* 1x1 conv: out[o] = sum_i w[o][i] in[i] + b[o], checked in double. */
    test_rng r = {12};
    sr_tensor in = tensor_new(3, 2, 3);
    test_fill(&r, in.data, 18, -1, 1);
    float weight[6], bias[2];
    test_fill(&r, weight, 6, -1, 1);
    test_fill(&r, bias, 2, -1, 1);
    sr_node node = {.op = SR_OP_CONV2D, .n_inputs = 1};
    node.p.conv2d = (sr_conv2d_params){.c_in = 3, .c_out = 2, .k = 1, .pad = 0, .weight = weight, .bias = bias};
    sr_tensor out = tensor_new(2, 2, 3);
    sr_op_get(SR_OP_CONV2D)->reference(&node, &in, &out, NULL);
    for (int o = 0; o < 2; o++)
        for (int p = 0; p < 6; p++) {
            double v = bias[o];
            for (int i = 0; i < 3; i++)
                v += (double)weight[o * 3 + i] * in.data[i * 6 + p];
            assert_float_equal(out.data[o * 6 + p], v, 1e-6);
        }
    free(in.data);
    free(out.data);
}

static void test_pixel_shuffle_reference_layout(void **state)
{
    (void)state;
    /* out[c][y r + i][x r + j] = in[c r^2 + i r + j][y][x], r = 2. */
    sr_tensor in = tensor_new(8, 3, 2);
    for (int i = 0; i < 48; i++)
        in.data[i] = (float)i;
    sr_node node = {.op = SR_OP_PIXEL_SHUFFLE, .n_inputs = 1, .p.pixel_shuffle.r = 2};
    sr_tensor out = tensor_new(2, 6, 4);
    sr_op_get(SR_OP_PIXEL_SHUFFLE)->reference(&node, &in, &out, NULL);
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 2; x++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 2; j++)
                        assert_float_equal(out.data[(c * 6 + y * 2 + i) * 4 + x * 2 + j],
                                           in.data[((c * 4 + i * 2 + j) * 3 + y) * 2 + x], 0);
    free(in.data);
    free(out.data);
}

static void test_instance_norm_reference_normalises(void **state)
{
    (void)state;
    test_rng r = {13};
    sr_tensor in = tensor_new(3, 7, 5);
    test_fill(&r, in.data, 105, 2, 9); /* far from zero mean, unit variance */
    sr_node node = {.op = SR_OP_INSTANCE_NORM, .n_inputs = 1, .p.instance_norm.eps = 1e-5f};
    sr_tensor out = tensor_new(3, 7, 5);
    float *stats = gather_stats(&node, &in, 7);
    sr_op_get(SR_OP_INSTANCE_NORM)->reference(&node, &in, &out, stats);
    /* Gathered in bands of 2 rows or 1, the statistics are the same bits. */
    for (int64_t band = 1; band <= 2; band++) {
        float *again = gather_stats(&node, &in, band);
        assert_memory_equal(again, stats, 6 * sizeof(float));
        free(again);
    }
    free(stats);
    for (int c = 0; c < 3; c++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < 35; i++)
            sum += out.data[c * 35 + i];
        for (int i = 0; i < 35; i++)
            sq += out.data[c * 35 + i] * out.data[c * 35 + i];
        assert_float_equal(sum / 35, 0.0, 1e-6);
        assert_float_equal(sq / 35, 1.0, 1e-3); /* eps shrinks it slightly */
    }
    /* A constant plane (a 1x1 image) normalises to 0, not NaN. */
    sr_tensor dot = tensor_new(1, 1, 1), dot_out = tensor_new(1, 1, 1);
    dot.data[0] = 3.5f;
    stats = gather_stats(&node, &dot, 1);
    sr_op_get(SR_OP_INSTANCE_NORM)->reference(&node, &dot, &dot_out, stats);
    free(stats);
    assert_float_equal(dot_out.data[0], 0.0f, 0);
    free(dot.data);
    free(dot_out.data);
    free(in.data);
    free(out.data);
}

static void test_prelu_reference_slopes(void **state)
{
    (void)state;
    float shared = 0.25f, per_channel[2] = {0.1f, 0.5f};
    sr_tensor in = tensor_new(2, 1, 2);
    float values[4] = {-2, 3, -4, 5};
    memcpy(in.data, values, sizeof values);
    sr_tensor out = tensor_new(2, 1, 2);
    sr_node node = {.op = SR_OP_PRELU, .n_inputs = 1};
    node.p.prelu = (sr_prelu_params){1, &shared};
    sr_op_get(SR_OP_PRELU)->reference(&node, &in, &out, NULL);
    float want_shared[4] = {-0.5f, 3, -1, 5};
    for (int i = 0; i < 4; i++)
        assert_float_equal(out.data[i], want_shared[i], 1e-7);
    node.p.prelu = (sr_prelu_params){2, per_channel};
    sr_op_get(SR_OP_PRELU)->reference(&node, &in, &out, NULL);
    float want_per_channel[4] = {-0.2f, 3, -2, 5};
    for (int i = 0; i < 4; i++)
        assert_float_equal(out.data[i], want_per_channel[i], 1e-7);
    free(in.data);
    free(out.data);
}

static void test_tanh_affine_reference(void **state)
{
    (void)state;
    sr_tensor in = tensor_new(1, 1, 3), out = tensor_new(1, 1, 3);
    in.data[0] = -40.0f, in.data[1] = 0.0f, in.data[2] = 0.5f;
    sr_node node = {.op = SR_OP_TANH_AFFINE, .n_inputs = 1};
    sr_op_get(SR_OP_TANH_AFFINE)->reference(&node, &in, &out, NULL);
    assert_float_equal(out.data[0], 0.0f, 1e-7);
    assert_float_equal(out.data[1], 0.5f, 1e-7);
    assert_float_equal(out.data[2], (tanh(0.5) + 1) / 2, 1e-7);
    free(in.data);
    free(out.data);
}

static void test_add_reference_scales_then_sums(void **state)
{
    (void)state;
    test_rng r = {14};
    sr_tensor in[2] = {tensor_new(2, 3, 4), tensor_new(2, 3, 4)}, out = tensor_new(2, 3, 4);
    test_fill(&r, in[0].data, 24, -3, 3);
    test_fill(&r, in[1].data, 24, -3, 3);
    sr_node node = {.op = SR_OP_ADD, .n_inputs = 2, .p.add = {1.0f}};
    sr_op_get(SR_OP_ADD)->reference(&node, in, &out, NULL);
    for (int i = 0; i < 24; i++) /* scale 1: the plain sum, bit for bit */
        assert_true(out.data[i] == in[0].data[i] + in[1].data[i]);
    node.p.add.scale = 0.2f;
    sr_op_get(SR_OP_ADD)->reference(&node, in, &out, NULL);
    for (int i = 0; i < 24; i++) { /* PyTorch's two roundings, not one FMA */
        volatile float scaled = 0.2f * in[1].data[i];
        const float want = in[0].data[i] + scaled;
        assert_memory_equal(&out.data[i], &want, sizeof want);
    }
    assert_int_equal(sr_op_get(SR_OP_ADD)->flops(&node, out.shape), 48);
    free(in[0].data);
    free(in[1].data);
    free(out.data);
}

/* PyTorch's relu keeps -0.0 and NaN and makes +0.0 of negatives; its
 * leaky_relu multiplies everything not above 0. */
static void test_leaky_relu_reference_signs(void **state)
{
    (void)state;
    const float x[5] = {-2.0f, -0.0f, 0.0f, 3.0f, NAN};
    const float relu[5] = {0.0f, -0.0f, 0.0f, 3.0f, NAN};
    const float leaky[5] = {-0.5f, -0.0f, 0.0f, 3.0f, NAN};
    sr_tensor in = tensor_new(1, 1, 5), out = tensor_new(1, 1, 5);
    memcpy(in.data, x, sizeof x);
    sr_node node = {.op = SR_OP_LEAKY_RELU, .n_inputs = 1, .p.leaky_relu = {0.0f}};
    sr_op_get(SR_OP_LEAKY_RELU)->reference(&node, &in, &out, NULL);
    assert_memory_equal(out.data, relu, 4 * sizeof(float));
    assert_true(isnan(out.data[4]));
    assert_string_equal(sr_op_name(&node), "relu");
    node.p.leaky_relu.slope = 0.25f;
    sr_op_get(SR_OP_LEAKY_RELU)->reference(&node, &in, &out, NULL);
    assert_memory_equal(out.data, leaky, 4 * sizeof(float));
    assert_true(isnan(out.data[4]));
    assert_string_equal(sr_op_name(&node), "leaky_relu");
    free(in.data);
    free(out.data);
}

static void test_concat_reference_order_and_shapes(void **state)
{
    (void)state;
    sr_tensor in[3] = {tensor_new(1, 2, 2), tensor_new(2, 2, 2), tensor_new(1, 2, 2)};
    for (int j = 0; j < 3; j++)
        for (int64_t i = 0; i < sr_shape_numel(in[j].shape); i++)
            in[j].data[i] = (float)(10 * j + i);
    sr_node node = {.op = SR_OP_CONCAT, .n_inputs = 3};
    const sr_shape shapes[SR_NODE_MAX_INPUTS] = {in[0].shape, in[1].shape, in[2].shape};
    sr_shape s;
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->shape(&node, shapes, &s, NULL), SR_OK);
    assert_true(s.c == 4 && s.h == 2 && s.w == 2);
    sr_tensor out = tensor_new(4, 2, 2);
    sr_op_get(SR_OP_CONCAT)->reference(&node, in, &out, NULL);
    const float want[16] = {0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 23};
    assert_memory_equal(out.data, want, sizeof want);
    /* One input, more than a node holds, or unequal rows or columns. */
    sr_error err = {0};
    const sr_shape taller[2] = {{1, 2, 2}, {1, 3, 2}}, wider[2] = {{1, 2, 2}, {1, 2, 3}};
    node.n_inputs = 1;
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->shape(&node, shapes, &s, &err), SR_ERR_MODEL);
    node.n_inputs = SR_NODE_MAX_INPUTS + 1;
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->shape(&node, shapes, &s, &err), SR_ERR_MODEL);
    node.n_inputs = 2;
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->shape(&node, taller, &s, &err), SR_ERR_MODEL);
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->shape(&node, wider, &s, &err), SR_ERR_MODEL);
    assert_int_equal(sr_op_get(SR_OP_CONCAT)->n_inputs, SR_OP_VARIADIC);
    for (int j = 0; j < 3; j++)
        free(in[j].data);
    free(out.data);
}

static void test_upsample_reference_layout_and_edges(void **state)
{
    (void)state;
    /* A row 0, 1 by 2: nearest repeats; bilinear's half-pixel centres give
     * 0, 1/4, 3/4, 1, the ends clamped. */
    sr_tensor in = tensor_new(1, 1, 2), out = tensor_new(1, 2, 4);
    in.data[0] = 0.0f, in.data[1] = 1.0f;
    sr_node node = {.op = SR_OP_UPSAMPLE, .n_inputs = 1, .p.upsample = {2, SR_UPSAMPLE_NEAREST}};
    sr_op_get(SR_OP_UPSAMPLE)->reference(&node, &in, &out, NULL);
    const float nearest[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    assert_memory_equal(out.data, nearest, sizeof nearest);
    node.p.upsample.mode = SR_UPSAMPLE_BILINEAR;
    sr_op_get(SR_OP_UPSAMPLE)->reference(&node, &in, &out, NULL);
    const float bilinear[8] = {0, 0.25f, 0.75f, 1, 0, 0.25f, 0.75f, 1};
    assert_memory_equal(out.data, bilinear, sizeof bilinear);
    /* Halo, scale, and the factors and modes the shape rule refuses. */
    const sr_op_desc *d = sr_op_get(SR_OP_UPSAMPLE);
    assert_int_equal(d->halo(&node), 1);
    assert_int_equal(d->scale(&node), 2);
    sr_shape s;
    sr_error err = {0};
    const sr_upsample_params bad[] = {{1, SR_UPSAMPLE_NEAREST}, {SR_UPSAMPLE_MAX_FACTOR + 1, 0},
                                      {2, 2}, {2, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        node.p.upsample = bad[i];
        assert_int_equal(d->shape(&node, &in.shape, &s, &err), SR_ERR_MODEL);
    }
    node.p.upsample = (sr_upsample_params){3, SR_UPSAMPLE_NEAREST};
    assert_int_equal(d->halo(&node), 0);
    assert_int_equal(d->shape(&node, &in.shape, &s, &err), SR_OK);
    assert_true(s.c == 1 && s.h == 3 && s.w == 6);
    free(in.data);
    free(out.data);
}

/* ---- the reference kernels, and every backend, against PyTorch ---- */

/* make_op_fixtures.py's MAX_VALUES: larger outputs are stored sampled. */
#define ORACLE_MAX_VALUES 4096

/* PyTorch's output of a case (tests/fixtures/ops/<name>.f32): every
 * stride-th value of the n it has. */
static float *read_oracle(const char *name, int64_t n, int64_t *stride)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ops/%s.f32", SR_FIXTURES_DIR, name);
    *stride = n <= ORACLE_MAX_VALUES ? 1 : ((n + ORACLE_MAX_VALUES - 1) / ORACLE_MAX_VALUES) | 1;
    int64_t size;
    float *want = test_read_file(path, &size);
    if (!want || size != (n + *stride - 1) / *stride * (int64_t)sizeof(float))
        fail_msg("%s: missing, or not the size of the case's output", path);
    return want;
}

/* The case's output by the reference kernel (b NULL) or a backend, against
 * PyTorch's: the largest error relative to PyTorch's largest magnitude. */
static float oracle_error(const sr_backend_handle *b, const sr_node *node, const sr_tensor *in,
                          const char *name)
{
    const sr_shape s = run_shape(node, in);
    sr_tensor got = tensor_new(s.c, s.h, s.w);
    float *stats = gather_stats(node, in, in[0].shape.h);
    if (b)
        assert_int_equal(b->iface->run(b->ctx, node, in, &got, stats, NULL), SR_OK);
    else
        sr_op_get(node->op)->reference(node, in, &got, stats);
    int64_t stride;
    const int64_t n = sr_shape_numel(s);
    float *want = read_oracle(name, n, &stride);
    const int64_t count = (n + stride - 1) / stride;
    float scale = test_max_abs(want, count), worst = 0.0f;
    for (int64_t i = 0; i < count; i++) {
        const float d = fabsf(got.data[i * stride] - want[i]);
        worst = d > worst || d != d ? d : worst; /* NaN (unwritten) fails */
    }
    free(want);
    free(stats);
    free(got.data);
    return worst / (scale > 0 ? scale : 1);
}

/* The reference kernel (which the reference backend runs as it is), then
 * the CPU backend, on one case; returns the larger error. */
static float check_oracle(const sr_node *node, const sr_tensor *in, const char *name, float tol)
{
    sr_backend_handle cpu;
    assert_int_equal(sr_cpu_backend_new(2, &cpu, NULL), SR_OK);
    const float e_ref = oracle_error(NULL, node, in, name);
    if (!(e_ref <= tol))
        fail_msg("%s: the reference kernel is %g off PyTorch (relative)", name, e_ref);
    const float e_cpu = oracle_error(&cpu, node, in, name);
    if (!(e_cpu <= tol))
        fail_msg("%s: the cpu backend is %g off PyTorch (relative)", name, e_cpu);
    sr_backend_free(&cpu);
    return e_ref > e_cpu ? e_ref : e_cpu;
}

/* Every conv case of kernel_cases.h, its input and weights drawn as
 * make_op_fixtures.py draws them. */
static void test_conv_cases_match_pytorch(void **state)
{
    (void)state;
    float worst = 0.0f;
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++) {
        const conv_case *cc = &conv_cases[i];
        test_rng r = {1000 + i};
        sr_tensor in = tensor_new(cc->c_in, cc->h, cc->w);
        test_fill(&r, in.data, cc->c_in * cc->h * cc->w, -1, 1);
        sr_node node = conv_node_new(i, &r);
        char name[32];
        snprintf(name, sizeof name, "conv_%02zu", i);
        const float e = check_oracle(&node, &in, name, SR_TOL_ORACLE_CONV_REL);
        worst = e > worst ? e : worst;
        conv_node_free(&node);
        free(in.data);
    }
    printf("conv cases: max |srrun - pytorch| / max |pytorch| = %.3g\n", worst);
}

/* make_op_fixtures.py's OTHER_CASES: the op with its slopes (none, one or
 * per channel), shuffle or upsampling factor and mode, add's scale or
 * LeakyReLU's slope, concat's inputs. */
static const struct other_case {
    const char *name;
    uint64_t seed;
    int64_t c, h, w;
    sr_op_type op;
    int slopes; /* 0, 1 shared, 2 per channel */
    int r;          /* shuffle or upsampling factor */
    int mode;       /* sr_upsample_mode */
    float value;    /* add's scale, LeakyReLU's slope */
    int n_concat;   /* concat's inputs: the case's first n_concat */
} other_cases[] = {
    {"prelu_shared", 2001, 8, 5, 7, SR_OP_PRELU, .slopes = 1},
    {"prelu_channels", 2002, 12, 9, 3, SR_OP_PRELU, .slopes = 2},
    {"instance_norm", 2003, 8, 6, 11, SR_OP_INSTANCE_NORM, .slopes = 0},
    {"instance_norm_prelu", 2004, 4, 13, 5, SR_OP_INSTANCE_NORM, .slopes = 2},
    {"instance_norm_1x1", 2005, 4, 1, 1, SR_OP_INSTANCE_NORM, .slopes = 0},
    {"pixel_shuffle_2", 2006, 8, 5, 3, SR_OP_PIXEL_SHUFFLE, .r = 2},
    {"pixel_shuffle_3", 2007, 18, 2, 4, SR_OP_PIXEL_SHUFFLE, .r = 3},
    {"add", 2008, 8, 7, 9, SR_OP_ADD, .value = 1.0f},
    {"tanh_affine", 2009, 8, 7, 9, SR_OP_TANH_AFFINE, .slopes = 0},
    {"add_scaled", 2010, 8, 7, 9, SR_OP_ADD, .value = 0.2f},
    {"leaky_relu", 2011, 8, 7, 9, SR_OP_LEAKY_RELU, .value = 0.2f},
    {"relu", 2012, 8, 7, 9, SR_OP_LEAKY_RELU, .value = 0.0f},
    {"concat_2", 2013, 4, 3, 5, SR_OP_CONCAT, .n_concat = 2},
    {"concat_5", 2014, 6, 5, 7, SR_OP_CONCAT, .n_concat = 5},
    {"upsample_nearest_2", 2015, 3, 5, 7, SR_OP_UPSAMPLE, .r = 2, .mode = SR_UPSAMPLE_NEAREST},
    {"upsample_nearest_3", 2016, 2, 4, 3, SR_OP_UPSAMPLE, .r = 3, .mode = SR_UPSAMPLE_NEAREST},
    {"upsample_nearest_4", 2017, 2, 3, 5, SR_OP_UPSAMPLE, .r = 4, .mode = SR_UPSAMPLE_NEAREST},
    {"upsample_bilinear_2", 2018, 3, 6, 5, SR_OP_UPSAMPLE, .r = 2, .mode = SR_UPSAMPLE_BILINEAR},
    {"upsample_bilinear_3", 2019, 2, 5, 4, SR_OP_UPSAMPLE, .r = 3, .mode = SR_UPSAMPLE_BILINEAR},
    {"upsample_bilinear_4", 2020, 3, 4, 6, SR_OP_UPSAMPLE, .r = 4, .mode = SR_UPSAMPLE_BILINEAR},
    {"upsample_bilinear_8", 2021, 1, 3, 2, SR_OP_UPSAMPLE, .r = 8, .mode = SR_UPSAMPLE_BILINEAR},
    {"upsample_bilinear_2_1x1", 2022, 3, 1, 1, SR_OP_UPSAMPLE, .r = 2, .mode = SR_UPSAMPLE_BILINEAR},
    {"upsample_bilinear_3_1x5", 2023, 2, 1, 5, SR_OP_UPSAMPLE, .r = 3, .mode = SR_UPSAMPLE_BILINEAR},
};

/* A case's inputs: two of c channels (add's), then concat's others. */
#define CASE_INPUTS 5
static int64_t case_channels(const struct other_case *oc, int i)
{
    const int64_t channels[CASE_INPUTS] = {oc->c, oc->c, 1, 3, oc->c / 2};
    return channels[i];
}

static void test_other_ops_match_pytorch(void **state)
{
    (void)state;
    float worst = 0.0f;
    for (size_t i = 0; i < sizeof other_cases / sizeof *other_cases; i++) {
        const struct other_case *oc = &other_cases[i];
        test_rng r = {oc->seed};
        /* Drawn as make_op_fixtures.py draws them: the first two, the
         * slopes, the others. */
        sr_tensor in[CASE_INPUTS];
        float slopes[64];
        for (int j = 0; j < CASE_INPUTS; j++) {
            in[j] = tensor_new(case_channels(oc, j), oc->h, oc->w);
            if (j == 2)
                test_fill(&r, slopes, oc->c, 0, 1);
            test_fill(&r, in[j].data, sr_shape_numel(in[j].shape), -3, 3);
        }
        const int64_t n_slopes = oc->slopes == 2 ? oc->c : oc->slopes;
        sr_node node = {.op = oc->op, .n_inputs = 1};
        if (oc->op == SR_OP_PRELU)
            node.p.prelu = (sr_prelu_params){n_slopes, slopes};
        if (oc->op == SR_OP_INSTANCE_NORM && n_slopes)
            sr_epilogue_append(&node.p.instance_norm.epilogue,
                               (sr_epilogue_step){SR_EPILOGUE_PRELU, .p.prelu = {n_slopes, slopes}});
        if (oc->op == SR_OP_INSTANCE_NORM)
            node.p.instance_norm.eps = 1e-5f;
        if (oc->op == SR_OP_PIXEL_SHUFFLE)
            node.p.pixel_shuffle.r = oc->r;
        if (oc->op == SR_OP_ADD)
            node = (sr_node){.op = oc->op, .n_inputs = 2, .p.add = {oc->value}};
        if (oc->op == SR_OP_LEAKY_RELU)
            node.p.leaky_relu.slope = oc->value;
        if (oc->op == SR_OP_CONCAT)
            node.n_inputs = oc->n_concat;
        if (oc->op == SR_OP_UPSAMPLE)
            node.p.upsample = (sr_upsample_params){oc->r, oc->mode};
        const float e = check_oracle(&node, in, oc->name, SR_TOL_ORACLE_OP_REL);
        worst = e > worst ? e : worst;
        for (int j = 0; j < CASE_INPUTS; j++)
            free(in[j].data);
    }
    printf("other ops: max |srrun - pytorch| / max |pytorch| = %.3g\n", worst);
}

/* ---- every backend against the reference ---- */

static void check_against_reference(void *user, const sr_node *node, const sr_tensor *in,
                                    test_rng *r, const char *what)
{
    const sr_backend_handle *be = user;
    const float err = compare_backend(be, node, in, r);
    if (err > SR_TOL_KERNEL_REL)
        fail_msg("%s %s: relative error %g", be->iface->name, what, err);
}

static void test_backends_match_reference(void **state)
{
    (void)state;
    sr_backend_handle backends[3];
    assert_int_equal(sr_cpu_backend_new(2, &backends[0], NULL), SR_OK);
    assert_int_equal(sr_reference_backend_new(&backends[1], NULL), SR_OK);
    /* And the products by OpenBLAS, as on a CPU without AVX2. */
    assert_int_equal(sr_cpu_backend_new(2, &backends[2], NULL), SR_OK);
    ((sr_cpu_context *)backends[2].ctx)->small_gemm = NULL;
    test_rng r = {42};
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
        check_kernel_cases(&r, 20, check_against_reference, &backends[b]);
        sr_backend_free(&backends[b]);
    }
}

/* A CPU backend with an algorithm forced: it runs every case it can,
 * the selection's choice the others; where that is not the default's
 * (which test_backends_match_reference checks), within the kernel
 * tolerance and banded bit for bit. */
static void check_forced(void *user, const sr_node *node, const sr_tensor *in, test_rng *r,
                         const char *what)
{
    const sr_backend_handle *be = user;
    const sr_cpu_context *ctx = be->ctx;
    const sr_cpu_context plain = {.n_threads = ctx->n_threads};
    const sr_conv2d_params *p = &node->p.conv2d;
    const sr_cpu_conv_algorithm *chosen = sr_cpu_conv2d_select(ctx, p);
    const sr_cpu_conv_algorithm *by_default = sr_cpu_conv2d_select(&plain, p);
    assert_ptr_equal(chosen, ctx->conv_forced->can_run(p) ? ctx->conv_forced : by_default);
    if (chosen == by_default)
        return;
    const float err = compare_backend(be, node, in, r);
    if (err > SR_TOL_KERNEL_REL)
        fail_msg("cpu forced %s, ran %s, %s: relative error %g", ctx->conv_forced->name,
                 chosen->name, what, err);
}

static void test_cpu_forced_algorithms_match_reference(void **state)
{
    (void)state;
    for (int a = 0; a < SR_CPU_CONV_ALGORITHMS; a++) {
        sr_backend_handle cpu;
        assert_int_equal(sr_cpu_backend_new_forcing(2, sr_cpu_conv_algorithms[a]->name, &cpu,
                                                    NULL),
                         SR_OK);
        test_rng r = {43};
        check_kernel_cases(&r, 0, check_forced, &cpu); /* the convolutions alone */
        sr_backend_free(&cpu);
    }
}

/* ---- a concatenation folded into a convolution ---- */

/* out's rows must be want's, bit for bit. */
static void expect_rows(const sr_tensor *out, const sr_tensor *want, const char *what,
                        const char *where)
{
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++)
            if (memcmp(sr_tensor_row(out, c, y), sr_tensor_row(want, c, y),
                       (size_t)out->shape.w * sizeof(float)) != 0)
                fail_msg("%s %s: over several inputs, row %lld differs", what, where,
                         (long long)y);
}

/* A conv over its input's channels in 2 and 3 tensors makes the bits it
 * makes over the one tensor: on the whole image, and in a band whose
 * inputs hold different rows beyond what it needs (as the planner's
 * buffers may). */
static void check_split_same_bits(void *user, const sr_node *node, const sr_tensor *in,
                                  test_rng *r, const char *what)
{
    const sr_backend_handle *be = user;
    if (node->n_inputs > 1)
        return; /* made here from the one-input case */
    const sr_shape s = run_shape(node, in);
    sr_tensor want = tensor_new(s.c, s.h, s.w);
    assert_int_equal(be->iface->run(be->ctx, node, in, &want, NULL, NULL), SR_OK);
    const sr_row_tiling tiling = sr_backend_row_tiling(be, node, s);
    const int64_t scale = sr_op_get(node->op)->scale(node), a = tiling.align, H = in->shape.h;
    for (int n = 2; n <= 3 && n <= in->shape.c; n++) {
        sr_node split = *node;
        split.n_inputs = n;
        sr_tensor parts[3], band_in[3];
        split_channels(in, n, parts);
        sr_tensor got = tensor_new(s.c, s.h, s.w);
        assert_int_equal(be->iface->run(be->ctx, &split, parts, &got, NULL, NULL), SR_OK);
        expect_rows(&got, &want, what, "whole");
        const int64_t y0 = test_rng_int(r, 0, (int)s.h - 1);
        const int64_t y1 = test_rng_int(r, (int)y0 + 1, (int)s.h);
        const int64_t lo = (y0 / a * a) / scale - tiling.halo;
        const int64_t hi = ((y1 + a - 1) / a * a + scale - 1) / scale + tiling.halo;
        for (int j = 0; j < n; j++)
            band_in[j] = copy_rows(&parts[j], lo - j < 0 ? 0 : lo - j, hi + j > H ? H : hi + j);
        sr_tensor band = tensor_new(s.c, y1 - y0, s.w);
        band.y0 = y0;
        band.image_h = s.h;
        assert_int_equal(be->iface->run(be->ctx, &split, band_in, &band, NULL, NULL), SR_OK);
        expect_rows(&band, &want, what, "band");
        for (int j = 0; j < n; j++) {
            free(parts[j].data);
            free(band_in[j].data);
        }
        free(got.data);
        free(band.data);
    }
    free(want.data);
}

static void test_conv_over_several_inputs_same_bits(void **state)
{
    (void)state;
    sr_backend_handle b;
    assert_int_equal(sr_reference_backend_new(&b, NULL), SR_OK);
    test_rng r = {44};
    check_kernel_cases(&r, 0, check_split_same_bits, &b);
    sr_backend_free(&b);
    for (int a = 0; a < SR_CPU_CONV_ALGORITHMS; a++) {
        assert_int_equal(sr_cpu_backend_new_forcing(2, sr_cpu_conv_algorithms[a]->name, &b, NULL),
                         SR_OK);
        check_kernel_cases(&r, 0, check_split_same_bits, &b);
        sr_backend_free(&b);
    }
}

/* A conv's inputs must be of one height and width and have its channels
 * between them. */
static void test_conv_shape_over_several_inputs(void **state)
{
    (void)state;
    sr_node node = {.op = SR_OP_CONV2D, .name = "c", .n_inputs = 3,
                    .p.conv2d = {.c_in = 7, .c_out = 2, .k = 3, .pad = 1}};
    sr_shape in[3] = {{4, 5, 6}, {1, 5, 6}, {2, 5, 6}}, s;
    sr_error err = {0};
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->shape(&node, in, &s, NULL), SR_OK);
    assert_int_equal(s.c, 2);
    assert_int_equal(s.h, 5);
    assert_int_equal(s.w, 6);
    in[2].c = 3;
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->shape(&node, in, &s, &err), SR_ERR_MODEL);
    in[2] = (sr_shape){2, 4, 6};
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->shape(&node, in, &s, &err), SR_ERR_MODEL);
    node.n_inputs = SR_NODE_MAX_INPUTS + 1;
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->shape(&node, in, &s, &err), SR_ERR_MODEL);
}

static void test_descriptors_declare_halo_scale_global(void **state)
{
    (void)state;
    sr_node conv9 = {.op = SR_OP_CONV2D, .p.conv2d = {.k = 9, .pad = 4}};
    sr_node conv3 = {.op = SR_OP_CONV2D, .p.conv2d = {.k = 3, .pad = 1}};
    sr_node shuffle = {.op = SR_OP_PIXEL_SHUFFLE, .p.pixel_shuffle = {2}};
    sr_node norm = {.op = SR_OP_INSTANCE_NORM};
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->halo(&conv9), 4);
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->halo(&conv3), 1);
    assert_int_equal(sr_op_get(SR_OP_PIXEL_SHUFFLE)->scale(&shuffle), 2);
    assert_int_equal(sr_op_get(SR_OP_CONV2D)->scale(&conv3), 1);
    assert_true(sr_op_get(SR_OP_INSTANCE_NORM)->is_global);
    assert_false(sr_op_get(SR_OP_CONV2D)->is_global);
    assert_int_equal(sr_op_get(SR_OP_INSTANCE_NORM)->halo(&norm), 0);
    for (int op = 0; op < SR_OP_COUNT; op++)
        assert_non_null(sr_op_get((sr_op_type)op)->name);
    assert_null(sr_op_get(SR_OP_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_reference_delta_kernel_shifts),
        cmocka_unit_test(test_conv_reference_upsampled_is_upsample_then_conv),
        cmocka_unit_test(test_conv_reference_sums_channels),
        cmocka_unit_test(test_conv_reference_folded_prelu_is_conv_then_prelu),
        cmocka_unit_test(test_conv_reference_epilogue_steps_in_order),
        cmocka_unit_test(test_epilogue_checked_by_the_shape_rule),
        cmocka_unit_test(test_pixel_shuffle_reference_layout),
        cmocka_unit_test(test_instance_norm_reference_normalises),
        cmocka_unit_test(test_prelu_reference_slopes),
        cmocka_unit_test(test_tanh_affine_reference),
        cmocka_unit_test(test_add_reference_scales_then_sums),
        cmocka_unit_test(test_leaky_relu_reference_signs),
        cmocka_unit_test(test_concat_reference_order_and_shapes),
        cmocka_unit_test(test_upsample_reference_layout_and_edges),
        cmocka_unit_test(test_conv_cases_match_pytorch),
        cmocka_unit_test(test_other_ops_match_pytorch),
        cmocka_unit_test(test_backends_match_reference),
        cmocka_unit_test(test_cpu_forced_algorithms_match_reference),
        cmocka_unit_test(test_conv_over_several_inputs_same_bits),
        cmocka_unit_test(test_conv_shape_over_several_inputs),
        cmocka_unit_test(test_descriptors_declare_halo_scale_global),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
