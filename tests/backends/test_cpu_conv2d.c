/* The CPU backend's choice of convolution algorithm (backends/cpu/conv2d.c):
 * SRPGAN's layers get the algorithms they have always had, as the plan's
 * layers report them; a forced algorithm replaces the choice only where it
 * can run the layer; an unknown name is refused. (That every algorithm
 * computes what the reference does: tests/ops/test_ops.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/cpu.h"
#include "runtime/session.h"
#include "srrun.h"
#include "testutil.h"

/* Each layer's algorithm as the plan of a session on backend reports it:
 * names[i] for the layer named by layers[i], NULL for the others. */
static void expect_algorithms(const char *model_stem, const sr_backend_handle *backend,
                              const char *const layers[][2], size_t n)
{
    sr_model *model = test_load_model(model_stem);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    sr_session *session;
    sr_error err = {0};
    const sr_status st = backend ? sr_session_new_on(model, &opt, *backend, &session, &err)
                                 : sr_session_new(model, &opt, &session, &err);
    if (st != SR_OK)
        fail_msg("%s", err.message);
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(session, 40, 30, &info), SR_OK);
    size_t found = 0;
    for (int i = 0; i < info.n_layers; i++) {
        const sr_layer_info *l = SR_PLAN_LAYER(&info, i);
        const char *want = NULL;
        for (size_t j = 0; j < n; j++)
            if (strcmp(l->name, layers[j][0]) == 0) {
                want = layers[j][1];
                found++;
            }
        if (strcmp(l->op, "conv2d") != 0) {
            assert_null(l->algorithm);
            continue;
        }
        if (!want || !l->algorithm || strcmp(l->algorithm, want) != 0)
            fail_msg("%s %s: %s, wanted %s", model_stem, l->name,
                     l->algorithm ? l->algorithm : "NULL", want ? want : "(unlisted)");
    }
    assert_int_equal(found, n);
    sr_session_free(session);
    sr_model_free(model);
}

/* SRPGAN's: the 3 -> 64 9x9 input conv by im2col, every 3x3 (shuffled or
 * not) by Winograd, the 64 -> 3 9x9 output conv by split Winograd. */
static void test_srpgan_layers_get_their_algorithms(void **state)
{
    (void)state;
    static const char *const x2[][2] = {
        {"block1.0", "im2col"},         {"res_blocks.0.conv1", "winograd"},
        {"res_blocks.0.conv2", "winograd"}, {"block3.0", "winograd"},
        {"up_blocks.0.conv", "winograd"}, {"block4", "winograd_split"},
    };
    static const char *const x4[][2] = {
        {"block1.0", "im2col"},           {"res_blocks.0.conv1", "winograd"},
        {"res_blocks.0.conv2", "winograd"}, {"res_blocks.1.conv1", "winograd"},
        {"res_blocks.1.conv2", "winograd"}, {"block3.0", "winograd"},
        {"up_blocks.0.conv", "winograd"},   {"up_blocks.1.conv", "winograd"},
        {"block4", "winograd_split"},
    };
    expect_algorithms("srpgan_x2", NULL, x2, sizeof x2 / sizeof *x2);
    expect_algorithms("srpgan_x4", NULL, x4, sizeof x4 / sizeof *x4);
}

/* kn2row forced: every conv but the shuffled ones, which it cannot write
 * and which keep Winograd. */
static void test_forced_algorithm_where_it_can_run(void **state)
{
    (void)state;
    static const char *const x2[][2] = {
        {"block1.0", "kn2row"},           {"res_blocks.0.conv1", "kn2row"},
        {"res_blocks.0.conv2", "kn2row"}, {"block3.0", "kn2row"},
        {"up_blocks.0.conv", "winograd"}, {"block4", "kn2row"},
    };
    sr_backend_handle cpu;
    assert_int_equal(sr_cpu_backend_new_forcing(2, "kn2row", &cpu, NULL), SR_OK);
    expect_algorithms("srpgan_x2", &cpu, x2, sizeof x2 / sizeof *x2);

    /* Winograd cannot run a 9x9 conv: the selection's choice runs it. */
    const sr_conv2d_params conv9 = {.c_in = 64, .c_out = 3, .k = 9, .pad = 4};
    const sr_cpu_context plain = {.n_threads = 1};
    const sr_cpu_context forced = {.n_threads = 1, .conv_forced = &sr_cpu_conv_winograd};
    assert_false(sr_cpu_conv_winograd.can_run(&conv9));
    assert_ptr_equal(sr_cpu_conv2d_select(&forced, &conv9), &sr_cpu_conv_winograd_split);
    assert_ptr_equal(sr_cpu_conv2d_select(&plain, &conv9), &sr_cpu_conv_winograd_split);
    /* A 3x3 with few channels, which the selection gives kn2row. */
    const sr_conv2d_params conv3 = {.c_in = 4, .c_out = 8, .k = 3, .pad = 1};
    assert_ptr_equal(sr_cpu_conv2d_select(&plain, &conv3), &sr_cpu_conv_kn2row);
    assert_ptr_equal(sr_cpu_conv2d_select(&forced, &conv3), &sr_cpu_conv_winograd);
}

static void test_unknown_algorithm_refused(void **state)
{
    (void)state;
    sr_backend_handle cpu = {0};
    sr_error err = {0};
    assert_int_equal(sr_cpu_backend_new_forcing(1, "fft", &cpu, &err), SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "unknown convolution algorithm 'fft' (known: im2col, "
                                     "kn2row, winograd, winograd_split)");
    assert_null(cpu.ctx);
    /* NULL forces nothing. */
    assert_int_equal(sr_cpu_backend_new_forcing(1, NULL, &cpu, NULL), SR_OK);
    assert_null(((sr_cpu_context *)cpu.ctx)->conv_forced);
    sr_backend_free(&cpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srpgan_layers_get_their_algorithms),
        cmocka_unit_test(test_forced_algorithm_where_it_can_run),
        cmocka_unit_test(test_unknown_algorithm_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
