/* Runs on patches (runtime/patches.h, sr_model_options.patch): the
 * geometry's promises over many sizes, and the network run on patches
 * against PyTorch (srpgan.run_patches) through every way a run delivers
 * its output, in bands too; the patch recorded in a
 * model.bin, overridden and refused. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/patches.h"
#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

/* Along one axis: the cores tile [0, n) in order, each inside its patch
 * with `margin` pixels of context or the border, the patches all as long
 * and as few as the rule says. */
static void check_axis(int64_t n, int64_t size, int64_t margin, int64_t count, int64_t length,
                       int64_t (*get)(const sr_patches *, int64_t, int64_t *, int64_t *,
                                      int64_t *),
                       const sr_patches *p)
{
    const int64_t core = size - 2 * margin;
    assert_int_equal(length, n <= size ? n : size);
    assert_int_equal(count, n <= size ? 1 : (n - 2 * margin + core - 1) / core);
    int64_t covered = 0;
    for (int64_t k = 0; k < count; k++) {
        int64_t at, c0, c1;
        get(p, k, &at, &c0, &c1);
        assert_int_equal(c0, covered);
        assert_true(c1 > c0);
        assert_true(at >= 0 && at + length <= n);
        assert_true(c0 == 0 || c0 - at >= margin);
        assert_true(c1 == n || at + length - c1 >= margin);
        covered = c1;
    }
    assert_int_equal(covered, n);
}

static int64_t along_x(const sr_patches *p, int64_t k, int64_t *at, int64_t *c0, int64_t *c1)
{
    const sr_patch w = sr_patches_at(p, k);
    *at = w.x, *c0 = w.core_x0, *c1 = w.core_x1;
    return 0;
}

static int64_t along_y(const sr_patches *p, int64_t k, int64_t *at, int64_t *c0, int64_t *c1)
{
    const sr_patch w = sr_patches_at(p, k * p->n_across);
    *at = w.y, *c0 = w.core_y0, *c1 = w.core_y1;
    return 0;
}

static void test_cores_tile_the_image_with_their_context(void **state)
{
    (void)state;
    const int64_t cases[][2] = {{96, 8}, {16, 2}, {12, 1}, {3, 1}, {5, 0}, {1, 0}, {97, 48}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int64_t n = 1; n <= 400; n += n < 40 ? 1 : 7) {
            const int64_t size = cases[c][0], margin = cases[c][1];
            const sr_patches p = sr_patches_make(size, margin, n, 2 * n + 1);
            check_axis(n, size, margin, p.n_across, p.patch_w, along_x, &p);
            check_axis(2 * n + 1, size, margin, p.n_down, p.patch_h, along_y, &p);
        }
    /* What the reference computes for the default models' 96:8 on 256. */
    const sr_patches p = sr_patches_make(96, 8, 256, 50);
    assert_int_equal(p.n_across, 3);
    assert_int_equal(p.n_down, 1);
    const int64_t want[3][3] = {{0, 0, 88}, {80, 88, 168}, {160, 168, 256}};
    for (int k = 0; k < 3; k++) {
        const sr_patch w = sr_patches_at(&p, k);
        assert_int_equal(w.x, want[k][0]);
        assert_int_equal(w.core_x0, want[k][1]);
        assert_int_equal(w.core_x1, want[k][2]);
        assert_int_equal(w.y, 0);
        assert_int_equal(w.core_y1, 50);
    }
    /* Size 0: the whole image. */
    const sr_patches whole = sr_patches_make(0, 0, 1000, 3);
    assert_int_equal(sr_patches_count(&whole), 1);
    assert_int_equal(whole.patch_w, 1000);
}

/* The fixtures' runs on patches (tests/fixtures/make_fixtures.py). */
typedef struct patched {
    const char *photo, *model;
    int64_t patch, margin;
    int64_t n_patches;
} patched;
static const patched cases[] = {
    {"leaves_37x29", "srpgan_x4", 16, 2, 9},
    {"kite_41x27", "srpgan_x2", 16, 3, 4 * 3},
    {"path_rgba_30x21", "srpgan_x2", 12, 1, 3 * 2},
};

static sr_model *load_patched(const char *stem, int64_t patch, int64_t margin)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pth", SR_FIXTURES_DIR, stem);
    sr_model_options o = SR_MODEL_OPTIONS_INIT;
    o.patch = patch;
    o.patch_margin = margin;
    sr_model *model = NULL;
    sr_error err = {0};
    if (sr_model_load(path, &o, &model, &err) != SR_OK)
        fail_msg("%s", err.message);
    return model;
}

static sr_image read_fixture(const char *stem, const char *ext)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s", SR_FIXTURES_DIR, stem, ext);
    sr_image img = {0};
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

static sr_image read_photo(const char *stem)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.png", SR_FIXTURES_DIR, stem);
    return read_fixture(stem, access(path, 0) == 0 ? ".png" : ".jpg");
}

static int levels_apart(const sr_image *a, const sr_image *b)
{
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->height, b->height);
    int worst = 0;
    for (int64_t y = 0; y < a->height; y++) {
        const uint8_t *p = (const uint8_t *)a->data + y * a->stride;
        const uint8_t *q = (const uint8_t *)b->data + y * b->stride;
        for (int64_t i = 0; i < a->width * 3; i++)
            worst = abs(p[i] - q[i]) > worst ? abs(p[i] - q[i]) : worst;
    }
    return worst;
}

/* Rows from sr_session_run_rows into an image, checking they come in order. */
typedef struct collected {
    sr_image image;
    int64_t next;
} collected;

static sr_status collect(void *user, const sr_image *rows, int64_t y0, sr_error *err)
{
    (void)err;
    collected *c = user;
    assert_int_equal(y0, c->next);
    for (int64_t y = 0; y < rows->height; y++)
        memcpy((uint8_t *)c->image.data + (y0 + y) * c->image.stride,
               (const uint8_t *)rows->data + y * rows->stride, (size_t)(rows->width * 3));
    c->next = y0 + rows->height;
    return SR_OK;
}

/* One fixture run on patches: float32 within the network tolerance of
 * PyTorch; 8-bit within a level, the same from a whole output and from
 * rows; the plan telling its patches. */
static void check_case(const patched *c, int64_t tile_rows)
{
    char stem[128];
    snprintf(stem, sizeof stem, "%s.%s.patch%lldm%lld", c->photo, c->model, (long long)c->patch,
             (long long)c->margin);
    sr_model *model = load_patched(c->model, c->patch, c->margin);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.n_threads = 2;
    opt.tile_rows = tile_rows;
    sr_session *s;
    assert_int_equal(sr_session_new(model, &opt, &s, NULL), SR_OK);
    sr_image in = read_photo(c->photo);
    const int scale = sr_model_scale(model);
    const int64_t W = in.width * scale, H = in.height * scale;

    sr_image out = {0};
    assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_F32, NULL), SR_OK);
    test_fill_nan(out.data, W * H * 3);
    if (sr_session_run(s, &in, &out) != SR_OK)
        fail_msg("%s: %s", stem, sr_session_last_error(s));
    char path[512];
    snprintf(path, sizeof path, "%s/%s.f32", SR_FIXTURES_DIR, stem);
    int64_t size;
    float *want = test_read_file(path, &size); /* planar C, H, W */
    assert_non_null(want);
    assert_int_equal(size, W * H * 3 * 4);
    const float worst = test_max_abs_diff_planar(out.data, want, W * H, 3);
    if (!(worst <= SR_TOL_NETWORK_ABS))
        fail_msg("%s: max |srrun - pytorch| = %g", stem, worst);
    free(want);
    sr_image_free(&out);

    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(s, in.width, in.height, &info), SR_OK);
    assert_int_equal(info.n_patches, c->n_patches);
    assert_int_equal(info.patch_width, c->patch);
    assert_int_equal(info.patch_height, c->patch);
    if (tile_rows)
        assert_true(info.stages[info.n_stages - 1].n_bands > 1);

    sr_image whole = {0};
    assert_int_equal(sr_image_alloc(&whole, W, H, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_session_run(s, &in, &whole), SR_OK);
    sr_image ref = read_fixture(stem, ".png");
    if (levels_apart(&whole, &ref) > SR_TOL_LEVELS)
        fail_msg("%s: 8-bit output differs from PyTorch's by %d levels", stem,
                 levels_apart(&whole, &ref));
    collected rows = {.next = 0};
    assert_int_equal(sr_image_alloc(&rows.image, W, H, 3, SR_PIXEL_U8, NULL), SR_OK);
    const sr_image shape = {.width = W, .height = H, .channels = 3, .type = SR_PIXEL_U8};
    assert_int_equal(sr_session_run_rows(s, &in, &shape, collect, &rows), SR_OK);
    assert_int_equal(rows.next, H);
    assert_int_equal(levels_apart(&whole, &rows.image), 0);

    sr_image_free(&rows.image);
    sr_image_free(&ref);
    sr_image_free(&whole);
    sr_image_free(&in);
    sr_session_free(s);
    sr_model_free(model);
}

static void test_patched_runs_match_pytorch(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(&cases[i], 0);
}

/* Bands inside each patch, as a tight budget makes them. */
static void test_patched_runs_match_in_bands(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_case(&cases[i], 3);
}

/* A float32 run of the leaves case under max_memory (0: the default),
 * and what its plan said. */
static sr_image run_leaves(int64_t max_memory, sr_plan_info *info)
{
    const patched *c = &cases[0];
    sr_model *model = load_patched(c->model, c->patch, c->margin);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.n_threads = 2;
    opt.max_memory = max_memory;
    sr_session *s;
    assert_int_equal(sr_session_new(model, &opt, &s, NULL), SR_OK);
    sr_image in = read_photo(c->photo), out = {0};
    const int scale = sr_model_scale(model);
    assert_int_equal(sr_image_alloc(&out, in.width * scale, in.height * scale, 3, SR_PIXEL_F32,
                                    NULL),
                     SR_OK);
    if (sr_session_run(s, &in, &out) != SR_OK)
        fail_msg("%s", sr_session_last_error(s));
    assert_int_equal(sr_session_plan(s, in.width, in.height, info), SR_OK);
    sr_image_free(&in);
    sr_session_free(s);
    sr_model_free(model);
    return out;
}

/* Where the budget allows all of a plan's buffers at once, the patches'
 * runs hold them from one patch to the next, and the plan counts them all;
 * a budget just short of that runs the same plan giving its buffers back
 * after each patch. The same bits either way. */
static void test_held_buffers_change_no_bit(void **state)
{
    (void)state;
    sr_plan_info held = SR_PLAN_INFO_INIT, given_back = SR_PLAN_INFO_INIT;
    sr_image a = run_leaves(0, &held);
    sr_image b = run_leaves(held.predicted_peak - 1, &given_back);
    assert_true(given_back.plan_bytes < held.plan_bytes);
    assert_int_equal(given_back.flops, held.flops);
    assert_int_equal(given_back.n_patches, cases[0].n_patches);
    assert_memory_equal(a.data, b.data, (size_t)(a.width * a.height * 3) * sizeof(float));
    sr_image_free(&a);
    sr_image_free(&b);
}

/* A patch in a model.bin is kept by sr_model_save, listed among the
 * hyper-parameters, run by, and overridden by the options. */
static void test_model_bin_records_the_patch(void **state)
{
    (void)state;
    sr_model *model = load_patched("srpgan_x4", 16, 2);
    char path[] = "/tmp/srrun_test_patchXXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sr_model_save(model, path, 0, NULL), SR_OK);
    sr_model_free(model);

    sr_model *bin = NULL;
    assert_int_equal(sr_model_load(path, NULL, &bin, NULL), SR_OK);
    int64_t values[2] = {0, 0};
    int found = 0;
    const char *name;
    int64_t v;
    for (int k = 0; (name = sr_model_hparam(bin, k, &v)) != NULL; k++) {
        if (strcmp(name, "patch") == 0)
            values[0] = v, found++;
        if (strcmp(name, "patch_margin") == 0)
            values[1] = v, found++;
    }
    assert_int_equal(found, 2);
    assert_int_equal(values[0], 16);
    assert_int_equal(values[1], 2);
    sr_session *s;
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_new(bin, NULL, &s, NULL), SR_OK);
    assert_int_equal(sr_session_plan(s, 37, 29, &info), SR_OK);
    assert_int_equal(info.n_patches, 9);
    sr_session_free(s);
    sr_model_free(bin);

    /* -1: the whole image, whatever the file says; and nothing recorded. */
    sr_model_options o = SR_MODEL_OPTIONS_INIT;
    o.patch = -1;
    assert_int_equal(sr_model_load(path, &o, &bin, NULL), SR_OK);
    for (int k = 0; (name = sr_model_hparam(bin, k, NULL)) != NULL; k++)
        assert_null(strstr(name, "patch"));
    assert_int_equal(sr_session_new(bin, NULL, &s, NULL), SR_OK);
    assert_int_equal(sr_session_plan(s, 37, 29, &info), SR_OK);
    assert_int_equal(info.n_patches, 1);
    assert_int_equal(info.patch_width, 37);
    sr_session_free(s);
    sr_model_free(bin);
    remove(path);
}

static void test_bad_patches_are_refused(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/srpgan_x2.pth", SR_FIXTURES_DIR);
    const int64_t bad[][2] = {{10, 5}, {10, -1}, {-2, 0}, {INT64_C(1) << 40, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sr_model_options o = SR_MODEL_OPTIONS_INIT;
        o.patch = bad[i][0];
        o.patch_margin = bad[i][1];
        sr_model *model = NULL;
        sr_error err = {0};
        assert_int_equal(sr_model_load(path, &o, &model, &err), SR_ERR_INVALID_ARGUMENT);
        assert_null(model);
        assert_non_null(strstr(err.message, "patch"));
    }
    /* A pixel-unshuffled input (RRDBNet x2) cannot be cut into patches. */
    snprintf(path, sizeof path, "%s/rrdbnet_x2.pth", SR_FIXTURES_DIR);
    sr_model_options o = SR_MODEL_OPTIONS_INIT;
    o.patch = 16;
    sr_model *model = NULL;
    sr_error err = {0};
    assert_int_equal(sr_model_load(path, &o, &model, &err), SR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "unshuffled"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cores_tile_the_image_with_their_context),
        cmocka_unit_test(test_patched_runs_match_pytorch),
        cmocka_unit_test(test_patched_runs_match_in_bands),
        cmocka_unit_test(test_held_buffers_change_no_bit),
        cmocka_unit_test(test_model_bin_records_the_patch),
        cmocka_unit_test(test_bad_patches_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
