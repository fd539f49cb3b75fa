/* The planner (see plan.h): stages from the graph's global ops, the rows
 * every band needs, band buffers packed in one arena by liveness, and the
 * search for the cheapest plan within the budget. It runs nothing; the
 * executor (exec.c) follows the plan it makes. */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

/* What one evaluation of a keep set needs, reused across evaluations. */
typedef struct planner {
    const sr_graph *g;
    const sr_plan_request *req;
    int n;
    sr_shape *shapes;
    int *n_consumers;
    int **consumers;
    int64_t *flops; /* whole-image FLOPs of each node */
    int64_t workspace; /* the backend's largest, which it keeps */
    int64_t budget;    /* the one being planned for: req's, or a probe */
    /* scratch, allocated up front so that the search cannot fail */
    bool *available, *in_stage, *dropped;
    int64_t *done;
    sr_span *need, *comp;
    int *owner, *stage_of;
    struct block *blocks;
} planner;

static int64_t tensor_bytes(sr_shape s) { return sr_shape_numel(s) * (int64_t)sizeof(float); }


void sr_plan_band_spans(const sr_graph *g, const sr_plan *plan, const sr_stage *s,
                        int64_t t0, int64_t t1, const int64_t *done, sr_span *need,
                        sr_span *comp)
{
    for (int k = 0; k < s->n_order; k++)
        need[s->order[k]] = (sr_span){INT64_MAX, INT64_MIN};
    if (s->n_order && s->order[s->n_order - 1] == s->target)
        need[s->target] = (sr_span){t0, t1};
    for (int k = s->n_order - 1; k >= 0; k--) {
        const int n = s->order[k];
        const sr_node *node = &g->nodes[n];
        sr_span c = need[n];
        if (plan->keep[n] && done[n] > c.lo)
            c.lo = done[n]; /* kept rows are computed once */
        comp[n] = c;
        if (c.lo >= c.hi)
            continue;
        const sr_op_desc *d = sr_op_get(node->op);
        const int64_t scale = d->scale(node), halo = plan->row_tiling[n].halo,
                      a = plan->row_tiling[n].align;
        const int64_t out_lo = sr_div_floor(c.lo, a) * a, out_hi = sr_div_ceil(c.hi, a) * a;
        for (int j = 0; j < node->n_inputs; j++) {
            const int i = node->inputs[j];
            if (s->offset[i] == -2)
                continue; /* available whole: kept earlier, or the input */
            int64_t lo = sr_div_floor(out_lo, scale) - halo;
            int64_t hi = sr_div_ceil(out_hi, scale) + halo;
            if (lo < 0)
                lo = 0;
            if (hi > plan->shapes[i].h)
                hi = plan->shapes[i].h;
            if (lo < need[i].lo)
                need[i].lo = lo;
            if (hi > need[i].hi)
                need[i].hi = hi;
        }
    }
}

/* ---- stages for a keep set ---- */

static int n_targets(const sr_graph *g)
{
    int n = 1;
    for (int i = 0; i < g->n_nodes; i++)
        n += sr_op_get(g->nodes[i].op)->is_global;
    return n;
}

/* Fills the stages' targets, orders and the kept nodes' lifetimes. In
 * stage->offset, -2 marks a node available whole to the stage (not
 * computed), -1 one the stage computes into a kept tensor, >= 0 (set
 * later) a band buffer; nodes the stage does not touch are -3. */
static void build_stages(planner *p, sr_plan *plan)
{
    const sr_graph *g = p->g;
    memset(p->available, 0, (size_t)p->n * sizeof(bool));
    p->available[0] = true;
    for (int n = 0; n < p->n; n++)
        plan->first_stage[n] = plan->last_stage[n] = -1;
    plan->first_stage[0] = 0;
    int si = 0;
    for (int n = 0; n <= p->n - 1; n++) {
        const bool global = sr_op_get(g->nodes[n].op)->is_global;
        if (!global && n != p->n - 1)
            continue;
        sr_stage *s = &plan->stages[si];
        s->target = global ? g->nodes[n].inputs[0] : n;
        s->global = global ? n : -1;
        /* The cone: everything the target needs that is not available. */
        memset(p->in_stage, 0, (size_t)p->n * sizeof(bool));
        p->in_stage[s->target] = !p->available[s->target];
        for (int k = s->target; k >= 0; k--) {
            if (!p->in_stage[k])
                continue;
            for (int j = 0; j < g->nodes[k].n_inputs; j++) {
                const int i = g->nodes[k].inputs[j];
                if (!p->available[i])
                    p->in_stage[i] = true;
            }
        }
        s->n_order = 0;
        for (int k = 0; k < p->n; k++) {
            s->offset[k] = -3;
            if (p->in_stage[k]) {
                s->order[s->n_order++] = k;
                s->offset[k] = plan->keep[k] ? -1 : 0;
                if (plan->keep[k])
                    plan->first_stage[k] = si;
            }
        }
        /* Kept inputs read by this stage live until its end. */
        for (int k = 0; k < s->n_order; k++) {
            const sr_node *node = &g->nodes[s->order[k]];
            for (int j = 0; j < node->n_inputs; j++) {
                const int i = node->inputs[j];
                if (!p->in_stage[i]) {
                    s->offset[i] = -2;
                    plan->last_stage[i] = si;
                }
            }
        }
        if (!p->in_stage[s->target]) {
            s->offset[s->target] = -2; /* statistics of a kept tensor */
            plan->last_stage[s->target] = si;
        }
        for (int k = 0; k < s->n_order; k++)
            if (plan->keep[s->order[k]]) {
                p->available[s->order[k]] = true;
                if (plan->last_stage[s->order[k]] < si)
                    plan->last_stage[s->order[k]] = si;
            }
        si++;
    }
    plan->n_stages = si;
}

/* ---- one stage at one band height ---- */

typedef struct block {
    int64_t offset, size;
    int end; /* last position in the order that reads it */
} block;

/* Packs the band buffers of stage s (sizes from max_rows) by liveness:
 * first fit, and an elementwise op writes over an input dying with it. */
static int64_t pack_arena(planner *p, const sr_plan *plan, sr_stage *s)
{
    const sr_graph *g = p->g;
    block *blocks = p->blocks;
    int *owner = p->owner; /* node -> block */
    int n_blocks = 0;
    int64_t arena = 0;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        owner[n] = -1;
        if (plan->keep[n] || s->max_rows[n] == 0)
            continue;
        /* Last reader within the stage; the target lives to the band's end. */
        int end = n == s->target ? s->n_order : k;
        for (int c = 0; c < p->n_consumers[n]; c++) {
            const int consumer = p->consumers[n][c];
            for (int q = k + 1; q < s->n_order; q++)
                if (s->order[q] == consumer && q > end)
                    end = q;
        }
        const sr_shape sh = p->shapes[n];
        const int64_t size = s->max_rows[n] * sh.c * sh.w * (int64_t)sizeof(float);
        const sr_node *node = &g->nodes[n];
        const sr_op_desc *d = sr_op_get(node->op);
        int reuse = -1;
        if (d->in_place && d->halo(node) == 0 && d->scale(node) == 1)
            for (int j = 0; j < node->n_inputs && reuse < 0; j++) {
                const int i = node->inputs[j];
                if (s->offset[i] >= 0 && owner[i] >= 0 && blocks[owner[i]].end == k &&
                    p->n_consumers[i] == 1 && s->max_rows[i] == s->max_rows[n])
                    reuse = owner[i];
            }
        if (reuse >= 0) {
            blocks[reuse].end = end;
            owner[n] = reuse;
            s->offset[n] = blocks[reuse].offset;
            continue;
        }
        /* Lowest offset that overlaps no block alive at position k. */
        int64_t at = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int b = 0; b < n_blocks; b++)
                if (blocks[b].end >= k && blocks[b].size > 0 && at < blocks[b].offset + blocks[b].size &&
                    blocks[b].offset < at + size) {
                    at = blocks[b].offset + blocks[b].size;
                    moved = true;
                }
        }
        /* Round up to 64 bytes so every band buffer starts aligned. */
        at = (at + 63) & ~(int64_t)63;
        blocks[n_blocks] = (block){at, size, end};
        owner[n] = n_blocks++;
        s->offset[n] = at;
        if (at + size > arena)
            arena = at + size;
    }
    return arena;
}

/* Band b of stage s: records the rows each band buffer needs, and returns
 * the FLOPs of the nodes that are not kept. */
static int64_t simulate_band(planner *p, const sr_plan *plan, sr_stage *s, int64_t b)
{
    const int64_t H = p->shapes[s->target].h, t0 = b * s->band_rows;
    const int64_t t1 = t0 + s->band_rows < H ? t0 + s->band_rows : H;
    sr_plan_band_spans(p->g, plan, s, t0, t1, p->done, p->need, p->comp);
    int64_t flops = 0;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_span c = p->comp[n];
        if (c.lo >= c.hi)
            continue;
        if (plan->keep[n]) {
            p->done[n] = c.hi;
            continue;
        }
        if (p->need[n].hi - p->need[n].lo > s->max_rows[n])
            s->max_rows[n] = p->need[n].hi - p->need[n].lo;
        flops += p->flops[n] / p->shapes[n].h * (c.hi - c.lo);
    }
    return flops;
}

/* Sizes stage s for bands of h target rows: exact (every band simulated)
 * or, for the search, from the first band (the widest, as kept tensors
 * start there with nothing computed) and a band in the middle. */
static void size_stage(planner *p, const sr_plan *plan, sr_stage *s, int64_t h, bool exact)
{
    const int64_t H = p->shapes[s->target].h;
    s->band_rows = h < H ? h : H;
    s->n_bands = (int)((H + s->band_rows - 1) / s->band_rows);
    for (int k = 0; k < s->n_order; k++)
        s->max_rows[s->order[k]] = 0;
    memset(p->done, 0, (size_t)p->n * sizeof *p->done);
    int64_t flops = 0;
    if (exact || s->n_bands <= 3) {
        for (int64_t b = 0; b < s->n_bands; b++)
            flops += simulate_band(p, plan, s, b);
    } else {
        simulate_band(p, plan, s, 0);
        const int64_t mid = s->n_bands / 2;
        memset(p->done, 0, (size_t)p->n * sizeof *p->done);
        simulate_band(p, plan, s, mid - 1); /* so that mid starts where kept rows end */
        flops = simulate_band(p, plan, s, mid) * s->n_bands;
    }
    /* Kept nodes are computed exactly once. */
    for (int k = 0; k < s->n_order; k++)
        if (plan->keep[s->order[k]])
            flops += p->flops[s->order[k]];
    s->flops = flops;
    s->arena_bytes = pack_arena(p, plan, s);
    s->workspace_bytes = p->workspace;
}

static int64_t stage_peak(const sr_plan *plan, const sr_stage *s)
{
    return s->kept_bytes + s->arena_bytes + s->workspace_bytes + plan->stats_bytes;
}

/* Plans a keep set: per stage the largest band that fits the budget (or
 * `probe` rows when probe > 0). Returns whether every stage fits. */
static bool evaluate(planner *p, sr_plan *plan, int64_t probe, bool exact)
{
    build_stages(p, plan);
    const int64_t budget = p->budget;
    bool fits = true;
    plan->peak_bytes = plan->flops = 0;
    for (int si = 0; si < plan->n_stages; si++) {
        sr_stage *s = &plan->stages[si];
        s->kept_bytes = 0;
        /* The input lives for the whole run; other kept tensors from the
         * stage that computes them to the last that reads them. */
        for (int n = 0; n < p->n; n++)
            if (n == 0 || (plan->keep[n] && plan->first_stage[n] <= si && si <= plan->last_stage[n]))
                s->kept_bytes += tensor_bytes(p->shapes[n]);
        const int64_t H = p->shapes[s->target].h;
        /* Bands in multiples of the target's rows per input row, so that
         * every band meets the low-resolution rows the same way. */
        const int64_t align = H / p->shapes[0].h > 1 ? H / p->shapes[0].h : 1;
        int64_t h = probe ? probe * align : p->req->tile_rows ? p->req->tile_rows : H;
        size_stage(p, plan, s, h, exact);
        if (!probe && !p->req->tile_rows && budget && stage_peak(plan, s) > budget) {
            int64_t lo = 1, hi = H; /* largest fitting h in [lo, hi) */
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                mid = mid >= align ? mid / align * align : mid;
                if (mid <= lo)
                    break;
                size_stage(p, plan, s, mid, false);
                if (stage_peak(plan, s) <= budget)
                    lo = mid;
                else
                    hi = mid;
            }
            size_stage(p, plan, s, lo, exact);
        }
        if (budget && stage_peak(plan, s) > budget)
            fits = false;
        if (stage_peak(plan, s) > plan->peak_bytes)
            plan->peak_bytes = stage_peak(plan, s);
        plan->flops += s->flops;
    }
    return fits;
}

/* Kept tensors a zero-recompute plan needs: those read by a later stage
 * than the one that computes them. Everything else lives in bands. */
static void initial_keep_set(planner *p, sr_plan *plan)
{
    for (int n = 0; n < p->n; n++)
        plan->keep[n] = n == 0;
    /* With nothing kept, each node's first stage is where it is computed
     * in a plan without recomputation. */
    build_stages(p, plan);
    int *stage_of = p->stage_of;
    for (int n = 0; n < p->n; n++)
        stage_of[n] = -1;
    for (int si = 0; si < plan->n_stages; si++)
        for (int k = 0; k < plan->stages[si].n_order; k++)
            if (stage_of[plan->stages[si].order[k]] < 0)
                stage_of[plan->stages[si].order[k]] = si;
    for (int n = 1; n < p->n - 1; n++)
        for (int c = 0; c < p->n_consumers[n]; c++)
            if (stage_of[p->consumers[n][c]] > stage_of[n])
                plan->keep[n] = true;
}

static sr_status alloc_plan(planner *p, sr_plan *plan)
{
    const int n = p->n, n_stages = n_targets(p->g);
    plan->n_nodes = n;
    plan->shapes = calloc((size_t)n, sizeof *plan->shapes);
    plan->keep = calloc((size_t)n, sizeof *plan->keep);
    plan->row_tiling = calloc((size_t)n, sizeof *plan->row_tiling);
    plan->first_stage = calloc((size_t)n, sizeof(int));
    plan->last_stage = calloc((size_t)n, sizeof(int));
    plan->stages = calloc((size_t)n_stages, sizeof *plan->stages);
    plan->node_flops = calloc((size_t)n, sizeof *plan->node_flops);
    if (!plan->shapes || !plan->keep || !plan->row_tiling || !plan->first_stage || !plan->last_stage || !plan->stages ||
        !plan->node_flops)
        return SR_ERR_NO_MEMORY;
    plan->n_stages = n_stages; /* what sr_plan_free frees, also when this fails */
    for (int s = 0; s < n_stages; s++) {
        sr_stage *st = &plan->stages[s];
        st->order = calloc((size_t)n, sizeof(int));
        st->offset = calloc((size_t)n, sizeof(int64_t));
        st->max_rows = calloc((size_t)n, sizeof(int64_t));
        if (!st->order || !st->offset || !st->max_rows)
            return SR_ERR_NO_MEMORY;
    }
    memcpy(plan->shapes, p->shapes, (size_t)n * sizeof *plan->shapes);
    const sr_backend_handle *b = p->req->backend;
    for (int k = 0; k < n; k++)
        plan->row_tiling[k] = sr_backend_row_tiling(b, &p->g->nodes[k], p->shapes[k]);
    return SR_OK;
}

void sr_plan_free(sr_plan *plan)
{
    for (int s = 0; plan->stages && s < plan->n_stages; s++) {
        free(plan->stages[s].order);
        free(plan->stages[s].offset);
        free(plan->stages[s].max_rows);
    }
    free(plan->stages);
    free(plan->node_flops);
    free(plan->last_stage);
    free(plan->first_stage);
    free(plan->keep);
    free(plan->row_tiling);
    free(plan->shapes);
    memset(plan, 0, sizeof *plan);
}

static void planner_free(planner *p)
{
    for (int n = 0; p->consumers && n < p->n; n++)
        free(p->consumers[n]);
    free(p->consumers);
    free(p->n_consumers);
    free(p->shapes);
    free(p->flops);
    free(p->available);
    free(p->in_stage);
    free(p->done);
    free(p->need);
    free(p->comp);
    free(p->dropped);
    free(p->owner);
    free(p->stage_of);
    free(p->blocks);
}

static sr_status planner_init(planner *p, const sr_graph *g, const sr_plan_request *req,
                              sr_error *err)
{
    const int n = g->n_nodes;
    *p = (planner){.g = g, .req = req, .n = n, .budget = req->budget};
    p->shapes = calloc((size_t)n, sizeof *p->shapes);
    p->flops = calloc((size_t)n, sizeof *p->flops);
    p->n_consumers = calloc((size_t)n, sizeof *p->n_consumers);
    p->consumers = calloc((size_t)n, sizeof *p->consumers);
    p->available = calloc((size_t)n, sizeof *p->available);
    p->in_stage = calloc((size_t)n, sizeof *p->in_stage);
    p->done = calloc((size_t)n, sizeof *p->done);
    p->need = calloc((size_t)n, sizeof *p->need);
    p->comp = calloc((size_t)n, sizeof *p->comp);
    p->dropped = calloc((size_t)n, sizeof *p->dropped);
    p->owner = calloc((size_t)n, sizeof *p->owner);
    p->stage_of = calloc((size_t)n, sizeof *p->stage_of);
    p->blocks = calloc((size_t)n + 1, sizeof *p->blocks);
    if (!p->shapes || !p->flops || !p->n_consumers || !p->consumers || !p->available ||
        !p->in_stage || !p->done || !p->need || !p->comp || !p->dropped || !p->owner ||
        !p->stage_of || !p->blocks)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    sr_status st = sr_graph_shapes(g, req->input, p->shapes, err);
    if (st != SR_OK)
        return st;
    sr_graph_flops(g, p->shapes, p->flops);
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
    return SR_OK;
}

/* How far the stages, at their thinnest bands where nothing more fits,
 * overshoot the budget in all. */
static int64_t excess_bytes(const sr_plan *plan, int64_t budget)
{
    int64_t sum = 0;
    for (int si = 0; si < plan->n_stages; si++) {
        const int64_t peak = stage_peak(plan, &plan->stages[si]);
        sum += peak > budget ? peak - budget : 0;
    }
    return sum;
}

/* From the set that recomputes nothing, drops one kept tensor at a time:
 * while the plan does not fit, the one whose loss brings the stages
 * closest to the budget per FLOP added; once it fits, the one that lowers
 * the FLOPs most (keeping less leaves room for higher bands), until no
 * drop helps. */
static bool drop_kept(planner *p, sr_plan *plan)
{
    const int64_t budget = p->budget;
    bool fits = evaluate(p, plan, 0, false);
    int64_t flops = plan->flops, excess = excess_bytes(plan, budget);
    while (fits ? flops > plan->whole_flops : true) {
        int drop = -1;
        bool drop_fits = false;
        int64_t drop_flops = 0, drop_excess = 0;
        double best = 0.0;
        for (int n = 1; n < p->n - 1; n++) {
            if (!plan->keep[n])
                continue;
            plan->keep[n] = false;
            const bool f = evaluate(p, plan, 0, false);
            plan->keep[n] = true;
            const int64_t e = excess_bytes(plan, budget);
            double score;
            if (fits)
                score = f ? (double)(flops - plan->flops) : 0.0;
            else if (f)
                score = 1e30 - (double)plan->flops; /* fits now: the cheapest such */
            else
                score = (double)(excess - e) / ((double)(plan->flops - flops > 0 ? plan->flops - flops : 0) +
                                                1e-3 * (double)flops + 1.0);
            if (score > best) {
                best = score;
                drop = n;
                drop_fits = f;
                drop_flops = plan->flops;
                drop_excess = e;
            }
        }
        if (drop < 0)
            break;
        plan->keep[drop] = false;
        fits = drop_fits;
        flops = drop_flops;
        excess = drop_excess;
    }
    return evaluate(p, plan, 0, false);
}

/* From keeping nothing, adds the kept tensor that lowers the FLOPs most
 * while the plan still fits, until no addition helps. */
static bool add_kept(planner *p, sr_plan *plan)
{
    for (int n = 1; n < p->n; n++)
        plan->keep[n] = false;
    if (!evaluate(p, plan, 0, false))
        return false;
    int64_t flops = plan->flops;
    for (;;) {
        int add = -1;
        int64_t best = flops;
        for (int n = 1; n < p->n - 1; n++) {
            if (plan->keep[n])
                continue;
            plan->keep[n] = true;
            if (evaluate(p, plan, 0, false) && plan->flops < best) {
                best = plan->flops;
                add = n;
            }
            plan->keep[n] = false;
        }
        if (add < 0)
            break;
        plan->keep[add] = true;
        flops = best;
    }
    return evaluate(p, plan, 0, false);
}

/* Chooses the kept tensors: the cheaper of two greedy walks, one dropping
 * from everything worth keeping, one adding to nothing. Every candidate is
 * judged with the band heights the budget really allows. */
static bool choose_keep_set(planner *p, sr_plan *plan)
{
    bool *dropped = p->dropped;
    initial_keep_set(p, plan);
    const bool fits_dropped = drop_kept(p, plan);
    const int64_t flops_dropped = plan->flops;
    memcpy(dropped, plan->keep, (size_t)p->n * sizeof *dropped);
    const bool fits_added = add_kept(p, plan);
    if (fits_dropped && (!fits_added || flops_dropped <= plan->flops))
        memcpy(plan->keep, dropped, (size_t)p->n * sizeof *dropped);
    return evaluate(p, plan, 0, false);
}

static bool plan_within(planner *p, sr_plan *plan, int64_t budget)
{
    p->budget = budget;
    return choose_keep_set(p, plan);
}

/* Plans for a ladder of budgets, from what the unconstrained plan takes
 * down to where nothing fits or the FLOPs pass the fewest by 10%, and keeps the leanest plan within 5% of the
 * fewest FLOPs among those that fit the real budget. A ladder, because the
 * greedy choice of kept tensors is not monotone in the budget (a plan made
 * for more memory can come out both leaner and faster), and a 5% slack,
 * because the fastest plan may hold far more memory than one nearly as fast
 * (a whole-image run against bands that recompute a few halo rows). */
static bool best_of_ladder(planner *p, sr_plan *plan)
{
    const int64_t budget = p->req->budget;
    plan_within(p, plan, 0);
    int64_t b = plan->peak_bytes < budget || !budget ? plan->peak_bytes : budget;
    int64_t steps[48], flops[48], peaks[48];
    int n = 0;
    int64_t least_flops = INT64_MAX;
    for (; n < 48 && b > 0; b = b / 5 * 4) {
        if (!plan_within(p, plan, b))
            break;
        steps[n] = b;
        flops[n] = plan->flops;
        peaks[n++] = plan->peak_bytes;
        least_flops = plan->flops < least_flops ? plan->flops : least_flops;
        if (plan->flops > least_flops + least_flops / 10)
            break; /* leaner budgets only cost more from here (with a margin) */
    }
    if (n == 0)
        return plan_within(p, plan, budget);
    for (int i = 0; i < n; i++)
        least_flops = flops[i] < least_flops ? flops[i] : least_flops;
    int best = -1;
    for (int i = 0; i < n; i++)
        if (flops[i] <= least_flops + least_flops / 20 && (best < 0 || peaks[i] < peaks[best]))
            best = i;
    return plan_within(p, plan, steps[best]); /* the same search, so the same plan */
}

/* FLOPs of each node as the plan computes it: every band of every stage. */
static void count_node_flops(planner *p, sr_plan *plan)
{
    for (int si = 0; si < plan->n_stages; si++) {
        const sr_stage *s = &plan->stages[si];
        const int64_t H = p->shapes[s->target].h;
        memset(p->done, 0, (size_t)p->n * sizeof *p->done);
        for (int b = 0; b < s->n_bands; b++) {
            const int64_t t0 = b * s->band_rows, t1 = t0 + s->band_rows < H ? t0 + s->band_rows : H;
            sr_plan_band_spans(p->g, plan, s, t0, t1, p->done, p->need, p->comp);
            for (int k = 0; k < s->n_order; k++) {
                const int n = s->order[k];
                const sr_span c = p->comp[n];
                if (c.lo >= c.hi)
                    continue;
                if (plan->keep[n])
                    p->done[n] = c.hi;
                plan->node_flops[n] += p->flops[n] / p->shapes[n].h * (c.hi - c.lo);
            }
        }
    }
}

sr_status sr_plan_make(const sr_graph *g, const sr_plan_request *req, sr_plan *plan,
                       int64_t *least, sr_error *err)
{
    memset(plan, 0, sizeof *plan);
    planner p;
    sr_status st = planner_init(&p, g, req, err);
    if (st == SR_OK && alloc_plan(&p, plan) != SR_OK)
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
    initial_keep_set(&p, plan);
    bool fits = req->tile_rows ? evaluate(&p, plan, 0, false) : best_of_ladder(&p, plan);
    if (fits) {
        /* Size the chosen plan exactly; trim bands if that runs over. */
        fits = evaluate(&p, plan, 0, true);
        for (int si = 0; !fits && si < plan->n_stages; si++) {
            sr_stage *s = &plan->stages[si];
            while (p.budget && stage_peak(plan, s) > p.budget && s->band_rows > 1 && !req->tile_rows)
                size_stage(&p, plan, s, s->band_rows * 3 / 4, true);
        }
        plan->peak_bytes = plan->flops = plan->arena_bytes = plan->workspace_bytes = 0;
        fits = true;
        for (int si = 0; si < plan->n_stages; si++) {
            const sr_stage *s = &plan->stages[si];
            if (stage_peak(plan, s) > plan->peak_bytes)
                plan->peak_bytes = stage_peak(plan, s);
            if (s->arena_bytes > plan->arena_bytes)
                plan->arena_bytes = s->arena_bytes;
            if (s->workspace_bytes > plan->workspace_bytes)
                plan->workspace_bytes = s->workspace_bytes;
            plan->flops += s->flops;
            fits = fits && (!p.budget || stage_peak(plan, s) <= p.budget);
        }
    }
    if (fits)
        count_node_flops(&p, plan);
    if (!fits) {
        /* The least this image can need: nothing kept, the thinnest bands. */
        if (!req->tile_rows)
            for (int n = 1; n < p.n; n++)
                plan->keep[n] = false;
        evaluate(&p, plan, req->tile_rows ? 0 : 1, true);
        *least = plan->peak_bytes;
        st = sr_fail(err, SR_ERR_LIMIT, "no plan fits");
        sr_plan_free(plan);
    }
    planner_free(&p);
    return st;
}
