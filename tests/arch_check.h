/* What every architecture's test checks (tests/models/test_<arch>.c):
 * a fixture model (make_arch_fixtures.py) against PyTorch's outputs on each
 * backend, float and 8-bit; banded and budgeted runs against the
 * whole-image run, bit for bit; and synthetic state dicts for what the
 * builder reads from keys and shapes and how it names a bad file.
 * Header-only, like testutil.h; cmocka.h comes first. */
#ifndef SR_TESTS_ARCH_CHECK_H
#define SR_TESTS_ARCH_CHECK_H

#include <stdbool.h>
#include <string.h>

#include "models/registry.h"
#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

static const char *const arch_photos[] = {
    "leaves_13x11.png", /* odd size */
    "dot_1x1.png",      /* smaller than every kernel */
};

static inline sr_image arch_read_image(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, name);
    sr_image img = {0};
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

/* <photo>.<model>.f32 and .png for each of the photos: PyTorch's float
 * output and its 8-bit rounding, against srrun's on `backend`. */
static inline void arch_check_photos(const char *model_name, sr_backend backend,
                                     const char *const *photos, size_t n_photos)
{
    sr_model *model = test_load_model(model_name);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = backend;
    opt.n_threads = 2;
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    const int s = sr_model_scale(model);
    for (size_t p = 0; p < n_photos; p++) {
        sr_image in = arch_read_image(photos[p]), out;
        const int64_t W = in.width * s, H = in.height * s;
        char stem[128], path[512];
        snprintf(stem, sizeof stem, "%.*s.%s", (int)(strrchr(photos[p], '.') - photos[p]),
                 photos[p], model_name);

        assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_F32, NULL), SR_OK);
        test_fill_nan(out.data, W * H * 3);
        if (sr_session_run(session, &in, &out) != SR_OK)
            fail_msg("%s: %s", stem, sr_session_last_error(session));
        snprintf(path, sizeof path, "%s/%s.f32", SR_FIXTURES_DIR, stem);
        int64_t size;
        float *want = test_read_file(path, &size); /* planar */
        assert_non_null(want);
        assert_int_equal(size, W * H * 3 * 4);
        for (int64_t i = 0; i < W * H * 3; i++) /* srrun clamps to [0, 1]; PyTorch does not */
            want[i] = fminf(fmaxf(want[i], 0.0f), 1.0f);
        const float worst = test_max_abs_diff_planar(out.data, want, W * H, 3);
        if (!(worst <= SR_TOL_NETWORK_ABS))
            fail_msg("%s on %s: max |srrun - pytorch| = %g", stem, sr_backend_name(backend),
                     worst);
        free(want);
        sr_image_free(&out);

        assert_int_equal(sr_image_alloc(&out, W, H, 3, SR_PIXEL_U8, NULL), SR_OK);
        assert_int_equal(sr_session_run(session, &in, &out), SR_OK);
        snprintf(path, sizeof path, "%s.png", stem);
        sr_image ref = arch_read_image(path);
        int levels = 0;
        for (int64_t y = 0; y < H; y++)
            for (int64_t i = 0; i < W * 3; i++) {
                const int d = abs(((const uint8_t *)out.data)[y * out.stride + i] -
                                  ((const uint8_t *)ref.data)[y * ref.stride + i]);
                levels = d > levels ? d : levels;
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

/* The same for the photos every architecture has fixtures of. */
static inline void arch_check_against_pytorch(const char *model_name, sr_backend backend)
{
    arch_check_photos(model_name, backend, arch_photos, sizeof arch_photos / sizeof *arch_photos);
}

/* A run on the CPU into a fresh F32 image; the plan it made in *info. */
static inline sr_status arch_run(const sr_model *model, sr_session_options opt,
                                 const sr_image *in, sr_image *out, sr_plan_info *info)
{
    const int s = sr_model_scale(model);
    assert_int_equal(sr_image_alloc(out, in->width * s, in->height * s, 3, SR_PIXEL_F32, NULL),
                     SR_OK);
    test_fill_nan(out->data, in->width * s * in->height * s * 3);
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    const sr_status st = sr_session_run(session, in, out);
    assert_int_equal(sr_session_plan(session, in->width, in->height, info), st);
    sr_session_free(session);
    return st;
}

static inline void arch_expect_same(const sr_image *a, const sr_image *b, const char *what)
{
    if (memcmp(a->data, b->data, (size_t)(a->width * a->height * 3) * sizeof(float)) != 0)
        fail_msg("%s: output differs from the whole-image run", what);
}

/* Bands of forced heights and ever smaller budgets, down to the least that
 * fits (at least min_fits of them), give the whole-image run's bits. */
static inline void arch_check_bands(const char *model_name, int64_t w, int64_t h, int min_fits)
{
    sr_model *model = test_load_model(model_name);
    sr_image in, whole, out;
    assert_int_equal(sr_image_alloc(&in, w, h, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng r = {(uint64_t)(w * 1000 + h)};
    for (int64_t i = 0; i < w * h * 3; i++)
        ((uint8_t *)in.data)[i] = (uint8_t)test_rng_next(&r);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU; /* the host's memory */
    opt.n_threads = 1;            /* many short runs: no workers spinning */
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(arch_run(model, opt, &in, &whole, &info), SR_OK);
    const int64_t fixed = info.fixed_bytes, full = info.plan_bytes;
    char what[128];

    const int64_t rows[] = {1, 2, 3, 5, 8};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        opt.tile_rows = rows[i];
        assert_int_equal(arch_run(model, opt, &in, &out, &info), SR_OK);
        snprintf(what, sizeof what, "%s %lldx%lld tile rows %lld", model_name, (long long)w,
                 (long long)h, (long long)rows[i]);
        arch_expect_same(&whole, &out, what);
        sr_image_free(&out);
    }
    opt.tile_rows = 0;

    int n_fit = 0;
    for (int64_t budget = full;; budget = budget * 3 / 4) {
        opt.max_memory = fixed + budget;
        const sr_status st = arch_run(model, opt, &in, &out, &info);
        if (st != SR_OK) {
            assert_int_equal(st, SR_ERR_LIMIT);
            sr_image_free(&out);
            break;
        }
        assert_true(info.predicted_peak <= opt.max_memory);
        snprintf(what, sizeof what, "%s %lldx%lld budget %lld", model_name, (long long)w,
                 (long long)h, (long long)budget);
        arch_expect_same(&whole, &out, what);
        sr_image_free(&out);
        n_fit++;
    }
    if (n_fit < min_fits)
        fail_msg("%s: %d budgets fit, expected at least %d", model_name, n_fit, min_fits);
    sr_image_free(&whole);
    sr_image_free(&in);
    sr_model_free(model);
}

/* ---- Synthetic state dicts ---- */

static test_rng arch_rng = {11};

static inline void arch_add(sr_weights *w, const char *name, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *data = malloc((size_t)(n ? n : 1) * sizeof *data);
    assert_non_null(data);
    test_fill(&arch_rng, data, n, -0.1f, 0.1f);
    assert_int_equal(sr_weights_add(w, name, ndim, shape, data, data, NULL), SR_OK);
}

static inline void arch_add_conv(sr_weights *w, int64_t c_out, int64_t c_in, int64_t k,
                                 const char *prefix)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", prefix);
    arch_add(w, key, 4, (int64_t[]){c_out, c_in, k, k});
    snprintf(key, sizeof key, "%s.bias", prefix);
    arch_add(w, key, 1, (int64_t[]){c_out});
}

static inline sr_weight *arch_find(sr_weights *w, const char *name)
{
    sr_weight *t = (sr_weight *)sr_weights_find(w, name);
    if (!t)
        fail_msg("no weight '%s'", name);
    return t;
}

/* Builds the graph and checks that a 5x3 image gives 3 x 3s x 5s (from an
 * unshuffled input by f, the image padded to a multiple of f: its crop is
 * the runtime's). */
static inline sr_status arch_build(sr_weights *w, bool strict, sr_model_info *info,
                                   sr_notices *notices, sr_error *err)
{
    sr_graph g = {0};
    const sr_status st = sr_model_build(w, strict, &g, info, notices, err);
    if (st == SR_OK) {
        sr_shape *shapes = calloc((size_t)g.n_nodes, sizeof *shapes);
        assert_non_null(shapes);
        assert_int_equal(sr_graph_shapes(&g, (sr_shape){3, 3, 5}, shapes, NULL), SR_OK);
        const sr_shape out = shapes[g.n_nodes - 1];
        const int64_t f = sr_input_unshuffle(&g.nodes[0]);
        assert_int_equal(out.c, 3);
        assert_int_equal(out.h, shapes[0].h * f * info->scale);
        assert_int_equal(out.w, shapes[0].w * f * info->scale);
        assert_int_equal(shapes[0].h, (3 + f - 1) / f);
        assert_int_equal(shapes[0].w, (5 + f - 1) / f);
        free(shapes);
    }
    sr_graph_free(&g);
    return st;
}

/* Builds, checks what the builder read, that every tensor counts as a
 * parameter and that nothing was left over. Frees the weights. */
static inline void arch_expect_info(sr_weights *w, const char *architecture, int scale,
                                    int n_blocks)
{
    int64_t params = 0;
    for (int64_t i = 0; i < w->n_items; i++)
        params += sr_weight_numel(&w->items[i]);
    sr_model_info info;
    sr_notices notices = {{0}};
    sr_error err = {0};
    if (arch_build(w, true, &info, &notices, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_string_equal(info.architecture, architecture);
    assert_int_equal(info.scale, scale);
    assert_int_equal(info.n_blocks, n_blocks);
    assert_int_equal(info.n_params, params);
    sr_weights_free(w);
}

/* The hyper-parameters model.bin records, as "scale=4 blocks=2 width=8";
 * frees the weights. */
static inline void arch_expect_hparams(sr_weights *w, const char *want)
{
    sr_graph g = {0};
    sr_model_info info;
    sr_hparams h = {0};
    sr_notices notices = {{0}};
    sr_error err = {0};
    if (sr_model_build_as(NULL, w, true, &g, &info, &h, &notices, &err) != SR_OK)
        fail_msg("%s", err.message);
    char got[256] = "";
    for (int i = 0; i < h.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s=%lld", i ? " " : "",
                 h.items[i].name, (long long)h.items[i].value);
    assert_string_equal(got, want);
    sr_graph_free(&g);
    sr_weights_free(w);
}

/* Fails with `status` and a message containing `message`; frees the
 * weights. */
static inline void arch_expect_error(sr_weights *w, sr_status status, const char *message)
{
    sr_model_info info;
    sr_notices notices = {{0}};
    sr_error err = {0};
    assert_int_equal(arch_build(w, false, &info, &notices, &err), status);
    if (!strstr(err.message, message))
        fail_msg("message '%s' lacks '%s'", err.message, message);
    sr_weights_free(w);
}

#endif
