/* The registry: architectures found by the name a file gives or by their
 * layout, each failure naming those srrun knows; and the shipped default
 * models' file names, which live here and not in the runtime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "models/registry.h"

static void expect_build(const char *arch, const char *message)
{
    sr_weights w = {0};
    static const float one = 1.0f;
    assert_int_equal(sr_weights_add(&w, "conv_first.weight", 1, (int64_t[]){1}, &one, NULL, NULL),
                     SR_OK);
    sr_graph g = {0};
    sr_model_info info;
    sr_hparams h;
    sr_notices notices = {{0}};
    sr_error err = {0};
    assert_int_equal(sr_model_build_as(arch, &w, false, &g, &info, &h, &notices, &err),
                     SR_ERR_MODEL);
    assert_string_equal(err.message, message);
    assert_int_equal(g.n_nodes, 0);
    assert_int_equal(w.n_items, 1); /* a failed build frees no weight */
    sr_weights_free(&w);
}

static void test_unknown_and_mismatched_architectures(void **state)
{
    (void)state;
    expect_build("esrgan",
                 "unknown architecture 'esrgan' (srrun knows srpgan, rrdbnet, srvgg, edsr, msrresnet)");
    expect_build("srpgan", "the file says architecture 'srpgan', but its weights are not laid "
                           "out as srpgan's (keys like 'conv_first.weight')");
    expect_build(NULL, "unknown architecture: no known layout has keys like 'conv_first.weight' "
                       "(srrun knows srpgan, rrdbnet, srvgg, edsr, msrresnet)");
}

/* RRDBNet and MSRResNet both have conv_first: a file with MSRResNet's
 * upconv1 and one stray RRDB key is MSRResNet's alone (which then names
 * what is wrong), not ambiguous: the registry refuses weights that two
 * architectures recognise. */
static void test_msrresnet_with_a_stray_rrdb_key(void **state)
{
    (void)state;
    sr_weights w = {0};
    static const float one = 1.0f;
    const char *keys[] = {"conv_first.weight", "body.0.rdb1.conv1.weight", "upconv1.weight"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(sr_weights_add(&w, keys[i], 1, (int64_t[]){1}, &one, NULL, NULL), SR_OK);
    sr_graph g = {0};
    sr_model_info info;
    sr_hparams h;
    sr_notices notices = {{0}};
    sr_error err = {0};
    assert_int_equal(sr_model_build_as(NULL, &w, false, &g, &info, &h, &notices, &err),
                     SR_ERR_MODEL);
    assert_string_equal(err.message, "conv_first.weight: expected [1,3,3,3], file has [1]");
    sr_graph_free(&g); /* the caller's, also after a failure */
    sr_weights_free(&w);
}

static void test_default_models(void **state)
{
    (void)state;
    assert_string_equal(sr_default_model_file(2), "srpgan_x2.bin");
    assert_string_equal(sr_default_model_file(4), "srpgan_x4.bin");
    assert_null(sr_default_model_file(3));
    assert_null(sr_default_model_file(0));
    char scales[32];
    sr_default_model_scales(scales, sizeof scales);
    assert_string_equal(scales, "x2 and x4");
    sr_default_model_scales(scales, 4); /* cut short, still a string */
    assert_string_equal(scales, "x2 ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_and_mismatched_architectures),
        cmocka_unit_test(test_msrresnet_with_a_stray_rrdb_key),
        cmocka_unit_test(test_default_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
