/* The executor: follows a plan exactly (which nodes, which rows, which
 * buffers); the planner made every decision. It owns the run's memory:
 * the arena, the kept tensors and the global ops' statistics. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/pages.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct run_state {
    float *arena;
    int64_t arena_bytes;
    sr_tensor *kept;   /* whole tensors of kept nodes */
    sr_tensor *band;   /* this band's buffer of each node */
    float **stats;     /* per global node */
    double *acc;
    int64_t *done;
    sr_span *need, *comp;
} run_state;

static void run_state_free(run_state *r, const sr_plan *plan)
{
    for (int n = 1; r->kept && n < plan->n_nodes; n++)
        if (r->kept[n].data)
            sr_pages_free(r->kept[n].data, sr_shape_numel(plan->shapes[n]) * (int64_t)sizeof(float));
    for (int n = 0; r->stats && n < plan->n_nodes; n++)
        free(r->stats[n]);
    sr_pages_free(r->arena, r->arena_bytes);
    free(r->kept);
    free(r->band);
    free(r->stats);
    free(r->acc);
    free(r->done);
    free(r->need);
    free(r->comp);
}

static sr_status run_state_init(run_state *r, const sr_graph *g, const sr_plan *plan,
                                sr_error *err)
{
    const size_t n = (size_t)plan->n_nodes;
    memset(r, 0, sizeof *r);
    r->kept = calloc(n, sizeof *r->kept);
    r->band = calloc(n, sizeof *r->band);
    r->stats = calloc(n, sizeof *r->stats);
    r->done = calloc(n, sizeof *r->done);
    r->need = calloc(n, sizeof *r->need);
    r->comp = calloc(n, sizeof *r->comp);
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
    if (!r->kept || !r->band || !r->stats || !r->done || !r->need || !r->comp || !r->acc)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    return SR_OK;
}

/* Each stage gets an arena of its own size, freed at its end: one arena
 * of the largest size would keep every page some stage touched resident,
 * beyond the plan's per-stage peak. */
static sr_status allocate_arena(run_state *r, const sr_stage *s, sr_error *err)
{
    if (s->arena_bytes == 0)
        return SR_OK;
    r->arena = sr_pages_alloc(s->arena_bytes);
    r->arena_bytes = s->arena_bytes;
    if (!r->arena)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for %lld bytes of band buffers",
                       (long long)s->arena_bytes);
    return SR_OK;
}

/* Kept tensors that stage si computes. */
static sr_status allocate_kept(run_state *r, const sr_plan *plan, int si, sr_error *err)
{
    for (int n = 1; n < plan->n_nodes; n++) {
        if (!plan->keep[n] || plan->first_stage[n] != si)
            continue;
        const sr_shape s = plan->shapes[n];
        float *data = sr_pages_alloc(sr_shape_numel(s) * (int64_t)sizeof(float));
        if (!data)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a %lldx%lldx%lld tensor",
                           (long long)s.c, (long long)s.h, (long long)s.w);
        r->kept[n] = sr_tensor_whole(s, data);
        r->done[n] = 0;
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
        r->band[n] = (sr_tensor){{sh.c, rows, sh.w},
                                 (float *)((char *)r->arena + s->offset[n]),
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
            in[j] = s->offset[i] == -2 || plan->keep[i] ? r->kept[i] : r->band[i];
        }
        sr_tensor out = sr_tensor_rows(plan->keep[n] ? &r->kept[n] : &r->band[n], c.lo, c.hi);
        const double start = node_seconds ? now() : 0.0;
        sr_status st = be->iface->run(be->ctx, node, in, &out, r->stats[n], err);
        if (st != SR_OK)
            return st;
        if (node_seconds)
            node_seconds[n] += now() - start;
        if (plan->keep[n])
            r->done[n] = c.hi;
    }
    return SR_OK;
}

sr_status sr_plan_execute(const sr_graph *g, const sr_plan *plan,
                          const sr_backend_handle *be, const sr_tensor *input,
                          sr_exec_sink sink, void *sink_user, sr_exec_progress progress,
                          sr_exec_timing timing, sr_error *err)
{
    run_state r;
    sr_status st = run_state_init(&r, g, plan, err);
    if (st == SR_OK)
        r.kept[0] = *input;
    int64_t flops_done = 0;
    for (int si = 0; st == SR_OK && si < plan->n_stages; si++) {
        const sr_stage *s = &plan->stages[si];
        const double stage_start = now();
        st = allocate_kept(&r, plan, si, err);
        if (st == SR_OK)
            st = allocate_arena(&r, s, err);
        const sr_node *global = s->global >= 0 ? &g->nodes[s->global] : NULL;
        const int64_t H = plan->shapes[s->target].h;
        if (global)
            memset(r.acc, 0, (size_t)sr_op_get(global->op)->n_stats(global, plan->shapes[s->target]) *
                                 sizeof *r.acc);
        for (int b = 0; st == SR_OK && b < s->n_bands; b++) {
            const int64_t t0 = b * s->band_rows;
            const int64_t t1 = t0 + s->band_rows < H ? t0 + s->band_rows : H;
            st = run_band(&r, g, plan, s, be, t0, t1, timing.node_seconds, err);
            if (st != SR_OK)
                break;
            const bool whole = s->offset[s->target] == -2 || plan->keep[s->target];
            const sr_tensor rows = sr_tensor_rows(whole ? &r.kept[s->target] : &r.band[s->target], t0, t1);
            if (global)
                sr_op_get(global->op)->accumulate(global, &rows, t0, t1, r.acc);
            else
                st = sink(sink_user, &rows, err);
            const double fraction =
                plan->flops ? (double)(flops_done + s->flops * (b + 1) / s->n_bands) / (double)plan->flops : 1.0;
            if (st == SR_OK && progress.fn && progress.fn(progress.user, fraction > 1.0 ? 1.0 : fraction))
                st = sr_fail(err, SR_ERR_CANCELLED, "cancelled");
        }
        if (st == SR_OK && global)
            sr_op_get(global->op)->finalize(global, plan->shapes[s->target], r.acc, r.stats[s->global]);
        flops_done += s->flops;
        if (timing.stage_seconds)
            timing.stage_seconds[si] = now() - stage_start;
        sr_pages_free(r.arena, r.arena_bytes);
        r.arena = NULL;
        for (int n = 1; n < plan->n_nodes; n++)
            if (plan->keep[n] && plan->last_stage[n] == si) {
                sr_pages_free(r.kept[n].data, sr_shape_numel(plan->shapes[n]) * (int64_t)sizeof(float));
                r.kept[n].data = NULL;
            }
    }
    run_state_free(&r, plan);
    return st;
}
