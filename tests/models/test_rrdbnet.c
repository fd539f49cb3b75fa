/* RRDBNet (models/rrdbnet.c): the fixtures of both key layouts against
 * PyTorch, in any bands; what the builder reads from the keys; and the
 * files it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "arch_check.h"

/* A state dict in the BasicSR layout (x4), or with old_keys the original
 * ESRGAN's with n_up x2 steps. */
static sr_weights rrdbnet_weights(bool old_keys, int64_t f, int64_t g, int n_blocks, int n_up)
{
    sr_weights w = {0};
    char p[96];
    arch_add_conv(&w, f, 3, 3, old_keys ? "model.0" : "conv_first");
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

static void test_matches_pytorch_cpu(void **state)
{
    (void)state;
    arch_check_against_pytorch("rrdbnet_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("esrgan_old_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("esrgan_old_x2", SR_BACKEND_CPU);
}

static void test_matches_pytorch_reference(void **state)
{
    (void)state;
    arch_check_against_pytorch("rrdbnet_x4", SR_BACKEND_REFERENCE);
    arch_check_against_pytorch("esrgan_old_x2", SR_BACKEND_REFERENCE);
}

static void test_bands_and_budgets_give_the_same_bits(void **state)
{
    (void)state;
    arch_check_bands("rrdbnet_x4", 19, 23, 3);
    arch_check_bands("esrgan_old_x2", 12, 41, 2);
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
}

static void test_hparams_name_width_and_growth(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 6, 3, 2, 2);
    arch_expect_hparams(&w, "scale=4 blocks=2 width=6 growth=3");
    w = rrdbnet_weights(true, 5, 2, 1, 3);
    arch_expect_hparams(&w, "scale=8 blocks=1 width=5 growth=2");
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

/* BasicSR's x2 and x1 pixel-unshuffle the image first. */
static void test_unshuffled_input_is_unsupported(void **state)
{
    (void)state;
    sr_weights w = rrdbnet_weights(false, 4, 2, 1, 2);
    arch_find(&w, "conv_first.weight")->shape[1] = 12;
    arch_expect_error(&w, SR_ERR_UNSUPPORTED, "RRDBNet x2 (conv_first takes the image "
                                              "pixel-unshuffled by 2, 12 channels)");
    w = rrdbnet_weights(false, 4, 2, 1, 2);
    arch_find(&w, "conv_first.weight")->shape[1] = 48;
    arch_expect_error(&w, SR_ERR_UNSUPPORTED, "RRDBNet x1");
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
        cmocka_unit_test(test_bands_and_budgets_give_the_same_bits),
        cmocka_unit_test(test_reads_width_growth_blocks_and_scale),
        cmocka_unit_test(test_hparams_name_width_and_growth),
        cmocka_unit_test(test_wrong_shape_is_named),
        cmocka_unit_test(test_missing_key_is_named),
        cmocka_unit_test(test_unshuffled_input_is_unsupported),
        cmocka_unit_test(test_original_layout_needs_an_upsampler),
        cmocka_unit_test(test_extra_keys_are_noticed_or_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
