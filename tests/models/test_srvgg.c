/* SRVGGNetCompact (models/srvgg.c): the fixtures against PyTorch, in any
 * bands; num_conv and the scale read from the shapes; the files it
 * refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "arch_check.h"

/* body.0 ... body.(2 num_conv + 2), the PReLUs with one slope per channel
 * (prelu false: none, as act_type relu saves it). */
static sr_weights srvgg_weights(int64_t f, int num_conv, int scale, bool prelu)
{
    sr_weights w = {0};
    char p[32];
    for (int i = 0; i <= num_conv; i++) {
        snprintf(p, sizeof p, "body.%d", 2 * i);
        arch_add_conv(&w, f, i ? f : 3, 3, p);
        snprintf(p, sizeof p, "body.%d.weight", 2 * i + 1);
        if (prelu)
            arch_add(&w, p, 1, (int64_t[]){f});
    }
    snprintf(p, sizeof p, "body.%d", 2 * num_conv + 2);
    arch_add_conv(&w, 3 * scale * scale, f, 3, p);
    return w;
}

static void test_matches_pytorch(void **state)
{
    (void)state;
    arch_check_against_pytorch("srvgg_x4", SR_BACKEND_CPU);
    arch_check_against_pytorch("srvgg_x2", SR_BACKEND_CPU);
    arch_check_against_pytorch("srvgg_x4", SR_BACKEND_REFERENCE);
    arch_check_against_pytorch("srvgg_x2", SR_BACKEND_REFERENCE);
}

static void test_bands_and_budgets_give_the_same_bits(void **state)
{
    (void)state;
    arch_check_bands("srvgg_x4", 13, 37, 2);
    arch_check_bands("srvgg_x2", 9, 41, 2);
}

static void test_reads_width_convs_and_scale(void **state)
{
    (void)state;
    const struct { int64_t f; int num_conv, scale; } cases[] = {
        {4, 0, 2}, {5, 3, 3}, {6, 2, 4}, {3, 1, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_weights w = srvgg_weights(cases[i].f, cases[i].num_conv, cases[i].scale, true);
        arch_expect_info(&w, "srvgg", cases[i].scale, cases[i].num_conv);
    }
}

static void test_hparams_name_the_width(void **state)
{
    (void)state;
    sr_weights w = srvgg_weights(6, 3, 3, true);
    arch_expect_hparams(&w, "scale=3 convs=3 width=6");
}

static void test_wrong_shape_is_named(void **state)
{
    (void)state;
    sr_weights w = srvgg_weights(6, 2, 4, true);
    arch_find(&w, "body.3.weight")->shape[0] = 1; /* one shared slope */
    arch_expect_error(&w, SR_ERR_MODEL, "body.3.weight: expected [6], file has [1]");
    w = srvgg_weights(6, 2, 4, true);
    arch_find(&w, "body.6.weight")->shape[0] = 47;
    arch_expect_error(&w, SR_ERR_MODEL,
                      "body.6.weight: 47 output channels, must be 3 s^2 for a scale s of 2 to 8");
    w = srvgg_weights(6, 1, 2, true);
    arch_expect_info(&w, "srvgg", 2, 1);
    w = srvgg_weights(6, 1, 2, true);
    arch_add(&w, "body.5.weight", 1, (int64_t[]){12}); /* a PReLU after the last conv */
    arch_expect_error(&w, SR_ERR_MODEL, "body.5.weight follows the last conv (body.4)");
}

static void test_relu_variants_are_unsupported(void **state)
{
    (void)state;
    sr_weights w = srvgg_weights(4, 2, 4, false);
    arch_expect_error(&w, SR_ERR_UNSUPPORTED, "SRVGGNetCompact without PReLU weights");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_pytorch),
        cmocka_unit_test(test_bands_and_budgets_give_the_same_bits),
        cmocka_unit_test(test_reads_width_convs_and_scale),
        cmocka_unit_test(test_hparams_name_the_width),
        cmocka_unit_test(test_wrong_shape_is_named),
        cmocka_unit_test(test_relu_variants_are_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
