/* The CUDA backend: every kernel against the reference on random shapes (a
 * band computed alone included), the InstanceNorm sums against the host's,
 * the whole network against PyTorch's fixtures in any bands, each the same
 * bits as the whole-image run.
 *
 * Built twice. test_cuda runs the module on a GPU; without a usable device
 * (or in a build without CUDA) it says why and exits 77, which ctest
 * reports as skipped. test_cuda_host (SR_CUDA_ON_HOST) runs the backend's
 * own source built for the host against a stand-in for the CUDA runtime
 * and cuBLAS (cuda_host/), on every machine, and there also fails each
 * device allocation in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "ops/op.h"
#include "runtime/exec.h"
#include "runtime/model.h"
#include "runtime/pixels.h"
#include "runtime/session.h"
#include "cuda_open.h"
#include "testutil.h"
#include "kernel_cases.h"
#include "tolerance.h"


static sr_backend_handle open_cuda(sr_precision precision)
{
    sr_backend_handle b;
    sr_error err = {0};
    if (cuda_open(precision, &b, &err) != SR_OK)
        fail_msg("%s", err.message);
    return b;
}

/* A conv against the reference, relative to the output's largest
 * magnitude; the whole network against PyTorch's float32, in [0, 1] units.
 * By the precision of the GEMMs' inputs. */
static const float kernel_tolerance[SR_PRECISION_COUNT] = {
    SR_TOL_KERNEL_REL, SR_TOL_TF32_KERNEL_REL, SR_TOL_FP16_KERNEL_REL, SR_TOL_BF16_KERNEL_REL};
static const float network_tolerance[SR_PRECISION_COUNT] = {
    SR_TOL_NETWORK_ABS, SR_TOL_TF32_NETWORK_ABS, SR_TOL_FP16_NETWORK_ABS, SR_TOL_BF16_NETWORK_ABS};

/* A device copy of a packed host tensor (same place in the image). */
static sr_tensor to_device(const sr_backend_handle *b, const sr_tensor *host)
{
    const sr_backend_memory *m = b->iface->memory;
    const int64_t bytes = sr_shape_numel(host->shape) * (int64_t)sizeof(float);
    sr_tensor d = *host;
    d.data = m->alloc(b->ctx, bytes);
    assert_non_null(d.data);
    assert_int_equal(m->upload(b->ctx, d.data, host->data, bytes, NULL), SR_OK);
    return d;
}

static void to_host(const sr_backend_handle *b, const sr_tensor *device, sr_tensor *host)
{
    const int64_t bytes = sr_shape_numel(host->shape) * (int64_t)sizeof(float);
    assert_int_equal(b->iface->memory->download(b->ctx, host->data, device->data, bytes, NULL),
                     SR_OK);
}

static void release(const sr_backend_handle *b, sr_tensor *device)
{
    b->iface->memory->release(b->ctx, device->data,
                              sr_shape_numel(device->shape) * (int64_t)sizeof(float));
}

/* Output rows [y0, y1) on the device from the input rows they need as the
 * planner would give them (the whole groups of rows they touch, and the
 * halo); the largest error against want's rows, relative to want's
 * largest magnitude. */
static float run_rows(const sr_backend_handle *b, const sr_node *node, const sr_tensor *host_in,
                      const float *stats, const sr_tensor *want, int64_t y0, int64_t y1)
{
    const sr_op_desc *d = sr_op_get(node->op);
    const sr_row_tiling tiling = sr_backend_row_tiling(b, node, want->shape);
    const int64_t scale = d->scale(node), H = host_in[0].shape.h, a = tiling.align;
    const int64_t a0 = y0 / a * a, a1 = (y1 + a - 1) / a * a;
    int64_t lo = a0 / scale - tiling.halo, hi = (a1 + scale - 1) / scale + tiling.halo;
    lo = lo < 0 ? 0 : lo;
    hi = hi > H ? H : hi;
    sr_tensor in[SR_NODE_MAX_INPUTS], band_in[SR_NODE_MAX_INPUTS];
    for (int i = 0; i < node->n_inputs; i++) {
        band_in[i] = copy_rows(&host_in[i], lo, hi);
        in[i] = to_device(b, &band_in[i]);
    }
    sr_tensor got = tensor_new(want->shape.c, y1 - y0, want->shape.w);
    got.y0 = y0;
    got.image_h = want->shape.h;
    sr_tensor out = to_device(b, &got);
    sr_error err = {0};
    if (b->iface->run(b->ctx, node, in, &out, stats, &err) != SR_OK)
        fail_msg("%s: %s", d->name, err.message);
    to_host(b, &out, &got);
    const int64_t plane = (y1 - y0) * want->shape.w;
    float worst = 0, scale_max = test_max_abs(want->data, sr_shape_numel(want->shape));
    for (int64_t c = 0; c < want->shape.c; c++) {
        const float e =
            test_max_abs_diff(sr_tensor_row(&got, c, y0), sr_tensor_row(want, c, y0), plane);
        worst = e > worst ? e : worst;
    }
    for (int i = 0; i < node->n_inputs; i++) {
        release(b, &in[i]);
        free(band_in[i].data);
    }
    release(b, &out);
    free(got.data);
    return worst / (scale_max > 0 ? scale_max : 1);
}

/* The node on the device, whole and in a band, against the reference; a
 * conv at every precision. Each run on a fresh backend: backends keep
 * weights by node, and the callers' nodes come and go at one address. */
static void check_node(void *user, const sr_node *node, const sr_tensor *in, test_rng *r,
                       const char *what)
{
    (void)user;
    sr_shape shapes[SR_NODE_MAX_INPUTS], s;
    for (int i = 0; i < node->n_inputs; i++)
        shapes[i] = in[i].shape;
    assert_int_equal(sr_op_get(node->op)->shape(node, shapes, &s, NULL), SR_OK);
    sr_tensor want = tensor_new(s.c, s.h, s.w);
    float *stats = gather_stats(node, in, in[0].shape.h);
    sr_op_get(node->op)->reference(node, in, &want, stats);
    const int64_t y0 = test_rng_int(r, 0, (int)s.h - 1);
    const int64_t y1 = test_rng_int(r, (int)y0 + 1, (int)s.h);
    const int n_precisions = node->op == SR_OP_CONV2D ? SR_PRECISION_COUNT : 1;
    for (int precision = 0; precision < n_precisions; precision++) {
        sr_backend_handle b = open_cuda((sr_precision)precision);
        const float whole = run_rows(&b, node, in, stats, &want, 0, s.h);
        const float band = run_rows(&b, node, in, stats, &want, y0, y1);
        const float tolerance = kernel_tolerance[precision];
        if (!(whole <= tolerance) || !(band <= tolerance))
            fail_msg("%s, %s: relative error %g whole, %g in rows [%lld, %lld)", what,
                     sr_precision_name((sr_precision)precision), whole, band, (long long)y0,
                     (long long)y1);
        sr_backend_free(&b);
    }
    free(stats);
    free(want.data);
}

static void test_kernels_match_reference(void **state)
{
    (void)state;
    test_rng r = {7};
    check_kernel_cases(&r, 10, check_node, NULL);
}

/* Per-row sums on the device, added in row order: the host's sums to
 * within double rounding, whatever the band. */
static void test_statistics_match_host(void **state)
{
    (void)state;
    sr_backend_handle b = open_cuda(SR_PRECISION_FP32);
    test_rng r = {11};
    const sr_node node = {
        .op = SR_OP_INSTANCE_NORM, .n_inputs = 1, .p.instance_norm.eps = 1e-5f};
    sr_tensor in = tensor_new(8, 37, 301);
    test_fill(&r, in.data, 8 * 37 * 301, -2, 5);
    double want[16] = {0}, got[16] = {0};
    sr_op_get(node.op)->accumulate(&node, &in, 0, 37, want);
    for (int64_t y = 0; y < 37; y += 10) {
        const int64_t y1 = y + 10 < 37 ? y + 10 : 37;
        sr_tensor rows = copy_rows(&in, y, y1), dev = to_device(&b, &rows);
        assert_int_equal(b.iface->accumulate(b.ctx, &node, &dev, y, y1, got, NULL), SR_OK);
        release(&b, &dev);
        free(rows.data);
    }
    for (int i = 0; i < 16; i++)
        if (fabs(got[i] - want[i]) > 1e-12 * fabs(want[i]) + 1e-12)
            fail_msg("sum %d: %.17g on the device, %.17g on the host", i, got[i], want[i]);
    free(in.data);
    sr_backend_free(&b);
}

/* The output's rows as they come, into one planar tensor. */
static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    sr_tensor *whole = user;
    for (int64_t c = 0; c < rows->shape.c; c++)
        memcpy(sr_tensor_row(whole, c, rows->y0), sr_tensor_row(rows, c, rows->y0),
               (size_t)(rows->shape.h * rows->shape.w) * sizeof(float));
    return SR_OK;
}

/* The network's output for the image (planar; NULL on failure, which err
 * says), in bands of tile_rows rows (0: as the planner likes), as a
 * session runs it. */
static float *try_network(const sr_backend_handle *b, const sr_model *model,
                          const sr_image *image, int64_t tile_rows, sr_status *st, sr_error *err)
{
    const sr_shape in_shape = {3, image->height, image->width};
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    assert_non_null(input.data);
    sr_image_to_tensor(image, true, 1, &input, 0);
    sr_plan plan;
    int64_t least;
    const sr_plan_request req = {in_shape, 0, tile_rows, b, false};
    if (sr_plan_make(&model->graph, &req, &plan, &least, err) != SR_OK)
        fail_msg("%s", err->message);
    const sr_shape shape = plan.shapes[model->graph.n_nodes - 1];
    sr_tensor out = sr_tensor_whole(shape, malloc((size_t)sr_shape_numel(shape) * 4));
    assert_non_null(out.data);
    test_fill_nan(out.data, sr_shape_numel(shape));
    *st = sr_plan_execute(&model->graph, &plan, b, NULL, sr_exec_read_tensor, &input, collect, &out,
                          (sr_exec_progress){0}, (sr_exec_timing){0}, NULL, err);
    sr_plan_free(&plan);
    free(input.data);
    if (*st != SR_OK) {
        free(out.data);
        return NULL;
    }
    return out.data;
}

static float *run_network(const sr_backend_handle *b, const sr_model *model, const sr_image *image,
                          int64_t tile_rows)
{
    sr_status st;
    sr_error err = {0};
    float *out = try_network(b, model, image, tile_rows, &st, &err);
    if (!out)
        fail_msg("%s", err.message);
    return out;
}

/* Prints the largest error at each precision: the figures the README
 * gives. */
static void test_network_matches_pytorch_in_any_bands(void **state)
{
    (void)state;
    static const char *const models[] = {"srpgan_x2", "srpgan_x4"};
    static const char *const photos[] = {"leaves_37x29", "kite_41x27"};
    static const char *const files[] = {"leaves_37x29.png", "kite_41x27.jpg"};
    for (size_t m = 0; m < 2; m++) {
        sr_model *model = test_load_model(models[m]);
        for (int precision = 0; precision < SR_PRECISION_COUNT; precision++) {
            const char *pname = sr_precision_name((sr_precision)precision);
            /* A backend keeps weights by node: one per model. */
            sr_backend_handle b = open_cuda((sr_precision)precision);
            float model_worst = 0;
            /* The 16-bit paths on one photo: they share the rest. */
            const size_t n_photos = precision == SR_PRECISION_FP32 ? 2 : 1;
            for (size_t p = 0; p < n_photos; p++) {
                char path[512];
                snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, files[p]);
                sr_image in;
                assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
                snprintf(path, sizeof path, "%s/%s.%s.f32", SR_FIXTURES_DIR, photos[p],
                         models[m]);
                int64_t size;
                float *want = test_read_file(path, &size); /* planar */
                assert_non_null(want);
                const int s = sr_model_scale(model);
                /* Bands of one row (the slowest) at float32 only. */
                const int64_t n = in.width * s * in.height * s, tile_rows[] = {0, 5, 1};
                const size_t n_tilings = precision == SR_PRECISION_FP32 ? 3 : 2;
                assert_int_equal(size, n * 3 * 4);
                float *whole = NULL;
                for (size_t t = 0; t < n_tilings; t++) {
                    float *out = run_network(&b, model, &in, tile_rows[t]);
                    const float worst = test_max_abs_diff(out, want, 3 * n);
                    if (!(worst <= network_tolerance[precision]))
                        fail_msg("%s %s %s, tile rows %lld: max |cuda - pytorch| = %g",
                                 models[m], pname, photos[p], (long long)tile_rows[t], worst);
                    model_worst = worst > model_worst ? worst : model_worst;
                    /* Every value made the same way in any band: the same
                     * bits. */
                    if (t == 0)
                        whole = out;
                    else if (memcmp(out, whole, (size_t)(n * 3) * sizeof(float)) != 0)
                        fail_msg("%s %s %s, tile rows %lld: differs from the whole-image run",
                                 models[m], pname, photos[p], (long long)tile_rows[t]);
                    if (t > 0)
                        free(out);
                }
                free(whole);
                free(want);
                sr_image_free(&in);
            }
            printf("%s %s: max |cuda - pytorch float32| = %.3g (%.2f levels of 255)\n", models[m],
                   pname, model_worst, 255 * model_worst);
            sr_backend_free(&b);
        }
        sr_model_free(model);
    }
}

#ifdef SR_CUDA_ON_HOST
/* The stand-in's fault injection (cuda_host/backend.cpp). */
void cuda_host_fail_alloc(int k);
void cuda_host_fault(int k);
int64_t cuda_host_live_bytes(void);

/* A session on the stand-in's CUDA backend. */
static sr_session *host_cuda_session(const sr_model *model, sr_progress_fn progress, void *user)
{
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CUDA;
    opt.progress = progress;
    opt.progress_user = user;
    sr_session *s;
    sr_error err = {0};
    if (sr_session_new_on(model, &opt, open_cuda(SR_PRECISION_FP32), &s, &err) != SR_OK)
        fail_msg("%s", err.message);
    return s;
}

/* A session's run of the 1x1 fixture; its output compared with want's
 * when want has pixels, else kept there. */
static sr_status run_dot(sr_session *s, const sr_model *model, sr_image *want)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dot_1x1.png", SR_FIXTURES_DIR);
    sr_image in, out;
    assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
    const int scale = sr_model_scale(model);
    assert_int_equal(sr_image_alloc(&out, scale, scale, 3, SR_PIXEL_U8, NULL), SR_OK);
    const sr_status st = sr_session_run(s, &in, &out);
    if (st == SR_OK && want->data)
        assert_memory_equal(out.data, want->data, (size_t)(out.stride * out.height));
    if (st == SR_OK && !want->data)
        *want = out;
    else
        sr_image_free(&out);
    sr_image_free(&in);
    return st;
}

/* A kernel's fault (the stand-in's, which stays as a real device's does)
 * fails the run with SR_ERR_DEVICE, found at the first check, later in the
 * run, or (k = -1) by the next run's first call, an allocation, which must
 * not pass for a lack of memory; from then on the session refuses runs and
 * plans with SR_ERR_BAD_STATE, naming the fault, instead of running on a
 * broken device; freeing it gives every byte back. */
static void test_device_fault_sticks(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_image want = {0};
    static const int checks[] = {1, 12, -1};
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        const int k = checks[i];
        sr_session *s = host_cuda_session(model, NULL, NULL);
        assert_int_equal(run_dot(s, model, &want), SR_OK);
        cuda_host_fault(k);
        assert_int_equal(run_dot(s, model, &want), SR_ERR_DEVICE);
        assert_non_null(strstr(sr_session_last_error(s), "illegal memory access"));
        assert_int_equal(run_dot(s, model, &want), SR_ERR_BAD_STATE);
        assert_non_null(strstr(sr_session_last_error(s), "illegal memory access"));
        assert_int_equal(sr_session_plan(s, 2, 2, NULL), SR_ERR_BAD_STATE);
        cuda_host_fault(0); /* even with the device working again */
        assert_int_equal(run_dot(s, model, &want), SR_ERR_BAD_STATE);
        sr_session_free(s);
        assert_int_equal(cuda_host_live_bytes(), 0);
    }
    sr_image_free(&want);
    sr_model_free(model);
}

/* Cancels the run while *user is set, once. */
static int cancel_once(void *user, double fraction)
{
    int *cancel = user;
    (void)fraction;
    const int now = *cancel;
    *cancel = 0;
    return now;
}

/* Failures that leave the device and the session as they were do not
 * stick: after a device allocation failing and after a cancelled run,
 * the session's next run gives the same pixels. */
static void test_other_failures_do_not_stick(void **state)
{
    (void)state;
    cuda_host_fault(0); /* a working device, whatever a failed test left */
    sr_model *model = test_load_model("srpgan_x2");
    sr_image want = {0};
    int cancel = 0;
    sr_session *s = host_cuda_session(model, cancel_once, &cancel);
    assert_int_equal(run_dot(s, model, &want), SR_OK);
    cuda_host_fail_alloc(1);
    assert_int_equal(run_dot(s, model, &want), SR_ERR_NO_MEMORY);
    cuda_host_fail_alloc(0);
    assert_int_equal(run_dot(s, model, &want), SR_OK);
    cancel = 1;
    assert_int_equal(run_dot(s, model, &want), SR_ERR_CANCELLED);
    assert_int_equal(run_dot(s, model, &want), SR_OK);
    sr_session_free(s);
    assert_int_equal(cuda_host_live_bytes(), 0);
    sr_image_free(&want);
    sr_model_free(model);
}

/* Each device allocation failing in turn, the weights' included (fp16
 * makes two each): the run fails with SR_ERR_NO_MEMORY, and freeing the
 * backend gives every byte back. */
static void test_each_allocation_may_fail(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    char path[512];
    snprintf(path, sizeof path, "%s/leaves_37x29.png", SR_FIXTURES_DIR);
    sr_image in;
    assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
    for (int k = 1;; k++) {
        sr_backend_handle b = open_cuda(SR_PRECISION_FP16);
        cuda_host_fail_alloc(k);
        sr_status st;
        sr_error err = {0};
        float *out = try_network(&b, model, &in, 5, &st, &err);
        cuda_host_fail_alloc(0);
        sr_backend_free(&b);
        assert_int_equal(cuda_host_live_bytes(), 0);
        if (out) {
            free(out);
            assert_true(k > 3); /* the weights, the input, band buffers: all were tried */
            break;
        }
        if (st != SR_ERR_NO_MEMORY)
            fail_msg("allocation %d failing: status %d, %s", k, (int)st, err.message);
    }
    sr_image_free(&in);
    sr_model_free(model);
}
#endif

int main(void)
{
    test_cuda_or_skip("test_cuda");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_statistics_match_host),
        cmocka_unit_test(test_network_matches_pytorch_in_any_bands),
#ifdef SR_CUDA_ON_HOST
        cmocka_unit_test(test_each_allocation_may_fail),
        cmocka_unit_test(test_device_fault_sticks),
        cmocka_unit_test(test_other_failures_do_not_stick),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
