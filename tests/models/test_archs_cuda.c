/* The CUDA backend on every architecture's fixtures (make_arch_fixtures.py):
 * against PyTorch's float32 output at each precision, and in bands of 5 and
 * 1 rows the same bits as the whole-image run; the x2 and x1 RRDBNet's
 * unshuffled input too (the backend sees only a 12 or 48 channel image).
 *
 * Built twice, as test_cuda is: test_archs_cuda runs the module on a GPU
 * (without one it says why and exits 77, skipped); test_archs_cuda_host
 * (SR_CUDA_ON_HOST) runs the backend's source built for the host against
 * the stand-in for the CUDA runtime and cuBLAS (tests/backends/cuda_host/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/exec.h"
#include "runtime/model.h"
#include "runtime/pixels.h"
#include "runtime/plan.h"
#include "cuda_open.h"
#include "testutil.h"
#include "tolerance.h"


static const float network_tolerance[SR_PRECISION_COUNT] = {
    SR_TOL_NETWORK_ABS, SR_TOL_TF32_NETWORK_ABS, SR_TOL_FP16_NETWORK_ABS,
    SR_TOL_BF16_NETWORK_ABS};

static const char *const models[] = {
    "rrdbnet_x4", "esrgan_old_x2", "srvgg_x4", "srvgg_x2",
    "edsr_x4", "edsr_x3", "msrresnet_x4", "msrresnet_x3",
    "rrdbnet_x2", "rrdbnet_x1", /* unshuffled inputs, padded: the output cropped */
};

/* The rows and columns that fall inside the image's output. */
static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    sr_tensor *whole = user;
    for (int64_t c = 0; c < rows->shape.c; c++)
        for (int64_t y = rows->y0; y < rows->y0 + rows->shape.h && y < whole->shape.h; y++)
            memcpy(sr_tensor_row(whole, c, y), sr_tensor_row(rows, c, y),
                   (size_t)whole->shape.w * sizeof(float));
    return SR_OK;
}

/* The network's unclamped output (planar), in bands of tile_rows rows (0:
 * as the planner likes). */
static float *run_network(const sr_backend_handle *b, const sr_model *model,
                          const sr_image *image, int64_t tile_rows)
{
    const sr_node *input_node = &model->graph.nodes[0];
    const sr_shape image_shape = {3, image->height, image->width};
    const sr_shape in_shape = sr_input_shape(input_node, image_shape);
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    assert_non_null(input.data);
    sr_image_to_tensor(image, true, sr_input_unshuffle(input_node), &input, 0);
    sr_plan plan;
    int64_t least;
    sr_error err = {0};
    const sr_plan_request req = {image_shape, 0, tile_rows, b, false};
    if (sr_plan_make(&model->graph, &req, &plan, &least, &err) != SR_OK)
        fail_msg("%s", err.message);
    const int64_t s = sr_model_scale(model);
    const sr_shape shape = {3, image->height * s, image->width * s};
    sr_tensor out = sr_tensor_whole(shape, malloc((size_t)sr_shape_numel(shape) * 4));
    assert_non_null(out.data);
    test_fill_nan(out.data, sr_shape_numel(shape));
    if (sr_plan_execute(&model->graph, &plan, b, NULL, sr_exec_read_tensor, &input, collect, &out,
                        (sr_exec_progress){0}, (sr_exec_timing){0}, NULL, &err) != SR_OK)
        fail_msg("%s", err.message);
    sr_plan_free(&plan);
    free(input.data);
    return out.data;
}

static void test_architectures_match_pytorch_in_any_bands(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/leaves_13x11.png", SR_FIXTURES_DIR);
    sr_image in;
    assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        sr_model *model = test_load_model(models[m]);
        const int64_t n = in.width * in.height * sr_model_scale(model) * sr_model_scale(model);
        snprintf(path, sizeof path, "%s/leaves_13x11.%s.f32", SR_FIXTURES_DIR, models[m]);
        int64_t size;
        float *want = test_read_file(path, &size); /* planar */
        assert_non_null(want);
        assert_int_equal(size, 3 * n * 4);
        for (int precision = 0; precision < SR_PRECISION_COUNT; precision++) {
            sr_backend_handle b;
            sr_error err = {0};
            if (cuda_open((sr_precision)precision, &b, &err) != SR_OK)
                fail_msg("%s", err.message);
            const int64_t tile_rows[] = {0, 5, 1};
            float *whole = NULL;
            for (size_t t = 0; t < sizeof tile_rows / sizeof *tile_rows; t++) {
                float *out = run_network(&b, model, &in, tile_rows[t]);
                const float worst = test_max_abs_diff(out, want, 3 * n);
                if (!(worst <= network_tolerance[precision]))
                    fail_msg("%s %s, tile rows %lld: max |cuda - pytorch| = %g", models[m],
                             sr_precision_name((sr_precision)precision),
                             (long long)tile_rows[t], worst);
                if (t == 0)
                    whole = out;
                else if (memcmp(out, whole, (size_t)(3 * n) * sizeof(float)) != 0)
                    fail_msg("%s %s, tile rows %lld: differs from the whole-image run",
                             models[m], sr_precision_name((sr_precision)precision),
                             (long long)tile_rows[t]);
                if (t > 0)
                    free(out);
            }
            free(whole);
            sr_backend_free(&b);
        }
        free(want);
        sr_model_free(model);
    }
    sr_image_free(&in);
}

int main(void)
{
    test_cuda_or_skip("test_archs_cuda");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_architectures_match_pytorch_in_any_bands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
