/* libFuzzer harness for the planner (runtime/plan*.c) and the executor that
 * follows its plans: the input picks an SRPGAN (width, residual blocks,
 * scale 2 or 4, random weights), a tiny image, a budget (a fraction of
 * what the unconstrained plan takes), maybe forced band heights, and
 * whether kept tensors may be spilled to a scratch file. The
 * plan is run on the CPU backend behind a pretend device that counts the
 * memory the executor holds, which must stay within the predicted peak,
 * and the output must be the bits of the whole-image run. A budget that
 * fails must fail with the least that would do above it, and that least
 * must then plan. Any breach traps. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "runtime/exec.h"
#include "tests/srpgan_model.h"

/* The CPU backend, its memory counted as a device's would be. */
typedef struct counted {
    sr_backend_handle cpu;
    int64_t live_bytes, peak_bytes;
    const sr_node *nodes;
    int64_t *rows_run; /* per node: the rows the executor had it compute */
} counted;

static int64_t counted_available(void *ctx)
{
    (void)ctx;
    return INT64_C(1) << 30;
}

static void *counted_alloc(void *ctx, int64_t bytes)
{
    counted *c = ctx;
    void *p = malloc((size_t)bytes);
    if (p) {
        c->live_bytes += bytes;
        c->peak_bytes = c->live_bytes > c->peak_bytes ? c->live_bytes : c->peak_bytes;
    }
    return p;
}

static void counted_release(void *ctx, void *p, int64_t bytes)
{
    ((counted *)ctx)->live_bytes -= bytes;
    free(p);
}

static sr_status counted_copy(void *ctx, void *to, const void *from, int64_t bytes,
                              sr_error *err)
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

static sr_status counted_run(void *ctx, const sr_node *node, const sr_tensor *in,
                             sr_tensor *out, const float *stats, sr_error *err)
{
    const counted *c = ctx;
    c->rows_run[node - c->nodes] += out->shape.h;
    return c->cpu.iface->run(c->cpu.ctx, node, in, out, stats, err);
}

static void counted_free(void *ctx) { (void)ctx; }

static const sr_backend_memory counted_memory = {
    .available = counted_available,
    .alloc = counted_alloc,
    .release = counted_release,
    .trim = counted_trim,
    .upload = counted_copy,
    .download = counted_copy,
    .synchronize = counted_synchronize,
};

static const sr_backend_iface counted_iface = {
    .name = "counted cpu",
    .supports_op = counted_supports_op,
    .workspace_bytes = counted_workspace_bytes,
    .row_tiling = counted_row_tiling,
    .run = counted_run,
    .accumulate = sr_host_accumulate,
    .free = counted_free,
    .memory = &counted_memory,
};

/* Output rows into a whole tensor. */
static sr_status collect(void *user, const sr_tensor *rows, sr_error *err)
{
    (void)err;
    sr_tensor *whole = user;
    for (int64_t ch = 0; ch < rows->shape.c; ch++)
        for (int64_t y = rows->y0; y < rows->y0 + rows->shape.h; y++)
            memcpy(sr_tensor_row(whole, ch, y), sr_tensor_row(rows, ch, y),
                   (size_t)rows->shape.w * sizeof(float));
    return SR_OK;
}

/* Runs a plan into out (the output's shape); traps on failure. */
static void execute(const sr_graph *g, const sr_plan *plan, const sr_backend_handle *backend,
                    const sr_tensor *input, sr_tensor *out)
{
    sr_error err = {{0}};
    if (sr_plan_execute(g, plan, backend, NULL, sr_exec_read_tensor, (void *)input, collect, out,
                        (sr_exec_progress){0}, (sr_exec_timing){0}, NULL, &err) != SR_OK)
        __builtin_trap();
}

static uint8_t next_byte(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    (*size)--;
    return *(*data)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small enough to run in milliseconds under the sanitizers and the
     * fuzzer's comparison tracing; past 8 blocks the planner commits
     * toggles together. */
    const uint8_t first = next_byte(&data, &size);
    const int64_t width = 1 + first % 4;
    const bool may_spill = first & 0x80; /* a scratch file may hold kept tensors */
    const int n_blocks = next_byte(&data, &size) % 13;
    const int scale = next_byte(&data, &size) & 1 ? 4 : 2;
    /* Tall images have bands clear of both edges, which exact sizing
     * counts by the period instead of simulating. */
    const int64_t w = 1 + next_byte(&data, &size) % 16, h = 1 + next_byte(&data, &size) % 64;
    const uint8_t budget_sixteenths = next_byte(&data, &size) % 17; /* 0: no budget */
    const uint8_t tile = next_byte(&data, &size);
    const int64_t tile_rows = tile < 192 ? 0 : 1 + tile % 8;
    uint64_t seed = 1;
    while (size)
        seed = seed * 131 + next_byte(&data, &size);

    sr_error err = {{0}};
    sr_model *model = test_srpgan_model(width, n_blocks, scale, seed, &err);
    if (!model)
        __builtin_trap();
    const sr_graph *g = &model->graph;
    int64_t *rows_run = calloc((size_t)g->n_nodes, sizeof *rows_run);
    int64_t *flops = calloc((size_t)g->n_nodes, sizeof *flops);
    counted device = {.nodes = g->nodes, .rows_run = rows_run};
    if (!rows_run || !flops)
        __builtin_trap();
    if (sr_cpu_backend_new(1, &device.cpu, &err) != SR_OK)
        __builtin_trap();
    const sr_backend_handle backend = {&counted_iface, &device};

    const sr_shape in_shape = {3, h, w};
    sr_tensor input = sr_tensor_whole(in_shape, malloc((size_t)sr_shape_numel(in_shape) * 4));
    const sr_shape out_shape = {3, h * scale, w * scale};
    const size_t out_bytes = (size_t)sr_shape_numel(out_shape) * sizeof(float);
    sr_tensor whole = sr_tensor_whole(out_shape, malloc(out_bytes));
    sr_tensor banded = sr_tensor_whole(out_shape, malloc(out_bytes));
    if (!input.data || !whole.data || !banded.data)
        __builtin_trap();
    for (int64_t i = 0; i < sr_shape_numel(in_shape); i++) {
        seed = seed * UINT64_C(6364136223846793005) + 1;
        input.data[i] = (float)(seed >> 40) / (float)(1 << 24);
    }

    /* The reference: whole tensors (bands as high as the output, so no
     * search), on the host. */
    sr_plan plan;
    int64_t least = 0;
    sr_plan_request req = {in_shape, 0, out_shape.h, &device.cpu, false};
    if (sr_plan_make(g, &req, &plan, &least, &err) != SR_OK)
        __builtin_trap();
    const int64_t full = plan.peak_bytes; /* at least what any plan needs */
    execute(g, &plan, &device.cpu, &input, &whole);
    sr_plan_free(&plan);

    req = (sr_plan_request){in_shape, full * budget_sixteenths / 16, tile_rows, &backend,
                            may_spill};
    sr_status st = sr_plan_make(g, &req, &plan, &least, &err);
    if (st == SR_ERR_LIMIT && !tile_rows) {
        if (least <= req.budget)
            __builtin_trap(); /* the least that works must be more than what failed */
        req.budget = least;
        st = sr_plan_make(g, &req, &plan, &least, &err);
    }
    if (st == SR_OK) {
        if (req.budget && plan.peak_bytes > req.budget)
            __builtin_trap();
        execute(g, &plan, &backend, &input, &banded);
        /* What the executor held: kept tensors (the input among them) and
         * band arenas; the backend's workspace and the statistics are the
         * rest of the prediction. */
        if (device.peak_bytes > plan.peak_bytes - plan.workspace_bytes - plan.stats_bytes ||
            device.live_bytes != 0)
            __builtin_trap();
        if (memcmp(whole.data, banded.data, out_bytes) != 0)
            __builtin_trap();
        /* The FLOPs the plan reports per node are those of the rows run. */
        sr_graph_flops(g, plan.shapes, flops);
        for (int n = 1; n < g->n_nodes; n++)
            if (plan.node_flops[n] != flops[n] / plan.shapes[n].h * rows_run[n])
                __builtin_trap();
        sr_plan_free(&plan);
    } else if (st != SR_ERR_LIMIT || !tile_rows) {
        __builtin_trap(); /* only forced band heights may leave no plan */
    }
    free(input.data);
    free(whole.data);
    free(banded.data);
    free(rows_run);
    free(flops);
    sr_backend_free(&device.cpu);
    sr_model_free(model);
    return 0;
}
