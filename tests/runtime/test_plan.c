/* Bounded memory, exactly: under any budget and any forced band height the
 * output is the same bits as the whole-image run, for odd sizes and both
 * scales; plans shrink as the budget does, and a budget below the least
 * that works fails at once, saying what would. Deep graphs plan in work
 * that grows with their length, not its powers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/plan.h"
#include "srpgan_model.h"
#include "srrun.h"
#include "testutil.h"

/* A random RGB image: sizes around the halos need not be real photos. */
static sr_image random_image(int64_t w, int64_t h, uint64_t seed)
{
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, w, h, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng r = {seed};
    for (int64_t i = 0; i < w * h * 3; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&r);
    return img;
}

/* The most bands any stage of the plan sweeps. */
static int64_t most_bands(const sr_plan_info *info)
{
    int64_t most = 1;
    for (int i = 0; i < info->n_stages; i++)
        if (SR_PLAN_STAGE(info, i)->n_bands > most)
            most = SR_PLAN_STAGE(info, i)->n_bands;
    return most;
}

/* Runs with the given options into a fresh F32 image; returns the status.
 * The plan's stages and layers are the session's, freed here: *bands gets
 * most_bands. */
static sr_status run(const sr_model *model, sr_session_options opt, const sr_image *in,
                     sr_image *out, sr_plan_info *info, int64_t *bands)
{
    const int s = sr_model_scale(model);
    assert_int_equal(sr_image_alloc(out, in->width * s, in->height * s, 3, SR_PIXEL_F32, NULL), SR_OK);
    test_fill_nan(out->data, in->width * s * in->height * s * 3);
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_status st = sr_session_run(session, in, out);
    if (info)
        assert_int_equal(sr_session_plan(session, in->width, in->height, info), st);
    if (info && bands && st == SR_OK)
        *bands = most_bands(info);
    if (info) { /* the session's, gone with it */
        info->stages = NULL;
        info->layers = NULL;
    }
    sr_session_free(session);
    return st;
}

static void expect_same(const sr_image *a, const sr_image *b, const char *what)
{
    const size_t n = (size_t)(a->width * a->height * 3) * sizeof(float);
    if (memcmp(a->data, b->data, n) != 0)
        fail_msg("%s: output differs from the whole-image run", what);
}

/* Bands and budgets against the whole-image run; min_fits: how many ever
 * smaller budgets must fit (0: no sweep, as tiny images have nothing to
 * trade). */
static void check_model_with(sr_model *model, const char *name, int64_t w, int64_t h,
                             int min_fits)
{
    sr_image in = random_image(w, h, (uint64_t)(w * 1000 + h)), whole, out;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU; /* the host's memory */
    opt.n_threads = 2;
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(run(model, opt, &in, &whole, &info, NULL), SR_OK);
    /* Ample memory: the leanest plan within 1% of the least cost, which
     * recomputes nothing much. */
    assert_true(info.flops <= info.whole_flops + info.whole_flops / 20);
    const int64_t fixed = info.fixed_bytes, full = info.plan_bytes;

    /* Forced band heights, from one row up. */
    const int64_t rows[] = {1, 2, 3, 5, 8, 13};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        opt.tile_rows = rows[i];
        assert_int_equal(run(model, opt, &in, &out, &info, NULL), SR_OK);
        char what[64];
        snprintf(what, sizeof what, "%s %lldx%lld tile rows %lld", name, (long long)w,
                 (long long)h, (long long)rows[i]);
        expect_same(&whole, &out, what);
        sr_image_free(&out);
    }
    opt.tile_rows = 0;

    /* Shrinking budgets, down to the least that works. */
    int64_t budget = full, last_bands = 1;
    int n_fit = 0;
    while (min_fits) {
        opt.max_memory = fixed + budget;
        sr_status st = run(model, opt, &in, &out, &info, &last_bands);
        if (st != SR_OK) {
            assert_int_equal(st, SR_ERR_LIMIT);
            sr_image_free(&out);
            break;
        }
        assert_true(info.predicted_peak <= opt.max_memory);
        char what[64];
        snprintf(what, sizeof what, "%s %lldx%lld budget %lld", name, (long long)w, (long long)h,
                 (long long)budget);
        expect_same(&whole, &out, what);
        sr_image_free(&out);
        n_fit++;
        budget = budget * 15 / 16;
    }
    if (min_fits) {
        assert_true(n_fit >= min_fits);
        assert_true(last_bands > 1); /* the tightest plans sweep bands */
    }
    sr_image_free(&whole);
    sr_image_free(&in);
}

static void check_model(const char *name, int64_t w, int64_t h, bool sweep_budgets)
{
    sr_model *model = test_load_model(name);
    check_model_with(model, name, w, h, sweep_budgets ? 3 : 0);
    sr_model_free(model);
}

static void test_budgets_and_bands_give_the_same_bits_x2(void **state)
{
    (void)state;
    check_model("srpgan_x2", 37, 29, true);
    check_model("srpgan_x2", 1, 9, false);
    check_model("srpgan_x2", 8, 61, true); /* bands far from both edges */
}

static void test_budgets_and_bands_give_the_same_bits_x4(void **state)
{
    (void)state;
    check_model("srpgan_x4", 23, 31, true);
    check_model("srpgan_x4", 6, 2, false);
    check_model("srpgan_x4", 4, 53, true);
}

static void test_too_small_a_budget_says_what_would_do(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x4");
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU; /* the host's memory */
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(session, 300, 200, &info), SR_OK);
    const int64_t fixed = info.fixed_bytes;
    sr_session_free(session);

    /* Just above the fixed part: no plan fits, and the message names the
     * least budget; that budget then works. */
    opt.max_memory = fixed + (1 << 20);
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    assert_int_equal(sr_session_plan(session, 300, 200, &info), SR_ERR_LIMIT);
    const char *msg = sr_session_last_error(session);
    const char *at = strstr(msg, "needs a max memory of at least ");
    if (!at)
        fail_msg("%s", msg);
    const long long least = strtoll(at + strlen("needs a max memory of at least "), NULL, 10);
    sr_session_free(session);
    opt.max_memory = (int64_t)least << 20;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    assert_int_equal(sr_session_plan(session, 300, 200, &info), SR_OK);
    assert_true(info.flops > info.whole_flops);
    sr_session_free(session);

    /* Below the program, weights and images alone: the least is the same. */
    opt.max_memory = fixed / 2;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    assert_int_equal(sr_session_plan(session, 300, 200, &info), SR_ERR_LIMIT);
    msg = sr_session_last_error(session);
    at = strstr(msg, "needs a max memory of at least ");
    if (!at)
        fail_msg("%s", msg);
    assert_int_equal(strtoll(at + strlen("needs a max memory of at least "), NULL, 10), least);
    sr_session_free(session);
    sr_model_free(model);
}

static void test_plan_reports_stages(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x4");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(session, 64, 48, &info), SR_OK);
    /* Two residual blocks: four InstanceNorms, then the output. */
    assert_int_equal(info.n_stages, 5);
    assert_string_equal(info.stages[0].target, "res_blocks.0.conv1");
    assert_string_equal(info.stages[0].global, "res_blocks.0.in1");
    assert_null(info.stages[4].global);
    assert_int_equal(info.stages[4].band_rows * info.stages[4].n_bands >= 48 * 4, 1);
    assert_int_equal(info.predicted_peak, info.fixed_bytes + info.plan_bytes);
    int64_t flops = 0;
    for (int i = 0; i < info.n_layers; i++)
        flops += info.layers[i].flops;
    assert_int_equal(flops, info.flops);
    sr_session_free(session);
    sr_model_free(model);
}

static sr_model *deep_model(int64_t width, int n_blocks, int scale)
{
    sr_error err = {0};
    sr_model *model = test_srpgan_model(width, n_blocks, scale, (uint64_t)n_blocks, &err);
    if (!model)
        fail_msg("%s", err.message);
    return model;
}

/* A graph of more stages than the planner judges one toggle at a time:
 * toggles committed together still give the same bits within the budget. */
static void test_deep_graph_bands_give_the_same_bits(void **state)
{
    (void)state;
    sr_model *model = deep_model(16, 10, 2);
    check_model_with(model, "srpgan 10 blocks", 23, 19, 2);
    sr_model_free(model);
}

/* Planning a 1024-block SRPGAN took minutes, a 64-block one at 37x29 half
 * a minute: every candidate was judged by re-planning the whole graph, in
 * a loop over candidates, in a loop over drops, on a ladder of budgets.
 * The planner's work (nodes x bands it simulates) must now stay near
 * linear in the graph's length, under any budget. */
static void test_deep_graphs_plan_in_bounded_work(void **state)
{
    (void)state;
    static const struct {
        int64_t width;
        int n_blocks;
        int64_t w, h;
        int64_t max_work;
    } cases[] = {
        {4, 64, 37, 29, 2000000},
        {64, 175, 37, 29, 8000000},
        {4, 1024, 1, 1, 8000000},
    };
    sr_backend_handle backend;
    assert_int_equal(sr_reference_backend_new(&backend, NULL), SR_OK);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sr_model *model = deep_model(cases[i].width, cases[i].n_blocks, 4);
        sr_plan_request req = {{3, cases[i].h, cases[i].w}, 0, 0, &backend, false};
        for (int tight = 0; tight < 2; tight++) {
            sr_plan plan;
            sr_error err = {0};
            int64_t least = 0;
            sr_status st = sr_plan_make(&model->graph, &req, &plan, &least, &err);
            if (st != SR_OK && (st != SR_ERR_LIMIT || !tight))
                fail_msg("%d blocks: %s", cases[i].n_blocks, err.message);
            if (plan.work > cases[i].max_work)
                fail_msg("%d blocks at %lldx%lld, budget %lld: %lld nodes x bands simulated",
                         cases[i].n_blocks, (long long)cases[i].w, (long long)cases[i].h,
                         (long long)req.budget, (long long)plan.work);
            assert_true(st != SR_OK || !req.budget || plan.peak_bytes <= req.budget);
            req.budget = plan.peak_bytes / 4 * 3; /* next: a budget that makes it recompute */
            sr_plan_free(&plan);
        }
        sr_model_free(model);
    }
    sr_backend_free(&backend);
}

/* Sizing a plan exactly simulated every band of every stage: 41M bands for
 * one-row bands of a 20000-row image through a 1024-block SRPGAN (11 s).
 * Bands clear of the image's edges repeat, and are now counted instead. */
static void test_thin_bands_of_a_tall_image_plan_in_bounded_work(void **state)
{
    (void)state;
    sr_backend_handle backend;
    assert_int_equal(sr_reference_backend_new(&backend, NULL), SR_OK);
    sr_model *model = deep_model(4, 1024, 4);
    const sr_plan_request req = {{3, 20000, 100}, 0, 1, &backend, false};
    sr_plan plan;
    sr_error err = {0};
    int64_t least = 0;
    if (sr_plan_make(&model->graph, &req, &plan, &least, &err) != SR_OK)
        fail_msg("%s", err.message);
    int64_t bands = 0;
    for (int s = 0; s < plan.n_stages; s++)
        bands += plan.stages[s].n_bands;
    assert_true(bands > 40000000);
    if (plan.work > 1000000)
        fail_msg("%lld nodes x bands simulated", (long long)plan.work);
    sr_plan_free(&plan);
    sr_model_free(model);
    sr_backend_free(&backend);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budgets_and_bands_give_the_same_bits_x2),
        cmocka_unit_test(test_budgets_and_bands_give_the_same_bits_x4),
        cmocka_unit_test(test_too_small_a_budget_says_what_would_do),
        cmocka_unit_test(test_plan_reports_stages),
        cmocka_unit_test(test_deep_graph_bands_give_the_same_bits),
        cmocka_unit_test(test_deep_graphs_plan_in_bounded_work),
        cmocka_unit_test(test_thin_bands_of_a_tall_image_plan_in_bounded_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
