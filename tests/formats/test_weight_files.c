/* The kinds of weight file a user may hold, each written by real PyTorch
 * (tests/fixtures/make_weight_files.py): legacy format, training
 * checkpoints with DataParallel or torch.compile prefixes, f16/bf16/f64,
 * views into one shared storage, pickle protocol 4, pre-0.4 InstanceNorm
 * statistics. Each goes through the public API and must give PyTorch's
 * output for that very file, and the notices a user would expect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

typedef struct weight_file {
    const char *name;
    const char *output; /* <output>.leaves_37x29.f32: PyTorch's output */
    const char *notice; /* a substring of the notices, or NULL for none */
} weight_file;

static const weight_file files[] = {
    {"legacy.pth", "f32", NULL},
    {"wrapped.pth", "f32", NULL},   /* epoch, 'module.' keys, Adam state */
    {"compiled.pth", "f32", NULL},  /* params_ema preferred over params */
    {"f16.pth", "f16", NULL},
    {"bf16.pth", "bf16", NULL},
    {"f64.pth", "f32", NULL},
    {"views.pth", "f32", NULL},     /* offsets into one storage, a transpose */
    {"protocol4.pth", "f32", NULL},
    {"old_stats.pth", "f32", "ignoring 4 InstanceNorm running statistics"},
};

static void fixture_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", SR_FIXTURES_DIR, name);
}

static void check_file(const weight_file *f, const sr_image *in)
{
    char path[512], name[128];
    snprintf(name, sizeof name, "weights/%s", f->name);
    fixture_path(path, sizeof path, name);
    sr_error err = {0};
    sr_model *model = NULL;
    if (sr_model_load(path, NULL, &model, &err) != SR_OK)
        fail_msg("%s", err.message);

    sr_model_info info = SR_MODEL_INFO_INIT;

    sr_model_get_info(model, &info);
    assert_string_equal(info.architecture, "srpgan");
    assert_int_equal(info.scale, 2);
    assert_int_equal(info.n_blocks, 1);
    const char *notices = sr_model_notices(model);
    if (f->notice ? !notices || !strstr(notices, f->notice) : notices != NULL)
        fail_msg("%s: notices '%s', expected '%s'", f->name, notices ? notices : "(none)",
                 f->notice ? f->notice : "(none)");

    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = 2;
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    const int64_t W = in->width * 2, H = in->height * 2;
    sr_image out = {0};
    assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_F32, NULL), SR_OK);
    test_fill_nan(out.data, W * H * 3);
    if (sr_session_run(session, in, &out) != SR_OK)
        fail_msg("%s: %s", f->name, sr_session_last_error(session));

    snprintf(name, sizeof name, "weights/%s.leaves_37x29.f32", f->output);
    fixture_path(path, sizeof path, name);
    int64_t size;
    float *want = test_read_file(path, &size); /* planar C, H, W */
    assert_non_null(want);
    assert_int_equal(size, W * H * 3 * 4);
    const float worst = test_max_abs_diff_planar(out.data, want, W * H, 3);
    if (!(worst <= SR_TOL_NETWORK_ABS))
        fail_msg("%s: max |srrun - pytorch| = %g", f->name, worst);
    free(want);
    sr_image_free(&out);
    sr_session_free(session);
    sr_model_free(model);
}

static void test_weight_files_match_pytorch(void **state)
{
    (void)state;
    char path[512];
    fixture_path(path, sizeof path, "leaves_37x29.png");
    sr_image in = {0};
    sr_error err = {0};
    if (sr_image_read(path, 0, &in, &err) != SR_OK)
        fail_msg("%s", err.message);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        check_file(&files[i], &in);
    sr_image_free(&in);
}

/* Strict loading still accepts the statistics PyTorch itself ignores and
 * the checkpoint entries beside the state dict. */
static void test_strict(void **state)
{
    (void)state;
    static const char *const names[] = {"old_stats.pth", "wrapped.pth", "compiled.pth"};
    sr_model_options opt = {.strict = 1};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512], name[128];
        snprintf(name, sizeof name, "weights/%s", names[i]);
        fixture_path(path, sizeof path, name);
        sr_error err = {0};
        sr_model *model = NULL;
        if (sr_model_load(path, &opt, &model, &err) != SR_OK)
            fail_msg("%s", err.message);
        sr_model_free(model);
    }
}

/* Neither file format nor wrapping changes the weights: the f32 files
 * that share weights give the same bits. */
static void test_same_weights_same_output(void **state)
{
    (void)state;
    static const char *const names[] = {"legacy.pth", "wrapped.pth", "views.pth",
                                        "protocol4.pth"};
    char path[512], name[128];
    fixture_path(path, sizeof path, "leaves_37x29.png");
    sr_image in = {0}, first = {0};
    assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(name, sizeof name, "weights/%s", names[i]);
        fixture_path(path, sizeof path, name);
        sr_model *model = NULL;
        assert_int_equal(sr_model_load(path, NULL, &model, NULL), SR_OK);
        sr_session_options opt = SR_SESSION_OPTIONS_INIT;
        opt.backend = SR_BACKEND_REFERENCE;
        opt.n_threads = 1;
        sr_session *session;
        assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
        sr_image out = {0};
        assert_int_equal(sr_image_alloc(&out, in.width * 2, in.height * 2, 3, SR_PIXEL_F32, NULL),
                         SR_OK);
        assert_int_equal(sr_session_run(session, &in, &out), SR_OK);
        if (i == 0)
            first = out;
        else {
            assert_memory_equal(out.data, first.data, (size_t)(out.height * out.stride));
            sr_image_free(&out);
        }
        sr_session_free(session);
        sr_model_free(model);
    }
    sr_image_free(&first);
    sr_image_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_files_match_pytorch),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_same_weights_same_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
