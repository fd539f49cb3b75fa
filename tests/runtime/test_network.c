/* The whole network through the public API against PyTorch: every fixture
 * photo through every fixture model on every backend, as float32 (against
 * PyTorch's float output) and as 8-bit (against PyTorch's rounded PNG).
 * The same bits on any thread count. Also progress reporting,
 * cancellation and argument checks of a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

static const char *const photos[] = {
    "leaves_37x29.png",    /* RGB, odd size */
    "water_gray_23x31.png", /* gray */
    "path_rgba_30x21.png", /* RGBA, composited on white */
    "kite_41x27.jpg",      /* JPEG through libjpeg-turbo */
    "dot_1x1.png",         /* smaller than every kernel */
};
static const char *const models[] = {"srpgan_x2", "srpgan_x4"};

static void fixture_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", SR_FIXTURES_DIR, name);
}

static sr_image read_photo(const char *name)
{
    char path[512];
    fixture_path(path, sizeof path, name);
    sr_error err = {0};
    sr_image img = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

static void check_against_pytorch(sr_backend backend)
{
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = backend;
    opt.n_threads = 2;
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        sr_model *model = test_load_model(models[m]);
        const int scale = sr_model_scale(model);
        sr_session *session;
        assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
        for (size_t p = 0; p < sizeof photos / sizeof *photos; p++) {
            sr_image in = read_photo(photos[p]);
            const int64_t W = in.width * scale, H = in.height * scale;
            char stem[128], name[192], path[512];
            snprintf(stem, sizeof stem, "%.*s.%s", (int)(strrchr(photos[p], '.') - photos[p]),
                     photos[p], models[m]);

            /* float32 against PyTorch's float32 */
            sr_image out = {0};
            assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_F32, NULL), SR_OK);
            test_fill_nan(out.data, W * H * 3);
            if (sr_session_run(session, &in, &out) != SR_OK)
                fail_msg("%s: %s", stem, sr_session_last_error(session));
            snprintf(name, sizeof name, "%s.f32", stem);
            fixture_path(path, sizeof path, name);
            int64_t size;
            float *want = test_read_file(path, &size); /* planar C, H, W */
            assert_non_null(want);
            assert_int_equal(size, W * H * 3 * 4);
            const float worst = test_max_abs_diff_planar(out.data, want, W * H, 3);
            if (!(worst <= SR_TOL_NETWORK_ABS))
                fail_msg("%s on %s: max |srrun - pytorch| = %g", stem,
                         sr_backend_name(backend), worst);
            free(want);
            sr_image_free(&out);

            /* 8-bit against PyTorch's output rounded the same way */
            assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_U8, NULL), SR_OK);
            assert_int_equal(sr_session_run(session, &in, &out), SR_OK);
            snprintf(name, sizeof name, "%s.png", stem);
            sr_image ref = read_photo(name);
            assert_int_equal(ref.width, W);
            assert_int_equal(ref.height, H);
            int levels = 0;
            for (int64_t y = 0; y < H; y++) {
                const uint8_t *a = (const uint8_t *)out.data + y * out.stride;
                const uint8_t *b = (const uint8_t *)ref.data + y * ref.stride;
                for (int64_t i = 0; i < W * 3; i++)
                    levels = abs(a[i] - b[i]) > levels ? abs(a[i] - b[i]) : levels;
            }
            if (levels > SR_TOL_LEVELS)
                fail_msg("%s on %s: 8-bit output differs by %d levels", stem,
                         sr_backend_name(backend), levels);
            sr_image_free(&ref);
            sr_image_free(&out);
            sr_image_free(&in);
        }
        sr_session_free(session);
        sr_model_free(model);
    }
}

static void test_cpu_backend_matches_pytorch(void **state)
{
    (void)state;
    check_against_pytorch(SR_BACKEND_CPU);
}

static void test_reference_backend_matches_pytorch(void **state)
{
    (void)state;
    check_against_pytorch(SR_BACKEND_REFERENCE);
}

typedef struct progress_log {
    double fractions[256];
    int n, cancel_at;
} progress_log;

static int record_progress(void *user, double fraction)
{
    progress_log *log = user;
    if (log->n < 256)
        log->fractions[log->n] = fraction;
    return ++log->n == log->cancel_at;
}

static void run_with_progress(progress_log *log, sr_status want)
{
    sr_model *model = test_load_model("srpgan_x2");
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.progress = record_progress;
    opt.progress_user = log;
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image in = read_photo("leaves_37x29.png"), out = {0};
    assert_int_equal(sr_image_alloc(&out, in.width * 2, in.height * 2, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_session_run(session, &in, &out), want);
    if (want == SR_ERR_CANCELLED)
        assert_string_equal(sr_session_last_error(session), "cancelled");
    else
        assert_string_equal(sr_session_last_error(session), "");
    sr_image_free(&in);
    sr_image_free(&out);
    sr_session_free(session);
    sr_model_free(model);
}

/* auto settles on CUDA or on the CPU with the reason; the others keep what
 * was asked and say nothing. */
static void test_auto_says_where_it_runs(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    const char *note = sr_session_backend_note(session);
    if (sr_session_backend(session) == SR_BACKEND_CUDA)
        assert_null(note);
    else if (sr_session_backend(session) != SR_BACKEND_CPU || !note ||
             strncmp(note, "no CUDA", 7) != 0)
        fail_msg("auto ran on %s: %s", sr_backend_name(sr_session_backend(session)),
                 note ? note : "(no note)");
    sr_session_free(session);
    opt.backend = SR_BACKEND_REFERENCE;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    assert_int_equal(sr_session_backend(session), SR_BACKEND_REFERENCE);
    assert_null(sr_session_backend_note(session));
    sr_session_free(session);
    sr_model_free(model);
}

static void test_progress_rises_to_one(void **state)
{
    (void)state;
    progress_log log = {.cancel_at = -1};
    run_with_progress(&log, SR_OK);
    assert_true(log.n >= 3); /* a band at least per stage: 2 statistics, 1 output */
    for (int i = 1; i < log.n; i++)
        assert_true(log.fractions[i] >= log.fractions[i - 1]);
    assert_true(log.fractions[0] > 0.0);
    assert_float_equal(log.fractions[log.n - 1], 1.0, 1e-12);
}

static void test_progress_callback_cancels(void **state)
{
    (void)state;
    progress_log log = {.cancel_at = 3};
    run_with_progress(&log, SR_ERR_CANCELLED);
    assert_int_equal(log.n, 3);
}

static void test_run_checks_its_arguments(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x4");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    sr_image in = read_photo("leaves_37x29.png"), out = {0};
    assert_int_equal(sr_image_alloc(&out, in.width * 2, in.height * 2, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_session_run(session, &in, &out), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(sr_session_last_error(session), "must be 148x116"));
    sr_image bad = in;
    bad.channels = 5;
    assert_int_equal(sr_session_run(session, &bad, &out), SR_ERR_INVALID_ARGUMENT);
    bad = in;
    bad.stride = 3;
    assert_int_equal(sr_session_run(session, &bad, &out), SR_ERR_INVALID_ARGUMENT);
    sr_image_free(&in);
    sr_image_free(&out);
    sr_session_free(session);
    sr_model_free(model);
}

static void test_model_reports_what_it_is(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x4");
    sr_model_info info = SR_MODEL_INFO_INIT;
    sr_model_get_info(model, &info);
    assert_string_equal(info.architecture, "srpgan");
    assert_int_equal(info.scale, 4);
    assert_int_equal(info.n_blocks, 2);
    /* make_fixtures.py: Generator(4, 2) has 511241 parameters. */
    assert_int_equal(info.n_params, 511241);
    /* Per input pixel at x4 with 2 blocks: 9x9 in, 5 3x3 convs at 1x,
     * up convs at 1x and 4x, 9x9 out at 16x; 2 FLOPs per MAC. Then the
     * elementwise ops: PReLU 1, InstanceNorm 5, add 1, tanh-affine 3 per
     * value: block1 64, two residual blocks 2 x 12 x 64, block3 and the
     * skip 2 x 64, up blocks 4 x 64 and 16 x 64, output 16 x 3 x 3. */
    const int64_t macs = 3 * 64 * 81 + 5 * 64 * 64 * 9 + (1 + 4) * 64 * 256 * 9 + 16 * 64 * 3 * 81;
    const int64_t elementwise = 64 + 2 * 12 * 64 + 2 * 64 + 4 * 64 + 16 * 64 + 16 * 9;
    assert_int_equal(info.n_input_pixel_flops, 2 * macs + elementwise);
    assert_null(sr_model_notices(model));
    sr_model_free(model);
}

/* The output does not depend on the thread count, one thread included:
 * with -t 1 the backend's parallel regions are a team of one, and
 * OpenBLAS would spread each sgemm over every core with other bits. The
 * photo is wide enough for OpenBLAS to thread a call (its rows of 256
 * columns at the input, Winograd tiles of 64 channels at 4x). */
static void test_thread_count_changes_no_bit(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x4");
    sr_image in = {0}, out[3] = {{0}};
    assert_int_equal(sr_image_alloc(&in, 300, 24, 3, SR_PIXEL_F32, NULL), SR_OK);
    test_rng r = {7};
    test_fill(&r, in.data, 300 * 24 * 3, 0, 1);
    for (int t = 0; t < 3; t++) {
        sr_session_options opt = SR_SESSION_OPTIONS_INIT;
        opt.backend = SR_BACKEND_CPU;
        opt.n_threads = t + 1;
        sr_session *session;
        assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
        assert_int_equal(sr_image_alloc(&out[t], 1200, 96, 3, SR_PIXEL_F32, NULL), SR_OK);
        assert_int_equal(sr_session_run(session, &in, &out[t]), SR_OK);
        sr_session_free(session);
        if (t > 0 && memcmp(out[t].data, out[0].data, 1200 * 96 * 3 * sizeof(float)) != 0)
            fail_msg("%d threads and 1 thread differ", t + 1);
    }
    for (int t = 0; t < 3; t++)
        sr_image_free(&out[t]);
    sr_image_free(&in);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_backend_matches_pytorch),
        cmocka_unit_test(test_reference_backend_matches_pytorch),
        cmocka_unit_test(test_thread_count_changes_no_bit),
        cmocka_unit_test(test_auto_says_where_it_runs),
        cmocka_unit_test(test_progress_rises_to_one),
        cmocka_unit_test(test_progress_callback_cancels),
        cmocka_unit_test(test_run_checks_its_arguments),
        cmocka_unit_test(test_model_reports_what_it_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
