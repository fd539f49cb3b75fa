/* Spilled tensors (runtime/plan*.c, runtime/exec.c, base/scratch.c): plans
 * whose budget keeps no 64-channel tensor whole in memory keep them in a
 * scratch file instead, and give the whole-image run's bits, for budgets
 * and band heights, in host memory and through a device's copies (the CPU
 * backend's kernels behind a memory table that counts); the memory the
 * executor holds never passes the plan's prediction; "" never spills, nor
 * does the default directory where it is a tmpfs; a scratch directory that
 * cannot be used, a disk too full for the plan and a disk filling during
 * the run are one-line errors.
 *
 * The full disk is pretended: the test links with
 * -Wl,--wrap=fstatvfs,--wrap=pwrite (tests/CMakeLists.txt), so the
 * library's objects, linked statically into this program, call the
 * __wrap_ functions here, as test_alloc_faults does for allocations. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/magic.h>

#include "backends/backend.h"
#include "runtime/exec.h"
#include "runtime/model.h"
#include "testutil.h"

/* ---- the pretended disk ---- */

static int64_t disk_free = -1; /* bytes fstatvfs reports; -1: the truth */
static int pwrite_fails_at;    /* the pwrite to fail with ENOSPC (1: the next), or 0 */

int __real_fstatvfs(int fd, struct statvfs *buf);
int __wrap_fstatvfs(int fd, struct statvfs *buf)
{
    const int r = __real_fstatvfs(fd, buf);
    if (r == 0 && disk_free >= 0) {
        buf->f_frsize = 4096;
        buf->f_bavail = (fsblkcnt_t)(disk_free / 4096);
    }
    return r;
}

ssize_t __real_pwrite(int fd, const void *buf, size_t count, off_t offset);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    if (pwrite_fails_at > 0 && --pwrite_fails_at == 0) {
        errno = ENOSPC;
        return -1;
    }
    return __real_pwrite(fd, buf, count, offset);
}

/* ---- a backend that counts what the executor holds ---- */

#define MAX_BUFFERS 256

typedef struct counted {
    int64_t live_bytes, peak_bytes;
    int n_live;
    struct {
        void *p;
        int64_t bytes;
    } live[MAX_BUFFERS];
    sr_backend_handle cpu; /* runs the nodes */
    const sr_node *nodes;
    int64_t rows_run[64]; /* per node: the rows the executor had it compute */
} counted;

static int64_t counted_available(void *ctx)
{
    (void)ctx;
    return INT64_C(1) << 30;
}

static void *counted_alloc(void *ctx, int64_t bytes)
{
    counted *d = ctx;
    assert_true(d->n_live < MAX_BUFFERS);
    void *p = malloc((size_t)bytes);
    assert_non_null(p);
    memset(p, 0xff, (size_t)bytes); /* NaNs: nothing may count on zeros */
    d->live[d->n_live].p = p;
    d->live[d->n_live++].bytes = bytes;
    d->live_bytes += bytes;
    if (d->live_bytes > d->peak_bytes)
        d->peak_bytes = d->live_bytes;
    return p;
}

static void counted_release(void *ctx, void *p, int64_t bytes)
{
    counted *d = ctx;
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

static sr_status counted_copy(void *ctx, void *to, const void *from, int64_t bytes, sr_error *err)
{
    (void)ctx;
    (void)err;
    memcpy(to, from, (size_t)bytes);
    return SR_OK;
}

static void counted_trim(void *ctx) { (void)ctx; }

static sr_status counted_synchronize(void *ctx, sr_error *err)
{
    (void)ctx;
    (void)err;
    return SR_OK;
}

static bool counted_supports_op(void *ctx, const sr_node *node)
{
    const counted *c = ctx;
    return c->cpu.iface->supports_op(c->cpu.ctx, node);
}

static int64_t counted_workspace_bytes(void *ctx, const sr_node *node, sr_shape out)
{
    const counted *c = ctx;
    return c->cpu.iface->workspace_bytes(c->cpu.ctx, node, out);
}

static sr_row_tiling counted_row_tiling(void *ctx, const sr_node *node, sr_shape out)
{
    const counted *c = ctx;
    return sr_backend_row_tiling(&c->cpu, node, out);
}

static sr_status counted_run(void *ctx, const sr_node *node, const sr_tensor *in, sr_tensor *out,
                             const float *stats, sr_error *err)
{
    counted *c = ctx;
    c->rows_run[node - c->nodes] += out->shape.h;
    return c->cpu.iface->run(c->cpu.ctx, node, in, out, stats, err);
}

static void counted_free(void *ctx) { (void)ctx; }

/* The same memory, as host memory (spilled rows read and written in
 * place) and as a device's (through the executor's staging buffer). */
static const sr_backend_memory host_memory = {
    .is_host = true,
    .available = counted_available,
    .alloc = counted_alloc,
    .release = counted_release,
    .trim = counted_trim,
    .upload = counted_copy,
    .download = counted_copy,
    .synchronize = counted_synchronize,
};

static const sr_backend_memory device_memory = {
    .available = counted_available,
    .alloc = counted_alloc,
    .release = counted_release,
    .trim = counted_trim,
    .upload = counted_copy,
    .download = counted_copy,
    .synchronize = counted_synchronize,
};

#define COUNTED_IFACE(memory_table)                                                             \
    {                                                                                           \
        .name = "counted", .supports_op = counted_supports_op,                                  \
        .workspace_bytes = counted_workspace_bytes, .row_tiling = counted_row_tiling,           \
        .run = counted_run, .accumulate = sr_host_accumulate, .free = counted_free,             \
        .memory = &(memory_table),                                                              \
    }
static const sr_backend_iface host_iface = COUNTED_IFACE(host_memory);
static const sr_backend_iface device_iface = COUNTED_IFACE(device_memory);

/* ---- runs ---- */

static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    sr_tensor *whole = user;
    for (int64_t ch = 0; ch < rows->shape.c; ch++)
        memcpy(sr_tensor_row(whole, ch, rows->y0), sr_tensor_row(rows, ch, rows->y0),
               (size_t)(rows->shape.h * rows->shape.w) * sizeof(float));
    return SR_OK;
}

/* Plans g for input within budget (0: none) and band height tile_rows
 * (0: the planner's), spilling when it may; runs it on backend into *out
 * (allocated here) when the plan is made. Returns sr_plan_make's status;
 * *plan is the plan (freed here). */
static sr_status plan_and_run(const sr_graph *g, const sr_backend_handle *backend,
                              const sr_tensor *input, int64_t budget, int64_t tile_rows,
                              bool may_spill, sr_tensor *out, sr_plan *plan)
{
    sr_error err = {0};
    int64_t least = 0;
    const sr_plan_request req = {input->shape, budget, tile_rows, backend, may_spill};
    sr_status st = sr_plan_make(g, &req, plan, &least, &err);
    if (st != SR_OK)
        return st;
    const sr_shape shape = plan->shapes[g->n_nodes - 1];
    *out = sr_tensor_whole(shape, malloc((size_t)sr_shape_numel(shape) * sizeof(float)));
    assert_non_null(out->data);
    test_fill_nan(out->data, sr_shape_numel(shape));
    if (sr_plan_execute(g, plan, backend, NULL, sr_exec_read_tensor, (void *)input, collect, out,
                        (sr_exec_progress){0}, (sr_exec_timing){0}, NULL, &err) != SR_OK)
        fail_msg("%s", err.message);
    return SR_OK;
}

/* Budgets from the unconstrained plan's peak down, and forced band
 * heights with a budget only spilling meets: every plan that spills gives
 * the whole-image bits and holds no more than it predicted. */
static int check_fixture(const char *fixture, int64_t w, int64_t h)
{
    sr_model *model = test_load_model(fixture);
    const sr_graph *g = &model->graph;
    const sr_shape in_shape = {3, h, w};
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    test_rng rng = {(uint64_t)(w * 131 + h)};
    test_fill(&rng, input.data, sr_shape_numel(in_shape), 0.0f, 1.0f);

    counted host_ctx = {.nodes = g->nodes}, device_ctx = {.nodes = g->nodes};
    assert_true(g->n_nodes <= 64);
    int64_t *flops = calloc((size_t)g->n_nodes, sizeof *flops);
    assert_int_equal(sr_cpu_backend_new(1, &host_ctx.cpu, NULL), SR_OK);
    assert_int_equal(sr_cpu_backend_new(1, &device_ctx.cpu, NULL), SR_OK);
    const sr_backend_handle host = {&host_iface, &host_ctx}, device = {&device_iface, &device_ctx};
    sr_plan plan;
    sr_tensor whole, got;
    assert_int_equal(plan_and_run(g, &host, &input, 0, 0, true, &whole, &plan), SR_OK);
    assert_int_equal(plan.scratch_bytes, 0); /* all fits: nothing spilled */
    /* The backend's workspace and the statistics are in every plan. */
    const int64_t fixed = plan.workspace_bytes + plan.stats_bytes, full = plan.peak_bytes - fixed;
    sr_plan_free(&plan);

    int n_spilled = 0;
    for (int sixteenths = 12; sixteenths >= 1; sixteenths--) {
        for (int on_device = 0; on_device < 2; on_device++) {
            counted *ctx = on_device ? &device_ctx : &host_ctx;
            ctx->peak_bytes = 0;
            memset(ctx->rows_run, 0, sizeof ctx->rows_run);
            const int64_t budget = fixed + full * sixteenths / 16;
            if (plan_and_run(g, on_device ? &device : &host, &input, budget, 0, true, &got,
                             &plan) != SR_OK)
                continue;
            if (memcmp(got.data, whole.data, (size_t)sr_shape_numel(got.shape) * 4) != 0)
                fail_msg("%s %lldx%lld budget %lld/16 (%s): differs from the whole-image run",
                         fixture, (long long)w, (long long)h, (long long)sixteenths,
                         on_device ? "device" : "host");
            assert_true(plan.peak_bytes <= budget);
            assert_true(ctx->peak_bytes <= plan.peak_bytes);
            assert_int_equal(ctx->live_bytes, 0);
            /* The FLOPs it reports per node are those of the rows run. */
            sr_graph_flops(g, plan.shapes, flops);
            for (int n = 1; n < g->n_nodes; n++)
                assert_int_equal(plan.node_flops[n], flops[n] / plan.shapes[n].h * ctx->rows_run[n]);
            n_spilled += plan.scratch_bytes > 0;
            sr_plan_free(&plan);
            free(got.data);
        }
    }
    assert_true(n_spilled > 0);

    /* Forced band heights, under a budget the kept tensors in memory miss
     * (in a tiny image, the spilled tensors' band buffers may miss it too). */
    int n_tiled = 0;
    const int64_t rows[] = {1, 3, 7};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        assert_int_equal(plan_and_run(g, &host, &input, 0, rows[i], false, &got, &plan), SR_OK);
        const int64_t budget = plan.peak_bytes - 1;
        sr_plan_free(&plan);
        free(got.data);
        host_ctx.peak_bytes = 0;
        const sr_status st = plan_and_run(g, &host, &input, budget, rows[i], true, &got, &plan);
        if (st == SR_ERR_LIMIT)
            continue;
        assert_int_equal(st, SR_OK);
        assert_true(plan.scratch_bytes > 0);
        n_tiled++;
        if (memcmp(got.data, whole.data, (size_t)sr_shape_numel(got.shape) * 4) != 0)
            fail_msg("%s %lldx%lld tile rows %lld spilled: differs from the whole-image run",
                     fixture, (long long)w, (long long)h, (long long)rows[i]);
        assert_true(host_ctx.peak_bytes <= plan.peak_bytes);
        sr_plan_free(&plan);
        free(got.data);
    }
    free(flops);
    free(whole.data);
    free(input.data);
    sr_backend_free(&host_ctx.cpu);
    sr_backend_free(&device_ctx.cpu);
    sr_model_free(model);
    return n_tiled;
}

static void test_spilled_plans_give_the_same_bits_x2(void **state)
{
    (void)state;
    assert_true(check_fixture("srpgan_x2", 29, 23) + check_fixture("srpgan_x2", 6, 41) > 0);
}

static void test_spilled_plans_give_the_same_bits_x4(void **state)
{
    (void)state;
    assert_true(check_fixture("srpgan_x4", 17, 19) + check_fixture("srpgan_x4", 23, 31) > 0);
}

/* ---- sessions: the option, and the errors ---- */

static sr_image random_image(int64_t w, int64_t h)
{
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, w, h, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng r = {(uint64_t)(w * 7 + h)};
    for (int64_t i = 0; i < w * h * 3; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&r);
    return img;
}

typedef struct session_case {
    sr_model *model;
    sr_image in, whole, out;
    int64_t tight;  /* max_memory where a plan without the file recomputes much or
                       does not fit */
    bool tight_fits; /* without the file */
} session_case;

static session_case session_case_new(void)
{
    session_case c = {test_load_model("srpgan_x2"), random_image(40, 36), {0}, {0}, 0, false};
    for (int k = 0; k < 2; k++)
        assert_int_equal(sr_image_alloc(k ? &c.out : &c.whole, 80, 72, 3, SR_PIXEL_F32, NULL),
                         SR_OK);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = 1;
    sr_session *s;
    assert_int_equal(sr_session_new(c.model, &opt, &s, NULL), SR_OK);
    assert_int_equal(sr_session_run(s, &c.in, &c.whole), SR_OK);
    sr_plan_info info = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(s, 40, 36, &info), SR_OK);
    assert_int_equal(info.n_spilled, 0);
    /* The plan's own bytes a 64th lower each until a plan without the
     * file recomputes a fifth more than the network or fits no more:
     * there the file pays. */
    const int64_t fixed = info.fixed_bytes + SR_PLAN_STAGE(&info, 0)->workspace_bytes;
    const int64_t full = info.plan_bytes - SR_PLAN_STAGE(&info, 0)->workspace_bytes;
    sr_session_free(s); /* which owns info's stages */
    opt.scratch_dir = "";
    for (int k = 63; k > 0; k--) {
        c.tight = fixed + full * k / 64;
        opt.max_memory = c.tight;
        assert_int_equal(sr_session_new(c.model, &opt, &s, NULL), SR_OK);
        const sr_status st = sr_session_plan(s, 40, 36, &info);
        sr_session_free(s);
        assert_true(st == SR_OK || st == SR_ERR_LIMIT);
        c.tight_fits = st == SR_OK;
        if (!c.tight_fits || info.flops * 5 > info.whole_flops * 6)
            break;
    }
    return c;
}

static void session_case_free(session_case *c)
{
    sr_image_free(&c->in);
    sr_image_free(&c->whole);
    sr_image_free(&c->out);
    sr_model_free(c->model);
}

/* A session at the case's tight budget, scratch in dir. */
static sr_session *tight_session(const session_case *c, const char *dir)
{
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = 1;
    opt.max_memory = c->tight;
    opt.scratch_dir = dir;
    sr_session *s;
    assert_int_equal(sr_session_new(c->model, &opt, &s, NULL), SR_OK);
    return s;
}

static void test_sessions_spill_unless_told_not_to(void **state)
{
    (void)state;
    session_case c = session_case_new();
    const char *dirs[] = {"", NULL, "/tmp"};
    int64_t recomputed = INT64_MAX;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        sr_session *s = tight_session(&c, dirs[i]);
        if (dirs[i] && !dirs[i][0] && !c.tight_fits) { /* never spill: no plan fits */
            assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_ERR_LIMIT);
            sr_session_free(s);
            continue;
        }
        assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_OK);
        sr_plan_info info = SR_PLAN_INFO_INIT;
        assert_int_equal(sr_session_plan(s, 40, 36, &info), SR_OK);
        if (dirs[i] && !dirs[i][0]) {
            assert_int_equal(info.n_spilled, 0);
            assert_int_equal(info.scratch_bytes, 0);
            recomputed = info.flops;
        } else {
            assert_true(info.n_spilled > 0);
            assert_true(info.scratch_bytes > 0);
            assert_true(info.flops < recomputed); /* spilled rather than recomputed */
        }
        assert_true(info.predicted_peak <= c.tight);
        assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
        sr_session_free(s);
    }
    session_case_free(&c);
}

/* The default directory in memory (a tmpfs, as /dev/shm is): not used,
 * since the spill would take the memory it saves; the same one named is
 * the caller's choice and used. */
static void test_a_default_dir_in_memory_is_not_used(void **state)
{
    (void)state;
    struct statfs fs;
    if (statfs("/dev/shm", &fs) != 0 || (unsigned long)fs.f_type != TMPFS_MAGIC)
        skip(); /* no tmpfs at hand */
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    assert_int_equal(setenv("TMPDIR", "/dev/shm", 1), 0);
    session_case c = session_case_new();
    const char *dirs[] = {NULL, "/dev/shm"};
    for (size_t i = 0; i < 2; i++) {
        sr_session *s = tight_session(&c, dirs[i]);
        const bool fits = dirs[i] || c.tight_fits;
        assert_int_equal(sr_session_run(s, &c.in, &c.out), fits ? SR_OK : SR_ERR_LIMIT);
        sr_plan_info info = SR_PLAN_INFO_INIT;
        if (fits) {
            assert_int_equal(sr_session_plan(s, 40, 36, &info), SR_OK);
            assert_true(dirs[i] ? info.n_spilled > 0 : info.n_spilled == 0);
            assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
        }
        sr_session_free(s);
    }
    session_case_free(&c);
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
}

static void test_an_unusable_scratch_dir_is_one_line(void **state)
{
    (void)state;
    session_case c = session_case_new();
    const char *dirs[] = {"/nonexistent/srrun-scratch", "/etc/passwd"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        sr_session *s = tight_session(&c, dirs[i]);
        assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_ERR_IO);
        const char *msg = sr_session_last_error(s);
        assert_non_null(strstr(msg, "cannot use scratch directory"));
        assert_non_null(strstr(msg, dirs[i]));
        assert_null(strchr(msg, '\n'));
        sr_session_free(s);
    }
    session_case_free(&c);
}

static void test_a_full_disk_is_one_line(void **state)
{
    (void)state;
    session_case c = session_case_new();
    /* Short of space when planning. */
    disk_free = 4096;
    sr_session *s = tight_session(&c, "/tmp");
    assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_ERR_IO);
    assert_non_null(strstr(sr_session_last_error(s), "scratch directory /tmp has 0M free, "
                                                      "the plan spills"));
    disk_free = -1;
    assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_OK); /* room again */
    assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
    /* Full while it runs: the first, and a later, write of the file. */
    const int fail_at[] = {1, 5};
    for (size_t i = 0; i < sizeof fail_at / sizeof *fail_at; i++) {
        pwrite_fails_at = fail_at[i];
        assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_ERR_IO);
        assert_string_equal(sr_session_last_error(s),
                            "cannot write the scratch file: No space left on device");
        pwrite_fails_at = 0;
    }
    assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_OK);
    assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
    sr_session_free(s);
    session_case_free(&c);
}

/* The default directory (none named) too full for the plan: planned as
 * where it cannot be used at all, in memory (recomputing, or if that does
 * not fit, a memory limit, not a disk error); with room, it spills. */
static void test_a_full_default_dir_is_not_used(void **state)
{
    (void)state;
    session_case c = session_case_new();
    disk_free = 4096;
    sr_session *s = tight_session(&c, NULL);
    if (c.tight_fits) {
        assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_OK);
        sr_plan_info info = SR_PLAN_INFO_INIT;
        assert_int_equal(sr_session_plan(s, 40, 36, &info), SR_OK);
        assert_int_equal(info.n_spilled, 0);
        assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
    } else {
        assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_ERR_LIMIT);
        assert_non_null(strstr(sr_session_last_error(s), "needs a max memory of at least"));
    }
    sr_session_free(s);
    disk_free = -1;
    s = tight_session(&c, NULL);
    assert_int_equal(sr_session_run(s, &c.in, &c.out), SR_OK);
    assert_memory_equal(c.out.data, c.whole.data, 80 * 72 * 3 * sizeof(float));
    sr_session_free(s);
    session_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spilled_plans_give_the_same_bits_x2),
        cmocka_unit_test(test_spilled_plans_give_the_same_bits_x4),
        cmocka_unit_test(test_sessions_spill_unless_told_not_to),
        cmocka_unit_test(test_a_default_dir_in_memory_is_not_used),
        cmocka_unit_test(test_an_unusable_scratch_dir_is_one_line),
        cmocka_unit_test(test_a_full_disk_is_one_line),
        cmocka_unit_test(test_a_full_default_dir_is_not_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
