/* The SRPGAN builder on synthetic weights: what it infers from the keys
 * (width, blocks, scale, and the hyper-parameters it reports), and how it
 * names what is wrong with a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "models/registry.h"
#include "testutil.h"

static test_rng rng = {7};

static void add(sr_weights *w, const char *name, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *data = malloc((size_t)n * sizeof *data);
    assert_non_null(data);
    test_fill(&rng, data, n, -0.1f, 0.1f);
    assert_int_equal(sr_weights_add(w, name, ndim, shape, data, data, NULL), SR_OK);
}

static void add_conv(sr_weights *w, const char *prefix, int64_t out, int64_t in, int64_t k)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    add(w, key, 4, (int64_t[]){out, in, k, k});
    snprintf(key, sizeof key, "%s.bias", prefix);
    add(w, key, 1, (int64_t[]){out});
}

static void add_prelu(sr_weights *w, const char *prefix, int64_t n)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    add(w, key, 1, (int64_t[]){n});
}

/* A torchlite state dict of width f with n_res blocks and n_up upsamplers. */
static sr_weights srpgan_weights(int64_t f, int n_res, int n_up)
{
    sr_weights w = {0};
    char p[64];
    add_conv(&w, "block1.0", f, 3, 9);
    add_prelu(&w, "block1.1", 1);
    for (int i = 0; i < n_res; i++) {
        snprintf(p, sizeof p, "res_blocks.%d.conv1", i);
        add_conv(&w, p, f, f, 3);
        snprintf(p, sizeof p, "res_blocks.%d.prelu", i);
        add_prelu(&w, p, 1);
        snprintf(p, sizeof p, "res_blocks.%d.conv2", i);
        add_conv(&w, p, f, f, 3);
    }
    add_conv(&w, "block3.0", f, f, 3);
    add_prelu(&w, "block3.1", 1);
    for (int i = 0; i < n_up; i++) {
        snprintf(p, sizeof p, "up_blocks.%d.conv", i);
        add_conv(&w, p, 4 * f, f, 3);
        snprintf(p, sizeof p, "up_blocks.%d.prelu", i);
        add_prelu(&w, p, 1);
    }
    add_conv(&w, "block4", 3, f, 9);
    return w;
}

static bool strict;

static sr_status build(sr_weights *w, sr_model_info *info, sr_notices *notices,
                       sr_error *err)
{
    sr_graph g = {0};
    sr_status st = sr_model_build(w, strict, &g, info, notices, err);
    if (st == SR_OK) {
        /* The graph computes shapes for any image, here 5x3. */
        sr_shape *shapes = calloc((size_t)g.n_nodes, sizeof *shapes);
        assert_int_equal(sr_graph_shapes(&g, (sr_shape){3, 3, 5}, shapes, NULL), SR_OK);
        sr_shape out = shapes[g.n_nodes - 1];
        assert_int_equal(out.c, 3);
        assert_int_equal(out.h, 3 * info->scale);
        assert_int_equal(out.w, 5 * info->scale);
        free(shapes);
    }
    sr_graph_free(&g);
    return st;
}

static void test_infers_width_blocks_and_scale(void **state)
{
    (void)state;
    const struct { int64_t f; int n_res, n_up; } cases[] = {
        {8, 1, 1}, {4, 4, 2}, {6, 0, 3}, {5, 7, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_weights w = srpgan_weights(cases[i].f, cases[i].n_res, cases[i].n_up);
        sr_model_info info;
        sr_notices notices = {{0}};
        sr_error err = {0};
        if (build(&w, &info, &notices, &err) != SR_OK)
            fail_msg("%s", err.message);
        assert_int_equal(info.scale, 1 << cases[i].n_up);
        assert_int_equal(info.n_blocks, cases[i].n_res);
        int64_t params = 0;
        for (int64_t j = 0; j < w.n_items; j++)
            params += sr_weight_numel(&w.items[j]);
        assert_int_equal(info.n_params, params);
        assert_string_equal(notices.text, "");
        sr_weights_free(&w);
    }
}

/* What model.bin records and `srrun info` shows: scale, blocks, width, in
 * that order (model.bin version 1 stored them by position). */
static void test_hyper_parameters(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(6, 3, 2);
    sr_graph g = {0};
    sr_model_info info;
    sr_hparams h;
    sr_notices notices = {{0}};
    sr_error err = {0};
    if (sr_model_build_as("srpgan", &w, true, &g, &info, &h, &notices, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.items[0].name, "scale");
    assert_int_equal(h.items[0].value, 4);
    assert_string_equal(h.items[1].name, "blocks");
    assert_int_equal(h.items[1].value, 3);
    assert_string_equal(h.items[2].name, "width");
    assert_int_equal(h.items[2].value, 6);
    sr_graph_free(&g);
    sr_weights_free(&w);
}

static void expect_error(sr_weights *w, sr_status status, const char *message)
{
    sr_model_info info;
    sr_notices notices = {{0}};
    sr_error err = {0};
    assert_int_equal(build(w, &info, &notices, &err), status);
    if (!strstr(err.message, message))
        fail_msg("message '%s' lacks '%s'", err.message, message);
    sr_weights_free(w);
}

static void test_wrong_shape_names_key_and_shapes(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(64, 1, 2);
    /* Replace block4.weight by a 7x7 one. */
    sr_weight *t = (sr_weight *)sr_weights_find(&w, "block4.weight");
    t->shape[2] = t->shape[3] = 7;
    expect_error(&w, SR_ERR_MODEL, "block4.weight: expected [3,64,9,9], file has [3,64,7,7]");
}

static void test_missing_key_is_named(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(4, 2, 1);
    sr_weights_truncate(&w, w.n_items - 1); /* drops block4.bias */
    expect_error(&w, SR_ERR_MODEL, "missing key 'block4.bias'");
}

static void test_scale_must_be_2_to_8(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(4, 1, 0);
    expect_error(&w, SR_ERR_MODEL, "0 upsample blocks");
    w = srpgan_weights(4, 1, 4);
    expect_error(&w, SR_ERR_MODEL, "4 upsample blocks (up_blocks.N): SRPGAN has 1 to 3");
}

static void test_unknown_architecture(void **state)
{
    (void)state;
    sr_weights w = {0};
    add(&w, "conv_first.weight", 4, (int64_t[]){64, 3, 3, 3});
    expect_error(&w, SR_ERR_MODEL,
                 "unknown architecture: no known layout has keys like 'conv_first.weight' "
                 "(srrun knows srpgan, rrdbnet, srvgg, edsr, msrresnet)");
}

static void test_old_running_stats_and_extra_keys_are_noticed(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(4, 2, 1);
    add(&w, "res_blocks.0.in1.running_mean", 1, (int64_t[]){4});
    add(&w, "res_blocks.0.in1.running_var", 1, (int64_t[]){4});
    add(&w, "res_blocks.1.in2.running_mean", 1, (int64_t[]){4});
    add(&w, "discriminator.fc.weight", 2, (int64_t[]){2, 2});
    add(&w, "evil\x1b[2J\x9b", 1, (int64_t[]){1});
    sr_model_info info;
    sr_notices notices = {{0}};
    const int64_t n_used = w.n_items - 5;
    assert_int_equal(build(&w, &info, &notices, NULL), SR_OK);
    assert_non_null(strstr(notices.text, "ignoring 3 InstanceNorm running statistics"));
    assert_non_null(strstr(notices.text, "ignoring unexpected key 'discriminator.fc.weight'"));
    /* A name is shown escaped, never sent to the terminal as it is. */
    assert_non_null(strstr(notices.text, "ignoring unexpected key 'evil\\x1b[2J\\x9b'"));
    /* The model keeps only what its network uses. */
    assert_int_equal(w.n_items, n_used);
    assert_null(sr_weights_find(&w, "discriminator.fc.weight"));
    assert_null(sr_weights_find(&w, "res_blocks.0.in1.running_mean"));
    assert_non_null(sr_weights_find(&w, "block4.bias"));
    /* Strict loading refuses the extra key but not the old statistics. */
    add(&w, "res_blocks.0.in1.running_mean", 1, (int64_t[]){4});
    add(&w, "discriminator.fc.weight", 2, (int64_t[]){2, 2});
    strict = true;
    expect_error(&w, SR_ERR_MODEL, "unexpected key 'discriminator.fc.weight' (refused by strict");
    strict = false;
}

static void test_per_channel_prelu_is_accepted(void **state)
{
    (void)state;
    sr_weights w = srpgan_weights(4, 1, 1);
    sr_weight *t = (sr_weight *)sr_weights_find(&w, "block3.1.weight");
    free(t->owned);
    t->owned = calloc(4, sizeof(float));
    t->data = t->owned;
    t->shape[0] = 4;
    sr_model_info info;
    assert_int_equal(build(&w, &info, &(sr_notices){{0}}, NULL), SR_OK);
    sr_weights_free(&w);
    /* Any other slope count is a shape error. */
    w = srpgan_weights(4, 1, 1);
    ((sr_weight *)sr_weights_find(&w, "block3.1.weight"))->shape[0] = 3;
    expect_error(&w, SR_ERR_MODEL, "block3.1.weight: expected [1], file has [3]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infers_width_blocks_and_scale),
        cmocka_unit_test(test_hyper_parameters),
        cmocka_unit_test(test_wrong_shape_names_key_and_shapes),
        cmocka_unit_test(test_missing_key_is_named),
        cmocka_unit_test(test_scale_must_be_2_to_8),
        cmocka_unit_test(test_unknown_architecture),
        cmocka_unit_test(test_old_running_stats_and_extra_keys_are_noticed),
        cmocka_unit_test(test_per_channel_prelu_is_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
