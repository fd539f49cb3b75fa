/* MSRResNet (models/msrresnet.c): the fixtures against PyTorch, in any
 * bands; width, blocks and scale read from the shapes; the files it
 * refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "arch_check.h"

/* BasicSR's keys; scale 2, 3 or 4. */
static sr_weights msrresnet_weights(int64_t f, int n_blocks, int scale)
{
    sr_weights w = {0};
    char p[32];
    arch_add_conv(&w, f, 3, 3, "conv_first");
    for (int i = 0; i < n_blocks; i++) {
        snprintf(p, sizeof p, "body.%d.conv1", i);
        arch_add_conv(&w, f, f, 3, p);
        snprintf(p, sizeof p, "body.%d.conv2", i);
        arch_add_conv(&w, f, f, 3, p);
    }
    arch_add_conv(&w, (scale == 4 ? 4 : scale * scale) * f, f, 3, "upconv1");
    if (scale == 4)
        arch_add_conv(&w, 4 * f, f, 3, "upconv2");
    arch_add_conv(&w, f, f, 3, "conv_hr");
    arch_add_conv(&w, 3, f, 3, "conv_last");
    return w;
}

static void test_matches_pytorch(void **state)
{
    (void)state;
    arch_check_against_pytorch("msrresnet_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("msrresnet_x3", SR_BACKEND_CPU);
    arch_check_against_pytorch("msrresnet_x4", SR_BACKEND_REFERENCE);
    arch_check_against_pytorch("msrresnet_x3", SR_BACKEND_REFERENCE);
}

static void test_bands_and_budgets_give_the_same_bits(void **state)
{
    (void)state;
    arch_check_bands("msrresnet_x4", 11, 29, 2);
    arch_check_bands("msrresnet_x3", 9, 31, 2);
}

static void test_reads_width_blocks_and_scale(void **state)
{
    (void)state;
    const struct { int64_t f; int n_blocks, scale; } cases[] = {
        {4, 1, 2}, {5, 3, 3}, {6, 2, 4}, {3, 0, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_weights w = msrresnet_weights(cases[i].f, cases[i].n_blocks, cases[i].scale);
        arch_expect_info(&w, "msrresnet", cases[i].scale, cases[i].n_blocks);
    }
}

static void test_hparams_name_the_width(void **state)
{
    (void)state;
    sr_weights w = msrresnet_weights(6, 2, 3);
    arch_expect_hparams(&w, "scale=3 blocks=2 width=6");
}

static void test_wrong_shapes_are_named(void **state)
{
    (void)state;
    sr_weights w = msrresnet_weights(6, 2, 4);
    arch_find(&w, "upconv2.weight")->shape[0] = 54;
    arch_expect_error(&w, SR_ERR_MODEL, "upconv2.weight: expected [24,6,3,3], file has [54,6,3,3]");
    w = msrresnet_weights(6, 2, 2);
    arch_find(&w, "upconv1.weight")->shape[0] = 96; /* 16 F: x4 in one shuffle */
    arch_expect_error(&w, SR_ERR_MODEL, "upconv1.weight: expected [24,6,3,3], file has [96,6,3,3]");
    w = msrresnet_weights(6, 2, 3);
    sr_weights_truncate(&w, w.n_items - 1);
    arch_expect_error(&w, SR_ERR_MODEL, "missing key 'conv_last.bias'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_bands_and_budgets_give_the_same_bits),
        cmocka_unit_test(test_reads_width_blocks_and_scale),
        cmocka_unit_test(test_hparams_name_the_width),
        cmocka_unit_test(test_wrong_shapes_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
