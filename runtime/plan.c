/* The planner (see plan.h): stages from the graph's global ops, the rows
 * every band needs, band buffers packed in one arena by liveness, and the
 * search for the cheapest plan within the budget. It runs nothing; the
 * executor (exec.c) follows the plan it makes.
 *
 * Here: setting up (the stages, each node's FLOPs and consumers), and
 * sr_plan_make, which sizes the plan the search chose exactly and places
 * its spilled tensors in the scratch file. One stage is planned in
 * plan_stage.c, the kept tensors chosen in plan_search.c; plan_internal.h
 * is what the planner's files share. */
#include "runtime/plan_internal.h"

#include <stdlib.h>
#include <string.h>

/* What each band costs a node beyond its rows, in FLOPs: the backend's
 * call (an OpenMP parallel region, a kernel launch), and for a
 * convolution, work on its weights redone every band (the CPU's Winograd
 * transform, c_out x c_in x 36 floats, and the GEMM's packing of them) and
 * GEMM pieces that get shorter. Fitted on the 2-core test machine:
 * realesr-animevideov3 256x256 forced to 1, 4, 8, 16 and 32 bands, time
 * per layer against FLOPs and bands: each 64x64 3x3 convolution took
 * 0.56 ms a band beyond its FLOPs at 288 GFLOP/s, 1.6e8 FLOPs, some 4000
 * per weight; other nodes showed nothing above the noise (an OpenMP
 * region is some 10 us: 3e6 FLOPs). RealESRGAN_x4plus 96x60 in 3 bands
 * against 1 took some 0.4 s a band more, as its 16.7M weights predict
 * (6.7e10 FLOPs, a third of the network's). A loaded machine pays more
 * per band (a parallel region waits for a descheduled thread). */
#define FLOPS_PER_NODE_BAND INT64_C(3000000)
#define FLOPS_PER_WEIGHT_BAND 4000

/* Where each spilled tensor lies in the scratch file: first fit among
 * those alive in any of the same stages (from the first that computes it
 * to the last that reads it), so that the file is as large as the most
 * spilled bytes alive at once, not their sum. */
static void place_spilled(planner *p, sr_plan *plan)
{
    plan->scratch_bytes = 0;
    for (int n = 1; n < p->n; n++) {
        if (sr_plan_rows_home(plan, n) != SR_ROWS_SPILLED)
            continue;
        const int64_t size = sr_plan_tensor_bytes(p->shapes[n]);
        int64_t at = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int m = 1; m < n; m++) {
                const int64_t end = plan->scratch_offset[m] + sr_plan_tensor_bytes(p->shapes[m]);
                if (sr_plan_rows_home(plan, m) == SR_ROWS_SPILLED &&
                    plan->first_stage[m] <= plan->last_stage[n] &&
                    plan->first_stage[n] <= plan->last_stage[m] && at < end &&
                    plan->scratch_offset[m] < at + size) {
                    at = end;
                    moved = true;
                }
            }
        }
        plan->scratch_offset[n] = at;
        if (at + size > plan->scratch_bytes)
            plan->scratch_bytes = at + size;
    }
}

/* ---- setting up ---- */

static bool alloc_plan(planner *p, sr_plan *plan)
{
    const int n = p->n;
    plan->n_nodes = n;
    plan->shapes = calloc((size_t)n, sizeof *plan->shapes);
    plan->keep = calloc((size_t)n, sizeof *plan->keep);
    plan->spill = calloc((size_t)n, sizeof *plan->spill);
    plan->scratch_offset = calloc((size_t)n, sizeof *plan->scratch_offset);
    plan->window_rows = calloc((size_t)n, sizeof *plan->window_rows);
    plan->row_tiling = calloc((size_t)n, sizeof *plan->row_tiling);
    plan->scale = calloc((size_t)n, sizeof *plan->scale);
    plan->first_stage = calloc((size_t)n, sizeof(int));
    plan->last_stage = calloc((size_t)n, sizeof(int));
    plan->stages = calloc((size_t)p->n_stages, sizeof *plan->stages);
    plan->node_flops = calloc((size_t)n, sizeof *plan->node_flops);
    if (!plan->shapes || !plan->keep || !plan->spill || !plan->scratch_offset ||
        !plan->window_rows || !plan->row_tiling || !plan->scale || !plan->first_stage || !plan->last_stage || !plan->stages ||
        !plan->node_flops)
        return false;
    plan->n_stages = p->n_stages;
    memcpy(plan->shapes, p->shapes, (size_t)n * sizeof *plan->shapes);
    memcpy(plan->first_stage, p->home, (size_t)n * sizeof *plan->first_stage);
    const sr_backend_handle *b = p->req->backend;
    for (int k = 0; k < n; k++) {
        plan->row_tiling[k] = sr_backend_row_tiling(b, &p->g->nodes[k], p->shapes[k]);
        plan->scale[k] = sr_op_get(p->g->nodes[k].op)->scale(&p->g->nodes[k]);
    }
    return true;
}

void sr_plan_free(sr_plan *plan)
{
    for (int s = 0; plan->stages && s < plan->n_stages; s++) {
        free(plan->stages[s].order);
        free(plan->stages[s].offset);
        free(plan->stages[s].max_rows);
        free(plan->stages[s].inputs);
    }
    free(plan->stages);
    free(plan->node_flops);
    free(plan->last_stage);
    free(plan->first_stage);
    free(plan->keep);
    free(plan->spill);
    free(plan->scratch_offset);
    free(plan->window_rows);
    free(plan->row_tiling);
    free(plan->scale);
    free(plan->shapes);
    memset(plan, 0, sizeof *plan);
}

static void planner_free(planner *p)
{
    for (int n = 0; p->consumers && n < p->n; n++)
        free(p->consumers[n]);
    for (int s = 0; s < p->n_trial_stages; s++) {
        free(p->trial_stages[s].order);
        free(p->trial_stages[s].offset);
        free(p->trial_stages[s].max_rows);
        free(p->trial_stages[s].inputs);
    }
    free(p->trial_stages);
    free(p->consumers);
    free(p->n_consumers);
    free(p->shapes);
    free(p->flops);
    free(p->row_flops);
    free(p->band_flops);
    free(p->stage_target);
    free(p->stage_global);
    free(p->stage_role);
    free(p->home);
    free(p->last);
    free(p->last_comp);
    free(p->mark);
    free(p->every);
    free(p->seen);
    free(p->pos);
    free(p->list);
    free(p->reads);
    free(p->new_last);
    free(p->delta);
    free(p->taken);
    free(p->trials);
    free(p->blocks);
    free(p->owner);
    free(p->active);
    free(p->done);
    free(p->need);
    free(p->comp);
    free(p->node_flops);
    free(p->shift);
    free(p->flags);
    free(p->row_bytes);
    free(p->end);
    free(p->reuse_in);
    for (int i = 0; i < FIRST_SPANS_SLOTS; i++) {
        free(p->first[i].order);
        free(p->first[i].in_file);
        free(p->first[i].need);
        free(p->first[i].comp);
    }
    for (int i = 0; i < MEMO_SLOTS; i++) {
        free(p->memo[i].order);
        free(p->memo[i].flags);
        free(p->memo[i].max_rows);
        free(p->memo[i].offset);
        free(p->memo[i].window);
    }
    free(p->snap_done);
    free(p->snap_flops);
    free(p->window);
    free(p->in_file);
}

/* Stages (one per global op, then the output's) and the first stage that
 * needs each node: its own as a target, else its consumers' earliest. */
static void find_stages(planner *p)
{
    const sr_graph *g = p->g;
    int si = 0;
    for (int n = 0; n < p->n; n++) {
        const bool global = sr_op_get(g->nodes[n].op)->is_global;
        if (!global && n != p->n - 1)
            continue;
        p->stage_target[si] = global ? g->nodes[n].inputs[0] : n;
        p->stage_role[si] = global ? SR_STAGE_STATISTICS : SR_STAGE_OUTPUT;
        p->stage_global[si++] = global ? n : 0;
    }
    for (int n = 0; n < p->n; n++)
        p->home[n] = p->n_stages; /* needed by no stage */
    for (int s = p->n_stages - 1; s >= 0; s--)
        p->home[p->stage_target[s]] = s;
    for (int n = p->n - 1; n >= 0; n--)
        for (int c = 0; c < p->n_consumers[n]; c++)
            if (p->home[p->consumers[n][c]] < p->home[n])
                p->home[n] = p->home[p->consumers[n][c]];
}

static sr_status planner_init(planner *p, const sr_graph *g, const sr_plan_request *req,
                              sr_error *err)
{
    const int n = g->n_nodes;
    const size_t sn = (size_t)n;
    *p = (planner){.g = g, .req = req, .n = n, .budget = req->budget, .n_stages = 1};
    for (int i = 0; i < n; i++)
        p->n_stages += sr_op_get(g->nodes[i].op)->is_global;
    const size_t ns = (size_t)p->n_stages;
    p->may_window = !req->backend || req->backend->iface->memory->is_host;
    p->stage_bound = INT64_MAX;
    p->shapes = calloc(sn, sizeof *p->shapes);
    p->flops = calloc(sn, sizeof *p->flops);
    p->row_flops = calloc(sn, sizeof *p->row_flops);
    p->band_flops = calloc(sn, sizeof *p->band_flops);
    p->n_consumers = calloc(sn, sizeof *p->n_consumers);
    p->consumers = calloc(sn, sizeof *p->consumers);
    p->stage_target = calloc(ns, sizeof *p->stage_target);
    p->stage_global = calloc(ns, sizeof *p->stage_global);
    p->stage_role = calloc(ns, sizeof *p->stage_role);
    p->home = calloc(sn, sizeof *p->home);
    p->last = calloc(sn, sizeof *p->last);
    p->last_comp = calloc(sn, sizeof *p->last_comp);
    p->mark = calloc(sn, sizeof *p->mark);
    p->every = calloc(sn, sizeof *p->every);
    p->seen = calloc(sn, sizeof *p->seen);
    p->pos = calloc(sn, sizeof *p->pos);
    p->list = calloc(2 * sn, sizeof *p->list);
    p->reads = calloc(sn * SR_NODE_MAX_INPUTS + 1, sizeof *p->reads);
    p->new_last = calloc(sn, sizeof *p->new_last);
    p->delta = calloc(ns + 1, sizeof *p->delta);
    p->taken = calloc(ns, sizeof *p->taken);
    p->trials = calloc(2 * sn, sizeof *p->trials);
    p->blocks = calloc(sn + 1, sizeof *p->blocks);
    p->owner = calloc(sn, sizeof *p->owner);
    p->active = calloc(sn + 1, sizeof *p->active);
    p->done = calloc(sn, sizeof *p->done);
    p->need = calloc(sn, sizeof *p->need);
    p->comp = calloc(sn, sizeof *p->comp);
    p->node_flops = calloc(sn, sizeof *p->node_flops);
    p->shift = calloc(sn, sizeof *p->shift);
    p->flags = calloc(sn, sizeof *p->flags);
    p->row_bytes = calloc(sn, sizeof *p->row_bytes);
    p->end = calloc(sn, sizeof *p->end);
    p->reuse_in = calloc(sn * SR_STAGE_INPUTS, sizeof *p->reuse_in);
    p->snap_done = calloc(sn, sizeof *p->snap_done);
    p->snap_flops = calloc(sn, sizeof *p->snap_flops);
    p->window = calloc(sn, sizeof *p->window);
    p->in_file = calloc(sn, sizeof *p->in_file);
    if (!p->shapes || !p->flops || !p->row_flops || !p->band_flops || !p->n_consumers || !p->consumers || !p->stage_target ||
        !p->stage_global || !p->stage_role || !p->home || !p->last || !p->last_comp || !p->mark || !p->every || !p->seen ||
        !p->pos || !p->list || !p->reads || !p->new_last || !p->delta || !p->taken ||
        !p->trials || !p->blocks || !p->owner || !p->active || !p->done || !p->need || !p->comp ||
        !p->node_flops || !p->shift || !p->flags || !p->row_bytes || !p->end || !p->reuse_in ||
        !p->snap_done || !p->snap_flops || !p->window || !p->in_file)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    sr_status st = sr_graph_shapes(g, req->input, p->shapes, err);
    if (st != SR_OK)
        return st;
    sr_graph_flops(g, p->shapes, p->flops);
    for (int k = 0; k < n; k++) {
        const sr_node *node = &g->nodes[k];
        p->row_flops[k] = p->flops[k] / p->shapes[k].h;
        p->band_flops[k] = FLOPS_PER_NODE_BAND;
        if (node->op == SR_OP_CONV2D)
            p->band_flops[k] += FLOPS_PER_WEIGHT_BAND * node->p.conv2d.c_out *
                                node->p.conv2d.c_in * node->p.conv2d.k * node->p.conv2d.k;
        p->least_overhead += k > 0 ? p->band_flops[k] : 0;
    }
    /* A backend keeps its scratch memory between nodes: count its largest
     * in every stage (asked for whole tensors, the most a band can be). */
    for (int k = 1; req->backend && k < n; k++) {
        const int64_t ws = req->backend->iface->workspace_bytes(req->backend->ctx, &g->nodes[k],
                                                                p->shapes[k]);
        if (ws > p->workspace)
            p->workspace = ws;
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].n_inputs; j++)
            p->n_consumers[g->nodes[k].inputs[j]]++;
    for (int k = 0; k < n; k++) {
        p->consumers[k] = calloc((size_t)p->n_consumers[k] + 1, sizeof(int));
        if (!p->consumers[k])
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        p->n_consumers[k] = 0;
    }
    for (int k = 0; k < n; k++)
        for (int j = 0; j < g->nodes[k].n_inputs; j++) {
            const int i = g->nodes[k].inputs[j];
            p->consumers[i][p->n_consumers[i]++] = k;
        }
    find_stages(p);
    return SR_OK;
}

sr_status sr_plan_make(const sr_graph *g, const sr_plan_request *req, sr_plan *plan,
                       int64_t *least, sr_error *err)
{
    memset(plan, 0, sizeof *plan);
    planner p;
    sr_status st = planner_init(&p, g, req, err);
    if (st == SR_OK && !alloc_plan(&p, plan))
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (st != SR_OK) {
        planner_free(&p);
        sr_plan_free(plan);
        return st;
    }
    for (int n = 0; n < p.n; n++) {
        const sr_op_desc *d = sr_op_get(g->nodes[n].op);
        if (d->is_global)
            plan->stats_bytes += d->n_stats(&g->nodes[n], p.shapes[g->nodes[n].inputs[0]]) *
                                 (int64_t)(sizeof(float) + sizeof(double));
        plan->whole_flops += p.flops[n];
    }
    sr_plan_initial_keep_set(&p, plan);
    bool fits = req->tile_rows ? sr_plan_evaluate(&p, plan, 0, false) : sr_plan_search(&p, plan);
    if (!fits && req->tile_rows && req->may_spill && !p.out_of_memory) {
        /* Forced bands that do not fit: every kept tensor in the file. */
        memcpy(plan->spill, plan->keep, (size_t)p.n * sizeof *plan->spill);
        plan->spill[0] = false;
        fits = sr_plan_evaluate(&p, plan, 0, false);
    }
    if (fits) {
        /* Size the chosen plan exactly; trim bands if that runs over. */
        fits = sr_plan_evaluate(&p, plan, 0, true);
        for (int si = 0; !fits && !p.out_of_memory && si < plan->n_stages; si++) {
            sr_stage *s = &plan->stages[si];
            sr_plan_prepare_stage(&p, plan, s);
            while (p.budget && sr_plan_stage_peak(plan, s) > p.budget && s->band_rows > 1 &&
                   !req->tile_rows)
                sr_plan_size_stage(&p, plan, s, s->band_rows * 3 / 4, true);
        }
        plan->peak_bytes = plan->flops = plan->arena_bytes = plan->workspace_bytes = 0;
        fits = !p.out_of_memory;
        for (int si = 0; fits && si < plan->n_stages; si++) {
            const sr_stage *s = &plan->stages[si];
            if (sr_plan_stage_peak(plan, s) > plan->peak_bytes)
                plan->peak_bytes = sr_plan_stage_peak(plan, s);
            if (s->arena_bytes > plan->arena_bytes)
                plan->arena_bytes = s->arena_bytes;
            if (s->workspace_bytes > plan->workspace_bytes)
                plan->workspace_bytes = s->workspace_bytes;
            plan->flops += s->flops;
            /* The ladder's step (p.budget) is a leaner target; the plan
             * fits when it is within the caller's budget. */
            fits = !req->budget || sr_plan_stage_peak(plan, s) <= req->budget;
        }
    }
    if (fits) {
        for (int n = 0; n < p.n; n++) {
            plan->last_stage[n] = plan->keep[n] ? p.last[n] : -1;
            /* At least a row: a window that carries none is still no file. */
            plan->window_rows[n] =
                sr_plan_windowed(&p, plan, n) ? (p.window[n] > 1 ? p.window[n] : 1) : 0;
        }
        place_spilled(&p, plan);
        sr_plan_count_node_flops(&p, plan);
    } else if (!p.out_of_memory) {
        /* The least this image can need: the thinnest bands, nothing kept
         * (or, in a deep graph, where that would take quadratic time and no
         * walk starts, all the zero-recompute plan keeps). */
        if (!req->tile_rows && sr_plan_add_kept_affordable(&p))
            for (int n = 1; n < p.n; n++)
                plan->keep[n] = plan->spill[n] = p.in_file[n] = false;
        else if (!req->tile_rows)
            sr_plan_initial_keep_set(&p, plan);
        sr_plan_evaluate(&p, plan, req->tile_rows ? 0 : 1, true);
        *least = plan->peak_bytes;
        if (!req->tile_rows) {
            sr_plan_window_keep_set(&p, plan, req->may_spill);
            sr_plan_evaluate(&p, plan, 1, true);
            *least = plan->peak_bytes < *least ? plan->peak_bytes : *least;
        }
    }
    if (p.out_of_memory)
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    else if (!fits)
        st = sr_fail(err, SR_ERR_LIMIT, "no plan fits");
    if (st != SR_OK)
        sr_plan_free(plan);
    plan->work = p.work;
    planner_free(&p);
    return st;
}
