/* The executor with a device backend (sr_backend_memory), on the CPU: a
 * pretend device that runs the reference kernels on memory it hands out
 * itself and checks that every tensor it is given lies in that memory.
 * The output must be the host run's bits, for any band height, with the
 * input uploaded once, the output's rows downloaded band by band, nodes
 * timed after the device is done, the sink given host memory, every buffer
 * given back (also when an allocation or a download fails), and no more
 * device memory live than the plan says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/exec.h"
#include "runtime/model.h"
#include "testutil.h"

#define MAX_BUFFERS 256

typedef struct pretend_device {
    struct {
        char *p;
        int64_t bytes;
    } live[MAX_BUFFERS];
    int n_live;
    int64_t live_bytes, peak_bytes;
    int uploads, downloads, accumulates, synchronizes;
    int allocs, fail_alloc, fail_download; /* the call to fail (1: the first), or 0 */
} pretend_device;

/* Whether [p, p + bytes) lies in one live buffer. */
static bool on_device(const pretend_device *d, const void *p, int64_t bytes)
{
    for (int i = 0; i < d->n_live; i++)
        if ((const char *)p >= d->live[i].p &&
            (const char *)p + bytes <= d->live[i].p + d->live[i].bytes)
            return true;
    return false;
}

static void expect_on_device(const pretend_device *d, const sr_tensor *t, const char *what)
{
    const int64_t span = ((t->shape.c - 1) * t->cstride + t->shape.h * t->shape.w) * 4;
    if (!on_device(d, t->data, span))
        fail_msg("%s: a tensor outside device memory", what);
}

static int64_t pretend_available(void *ctx)
{
    (void)ctx;
    return INT64_C(1) << 30;
}

static void *pretend_alloc(void *ctx, int64_t bytes)
{
    pretend_device *d = ctx;
    if (++d->allocs == d->fail_alloc)
        return NULL;
    assert_true(d->n_live < MAX_BUFFERS);
    char *p = malloc((size_t)bytes);
    assert_non_null(p);
    memset(p, 0xff, (size_t)bytes); /* NaNs: nothing may count on zeros */
    d->live[d->n_live].p = p;
    d->live[d->n_live++].bytes = bytes;
    d->live_bytes += bytes;
    if (d->live_bytes > d->peak_bytes)
        d->peak_bytes = d->live_bytes;
    return p;
}

static void pretend_release(void *ctx, void *p, int64_t bytes)
{
    pretend_device *d = ctx;
    for (int i = 0; i < d->n_live; i++)
        if (d->live[i].p == p) {
            assert_int_equal(d->live[i].bytes, bytes);
            d->live_bytes -= bytes;
            d->live[i] = d->live[--d->n_live];
            free(p);
            return;
        }
    fail_msg("released a buffer that is not live");
}

static sr_status pretend_upload(void *ctx, void *device, const void *host, int64_t bytes,
                                sr_error *err)
{
    (void)err;
    pretend_device *d = ctx;
    assert_true(on_device(d, device, bytes));
    assert_false(on_device(d, host, 1));
    memcpy(device, host, (size_t)bytes);
    d->uploads++;
    return SR_OK;
}

static sr_status pretend_download(void *ctx, void *host, const void *device, int64_t bytes,
                                  sr_error *err)
{
    pretend_device *d = ctx;
    if (++d->downloads == d->fail_download)
        return sr_fail(err, SR_ERR_DEVICE, "pretend download failure");
    assert_true(on_device(d, device, bytes));
    assert_false(on_device(d, host, 1));
    memcpy(host, device, (size_t)bytes);
    return SR_OK;
}

static sr_status pretend_accumulate(void *ctx, const sr_node *node, const sr_tensor *rows,
                                    int64_t y0, int64_t y1, double *acc, sr_error *err)
{
    (void)err;
    pretend_device *d = ctx;
    expect_on_device(d, rows, node->name);
    sr_op_get(node->op)->accumulate(node, rows, y0, y1, acc);
    d->accumulates++;
    return SR_OK;
}

static void pretend_trim(void *ctx) { (void)ctx; }

static sr_status pretend_synchronize(void *ctx, sr_error *err)
{
    (void)err;
    ((pretend_device *)ctx)->synchronizes++;
    return SR_OK;
}

static bool pretend_supports_op(void *ctx, const sr_node *node)
{
    (void)ctx;
    return sr_op_get(node->op)->reference != NULL;
}

static int64_t pretend_workspace_bytes(void *ctx, const sr_node *node, sr_shape out)
{
    (void)ctx;
    (void)node;
    (void)out;
    return 0;
}

static sr_status pretend_run(void *ctx, const sr_node *node, const sr_tensor *in,
                             sr_tensor *out, const float *stats, sr_error *err)
{
    (void)err;
    pretend_device *d = ctx;
    for (int j = 0; j < node->n_inputs; j++)
        expect_on_device(d, &in[j], node->name);
    expect_on_device(d, out, node->name);
    sr_op_get(node->op)->reference(node, in, out, stats);
    return SR_OK;
}

static void pretend_free(void *ctx) { (void)ctx; }

static const sr_backend_memory pretend_memory = {
    .available = pretend_available,
    .alloc = pretend_alloc,
    .release = pretend_release,
    .trim = pretend_trim,
    .upload = pretend_upload,
    .download = pretend_download,
    .synchronize = pretend_synchronize,
};

static const sr_backend_iface pretend_iface = {
    .name = "pretend",
    .supports_op = pretend_supports_op,
    .workspace_bytes = pretend_workspace_bytes,
    .run = pretend_run,
    .accumulate = pretend_accumulate,
    .free = pretend_free,
    .memory = &pretend_memory,
};

/* The sink: rows (in host memory) into a whole host tensor; counts the
 * bands. */
typedef struct collected {
    sr_tensor whole;
    int bands;
    const pretend_device *device; /* or NULL */
} collected;

static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    collected *c = user;
    if (c->device && on_device(c->device, rows->data, 1))
        fail_msg("the sink was given device memory");
    for (int64_t ch = 0; ch < rows->shape.c; ch++)
        for (int64_t y = rows->y0; y < rows->y0 + rows->shape.h; y++)
            memcpy(sr_tensor_row(&c->whole, ch, y), sr_tensor_row(rows, ch, y),
                   (size_t)rows->shape.w * sizeof(float));
    c->bands++;
    return SR_OK;
}

/* Runs g on input through backend with a plan of the given band height,
 * the output into out (allocated here; NULL: dropped). Returns the status;
 * *bands counts the output's bands. */
static sr_status run(const sr_graph *g, const sr_backend_handle *backend, const sr_tensor *input,
                     int64_t tile_rows, sr_tensor *out, int *bands, int64_t *plan_peak)
{
    sr_plan plan;
    sr_error err = {0};
    int64_t least = 0;
    const sr_plan_request req = {input->shape, 0, tile_rows, backend, false};
    if (sr_plan_make(g, &req, &plan, &least, &err) != SR_OK)
        fail_msg("%s", err.message);
    const sr_shape shape = plan.shapes[g->n_nodes - 1];
    collected c = {sr_tensor_whole(shape, malloc((size_t)sr_shape_numel(shape) * sizeof(float))),
                   0, backend->iface->memory->is_host ? NULL : backend->ctx};
    assert_non_null(c.whole.data);
    test_fill_nan(c.whole.data, sr_shape_numel(shape));
    double *node_seconds = calloc((size_t)g->n_nodes, sizeof *node_seconds);
    const sr_status st = sr_plan_execute(g, &plan, backend, NULL, sr_exec_read_tensor, (void *)input,
                                         collect, &c, (sr_exec_progress){0},
                                         (sr_exec_timing){node_seconds, NULL}, NULL, &err);
    free(node_seconds);
    *plan_peak = plan.peak_bytes;
    *bands = c.bands;
    sr_plan_free(&plan);
    if (out)
        *out = c.whole;
    else
        free(c.whole.data);
    return st;
}

static void check(const char *fixture, int64_t w, int64_t h)
{
    sr_model *model = test_load_model(fixture);
    const sr_graph *g = &model->graph;
    const sr_shape in_shape = {3, h, w};
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    test_rng rng = {(uint64_t)(w * 97 + h)};
    test_fill(&rng, input.data, sr_shape_numel(in_shape), 0.0f, 1.0f);

    sr_backend_handle host;
    assert_int_equal(sr_reference_backend_new(&host, NULL), SR_OK);
    sr_tensor expected;
    int64_t peak;
    int bands;
    assert_int_equal(run(g, &host, &input, 0, &expected, &bands, &peak), SR_OK);

    const int64_t tile_rows[] = {0, 1, 3, 7};
    for (size_t i = 0; i < sizeof tile_rows / sizeof *tile_rows; i++) {
        pretend_device d = {0};
        const sr_backend_handle device = {&pretend_iface, &d};
        sr_tensor got;
        assert_int_equal(run(g, &device, &input, tile_rows[i], &got, &bands, &peak), SR_OK);
        if (memcmp(got.data, expected.data, (size_t)sr_shape_numel(got.shape) * 4) != 0)
            fail_msg("%s %lldx%lld tile rows %lld: differs from the host run", fixture,
                     (long long)w, (long long)h, (long long)tile_rows[i]);
        assert_int_equal(d.uploads, 3); /* the input at once, one per channel */
        assert_int_equal(d.downloads, 3 * bands); /* one per channel and band */
        assert_true(d.accumulates > 0);
        assert_true(d.synchronizes > 0); /* each node timed after it is done */
        assert_int_equal(d.n_live, 0);
        assert_int_equal(d.live_bytes, 0);
        /* The plan's peak, and the input on the device. */
        assert_true(d.peak_bytes <= peak + sr_shape_numel(in_shape) * 4);
        free(got.data);
    }
    free(expected.data);

    /* Each allocation failing in turn, and a failing download: the run
     * fails with the device's status and gives every buffer back. */
    for (int k = 1;; k++) {
        pretend_device d = {.fail_alloc = k};
        const sr_backend_handle device = {&pretend_iface, &d};
        const sr_status st = run(g, &device, &input, 3, NULL, &bands, &peak);
        assert_int_equal(d.n_live, 0);
        if (st == SR_OK) {
            assert_true(k > d.allocs); /* every allocation was made to fail once */
            break;
        }
        assert_int_equal(st, SR_ERR_NO_MEMORY);
    }
    pretend_device d = {.fail_download = 2};
    const sr_backend_handle device = {&pretend_iface, &d};
    assert_int_equal(run(g, &device, &input, 3, NULL, &bands, &peak), SR_ERR_DEVICE);
    assert_int_equal(d.n_live, 0);
    free(input.data);
    sr_backend_free(&host);
    sr_model_free(model);
}

static void test_device_run_equals_host_run_x2(void **state)
{
    (void)state;
    check("srpgan_x2", 19, 13);
}

static void test_device_run_equals_host_run_x4(void **state)
{
    (void)state;
    check("srpgan_x4", 11, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_run_equals_host_run_x2),
        cmocka_unit_test(test_device_run_equals_host_run_x4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
