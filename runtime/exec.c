/* The executor: follows a plan exactly (which nodes, which rows, which
 * buffers); the planner made every decision. It owns the run's memory:
 * the arena, the kept tensors and the global ops' statistics. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/pages.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct run_state {
    const sr_backend_memory *device; /* the backend's memory, or NULL: host pages */
    void *device_ctx;
    float *arena;
    int64_t arena_bytes;
    sr_page_pool pool; /* the buffers the last stage gave back */
    sr_tensor *kept;   /* whole tensors of kept nodes */
    sr_tensor *band;   /* this band's buffer of each node */
    float **stats;     /* per global node */
    double *acc;
    int64_t *done;
    sr_span *need, *comp;
    int *order;        /* allocate_stage's list of buffers */
    float *staging;    /* a device backend's output rows, on the host */
    int64_t staging_floats;
} run_state;

static void *map_buffer(run_state *r, int64_t bytes)
{
    return r->device ? r->device->alloc(r->device_ctx, bytes) : sr_pages_alloc(bytes);
}

/* Why a device allocation failed when the device itself has failed: a
 * kernel's fault shows at the next call, which may be the allocation; the
 * device's status then, not a lack of memory. SR_OK for a plain lack. */
static sr_status device_fault(run_state *r, sr_error *err)
{
    return r->device->synchronize(r->device_ctx, err);
}

/* A buffer that the run is done with: host pages go to the pool for the
 * next stage, device memory back to the backend. */
static void give_back(run_state *r, void *p, int64_t bytes)
{
    if (p && r->device)
        r->device->release(r->device_ctx, p, bytes);
    else
        sr_page_pool_put(&r->pool, p, bytes);
}

static int64_t tensor_bytes(sr_shape s) { return sr_shape_numel(s) * (int64_t)sizeof(float); }

static void run_state_free(run_state *r, const sr_plan *plan)
{
    for (int n = 1; r->kept && n < plan->n_nodes; n++)
        give_back(r, r->kept[n].data, tensor_bytes(plan->shapes[n]));
    if (r->device && r->kept)
        give_back(r, r->kept[0].data, tensor_bytes(plan->shapes[0]));
    for (int n = 0; r->stats && n < plan->n_nodes; n++)
        free(r->stats[n]);
    give_back(r, r->arena, r->arena_bytes);
    sr_page_pool_drain(&r->pool);
    free(r->staging);
    free(r->kept);
    free(r->band);
    free(r->stats);
    free(r->acc);
    free(r->done);
    free(r->need);
    free(r->comp);
    free(r->order);
}

static sr_status run_state_init(run_state *r, const sr_graph *g, const sr_plan *plan,
                                const sr_backend_handle *be, sr_error *err)
{
    const size_t n = (size_t)plan->n_nodes;
    memset(r, 0, sizeof *r);
    r->device = be->iface->memory;
    r->device_ctx = be->ctx;
    r->kept = calloc(n, sizeof *r->kept);
    r->band = calloc(n, sizeof *r->band);
    r->stats = calloc(n, sizeof *r->stats);
    r->done = calloc(n, sizeof *r->done);
    r->need = calloc(n, sizeof *r->need);
    r->comp = calloc(n, sizeof *r->comp);
    r->order = calloc(n + 1, sizeof *r->order);
    if (!r->kept || !r->band || !r->stats || !r->done || !r->need || !r->comp || !r->order)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    int64_t max_stats = 0;
    for (int k = 0; k < plan->n_nodes; k++) {
        const sr_op_desc *d = sr_op_get(g->nodes[k].op);
        if (!d->is_global)
            continue;
        const int64_t count = d->n_stats(&g->nodes[k], plan->shapes[g->nodes[k].inputs[0]]);
        r->stats[k] = malloc((size_t)count * sizeof(float));
        if (!r->stats[k])
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        if (count > max_stats)
            max_stats = count;
    }
    r->acc = calloc((size_t)max_stats + 1, sizeof *r->acc);
    if (!r->acc)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    return SR_OK;
}

/* Buffer n of stage s: its arena (n = -1) or kept tensor n. */
static int64_t buffer_bytes(const sr_plan *plan, const sr_stage *s, int n)
{
    return n < 0 ? s->arena_bytes : tensor_bytes(plan->shapes[n]);
}

static void set_buffer(run_state *r, const sr_plan *plan, int n, void *p)
{
    if (n < 0)
        r->arena = p;
    else
        r->kept[n] = sr_tensor_whole(plan->shapes[n], p);
}

/* Each stage gets an arena of its own size, given back at its end: one
 * arena of the largest size would keep every page some stage touched
 * resident, beyond the plan's per-stage peak. Stage si's buffers (its
 * arena and the kept tensors it computes) reuse, largest first, what the
 * last stage gave back; the rest of that goes back to the kernel before
 * anything new is mapped, so the resident memory stays within the plan's. */
static sr_status allocate_stage(run_state *r, const sr_plan *plan, int si, sr_error *err)
{
    const sr_stage *s = &plan->stages[si];
    int n_buffers = 0, *order = r->order;
    r->arena_bytes = s->arena_bytes;
    for (int n = -1; n < plan->n_nodes; n++) {
        if (n < 0 ? s->arena_bytes == 0 : n == 0 || !plan->keep[n] || plan->first_stage[n] != si)
            continue;
        int k = n_buffers++;
        for (; k > 0 && buffer_bytes(plan, s, order[k - 1]) < buffer_bytes(plan, s, n); k--)
            order[k] = order[k - 1];
        order[k] = n;
        if (n > 0)
            r->done[n] = 0;
    }
    int n_new = 0;
    for (int k = 0; k < n_buffers; k++) {
        void *p = sr_page_pool_take(&r->pool, buffer_bytes(plan, s, order[k]));
        if (p)
            set_buffer(r, plan, order[k], p);
        else
            order[n_new++] = order[k];
    }
    sr_page_pool_drain(&r->pool);
    for (int k = 0; k < n_new; k++) {
        const int n = order[k];
        void *p = map_buffer(r, buffer_bytes(plan, s, n));
        sr_status st;
        if (!p && r->device && (st = device_fault(r, err)) != SR_OK)
            return st;
        if (!p && n < 0)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for %lld bytes of band buffers",
                           (long long)s->arena_bytes);
        if (!p)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a %lldx%lldx%lld tensor",
                           (long long)plan->shapes[n].c, (long long)plan->shapes[n].h,
                           (long long)plan->shapes[n].w);
        set_buffer(r, plan, n, p);
    }
    return SR_OK;
}

static sr_status run_band(run_state *r, const sr_graph *g, const sr_plan *plan,
                          const sr_stage *s, const sr_backend_handle *be, int64_t t0,
                          int64_t t1, double *node_seconds, sr_error *err)
{
    sr_plan_band_spans(g, plan, s, t0, t1, r->done, r->need, r->comp);
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        if (plan->keep[n] || r->need[n].lo >= r->need[n].hi)
            continue;
        const sr_shape sh = plan->shapes[n];
        const int64_t rows = r->need[n].hi - r->need[n].lo;
        if (rows > s->max_rows[k]) /* the buffer would overrun its neighbours */
            return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                           "plan: node %d needs %lld rows, planned for %lld", n, (long long)rows,
                           (long long)s->max_rows[k]);
        r->band[n] = (sr_tensor){{sh.c, rows, sh.w},
                                 (float *)((char *)r->arena + s->offset[k]),
                                 rows * sh.w, r->need[n].lo, sh.h};
    }
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_span c = r->comp[n];
        if (c.lo >= c.hi)
            continue;
        const sr_node *node = &g->nodes[n];
        sr_tensor in[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < node->n_inputs; j++) {
            const int i = node->inputs[j];
            in[j] = plan->keep[i] ? r->kept[i] : r->band[i];
        }
        sr_tensor out = sr_tensor_rows(plan->keep[n] ? &r->kept[n] : &r->band[n], c.lo, c.hi);
        const double start = node_seconds ? now() : 0.0;
        sr_status st = be->iface->run(be->ctx, node, in, &out, r->stats[n], err);
        if (st == SR_OK && node_seconds && r->device) /* a device returns before it is done */
            st = r->device->synchronize(r->device_ctx, err);
        if (st != SR_OK)
            return st;
        if (node_seconds)
            node_seconds[n] += now() - start;
        if (plan->keep[n])
            r->done[n] = c.hi;
    }
    return SR_OK;
}

/* The input as the backend reads it: the caller's tensor, or a device copy. */
static sr_status place_input(run_state *r, const sr_tensor *input, sr_error *err)
{
    r->kept[0] = *input;
    if (!r->device)
        return SR_OK;
    const int64_t bytes = tensor_bytes(input->shape);
    r->kept[0].data = r->device->alloc(r->device_ctx, bytes);
    sr_status st;
    if (!r->kept[0].data && (st = device_fault(r, err)) != SR_OK)
        return st;
    if (!r->kept[0].data)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of device memory for the %lldx%lld input",
                       (long long)input->shape.w, (long long)input->shape.h);
    return r->device->upload(r->device_ctx, r->kept[0].data, input->data, bytes, err);
}

/* A global op's sums over rows of its input. */
static sr_status accumulate(run_state *r, const sr_node *global, const sr_tensor *rows,
                            int64_t t0, int64_t t1, sr_error *err)
{
    if (r->device)
        return r->device->accumulate(r->device_ctx, global, rows, t0, t1, r->acc, err);
    sr_op_get(global->op)->accumulate(global, rows, t0, t1, r->acc);
    return SR_OK;
}

/* Output rows to the sink, through host memory. */
static sr_status deliver(run_state *r, const sr_stage *s, const sr_tensor *rows,
                         sr_exec_sink sink, void *sink_user, sr_error *err)
{
    if (!r->device)
        return sink(sink_user, rows, err);
    const sr_shape sh = rows->shape;
    if (sh.c * sh.h * sh.w > r->staging_floats) {
        free(r->staging);
        r->staging_floats = sh.c * s->band_rows * sh.w;
        r->staging = malloc((size_t)r->staging_floats * sizeof(float));
        if (!r->staging)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for the output's rows");
    }
    sr_tensor host = {sh, r->staging, sh.h * sh.w, rows->y0, rows->image_h};
    for (int64_t c = 0; c < sh.c; c++) {
        sr_status st = r->device->download(r->device_ctx, host.data + c * host.cstride,
                                           rows->data + c * rows->cstride,
                                           sh.h * sh.w * (int64_t)sizeof(float), err);
        if (st != SR_OK)
            return st;
    }
    return sink(sink_user, &host, err);
}

sr_status sr_plan_execute(const sr_graph *g, const sr_plan *plan,
                          const sr_backend_handle *be, const sr_tensor *input,
                          sr_exec_sink sink, void *sink_user, sr_exec_progress progress,
                          sr_exec_timing timing, sr_error *err)
{
    run_state r;
    sr_status st = run_state_init(&r, g, plan, be, err);
    if (st == SR_OK)
        st = place_input(&r, input, err);
    int64_t flops_done = 0;
    for (int si = 0; st == SR_OK && si < plan->n_stages; si++) {
        const sr_stage *s = &plan->stages[si];
        const double stage_start = now();
        st = allocate_stage(&r, plan, si, err);
        const sr_node *global = s->global >= 0 ? &g->nodes[s->global] : NULL;
        const sr_shape target = plan->shapes[s->target];
        if (global)
            memset(r.acc, 0,
                   (size_t)sr_op_get(global->op)->n_stats(global, target) * sizeof *r.acc);
        for (int b = 0; st == SR_OK && b < s->n_bands; b++) {
            const int64_t t0 = b * s->band_rows;
            const int64_t t1 = t0 + s->band_rows < target.h ? t0 + s->band_rows : target.h;
            st = run_band(&r, g, plan, s, be, t0, t1, timing.node_seconds, err);
            if (st != SR_OK)
                break;
            const bool whole = plan->keep[s->target];
            const sr_tensor *made = whole ? &r.kept[s->target] : &r.band[s->target];
            const sr_tensor rows = sr_tensor_rows(made, t0, t1);
            st = global ? accumulate(&r, global, &rows, t0, t1, err)
                        : deliver(&r, s, &rows, sink, sink_user, err);
            const int64_t done = flops_done + s->flops * (b + 1) / s->n_bands;
            const double fraction = plan->flops ? (double)done / (double)plan->flops : 1.0;
            if (st == SR_OK && progress.fn &&
                progress.fn(progress.user, fraction > 1.0 ? 1.0 : fraction))
                st = sr_fail(err, SR_ERR_CANCELLED, "cancelled");
        }
        if (st == SR_OK && global)
            sr_op_get(global->op)->finalize(global, target, r.acc, r.stats[s->global]);
        flops_done += s->flops;
        if (timing.stage_seconds)
            timing.stage_seconds[si] = now() - stage_start;
        give_back(&r, r.arena, r.arena_bytes);
        r.arena = NULL;
        for (int n = 1; n < plan->n_nodes; n++)
            if (plan->keep[n] && plan->last_stage[n] == si) {
                give_back(&r, r.kept[n].data, buffer_bytes(plan, s, n));
                r.kept[n].data = NULL;
            }
    }
    run_state_free(&r, plan);
    return st;
}
