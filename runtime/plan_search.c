/* The planner's search (plan.c): what a keep set costs, toggles of one
 * kept tensor judged by re-planning just the stages they change, and the
 * greedy walks and the ladder of budgets that choose the kept tensors.
 *
 * The search toggles one kept tensor at a time. A toggle changes only the
 * stages from the one that first needs the tensor to the last that
 * computes or reads it, so a candidate is judged by re-planning just those
 * stages: the cost of a search follows the graph's length, not its square.
 * Deep graphs commit non-overlapping toggles together, and past WORK_CAP
 * the search stops improving and keeps the plan it has. */
#include "runtime/plan_internal.h"

#include <stdlib.h>
#include <string.h>

/* Nodes x bands simulated after which the search keeps the plan it has
 * (or, if none fits yet, gives up). A sizing or band walk the planner
 * remembers counts as simulated again, so that where the cap stops the
 * search depends on the search alone, not on how fast it runs. Some 200
 * instructions each, with what comes with them, some 20 ns on the 2-core
 * test machine: about 0.1 s. RealESRGAN_x4plus passes it (its window
 * seeds' band searches go down to 1-row bands, each sized in full). */
#define WORK_CAP (INT64_C(1) << 22)
/* What a unit of that work costs, in the run's FLOPs: 20 ns of one core
 * against a run computing some 500 GFLOP/s on two (faster machines run
 * more FLOPs in the planner's 20 ns, so their ladders stop sooner). */
#define FLOPS_PER_WORK 10000
/* Graphs with more stages than this commit disjoint toggles together. */
#define BATCH_FROM_STAGES 16
/* What a byte of a plan's peak costs, in FLOPs: a run maps and zeroes
 * its pages once (the kernel's first-touch fault: some 0.15 ns a byte with
 * huge pages on bare metal, 2 ns on the project's VM, whose freed memory
 * goes back to the host and comes back zeroed by it), and memory a plan
 * does not take is left to the rest of the machine. Only the final pick
 * among a ladder's plans uses it: the ladder stops on the cost alone (its
 * 10% margin is wider than what the pages change), and sr_plan_search() weighs
 * spilling on what spilling trades, FLOPs against I/O. */
#define FLOPS_PER_PEAK_BYTE 20
/* The search tries spilling only when the plan without it recomputes
 * more than this share of the network's FLOPs (or nothing fits): a plan
 * nearly as fast in memory stays exactly what it was. */
#define SPILL_FROM_RECOMPUTE 0.10

/* ---- the whole plan for a keep set ---- */

/* How far stage s is over the budget; a stage that would need the
 * scratch file where there is none never fits. */
static int64_t stage_excess(const planner *p, const sr_plan *plan, const sr_stage *s)
{
    for (int k = 0; !p->req->may_spill && k < s->n_order; k++) {
        const int n = s->order[k];
        if (plan->keep[n] && plan->spill[n] && !sr_plan_windowed(p, plan, n))
            return INT64_C(1) << 50; /* a petabyte: summed over stages, no overflow */
    }
    const int64_t peak = sr_plan_stage_peak(plan, s);
    return p->budget && peak > p->budget ? peak - p->budget : 0;
}

/* Plans the keep set from scratch: per stage the largest band that fits
 * the budget (or `probe` rows when probe > 0). Returns whether every stage
 * fits; false also when out of memory (p->out_of_memory), and may be
 * false when the plan would cost more than `bound` (INT64_MAX: no bound). */
static bool evaluate_within(planner *p, sr_plan *plan, int64_t probe, bool exact, int64_t bound)
{
    p->seen_epoch++; /* sr_plan_last_reader: the plan's own, set below */
    for (int n = 0; n < p->n; n++)
        p->last[n] = p->last_comp[n] = -1;
    for (int si = 0; si < p->n_stages; si++) {
        sr_stage *s = &plan->stages[si];
        if (!sr_plan_build_stage(p, plan, si, s))
            return false;
        for (int k = 0; k < s->n_order; k++) {
            p->last_comp[s->order[k]] = si;
            if (plan->keep[s->order[k]])
                p->last[s->order[k]] = si;
        }
        for (int r = 0; r < p->n_reads; r++)
            p->last[p->reads[r]] = si;
    }
    /* The input lives for the whole run; other kept tensors from the stage
     * that computes them to the last that reads them (in memory; a spilled
     * one's bytes are the scratch file's). */
    int64_t *d = p->delta;
    memset(d, 0, ((size_t)p->n_stages + 1) * sizeof *d);
    for (int n = 1; n < p->n; n++)
        if (sr_plan_in_memory(plan, n) && p->last[n] >= 0) {
            d[p->home[n]] += sr_plan_tensor_bytes(p->shapes[n]);
            d[p->last[n] + 1] -= sr_plan_tensor_bytes(p->shapes[n]);
        }
    int64_t kept = sr_plan_tensor_bytes(p->shapes[0]);
    plan->peak_bytes = plan->flops = p->total_cost = p->total_excess = 0;
    p->n_unfit = 0;
    for (int si = 0; si < p->n_stages; si++) {
        sr_stage *s = &plan->stages[si];
        kept += d[si];
        s->kept_bytes = kept;
        p->stage_bound = bound < INT64_MAX ? bound - p->total_cost : INT64_MAX;
        sr_plan_stage(p, plan, s, probe, exact);
        const int64_t excess = stage_excess(p, plan, s);
        p->n_unfit += excess > 0;
        p->total_excess += excess;
        p->total_cost += sr_plan_stage_cost(s);
        plan->flops += s->flops;
        if (sr_plan_stage_peak(plan, s) > plan->peak_bytes)
            plan->peak_bytes = sr_plan_stage_peak(plan, s);
    }
    plan->n_stages = p->n_stages;
    p->stage_bound = INT64_MAX;
    return p->n_unfit == 0;
}

bool sr_plan_evaluate(planner *p, sr_plan *plan, int64_t probe, bool exact)
{
    return evaluate_within(p, plan, probe, exact, INT64_MAX);
}

/* The plan's peak and FLOPs from its stages as they stand. */
static bool refresh_totals(planner *p, sr_plan *plan)
{
    plan->peak_bytes = plan->flops = 0;
    for (int si = 0; si < p->n_stages; si++) {
        if (sr_plan_stage_peak(plan, &plan->stages[si]) > plan->peak_bytes)
            plan->peak_bytes = sr_plan_stage_peak(plan, &plan->stages[si]);
        plan->flops += plan->stages[si].flops;
    }
    return !p->out_of_memory && p->n_unfit == 0;
}

/* Adds m to the kept tensors a toggle reaches, once, with when it is read
 * after the toggle's last stage (it is alive to there whatever changes). */
static void reach(planner *p, int *reached, int *n_reached, int m, bool was_kept, int hi)
{
    if (m == 0 || p->seen[m] == p->seen_epoch)
        return;
    p->seen[m] = p->seen_epoch;
    reached[(*n_reached)++] = m;
    p->new_last[m] = was_kept && p->last[m] > hi ? p->last[m] : -1;
}

static void add_interval(planner *p, int lo, int hi, int from, int to, int64_t bytes)
{
    from = from > lo ? from : lo;
    to = to < hi ? to : hi;
    if (from <= to) {
        p->delta[from - lo] += bytes;
        p->delta[to - lo + 1] -= bytes;
    }
}

/* Sets whether node n is kept (and spilled) and re-plans just the stages
 * that changes, into p->trial_stages: t gets the whole plan's totals.
 * Unless `commit`, the plan is left as it was. A trial that would cost
 * more than `bound` (INT64_MAX: no bound) may stop early, over the budget. */
static bool try_toggle(planner *p, sr_plan *plan, int n, bool keep, bool spill, bool commit,
                       int64_t bound, trial *t)
{
    const bool old_keep = plan->keep[n], old_spill = plan->spill[n];
    const bool old_in_memory = sr_plan_in_memory(plan, n);
    const int lo = p->home[n];
    int hi = old_keep ? p->last[n] : p->last_comp[n];
    hi = hi > lo ? hi : lo;
    const int len = hi - lo + 1;
    if (len > p->n_trial_stages) {
        sr_stage *more = realloc(p->trial_stages, (size_t)len * sizeof *more);
        if (!more) {
            p->out_of_memory = true;
            return false;
        }
        memset(more + p->n_trial_stages, 0, (size_t)(len - p->n_trial_stages) * sizeof *more);
        p->trial_stages = more;
        p->n_trial_stages = len;
    }
    /* The kept tensors the old stages compute or read... */
    plan->keep[n] = keep;
    plan->spill[n] = keep && spill;
    p->seen_epoch++;
    int *reached = p->list + p->n; /* sr_plan_build_stage uses the first half */
    int n_reached = 0;
    reach(p, reached, &n_reached, n, old_keep, hi);
    for (int si = lo; si <= hi; si++) {
        const sr_stage *s = &plan->stages[si];
        for (int k = 0; k < s->n_order; k++) {
            const int m = s->order[k];
            const sr_node *node = &p->g->nodes[m];
            if (m != n && plan->keep[m])
                reach(p, reached, &n_reached, m, true, hi);
            for (int j = 0; j < node->n_inputs; j++) {
                const int i = node->inputs[j];
                if (i != n && plan->keep[i] && p->home[i] < si)
                    reach(p, reached, &n_reached, i, true, hi);
            }
        }
        if (s->n_order == 0 || s->order[s->n_order - 1] != s->target)
            reach(p, reached, &n_reached, s->target, true, hi);
    }
    /* ...and the new stages, with when each kept tensor is last read. */
    for (int si = lo; si <= hi; si++) {
        sr_stage *s = &p->trial_stages[si - lo];
        if (!sr_plan_build_stage(p, plan, si, s))
            break;
        for (int k = 0; k < s->n_order + p->n_reads; k++) {
            const int m = k < s->n_order ? s->order[k] : p->reads[k - s->n_order];
            if (m == 0 || !plan->keep[m])
                continue;
            reach(p, reached, &n_reached, m, m == n ? old_keep : true, hi);
            if (si > p->new_last[m])
                p->new_last[m] = si;
        }
    }
    if (p->out_of_memory) {
        plan->keep[n] = old_keep;
        plan->spill[n] = old_spill;
        return false;
    }
    /* Kept bytes change only for the tensors reached. */
    memset(p->delta, 0, ((size_t)len + 1) * sizeof *p->delta);
    for (int r = 0; r < n_reached; r++) {
        const int m = reached[r];
        const int64_t bytes = sr_plan_tensor_bytes(p->shapes[m]);
        const bool was_in_memory = m == n ? old_in_memory : sr_plan_in_memory(plan, m);
        if (was_in_memory && p->last[m] >= 0)
            add_interval(p, lo, hi, p->home[m], p->last[m], -bytes);
        if (sr_plan_in_memory(plan, m) && p->new_last[m] >= 0)
            add_interval(p, lo, hi, p->home[m], p->new_last[m], bytes);
    }
    *t = (trial){.node = n, .lo = lo, .hi = hi, .keep = keep, .spill = keep && spill,
                 .cost = p->total_cost, .excess = p->total_excess, .n_unfit = p->n_unfit};
    int64_t change = 0, old_rest = 0; /* the old cost of the stages left */
    for (int si = lo; si <= hi; si++)
        old_rest += sr_plan_stage_cost(&plan->stages[si]);
    for (int si = lo; si <= hi; si++) {
        const sr_stage *old = &plan->stages[si];
        sr_stage *s = &p->trial_stages[si - lo];
        change += p->delta[si - lo];
        s->kept_bytes = old->kept_bytes + change;
        p->stage_bound = bound < INT64_MAX ? bound - (t->cost - old_rest) : INT64_MAX;
        old_rest -= sr_plan_stage_cost(old);
        sr_plan_stage(p, plan, s, 0, false);
        const int64_t old_excess = stage_excess(p, plan, old), excess = stage_excess(p, plan, s);
        t->cost += sr_plan_stage_cost(s) - sr_plan_stage_cost(old);
        t->excess += excess - old_excess;
        t->n_unfit += (excess > 0) - (old_excess > 0);
    }
    p->stage_bound = INT64_MAX;
    if (!commit) {
        plan->keep[n] = old_keep;
        plan->spill[n] = old_spill;
        return true;
    }
    for (int si = lo; si <= hi; si++) {
        const sr_stage swap = plan->stages[si];
        plan->stages[si] = p->trial_stages[si - lo];
        p->trial_stages[si - lo] = swap;
        for (int k = 0; k < plan->stages[si].n_order; k++)
            if (p->last_comp[plan->stages[si].order[k]] < si)
                p->last_comp[plan->stages[si].order[k]] = si;
    }
    for (int r = 0; r < n_reached; r++)
        p->last[reached[r]] = plan->keep[reached[r]] ? p->new_last[reached[r]] : -1;
    p->total_cost = t->cost;
    p->total_excess = t->excess;
    p->n_unfit = t->n_unfit;
    return true;
}

/* ---- choosing the kept tensors ---- */

/* Kept tensors a zero-recompute plan needs: those read by a later stage
 * than the one that computes them. Everything else lives in bands. */
void sr_plan_initial_keep_set(planner *p, sr_plan *plan)
{
    for (int n = 0; n < p->n; n++) {
        plan->keep[n] = n == 0;
        plan->spill[n] = p->in_file[n] = false;
    }
    for (int n = 1; n < p->n - 1; n++)
        for (int c = 0; c < p->n_consumers[n]; c++)
            if (p->home[p->consumers[n][c]] > p->home[n] &&
                p->home[p->consumers[n][c]] < p->n_stages)
                plan->keep[n] = true;
}

/* The plan that computes nearly nothing twice and holds the least: what
 * sr_plan_initial_keep_set keeps whole (in the scratch file if `file`), and every
 * other node but the output spilled. No later stage reads those (all their consumers are in their
 * own stage), so they carry the rows the next band reads back in windows:
 * line buffers. A node cheaper to recompute than to copy with a single
 * consumer (a concatenation, an upsampling) is made again from its
 * inputs' windows instead: it needs just the rows its consumer does. */
void sr_plan_window_keep_set(planner *p, sr_plan *plan, bool file)
{
    sr_plan_initial_keep_set(p, plan);
    for (int n = 1; n < p->n - 1; n++) {
        plan->spill[n] = file && plan->keep[n];
        const int64_t row_bytes = p->shapes[n].c * p->shapes[n].w * (int64_t)sizeof(float);
        if (!plan->keep[n] &&
            (p->n_consumers[n] > 1 || p->row_flops[n] > 2 * FLOPS_PER_WINDOW_BYTE * row_bytes))
            plan->keep[n] = plan->spill[n] = true;
    }
}

static int compare_trials(const void *a, const void *b)
{
    const trial *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->node > y->node) - (x->node < y->node);
}

/* Commits the best toggle of a round and, in a deep graph, the next best
 * whose stages no committed one changed (their effects simply add up). */
static bool commit_round(planner *p, sr_plan *plan, trial *trials, int n_trials)
{
    int best = 0;
    for (int i = 1; i < n_trials; i++)
        if (trials[i].score > trials[best].score)
            best = i; /* the first of equals, in graph order */
    trial t;
    if (p->n_stages <= BATCH_FROM_STAGES)
        return try_toggle(p, plan, trials[best].node, trials[best].keep, trials[best].spill, true,
                          INT64_MAX, &t);
    const trial chosen = trials[best];
    trials[best] = trials[0];
    trials[0] = chosen;
    qsort(trials + 1, (size_t)n_trials - 1, sizeof *trials, compare_trials);
    memset(p->taken, 0, (size_t)p->n_stages * sizeof *p->taken);
    for (int i = 0; i < n_trials; i++) {
        bool untouched = true;
        for (int si = trials[i].lo; si <= trials[i].hi && untouched; si++)
            untouched = !p->taken[si];
        if (!untouched)
            continue;
        if (!try_toggle(p, plan, trials[i].node, trials[i].keep, trials[i].spill, true, INT64_MAX,
                        &t))
            return false;
        for (int si = trials[i].lo; si <= trials[i].hi; si++)
            p->taken[si] = 1;
    }
    return true;
}

/* From the set that recomputes nothing, drops one kept tensor at a time
 * (or, where a scratch file may hold them, moves one between memory and
 * the file): while the plan does not fit, the change that brings the
 * stages closest to the budget per cost added; once it fits, the one that
 * lowers the cost most (keeping less in memory leaves room for higher
 * bands), until no change helps or the work cap is reached. The cost is
 * stage_cost's: FLOPs, bytes moved and what the bands add. */
static bool drop_kept(planner *p, sr_plan *plan)
{
    bool fits = sr_plan_evaluate(p, plan, 0, false);
    while (!p->out_of_memory &&
           (fits ? p->total_cost > plan->whole_flops + p->least_overhead : true)) {
        if (p->work > p->work_cap)
            break;
        const int64_t cost = p->total_cost, excess = p->total_excess;
        int n_trials = 0;
        for (int n = 1; n < p->n - 1 && p->work <= p->work_cap; n++) {
            for (int way = 0; plan->keep[n] && way < 1 + p->may_spill; way++) {
                if (p->work > p->work_cap)
                    break; /* commit the best so far, then stop */
                trial t; /* way 0 drops it, way 1 moves it */
                if (!try_toggle(p, plan, n, way == 1, !plan->spill[n], false,
                                fits ? cost : INT64_MAX, &t))
                    return false;
                const bool f = t.n_unfit == 0;
                if (fits)
                    t.score = f ? (double)(cost - t.cost) : 0.0;
                else if (f)
                    t.score = 1e30 - (double)t.cost; /* fits now: the cheapest such */
                else
                    t.score = (double)(excess - t.excess) /
                              ((double)(t.cost - cost > 0 ? t.cost - cost : 0) +
                               1e-3 * (double)cost + 1.0);
                if (t.score > 0.0)
                    p->trials[n_trials++] = t;
            }
        }
        if (n_trials == 0)
            break;
        if (!commit_round(p, plan, p->trials, n_trials))
            return false;
        fits = p->n_unfit == 0;
    }
    return refresh_totals(p, plan);
}

/* From keeping nothing, adds the kept tensor (in memory or, where it may,
 * in the scratch file) that lowers the cost most while the plan still
 * fits, until no addition helps or the work cap is reached. */
static bool add_kept(planner *p, sr_plan *plan)
{
    for (int n = 1; n < p->n; n++)
        plan->keep[n] = plan->spill[n] = p->in_file[n] = false;
    if (!sr_plan_evaluate(p, plan, 0, false))
        return false;
    while (p->work <= p->work_cap) {
        int n_trials = 0;
        for (int n = 1; n < p->n - 1 && p->work <= p->work_cap; n++) {
            for (int way = 0; !plan->keep[n] && way < 1 + p->may_spill; way++) {
                if (p->work > p->work_cap)
                    break;
                trial t;
                if (!try_toggle(p, plan, n, true, way == 1, false, p->total_cost, &t))
                    return false;
                t.score = (double)(p->total_cost - t.cost);
                if (t.n_unfit == 0 && t.score > 0.0)
                    p->trials[n_trials++] = t;
            }
        }
        if (n_trials == 0)
            break;
        if (!commit_round(p, plan, p->trials, n_trials))
            return false;
    }
    return refresh_totals(p, plan);
}

/* Whether a walk from keeping nothing is worth its cost: with nothing
 * kept each stage recomputes all its target needs, so a deep graph's
 * stages hold the whole graph (quadratic), and the walk judges every node
 * against them, round after round (a deep graph never gets far before the
 * cap and is better off without). */
bool sr_plan_add_kept_affordable(const planner *p)
{
    int64_t cone_sum = 0;
    for (int si = 0; si < p->n_stages; si++)
        cone_sum += p->stage_target[si] + 1;
    return cone_sum * p->n * p->n_stages <= WORK_CAP / 4;
}

/* A keep set (which nodes are kept, which of them spilled, which of
 * those in the file) copied to or from KEEP_SET n bools. */
#define KEEP_SET 3

static void save_keep_set(const planner *p, const sr_plan *plan, bool *to)
{
    memcpy(to, plan->keep, (size_t)p->n * sizeof *to);
    memcpy(to + p->n, plan->spill, (size_t)p->n * sizeof *to);
    memcpy(to + 2 * p->n, p->in_file, (size_t)p->n * sizeof *to);
}

static void load_keep_set(planner *p, sr_plan *plan, const bool *from)
{
    memcpy(plan->keep, from, (size_t)p->n * sizeof *from);
    memcpy(plan->spill, from + p->n, (size_t)p->n * sizeof *from);
    memcpy(p->in_file, from + 2 * p->n, (size_t)p->n * sizeof *from);
}

static int compare_window_bytes(const void *a, const void *b)
{
    const int64_t x = ((const int64_t *)a)[0], y = ((const int64_t *)b)[0];
    return (x < y) - (x > y); /* most bytes first */
}

/* Where the windows alone do not fit: the largest windows (a tensor read
 * far from where it is made, such as a long skip) moved to the scratch
 * file, one, then two, four... until the plan fits. Returns whether it
 * does. */
static bool windows_to_file(planner *p, sr_plan *plan)
{
    int64_t(*by_size)[2] = malloc((size_t)p->n * sizeof *by_size);
    if (!by_size) {
        p->out_of_memory = true;
        return false;
    }
    int count = 0;
    for (int n = 1; n < p->n; n++)
        if (sr_plan_windowed(p, plan, n)) {
            by_size[count][0] = p->window[n] * p->shapes[n].c * p->shapes[n].w;
            by_size[count++][1] = n;
        }
    qsort(by_size, (size_t)count, sizeof *by_size, compare_window_bytes);
    bool fits = false;
    for (int moved = 0, k = 1; !fits && moved < count && !p->out_of_memory; k *= 2) {
        for (; moved < k && moved < count; moved++)
            p->in_file[by_size[moved][1]] = true;
        fits = sr_plan_evaluate(p, plan, 0, false);
    }
    free(by_size);
    return fits;
}

/* Chooses the kept tensors: the cheaper of two greedy walks, one dropping
 * from everything worth keeping, one adding to nothing (where affordable),
 * or, cheaper still, sr_plan_window_keep_set's: a walk judges one change at a
 * time, and in a deep graph no single kept tensor shortens the halos
 * much (nor does the work cap let it judge many). Every candidate is
 * judged with the band heights the budget really allows. */
static bool choose_keep_set(planner *p, sr_plan *plan)
{
    bool *dropped = malloc(KEEP_SET * (size_t)p->n * sizeof *dropped);
    if (!dropped) {
        p->out_of_memory = true;
        return false;
    }
    sr_plan_initial_keep_set(p, plan);
    const bool fits_dropped = drop_kept(p, plan);
    const int64_t cost_dropped = p->total_cost;
    save_keep_set(p, plan, dropped);
    if (!p->out_of_memory && sr_plan_add_kept_affordable(p)) {
        const bool fits_added = add_kept(p, plan);
        if (fits_dropped && (!fits_added || cost_dropped <= p->total_cost))
            load_keep_set(p, plan, dropped);
    } else {
        load_keep_set(p, plan, dropped);
    }
    bool fits = sr_plan_evaluate(p, plan, 0, false);
    for (int file = 0; file < 1 + p->may_spill && !p->out_of_memory; file++) {
        const int64_t cost = p->total_cost;
        save_keep_set(p, plan, dropped);
        sr_plan_window_keep_set(p, plan, file);
        bool seed_fits = evaluate_within(p, plan, 0, false, fits ? cost : INT64_MAX);
        if (!seed_fits && file && !fits)
            seed_fits = windows_to_file(p, plan);
        if (seed_fits && (!fits || p->total_cost < cost)) {
            fits = true;
        } else if (!p->out_of_memory) {
            load_keep_set(p, plan, dropped);
            sr_plan_evaluate(p, plan, 0, false);
        }
    }
    free(dropped);
    return !p->out_of_memory && fits;
}

static bool plan_within(planner *p, sr_plan *plan, int64_t budget)
{
    p->budget = budget;
    return choose_keep_set(p, plan);
}

#define LADDER_STEPS 48

/* Plans for a ladder of budgets, from what the unconstrained plan takes
 * down to where nothing fits or the cost passes the least by 10% (or the
 * work cap is reached), and keeps the leanest plan within 1% of the least
 * cost among those that fit the real budget (with spilling, the least). A
 * ladder, because the greedy choice of kept tensors is not monotone in the
 * budget (a plan made for more memory can come out both leaner and
 * faster), and a slack, because the fastest plan may hold far more memory
 * than one nearly as fast (a whole-image run against bands that recompute
 * a few halo rows). Only 1%: the cost prices each band, but a loaded
 * machine pays more for one (5% let realesr-animevideov3 512x512 take 6
 * bands for 1, 3.4x slower with another run beside it; 2% let
 * RealESRGAN_x4plus 256x256 take 2, 1.13x slower, load 5 on 2 cores). */
static bool best_of_ladder(planner *p, sr_plan *plan)
{
    const int64_t budget = p->req->budget;
    const size_t set = KEEP_SET * (size_t)p->n;
    bool *keeps = malloc((size_t)LADDER_STEPS * set * sizeof *keeps);
    if (!keeps) {
        p->out_of_memory = true;
        return false;
    }
    /* Unconstrained, keeping all a later stage reads and sweeping every
     * stage whole recomputes nothing in the fewest bands: no walk finds a
     * cheaper plan, so it is the first rung when it fits, found without
     * one. */
    p->budget = 0;
    p->work_cap = WORK_CAP;
    sr_plan_initial_keep_set(p, plan);
    sr_plan_evaluate(p, plan, 0, false);
    const bool whole_fits = !budget || plan->peak_bytes <= budget;
    int64_t b = whole_fits ? plan->peak_bytes : budget;
    int64_t steps[LADDER_STEPS], costs[LADDER_STEPS], peaks[LADDER_STEPS];
    int n = 0;
    int64_t least_cost = INT64_MAX;
    for (; n < LADDER_STEPS && b > 0 && !p->out_of_memory; b = b / 5 * 4) {
        if ((n > 0 || !whole_fits) && !plan_within(p, plan, b))
            break;
        steps[n] = b;
        costs[n] = p->total_cost;
        peaks[n] = plan->peak_bytes;
        save_keep_set(p, plan, keeps + (size_t)n++ * set);
        least_cost = p->total_cost < least_cost ? p->total_cost : least_cost;
        if (p->total_cost > least_cost + least_cost / 10)
            break; /* leaner budgets only cost more from here (with a margin) */
        if (p->work > p->work_cap)
            break; /* good enough: keep what was found */
        /* The next rung is planned in no more time than it may save. No
         * plan costs less than the first rung's (it recomputes nothing), so
         * a leaner one wins the final pick by at most the first's pages
         * and the pick's 1% slack. RealESRGAN_x4plus at 96x60 (67 MB)
         * spent 45 ms, 9% of its run, on a second rung 3.7% costlier; a
         * small network's 665 MB of pages are worth all of its ladder. */
        const int64_t allowed =
            p->work + (least_cost / 100 + peaks[0] * FLOPS_PER_PEAK_BYTE) / FLOPS_PER_WORK;
        p->work_cap = allowed < WORK_CAP ? allowed : WORK_CAP;
    }
    bool fits;
    if (p->out_of_memory) {
        fits = false;
    } else if (n == 0) {
        fits = plan_within(p, plan, budget);
    } else {
        /* Each priced with its peak's pages. With spilling, leaner plans
         * cost nearly the same I/O in thinner bands: the cheapest. */
        int64_t least = INT64_MAX;
        for (int i = 0; i < n; i++) {
            costs[i] += peaks[i] * FLOPS_PER_PEAK_BYTE;
            least = costs[i] < least ? costs[i] : least;
        }
        const int64_t slack = p->may_spill ? 0 : least / 100;
        int best = -1;
        for (int i = 0; i < n; i++)
            if (costs[i] <= least + slack && (best < 0 || peaks[i] < peaks[best]))
                best = i;
        p->budget = steps[best];
        load_keep_set(p, plan, keeps + (size_t)best * set);
        fits = sr_plan_evaluate(p, plan, 0, false);
    }
    free(keeps);
    return fits;
}

/* The search without spilling, then, where a scratch file may hold kept
 * tensors and the plan found recomputes much (or nothing fitted), again
 * with it (its own work cap), keeping the cheaper. So a plan that fits
 * in memory at little cost is never changed by the option. */
bool sr_plan_search(planner *p, sr_plan *plan)
{
    bool fits = best_of_ladder(p, plan);
    if (!p->req->may_spill || p->out_of_memory ||
        (fits && (double)plan->flops <=
                     (double)plan->whole_flops * (1.0 + SPILL_FROM_RECOMPUTE)))
        return fits;
    bool *in_memory_set = malloc(KEEP_SET * (size_t)p->n * sizeof *in_memory_set);
    if (!in_memory_set) {
        p->out_of_memory = true;
        return false;
    }
    save_keep_set(p, plan, in_memory_set);
    const int64_t in_memory_budget = p->budget, in_memory_cost = p->total_cost;
    const int64_t work = p->work;
    p->work = 0;
    p->may_spill = true;
    const bool fits_spilled = best_of_ladder(p, plan);
    p->work += work;
    if (!p->out_of_memory && fits && (!fits_spilled || in_memory_cost <= p->total_cost)) {
        load_keep_set(p, plan, in_memory_set);
        p->budget = in_memory_budget;
        fits = sr_plan_evaluate(p, plan, 0, false);
    } else {
        fits = fits_spilled;
    }
    free(in_memory_set);
    return fits;
}
