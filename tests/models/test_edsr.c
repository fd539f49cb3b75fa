/* EDSR (models/edsr.c): the fixtures, which PyTorch ran on [0, 255]
 * images as EDSR-PyTorch does, against srrun's [0, 1] runs; bands; what
 * the builder reads (scale, blocks, rgb_range, res_scale by width) and the
 * files it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "arch_check.h"

/* MeanShift's 1x1 conv for rgb_range and sign (-1: sub_mean). */
static void add_mean_shift(sr_weights *w, const char *prefix, float range, float sign)
{
    static const float mean[3] = {0.4488f, 0.4371f, 0.4040f};
    char key[64];
    snprintf(key, sizeof key, "%s.weight", prefix);
    arch_add(w, key, 4, (int64_t[]){3, 3, 1, 1});
    float *weight = arch_find(w, key)->owned;
    for (int i = 0; i < 9; i++)
        weight[i] = i % 4 == 0; /* the identity: std 1 */
    snprintf(key, sizeof key, "%s.bias", prefix);
    arch_add(w, key, 1, (int64_t[]){3});
    float *bias = arch_find(w, key)->owned;
    for (int c = 0; c < 3; c++)
        bias[c] = sign * range * mean[c];
}

/* EDSR-PyTorch's keys; scale 2, 3, 4 or 8. */
static sr_weights edsr_weights(int64_t f, int n_blocks, int scale, float range)
{
    sr_weights w = {0};
    char p[32];
    add_mean_shift(&w, "sub_mean", range, -1);
    add_mean_shift(&w, "add_mean", range, 1);
    arch_add_conv(&w, f, 3, 3, "head.0");
    for (int i = 0; i < n_blocks; i++)
        for (int j = 0; j <= 2; j += 2) {
            snprintf(p, sizeof p, "body.%d.body.%d", i, j);
            arch_add_conv(&w, f, f, 3, p);
        }
    snprintf(p, sizeof p, "body.%d", n_blocks);
    arch_add_conv(&w, f, f, 3, p);
    if (scale == 3)
        arch_add_conv(&w, 9 * f, f, 3, "tail.0.0");
    for (int i = 0; scale != 3 && 2 << i <= scale; i++) {
        snprintf(p, sizeof p, "tail.0.%d", 2 * i);
        arch_add_conv(&w, 4 * f, f, 3, p);
    }
    arch_add_conv(&w, 3, f, 3, "tail.1");
    return w;
}

static void test_matches_pytorch_on_rgb_range_255(void **state)
{
    (void)state;
    arch_check_against_pytorch("edsr_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("edsr_x3", SR_BACKEND_CPU);
    arch_check_against_pytorch("edsr_x4", SR_BACKEND_REFERENCE);
    arch_check_against_pytorch("edsr_x3", SR_BACKEND_REFERENCE);
}

static void test_bands_and_budgets_give_the_same_bits(void **state)
{
    (void)state;
    arch_check_bands("edsr_x4", 11, 29, 2);
    arch_check_bands("edsr_x3", 9, 31, 2);
}

static void test_reads_width_blocks_and_scale(void **state)
{
    (void)state;
    const struct { int64_t f; int n_blocks, scale; } cases[] = {
        {4, 1, 2}, {5, 3, 3}, {6, 2, 4}, {3, 0, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_weights w = edsr_weights(cases[i].f, cases[i].n_blocks, cases[i].scale, 255);
        arch_expect_info(&w, "edsr", cases[i].scale, cases[i].n_blocks);
    }
}

/* The graph's node named `name`, or NULL. */
static const sr_node *find_node(const sr_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0)
            return &g->nodes[i];
    return NULL;
}

static void build_graph(sr_weights *w, sr_graph *g, sr_notices *notices)
{
    sr_model_info info;
    sr_error err = {0};
    if (sr_model_build(w, false, g, &info, notices, &err) != SR_OK)
        fail_msg("%s", err.message);
}

/* rgb_range folds into the mean shifts: sub_mean's weights times it,
 * add_mean's weights and bias over it, in copies the graph owns (the
 * file's weights stay as they are); no node is added. */
static void test_rgb_range_folds_into_the_mean_shifts(void **state)
{
    (void)state;
    for (int range = 1; range <= 255; range += 254) {
        sr_weights w = edsr_weights(4, 1, 2, range);
        sr_graph g = {0};
        sr_notices notices = {{0}};
        build_graph(&w, &g, &notices);
        const char *names[2] = {"sub_mean", "add_mean"};
        for (int i = 0; i < 2; i++) {
            const sr_node *node = find_node(&g, names[i]);
            assert_non_null(node);
            char key[32];
            snprintf(key, sizeof key, "%s.weight", names[i]);
            const float *file_w = sr_weights_find(&w, key)->data;
            snprintf(key, sizeof key, "%s.bias", names[i]);
            const float *file_b = sr_weights_find(&w, key)->data;
            for (int j = 0; j < 9; j++)
                assert_true(node->p.conv2d.weight[j] ==
                            (float)(i ? file_w[j] / (double)range : file_w[j] * (double)range));
            for (int j = 0; j < 3; j++)
                assert_true(node->p.conv2d.bias[j] ==
                            (float)(i ? file_b[j] / (double)range : file_b[j]));
            assert_ptr_not_equal(node->p.conv2d.weight, file_w);
        }
        assert_int_equal(g.nodes[1].op, SR_OP_CONV2D);                /* sub_mean first */
        assert_int_equal(g.nodes[g.n_nodes - 1].op, SR_OP_CONV2D); /* add_mean last */
        sr_graph_free(&g);
        sr_weights_free(&w);
    }
}

static void test_res_scale_follows_the_width(void **state)
{
    (void)state;
    const struct { int64_t f; float res_scale; bool notice; } cases[] = {
        {256, 0.1f, false}, {64, 1.0f, false}, {32, 1.0f, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_weights w = edsr_weights(cases[i].f, 1, 2, 255);
        sr_graph g = {0};
        sr_notices notices = {{0}};
        build_graph(&w, &g, &notices);
        const sr_node *add = find_node(&g, "body.0.add");
        assert_non_null(add);
        assert_true(add->p.add.scale == cases[i].res_scale);
        assert_int_equal(strstr(notices.text, "res_scale is not stored in the file") != NULL,
                         cases[i].notice);
        sr_graph_free(&g);
        sr_weights_free(&w);
    }
}

static void test_mean_shift_must_be_edsrs(void **state)
{
    (void)state;
    sr_weights w = edsr_weights(4, 1, 2, 255);
    arch_find(&w, "sub_mean.bias")->owned[1] *= 2; /* rgb_ranges that disagree */
    arch_expect_error(&w, SR_ERR_MODEL, "sub_mean: not EDSR's mean shift");
    w = edsr_weights(4, 1, 2, 255);
    arch_find(&w, "sub_mean.weight")->owned[1] = 0.5f; /* mixes colours */
    arch_expect_error(&w, SR_ERR_MODEL, "sub_mean: not EDSR's mean shift");
    w = edsr_weights(4, 1, 2, 255);
    arch_find(&w, "sub_mean.weight")->shape[2] = 3;
    arch_expect_error(&w, SR_ERR_MODEL, "sub_mean.weight: expected [3,3,1,1], file has [3,3,3,1]");
    /* rgb_ranges no image has: folded in, they would give a flat image */
    const float ranges[] = {1e30f, 70000, 0.5f, 1e-30f};
    for (int i = 0; i < 4; i++) {
        w = edsr_weights(4, 1, 2, ranges[i]);
        arch_expect_error(&w, SR_ERR_MODEL, "sub_mean: not EDSR's mean shift");
    }
}

static void test_hparams_name_the_width(void **state)
{
    (void)state;
    sr_weights w = edsr_weights(6, 2, 4, 255);
    arch_expect_hparams(&w, "scale=4 blocks=2 width=6");
}

static void test_wrong_shapes_are_named(void **state)
{
    (void)state;
    sr_weights w = edsr_weights(6, 2, 4, 255);
    arch_find(&w, "tail.1.weight")->shape[1] = 5;
    arch_expect_error(&w, SR_ERR_MODEL, "tail.1.weight: expected [3,6,3,3], file has [3,5,3,3]");
    w = edsr_weights(6, 2, 3, 255);
    arch_find(&w, "tail.0.0.weight")->shape[0] = 36; /* x2's width under x3's */
    arch_expect_error(&w, SR_ERR_MODEL, "tail.0.0.weight: expected [24,6,3,3], file has [36,6,3,3]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch_on_rgb_range_255),
        cmocka_unit_test(test_bands_and_budgets_give_the_same_bits),
        cmocka_unit_test(test_reads_width_blocks_and_scale),
        cmocka_unit_test(test_rgb_range_folds_into_the_mean_shifts),
        cmocka_unit_test(test_res_scale_follows_the_width),
        cmocka_unit_test(test_mean_shift_must_be_edsrs),
        cmocka_unit_test(test_hparams_name_the_width),
        cmocka_unit_test(test_wrong_shapes_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
