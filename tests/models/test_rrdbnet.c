/* RRDBNet (models/rrdbnet.c): the fixtures of both key layouts and of
 * BasicSR's x2 and x1 (unshuffled input) against PyTorch, in any bands and
 * budgets; that the dense blocks' concatenations fold into their convs;
 * what the builder reads from the keys; and the files it refuses. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch_check.h"
#include "runtime/model.h"

/* A state dict in the BasicSR layout (x4, or x2 and x1 with conv_first
 * taking c_in = 12 or 48 channels), or with old_keys the original ESRGAN's
 * with n_up x2 steps. */
static sr_weights rrdbnet_weights_in(int64_t c_in, bool old_keys, int64_t f, int64_t g,
                                     int n_blocks, int n_up)
{
    sr_weights w = {0};
    char p[96];
    arch_add_conv(&w, f, c_in, 3, old_keys ? "model.0" : "conv_first");
    for (int i = 0; i < n_blocks; i++)
        for (int k = 1; k <= 3; k++)
            for (int j = 1; j <= 5; j++) {
                if (old_keys)
                    snprintf(p, sizeof p, "model.1.sub.%d.RDB%d.conv%d.0", i, k, j);
                else
                    snprintf(p, sizeof p, "body.%d.rdb%d.conv%d", i, k, j);
                arch_add_conv(&w, j == 5 ? f : g, f + (j - 1) * g, 3, p);
            }
    if (old_keys) {
        snprintf(p, sizeof p, "model.1.sub.%d", n_blocks);
        arch_add_conv(&w, f, f, 3, p);
        for (int i = 0; i < n_up; i++) {
            snprintf(p, sizeof p, "model.%d", 3 + 3 * i);
            arch_add_conv(&w, f, f, 3, p);
        }
        snprintf(p, sizeof p, "model.%d", 2 + 3 * n_up);
        arch_add_conv(&w, f, f, 3, p);
        snprintf(p, sizeof p, "model.%d", 4 + 3 * n_up);
        arch_add_conv(&w, 3, f, 3, p);
    } else {
        const char *const rest[] = {"conv_body", "conv_up1", "conv_up2", "conv_hr"};
        for (int i = 0; i < 4; i++)
            arch_add_conv(&w, f, f, 3, rest[i]);
        arch_add_conv(&w, 3, f, 3, "conv_last");
    }
    return w;
}

static sr_weights rrdbnet_weights(bool old_keys, int64_t f, int64_t g, int n_blocks, int n_up)
{
    return rrdbnet_weights_in(3, old_keys, f, g, n_blocks, n_up);
}

/* Photos whose sides 2 and 4 divide: no padding, PyTorch's RRDBNet as it is. */
static const char *const unpadded_photos[] = {"leaves_16x12.png"};

static void test_matches_pytorch_cpu(void **state)
{
    (void)state;
    arch_check_against_pytorch("rrdbnet_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("esrgan_old_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("esrgan_old_x2", SR_BACKEND_CPU);
}

/* leaves_13x11 and dot_1x1 padded by reflection as Real-ESRGAN pads (the
 * 1x1 dot, which PyTorch's reflection refuses, as numpy's: copies of it),
 * leaves_16x12 not at all. */
static void test_unshuffled_input_matches_pytorch(void **state)
{
    (void)state;
    const sr_backend backends[] = {SR_BACKEND_CPU, SR_BACKEND_REFERENCE};
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
        arch_check_against_pytorch("rrdbnet_x2", backends[b]);
        arch_check_against_pytorch("rrdbnet_x1", backends[b]);
        arch_check_photos("rrdbnet_x2", backends[b], unpadded_photos, 1);
        arch_check_photos("rrdbnet_x1", backends[b], unpadded_photos, 1);
    }
}

static void test_matches_pytorch_reference(void **state)
{
    (void)state;
    arch_check_against_pytorch("rrdbnet_x4", SR_BACKEND_REFERENCE);
    arch_check_against_pytorch("esrgan_old_x2", SR_BACKEND_REFERENCE);
}

/* A loaded model's dense blocks read no concatenation: conv2 ... conv5 of
 * each read the block's input and the earlier convs' outputs themselves. */
static void test_concatenations_fold_into_the_dense_convs(void **state)
{
    (void)state;
    sr_model *model = test_load_model("rrdbnet_x4");
    const sr_graph *g = &model->graph;
    int by_inputs[SR_NODE_MAX_INPUTS + 1] = {0};
    for (int i = 0; i < g->n_nodes; i++) {
        assert_int_not_equal(g->nodes[i].op, SR_OP_CONCAT);
        if (g->nodes[i].op == SR_OP_CONV2D)
            by_inputs[g->nodes[i].n_inputs]++;
    }
    const int n_dense = 3 * model->info.n_blocks; /* dense blocks */
    for (int j = 2; j <= 5; j++)
        assert_int_equal(by_inputs[j], n_dense);
    sr_model_free(model);
}

static void test_bands_and_budgets_give_the_same_bits(void **state)
{
    (void)state;
    arch_check_bands("rrdbnet_x4", 19, 23, 3);
    arch_check_bands("esrgan_old_x2", 12, 41, 2);
    arch_check_bands("rrdbnet_x2", 19, 23, 3); /* padded to 20x24 */
    /* padded to 32x64: with the concatenations folded, a smaller image's
     * whole-image plan is within 3/4 of its least */
    arch_check_bands("rrdbnet_x1", 29, 61, 3);
}

/* The bands of the output stage of the plan for these images (the plan
 * info views the session's memory: read before it goes). */
static int output_bands(const sr_model *model, sr_session_options opt, const sr_image *in,
                        const sr_image *out)
{
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan_images(session, in, out, &info), SR_OK);
    const int bands = info.stages[info.n_stages - 1].n_bands;
    sr_session_free(session);
    return bands;
}

/* Budgets that leave room for a few rows only: the x2's output stage in
 * many bands, the same bytes as the whole-image run, within the budget;
 * and one thread the same bytes as two. */
static void test_unshuffled_input_in_many_bands(void **state)
{
    (void)state;
    sr_model *model = test_load_model("rrdbnet_x2");
    sr_image in, whole, out;
    const int64_t w = 13, h = 149; /* odd: padded */
    assert_int_equal(sr_image_alloc(&in, w, h, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng r = {5};
    for (int64_t i = 0; i < w * h * 3; i++)
        ((uint8_t *)in.data)[i] = (uint8_t)test_rng_next(&r);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = 2;
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(arch_run(model, opt, &in, &whole, &info), SR_OK);
    /* The tightest budget that fits, to a kilobyte: halved until one does
     * not, then bisected. */
    const int64_t fixed = info.fixed_bytes;
    int64_t fits = info.plan_bytes, fails = 0;
    while (fits - fails > 1024) {
        const int64_t budget = fails ? fails + (fits - fails) / 2 : fits / 2;
        opt.max_memory = fixed + budget;
        const sr_status st = arch_run(model, opt, &in, &out, &info);
        if (st == SR_OK) {
            assert_true(info.predicted_peak <= opt.max_memory);
            arch_expect_same(&whole, &out, "rrdbnet_x2 13x149 in a tight budget");
            fits = budget;
        } else {
            assert_int_equal(st, SR_ERR_LIMIT);
            fails = budget;
        }
        sr_image_free(&out);
    }
    opt.max_memory = fixed + fits;
    const int bands = output_bands(model, opt, &in, &whole);
    if (bands < 8)
        fail_msg("the tightest budget, %lld bytes, gave %d bands", (long long)opt.max_memory, bands);
    opt.max_memory = 0;
    opt.n_threads = 1;
    assert_int_equal(arch_run(model, opt, &in, &out, &info), SR_OK);
    arch_expect_same(&whole, &out, "rrdbnet_x2 13x149 on one thread");
    sr_image_free(&out);
    sr_image_free(&whole);
    sr_image_free(&in);
    sr_model_free(model);
}

/* Sizes whose padded tensors or FLOPs would overflow int64 are refused
 * before planning (the x1 pads a 1xN image's side to 4). */
static void test_huge_sizes_are_refused(void **state)
{
    (void)state;
    sr_model *model = test_load_model("rrdbnet_x1");
    sr_session *session;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    const int64_t sizes[][2] = {{(int64_t)1 << 56, 1}, {1, (int64_t)1 << 56}, {INT64_MAX, INT64_MAX},
                                {1 << 20, 1 << 20}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        sr_plan_info info = SR_PLAN_INFO_INIT;
        assert_int_equal(sr_session_plan(session, sizes[i][0], sizes[i][1], &info), SR_ERR_LIMIT);
        assert_non_null(strstr(sr_session_last_error(session), "too large"));
    }
    sr_session_free(session);
    sr_model_free(model);
}

static void test_reads_width_growth_blocks_and_scale(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 6, 3, 3, 2);
    arch_expect_info(&w, "rrdbnet", 4, 3);
    w = rrdbnet_weights(false, 4, 5, 1, 2);
    arch_expect_info(&w, "rrdbnet", 4, 1);
    for (int n_up = 1; n_up <= 3; n_up++) {
        w = rrdbnet_weights(true, 5, 2, 2, n_up);
        arch_expect_info(&w, "rrdbnet", 1 << n_up, 2);
    }
    w = rrdbnet_weights_in(12, false, 6, 3, 2, 2); /* BasicSR's x2: unshuffled by 2 */
    arch_expect_info(&w, "rrdbnet", 2, 2);
    w = rrdbnet_weights_in(48, false, 4, 5, 1, 2); /* x1: by 4 */
    arch_expect_info(&w, "rrdbnet", 1, 1);
}

static void test_hparams_name_width_and_growth(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 6, 3, 2, 2);
    arch_expect_hparams(&w, "scale=4 blocks=2 width=6 growth=3");
    w = rrdbnet_weights(true, 5, 2, 1, 3);
    arch_expect_hparams(&w, "scale=8 blocks=1 width=5 growth=2");
    w = rrdbnet_weights_in(12, false, 6, 3, 2, 2);
    arch_expect_hparams(&w, "scale=2 blocks=2 width=6 growth=3");
    w = rrdbnet_weights_in(48, false, 6, 3, 2, 2);
    arch_expect_hparams(&w, "scale=1 blocks=2 width=6 growth=3");
}

/* model.bin records the x2 and x1 as rrdbnet with their scale; loaded
 * back, they rebuild the unshuffled input and give the same bytes. */
static void test_unshuffled_model_bin_round_trip(void **state)
{
    (void)state;
    const char *const names[] = {"rrdbnet_x2", "rrdbnet_x1"};
    char dir[] = "/tmp/srrun_test_rrdbnet_XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < 2; i++) {
        sr_model *pth = test_load_model(names[i]), *bin = NULL;
        char path[512];
        snprintf(path, sizeof path, "%s/%s.bin", dir, names[i]);
        sr_error err = {0};
        if (sr_model_save(pth, path, 0, &err) != SR_OK ||
            sr_model_load(path, NULL, &bin, &err) != SR_OK)
            fail_msg("%s: %s", names[i], err.message);
        remove(path);
        assert_int_equal(sr_model_scale(bin), 2 - i);
        int64_t scale = 0;
        assert_string_equal(sr_model_hparam(bin, 0, &scale), "scale");
        assert_int_equal(scale, 2 - i);
        sr_image in = arch_read_image("leaves_13x11.png"), a, b;
        sr_session_options opt = SR_SESSION_OPTIONS_INIT;
        opt.backend = SR_BACKEND_CPU;
        sr_plan_info info = SR_PLAN_INFO_INIT;
        assert_int_equal(arch_run(pth, opt, &in, &a, &info), SR_OK);
        assert_int_equal(arch_run(bin, opt, &in, &b, &info), SR_OK);
        arch_expect_same(&a, &b, names[i]);
        sr_image_free(&a);
        sr_image_free(&b);
        sr_image_free(&in);
        sr_model_free(bin);
        sr_model_free(pth);
    }
    rmdir(dir);
}

static void test_wrong_shape_is_named(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 6, 3, 2, 2);
    arch_find(&w, "body.1.rdb2.conv4.weight")->shape[1] = 14;
    arch_expect_error(&w, SR_ERR_MODEL,
                      "body.1.rdb2.conv4.weight: expected [3,15,3,3], file has [3,14,3,3]");
    w = rrdbnet_weights(true, 6, 3, 1, 2);
    arch_find(&w, "model.10.weight")->shape[0] = 4; /* an RGBA output */
    arch_expect_error(&w, SR_ERR_MODEL, "model.10.weight: expected [3,6,3,3], file has [4,6,3,3]");
}

static void test_missing_key_is_named(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 4, 2, 1, 2);
    sr_weights_truncate(&w, w.n_items - 1);
    arch_expect_error(&w, SR_ERR_MODEL, "missing key 'conv_last.bias'");
}

/* conv_first takes 3 channels, or 12 and 48 (unshuffled by 2 and 4):
 * others are named as a wrong shape; and there is no x8 BasicSR layout. */
static void test_other_inputs_and_x8_are_refused(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights_in(27, false, 4, 2, 1, 2);
    arch_expect_error(&w, SR_ERR_MODEL,
                      "conv_first.weight: expected [4,3,3,3], file has [4,27,3,3]");
    w = rrdbnet_weights(false, 4, 2, 1, 2);
    arch_add_conv(&w, 4, 4, 3, "conv_up3");
    arch_expect_error(&w, SR_ERR_UNSUPPORTED, "conv_up3 (an x8 variant)");
}

static void test_original_layout_needs_an_upsampler(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(true, 4, 2, 1, 0);
    arch_expect_error(&w, SR_ERR_MODEL, "0 x2 steps (model.3, model.6, ...)");
    w = rrdbnet_weights(true, 4, 2, 1, 4);
    arch_expect_error(&w, SR_ERR_MODEL, "more than 3 x2 steps");
}

static void test_extra_keys_are_noticed_or_refused(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 4, 2, 1, 2);
    arch_add(&w, "net_d.conv0.weight", 1, (int64_t[]){2});
    sr_model_info info;
    sr_notices notices = {{0}};
    assert_int_equal(arch_build(&w, false, &info, &notices, NULL), SR_OK);
    assert_non_null(strstr(notices.text, "ignoring unexpected key 'net_d.conv0.weight'"));
    assert_null(sr_weights_find(&w, "net_d.conv0.weight")); /* not kept */
    arch_add(&w, "net_d.conv0.weight", 1, (int64_t[]){2});
    assert_int_equal(arch_build(&w, true, &info, &notices, NULL), SR_ERR_MODEL);
    sr_weights_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch_cpu),
        cmocka_unit_test(test_matches_pytorch_reference),
        cmocka_unit_test(test_unshuffled_input_matches_pytorch),
        cmocka_unit_test(test_concatenations_fold_into_the_dense_convs),
        cmocka_unit_test(test_bands_and_budgets_give_the_same_bits),
        cmocka_unit_test(test_unshuffled_input_in_many_bands),
        cmocka_unit_test(test_huge_sizes_are_refused),
        cmocka_unit_test(test_reads_width_growth_blocks_and_scale),
        cmocka_unit_test(test_hparams_name_width_and_growth),
        cmocka_unit_test(test_unshuffled_model_bin_round_trip),
        cmocka_unit_test(test_wrong_shape_is_named),
        cmocka_unit_test(test_missing_key_is_named),
        cmocka_unit_test(test_other_inputs_and_x8_are_refused),
        cmocka_unit_test(test_original_layout_needs_an_upsampler),
        cmocka_unit_test(test_extra_keys_are_noticed_or_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
