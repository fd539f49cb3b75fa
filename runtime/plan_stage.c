/* One stage of the planner (plan.c): the nodes it computes, the rows each
 * of its bands needs, its sizing at a band height (the band buffers packed
 * in one arena by liveness, sizings and first bands remembered), and the
 * highest band that fits the budget. */
#include "runtime/plan_internal.h"

#include <stdlib.h>
#include <string.h>

/* A node's part in the stage being sized (planner.flags). */
enum {
    AT_KEPT = 1,      /* kept, in memory or spilled */
    AT_SPILLED = 2,   /* kept in the scratch file or a window */
    AT_WINDOW = 4,    /* its rows carried in a window */
    AT_IN_FILE = 8,   /* spilled by an earlier stage: read back, not computed */
    AT_IN_MEMORY = 16 /* kept in memory: no band buffer */
};

static bool available_whole(const sr_plan *plan, int stage, int n)
{
    return n == 0 || (sr_plan_in_memory(plan, n) && plan->first_stage[n] < stage);
}

/* In the scratch file already: a stage reads it a band at a time. */
static bool spilled_before(const sr_plan *plan, int stage, int n)
{
    return plan->keep[n] && plan->spill[n] && plan->first_stage[n] < stage;
}

void sr_plan_band_spans(const sr_plan *plan, const sr_stage *s, int64_t t0, int64_t t1,
                        const int64_t *done, sr_span *need, sr_span *comp)
{
    /* In locals: a store to need[] could, as far as the compiler knows,
     * change the plan's and the stage's fields, reloaded every node. */
    const int *order = s->order, *inputs = s->inputs;
    const sr_shape *shapes = plan->shapes;
    const bool *keep = plan->keep;
    const int *scales = plan->scale;
    const sr_row_tiling *tiling = plan->row_tiling;
    /* Spans are walked back unclipped, so that a lead-in band (rows above
     * the image) still reaches the rows its deeper nodes make ahead; a
     * node's need is clipped to the image once the walk reaches it (its
     * readers all come after it). */
    for (int k = 0; k < s->n_order; k++)
        need[order[k]] = (sr_span){INT64_MAX, INT64_MIN};
    if (s->n_order && order[s->n_order - 1] == s->target)
        need[s->target] = (sr_span){t0, t1};
    for (int k = s->n_order - 1; k >= 0; k--) {
        const int n = order[k];
        sr_span c = need[n];
        if (c.hi == INT64_MIN) { /* no node of the band reads it */
            comp[n] = c;
            need[n] = (sr_span){0, 0};
            continue;
        }
        const int64_t h = shapes[n].h;
        need[n] = (sr_span){c.lo > 0 ? c.lo : 0, c.hi < h ? c.hi : h};
        if (need[n].lo >= need[n].hi)
            need[n] = (sr_span){0, 0};
        if (keep[n] && done[n] > 0 && done[n] > c.lo)
            c.lo = done[n]; /* kept rows are computed once */
        /* Below the image nothing is made (a kept node done to its end
         * needs nothing more); above it, a lead-in band's rows still count. */
        c.hi = c.hi < h ? c.hi : h;
        comp[n] = (sr_span){c.lo > 0 ? c.lo : 0, c.hi};
        if (c.lo >= c.hi)
            continue;
        const int64_t scale = scales[n], halo = tiling[n].halo, a = tiling[n].align;
        /* (Most nodes have no scale, and tiles of a power of two rows: no
         * 64-bit division, the most of this walk's time.) */
        const int64_t out_lo = (a & (a - 1)) == 0 ? c.lo & -a : sr_div_floor(c.lo, a) * a;
        const int64_t out_hi = (a & (a - 1)) == 0 ? (c.hi + a - 1) & -a : sr_div_ceil(c.hi, a) * a;
        const int64_t lo = (scale > 1 ? sr_div_floor(out_lo, scale) : out_lo) - halo;
        const int64_t hi = (scale > 1 ? sr_div_ceil(out_hi, scale) : out_hi) + halo;
        for (const int *i = inputs + (size_t)k * SR_STAGE_INPUTS; *i >= 0; i++) {
            if (lo < need[*i].lo)
                need[*i].lo = lo;
            if (hi > need[*i].hi)
                need[*i].hi = hi;
        }
    }
}

/* ---- one stage's nodes ---- */

/* array grown to n elements of size bytes, or as it was, with *ok false,
 * where there is no memory: so that a struct's arrays grow one call each
 * and are freed alike whichever failed. */
static void *resize(void *array, size_t n, size_t size, bool *ok)
{
    void *grown = realloc(array, n * size);
    *ok = *ok && grown;
    return grown ? grown : array;
}

static bool stage_reserve(planner *p, sr_stage *s, int count)
{
    if (count <= s->capacity)
        return true;
    const size_t n = (size_t)count;
    bool ok = true;
    s->order = resize(s->order, n, sizeof *s->order, &ok);
    s->offset = resize(s->offset, n, sizeof *s->offset, &ok);
    s->max_rows = resize(s->max_rows, n, sizeof *s->max_rows, &ok);
    s->inputs = resize(s->inputs, n * SR_STAGE_INPUTS, sizeof *s->inputs, &ok);
    if (!ok) {
        p->out_of_memory = true;
        return false;
    }
    s->capacity = count;
    return true;
}

static int compare_ints(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Stage si for the plan's keep set: the cone of its target (everything it
 * needs that is not available whole), in graph order, and in p->reads the
 * kept tensors it reads. The cone's nodes stay marked. */
bool sr_plan_build_stage(planner *p, const sr_plan *plan, int si, sr_stage *s)
{
    const sr_graph *g = p->g;
    s->index = si;
    s->target = p->stage_target[si];
    s->role = p->stage_role[si];
    s->global = p->stage_global[si];
    p->epoch++;
    p->n_list = 0;
    if (!available_whole(plan, si, s->target)) {
        p->mark[s->target] = p->epoch;
        p->list[p->n_list++] = s->target;
    }
    for (int k = 0; k < p->n_list; k++) {
        const sr_node *node = &g->nodes[p->list[k]];
        if (spilled_before(plan, si, p->list[k]))
            continue; /* its rows come from the scratch file */
        for (int j = 0; j < node->n_inputs; j++) {
            const int i = node->inputs[j];
            if (p->mark[i] != p->epoch && !available_whole(plan, si, i)) {
                p->mark[i] = p->epoch;
                p->list[p->n_list++] = i;
            }
        }
    }
    p->work += p->n_list;
    if (!stage_reserve(p, s, p->n_list))
        return false;
    /* In graph order: where the cone holds a good share of the nodes up to
     * the target (a deep graph's one stage), picked out of them in a
     * pass, else sorted (a pass over the target's predecessors costs
     * about what sorting a sixteenth of them does). */
    s->n_order = p->n_list;
    if ((int64_t)p->n_list * 16 > s->target) {
        s->n_order = 0;
        for (int n = 0; n <= s->target; n++)
            if (p->mark[n] == p->epoch)
                s->order[s->n_order++] = n;
    } else {
        memcpy(s->order, p->list, (size_t)p->n_list * sizeof *s->order);
        qsort(s->order, (size_t)s->n_order, sizeof *s->order, compare_ints);
    }
    p->n_reads = 0;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        int *in = s->inputs + (size_t)k * SR_STAGE_INPUTS, n_in = 0;
        s->offset[k] = 0; /* pack_arena's, for band buffers */
        for (int j = 0; !spilled_before(plan, si, n) && j < g->nodes[n].n_inputs; j++) {
            const int i = g->nodes[n].inputs[j];
            if (p->mark[i] == p->epoch)
                in[n_in++] = i; /* in the cone: not available whole */
            else
                p->reads[p->n_reads++] = i;
        }
        in[n_in] = -1;
    }
    if (p->mark[s->target] != p->epoch)
        p->reads[p->n_reads++] = s->target; /* statistics of a kept tensor */
    return true;
}

/* ---- one stage at one band height ---- */

static uint64_t mix_key(uint64_t key, uint64_t value)
{
    key = (key ^ value) * UINT64_C(0x9e3779b97f4a7c15);
    return key ^ key >> 29;
}

/* What sizing stage s reads that its band height does not change, per
 * position in its order (the planner's flags, row_bytes, end, reuse_in,
 * ahead, made_flops): worked out once for the keep set, not for every
 * height the search tries, nor in every band. Uses p->shift as scratch
 * and moves p->epoch on (its marks are the walks' too). */
void sr_plan_prepare_stage(planner *p, const sr_plan *plan, const sr_stage *s)
{
    const sr_graph *g = p->g;
    p->epoch++;
    for (int k = 0; k < s->n_order; k++) {
        p->mark[s->order[k]] = p->epoch;
        p->pos[s->order[k]] = k;
    }
    bool windows = false;
    p->made_flops = 0;
    p->stage_key = mix_key((uint64_t)s->index, (uint64_t)s->n_order);
    p->spans_key = p->stage_key;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_shape sh = p->shapes[n];
        const bool kept = plan->keep[n], spilled = kept && plan->spill[n];
        const bool window = spilled && sr_plan_windowed(p, plan, n);
        p->flags[k] = (unsigned char)((kept ? AT_KEPT : 0) | (spilled ? AT_SPILLED : 0) |
                                      (window ? AT_WINDOW : 0) |
                                      (spilled_before(plan, s->index, n) ? AT_IN_FILE : 0) |
                                      (sr_plan_in_memory(plan, n) ? AT_IN_MEMORY : 0));
        p->stage_key = mix_key(p->stage_key, (uint64_t)n << 8 | p->flags[k]);
        p->spans_key = mix_key(p->spans_key, (uint64_t)n << 1 | !!(p->flags[k] & AT_IN_FILE));
        windows = windows || (window && p->home[n] == s->index);
        if (kept && plan->first_stage[n] == s->index)
            p->made_flops += p->flops[n];
        p->row_bytes[k] = sh.c * sh.w * (int64_t)sizeof(float);
        /* Last reader within the stage; the target lives to the band's end. */
        p->end[k] = n == s->target ? s->n_order : k;
        for (int c = 0; c < p->n_consumers[n]; c++) {
            const int consumer = p->consumers[n][c];
            if (p->mark[consumer] == p->epoch && p->pos[consumer] > p->end[k])
                p->end[k] = p->pos[consumer];
        }
        /* An elementwise op may write over an input that dies with it
         * (pack_arena checks the rest); a spilled node's buffer holds more
         * rows than it computes. */
        const sr_node *node = &g->nodes[n];
        const sr_op_desc *d = sr_op_get(node->op);
        int *reuse = p->reuse_in + (size_t)k * SR_STAGE_INPUTS;
        if (d->in_place && d->halo(node) == 0 && d->scale(node) == 1 && !kept)
            for (int j = 0; j < node->n_inputs; j++) {
                const int i = node->inputs[j];
                if (p->mark[i] == p->epoch && !plan->keep[i] && p->n_consumers[i] == 1)
                    *reuse++ = p->pos[i];
            }
        *reuse = -1;
    }
    /* Lead-in bands for its windows: as many as the rows its nodes run
     * ahead of the target (halos and scales summed along the deepest path,
     * in target rows) take at a band's height; none for a stage without
     * windows (its band buffers keep nothing from band to band). */
    p->ahead = 0;
    if (!windows)
        return;
    int64_t *ahead = p->shift; /* scratch: rows each node runs ahead */
    for (int k = 0; k < s->n_order; k++)
        ahead[s->order[k]] = 0;
    const int64_t H = p->shapes[s->target].h;
    for (int k = s->n_order - 1; k >= 0; k--) {
        const int n = s->order[k];
        const int64_t scale = plan->scale[n];
        const int64_t rows = sr_div_ceil(ahead[n] * H, p->shapes[n].h) + 1;
        p->ahead = rows > p->ahead ? rows : p->ahead;
        for (const int *i = s->inputs + (size_t)k * SR_STAGE_INPUTS; *i >= 0; i++) {
            /* Its rows to a whole tile, then the halo above them. */
            const int64_t align = plan->row_tiling[n].align;
            const int64_t a =
                sr_div_ceil(sr_div_ceil(ahead[n], align) * align, scale) + plan->row_tiling[n].halo;
            ahead[*i] = a > ahead[*i] ? a : ahead[*i];
        }
    }
}

/* Packs the band buffers of stage s (sizes from max_rows) by liveness:
 * first fit, and an elementwise op writes over an input dying with it. */
static int64_t pack_arena(planner *p, sr_stage *s)
{
    live_block *active = p->active;
    int n_blocks = 0, n_active = 0;
    int first_end = INT32_MAX; /* no live block ends before it */
    int64_t arena = 0;
    for (int k = 0; k < s->n_order; k++) {
        p->owner[k] = -1;
        if ((p->flags[k] & AT_IN_MEMORY) || s->max_rows[k] == 0)
            continue;
        const int end = p->end[k];
        const int64_t size = s->max_rows[k] * p->row_bytes[k];
        int reuse = -1;
        for (const int *i = p->reuse_in + (size_t)k * SR_STAGE_INPUTS; *i >= 0 && reuse < 0; i++) {
            const int b = p->owner[*i];
            if (b >= 0 && p->blocks[b].end == k && s->max_rows[*i] == s->max_rows[k])
                reuse = b;
        }
        if (reuse >= 0) {
            p->blocks[reuse].end = end;
            p->owner[k] = reuse;
            s->offset[k] = p->blocks[reuse].offset;
            continue;
        }
        /* The lowest 64-byte aligned offset that overlaps no block alive at
         * position k (each jump passes only offsets that would overlap).
         * Those blocks never overlap each other and are kept by offset, so
         * one pass finds it: a jump past a block is past all before it. */
        if (first_end < k) {
            int live = 0;
            first_end = INT32_MAX;
            for (int a = 0; a < n_active; a++) {
                const int e = p->blocks[active[a].block].end;
                if (e >= k) {
                    active[live++] = active[a];
                    first_end = e < first_end ? e : first_end;
                }
            }
            n_active = live;
        }
        int64_t at = 0; /* up to the first block at or above at + size, as are those after it */
        for (int a = 0; a < n_active && active[a].offset < at + size; a++)
            if (at < active[a].top)
                at = (active[a].top + 63) & ~(int64_t)63;
        first_end = end < first_end ? end : first_end;
        p->blocks[n_blocks] = (block){at, end};
        p->owner[k] = n_blocks;
        int a = n_active++;
        for (; a > 0 && active[a - 1].offset > at; a--)
            active[a] = active[a - 1];
        active[a] = (live_block){at, size > 0 ? at + size : 0, n_blocks++};
        s->offset[k] = at;
        if (at + size > arena)
            arena = at + size;
    }
    return arena;
}

/* The spans of stage s (prepared) for target rows [t0, t1) from its first
 * state into p->need and p->comp, if m holds them. */
static bool recall_first_spans(planner *p, const first_spans *m, uint64_t key, const sr_stage *s,
                               int64_t t0, int64_t t1)
{
    if (m->key != key || m->index != s->index || m->n_order != s->n_order || m->t0 != t0 ||
        m->t1 != t1 || memcmp(m->order, s->order, (size_t)s->n_order * sizeof *m->order) != 0)
        return false;
    for (int k = 0; k < s->n_order; k++)
        if (m->in_file[k] != !!(p->flags[k] & AT_IN_FILE))
            return false;
    for (int k = 0; k < s->n_order; k++) {
        p->need[s->order[k]] = m->need[k];
        p->comp[s->order[k]] = m->comp[k];
    }
    return true;
}

/* Keeps them in m (unless there is no memory for it). */
static void remember_first_spans(planner *p, first_spans *m, uint64_t key, const sr_stage *s,
                                 int64_t t0, int64_t t1)
{
    m->key = 0;
    if (s->n_order > m->capacity) {
        const size_t n = (size_t)s->n_order;
        bool ok = true;
        m->order = resize(m->order, n, sizeof *m->order, &ok);
        m->in_file = resize(m->in_file, n, sizeof *m->in_file, &ok);
        m->need = resize(m->need, n, sizeof *m->need, &ok);
        m->comp = resize(m->comp, n, sizeof *m->comp, &ok);
        if (!ok)
            return;
        m->capacity = s->n_order;
    }
    memcpy(m->order, s->order, (size_t)s->n_order * sizeof *m->order);
    for (int k = 0; k < s->n_order; k++) {
        m->in_file[k] = p->flags[k] & AT_IN_FILE;
        m->need[k] = p->need[s->order[k]];
        m->comp[k] = p->comp[s->order[k]];
    }
    m->index = s->index;
    m->n_order = s->n_order;
    m->t0 = t0;
    m->t1 = t1;
    m->key = key;
}

/* Band b of stage s (prepared): records the rows each band buffer needs,
 * and returns the FLOPs of the nodes that are not kept (p->node_flops gets
 * every node's). */
static int64_t simulate_band(planner *p, const sr_plan *plan, sr_stage *s, int64_t b)
{
    const int64_t H = p->shapes[s->target].h, t0 = b * s->band_rows;
    const int64_t t1 = t0 + s->band_rows < H ? t0 + s->band_rows : H;
    const uint64_t key = mix_key(mix_key(p->spans_key, (uint64_t)t0), (uint64_t)t1) | 1;
    first_spans *m = p->at_first ? &p->first[(key >> 1) % FIRST_SPANS_SLOTS] : NULL;
    const bool walked = !m || !recall_first_spans(p, m, key, s, t0, t1);
    if (walked)
        sr_plan_band_spans(plan, s, t0, t1, p->done, p->need, p->comp);
    p->work += s->n_order;
    /* In locals: a store through one of the arrays could, as far as the
     * compiler knows, change the planner's fields, reloaded every node. */
    const int *order = s->order;
    const unsigned char *flags = p->flags;
    const int64_t *row_bytes = p->row_bytes, *row_flops = p->row_flops;
    const int64_t *band_flops = p->band_flops;
    const sr_shape *shapes = p->shapes;
    const sr_span *needs = p->need, *comps = p->comp;
    int64_t *done = p->done, *window = p->window, *node_flops = p->node_flops;
    int64_t *max_rows = s->max_rows;
    int64_t flops = 0, io = 0, window_io = 0, overhead = 0;
    bool at_edge = false;
    for (int k = 0; k < s->n_order; k++) {
        const int n = order[k];
        const sr_span c = comps[n];
        if (c.hi == INT64_MIN)
            continue; /* no node of the band reads it */
        const sr_span need = needs[n];
        if (need.lo < need.hi && (need.lo == 0 || need.hi >= shapes[n].h))
            at_edge = true;
        const bool spilled = flags[k] & AT_SPILLED, windowed = flags[k] & AT_WINDOW;
        if (spilled && need.lo < need.hi) {
            /* Its buffer holds the band's rows: those already made are
             * read back (from the file, or the window, which must reach
             * back to need.lo), the rest computed and written. */
            const int64_t in_file = (need.hi < done[n] ? need.hi : done[n]) - need.lo;
            if (in_file > 0 && windowed) {
                window_io += 2 * in_file * row_bytes[k]; /* written, then read */
                if (done[n] - need.lo > window[n])
                    window[n] = done[n] - need.lo;
            } else if (in_file > 0) {
                io += in_file * row_bytes[k];
            }
            if (need.hi - need.lo > max_rows[k])
                max_rows[k] = need.hi - need.lo;
        }
        if (c.lo >= c.hi)
            continue;
        const int64_t f = row_flops[n] * (c.hi - c.lo);
        node_flops[n] += f;
        overhead += band_flops[n];
        if (flags[k] & AT_KEPT) {
            done[n] = c.hi;
            io += spilled && !windowed ? (c.hi - c.lo) * row_bytes[k] : 0;
            continue;
        }
        if (need.hi - need.lo > max_rows[k])
            max_rows[k] = need.hi - need.lo;
        flops += f;
    }
    p->io += io;
    p->window_io += window_io;
    p->overhead += overhead;
    p->at_edge = at_edge;
    if (m && walked)
        remember_first_spans(p, m, key, s, t0, t1);
    p->at_first = false;
    return flops;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        const int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Bands of stage s per period: a run of bands that far apart moves every
 * node's rows by whole multiples of its alignment and scale, so bands a
 * period apart meet their rows alike wherever no image edge clips them.
 * Sets p->shift; 0 when the shapes allow no period shorter than the image. */
static int64_t band_period(planner *p, const sr_plan *plan, const sr_stage *s)
{
    const int64_t H = p->shapes[s->target].h;
    int64_t rows = 1; /* target rows of the shortest such move */
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_node *node = &p->g->nodes[n];
        const int64_t scale = plan->scale[n], h = p->shapes[n].h;
        for (int j = 0; j < node->n_inputs; j++) {
            const int i = node->inputs[j];
            if (!available_whole(plan, s->index, i) && p->shapes[i].h * scale != h)
                return 0;
        }
        const int64_t a = plan->row_tiling[n].align;
        const int64_t m = a / gcd64(a, scale) * scale; /* node rows a move must be a multiple of */
        const int64_t q = H * m / gcd64(H * m, h);     /* the target rows that move h by m */
        if (q > H)
            return 0;
        rows = rows / gcd64(rows, q) * q;
        if (rows > H)
            return 0;
    }
    const int64_t bands = rows / gcd64(rows, s->band_rows);
    for (int k = 0; k < s->n_order; k++)
        p->shift[s->order[k]] = bands * s->band_rows / rows * (rows * p->shapes[s->order[k]].h / H);
    return bands;
}

/* How many periods later the band just simulated would still be clear of
 * the image's edges (its spans neither start at row 0 nor reach the end,
 * where they are clipped): 0 if it touches one. */
static int64_t periods_clear(const planner *p, const sr_stage *s)
{
    int64_t clear = INT64_MAX;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_span r = p->need[n];
        if (r.lo >= r.hi)
            continue;
        if (r.lo <= 0 || r.hi >= p->shapes[n].h)
            return 0;
        const int64_t c = (p->shapes[n].h - 1 - r.hi) / p->shift[n];
        clear = c < clear ? c : clear;
    }
    return clear;
}

/* Every band of stage s in turn; returns the FLOPs of the nodes that are
 * not kept. Bands clear of the image's edges are translations of each
 * other: once a period of them leaves the kept rows exactly one period's
 * shift past where the period before left them, every further period up
 * to the edge would repeat it, so they are counted, not simulated. This
 * keeps exact sizing of a tall image's thin bands as cheap as a short
 * image's. */
static int64_t simulate_bands(planner *p, const sr_plan *plan, sr_stage *s)
{
    const int64_t period = s->n_bands > 16 ? band_period(p, plan, s) : 0;
    int64_t flops = 0, mark = INT64_MIN, mark_flops = 0, mark_io = 0, mark_window_io = 0;
    int64_t mark_overhead = 0;
    int64_t clear = 0;
    for (int64_t b = s->first_band; b < s->n_bands;) {
        if (period && mark != INT64_MIN && b - mark == period) {
            bool repeats = clear > 0;
            for (int k = 0; k < s->n_order && repeats; k++) {
                const int n = s->order[k];
                repeats = !(p->flags[k] & AT_KEPT) || (p->flags[k] & AT_IN_FILE) ||
                          p->done[n] == p->snap_done[n] + p->shift[n];
            }
            const int64_t left = (s->n_bands - b) / period;
            const int64_t skip = clear < left ? clear : left;
            if (repeats && skip > 0) {
                for (int k = 0; k < s->n_order; k++) {
                    const int n = s->order[k];
                    p->node_flops[n] += skip * (p->node_flops[n] - p->snap_flops[n]);
                    if ((p->flags[k] & AT_KEPT) && !(p->flags[k] & AT_IN_FILE))
                        p->done[n] += skip * p->shift[n];
                }
                flops += skip * (flops - mark_flops);
                p->io += skip * (p->io - mark_io);
                p->window_io += skip * (p->window_io - mark_window_io);
                p->overhead += skip * (p->overhead - mark_overhead);
                b += skip * period;
            }
            mark = INT64_MIN;
        }
        if (period && mark == INT64_MIN) {
            for (int k = 0; k < s->n_order; k++) {
                p->snap_done[s->order[k]] = p->done[s->order[k]];
                p->snap_flops[s->order[k]] = p->node_flops[s->order[k]];
            }
            mark = b;
            mark_flops = flops;
            mark_io = p->io;
            mark_window_io = p->window_io;
            mark_overhead = p->overhead;
            clear = INT64_MAX;
        }
        if (b >= s->n_bands)
            break;
        flops += simulate_band(p, plan, s, b++);
        if (period) {
            const int64_t c = p->at_edge ? 0 : periods_clear(p, s);
            clear = c < clear ? c : clear;
        }
    }
    return flops;
}

/* Rows of each node of stage s computed before its first band: all of a
 * tensor spilled by an earlier stage, nothing of the others. */
static void reset_done(planner *p, const sr_stage *s)
{
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        p->done[n] = p->flags[k] & AT_IN_FILE ? p->shapes[n].h : 0;
    }
    p->at_first = true;
}

/* Stage s (prepared, its band_rows set) as m sized it, if m holds its
 * sizing, with p->window and the work. */
static bool recall_sizing(planner *p, const sizing *m, uint64_t key, sr_stage *s, bool exact)
{
    if (m->key != key || m->index != s->index || m->n_order != s->n_order ||
        m->band_rows != s->band_rows || m->exact != exact ||
        memcmp(m->order, s->order, (size_t)s->n_order * sizeof *m->order) != 0 ||
        memcmp(m->flags, p->flags, (size_t)s->n_order * sizeof *m->flags) != 0)
        return false;
    memcpy(s->max_rows, m->max_rows, (size_t)s->n_order * sizeof *s->max_rows);
    memcpy(s->offset, m->offset, (size_t)s->n_order * sizeof *s->offset);
    for (int k = 0; k < s->n_order; k++)
        p->window[s->order[k]] = m->window[k];
    s->n_bands = m->n_bands;
    s->first_band = m->first_band;
    s->flops = m->flops;
    s->scratch_io = m->scratch_io;
    s->window_io = m->window_io;
    s->overhead = m->overhead;
    s->window_bytes = m->window_bytes;
    s->arena_bytes = m->arena_bytes;
    s->workspace_bytes = p->workspace;
    p->work += m->work;
    return true;
}

/* Keeps stage s's sizing in m (unless there is no memory for it: the
 * memo only saves time). */
static void remember_sizing(planner *p, sizing *m, uint64_t key, const sr_stage *s, bool exact,
                            int64_t work)
{
    m->key = 0;
    if (s->n_order > m->capacity) {
        const size_t n = (size_t)s->n_order;
        bool ok = true;
        m->order = resize(m->order, n, sizeof *m->order, &ok);
        m->flags = resize(m->flags, n, sizeof *m->flags, &ok);
        m->max_rows = resize(m->max_rows, n, sizeof *m->max_rows, &ok);
        m->offset = resize(m->offset, n, sizeof *m->offset, &ok);
        m->window = resize(m->window, n, sizeof *m->window, &ok);
        if (!ok)
            return;
        m->capacity = s->n_order;
    }
    memcpy(m->order, s->order, (size_t)s->n_order * sizeof *m->order);
    memcpy(m->flags, p->flags, (size_t)s->n_order * sizeof *m->flags);
    memcpy(m->max_rows, s->max_rows, (size_t)s->n_order * sizeof *m->max_rows);
    memcpy(m->offset, s->offset, (size_t)s->n_order * sizeof *m->offset);
    for (int k = 0; k < s->n_order; k++)
        m->window[k] = p->window[s->order[k]];
    m->index = s->index;
    m->n_order = s->n_order;
    m->exact = exact;
    m->band_rows = s->band_rows;
    m->n_bands = s->n_bands;
    m->first_band = s->first_band;
    m->flops = s->flops;
    m->scratch_io = s->scratch_io;
    m->window_io = s->window_io;
    m->overhead = s->overhead;
    m->window_bytes = s->window_bytes;
    m->arena_bytes = s->arena_bytes;
    m->work = work;
    m->key = key;
}

/* Sizes stage s (prepared) for bands of h target rows: exact (every band
 * accounted) or, for the search, from the first band (the widest, as kept
 * tensors start there with nothing computed) and a band in the middle. */
void sr_plan_size_stage(planner *p, const sr_plan *plan, sr_stage *s, int64_t h, bool exact)
{
    const int64_t H = p->shapes[s->target].h;
    s->band_rows = h < H ? h : H;
    const uint64_t key = mix_key(mix_key(p->stage_key, (uint64_t)s->band_rows), exact) | 1;
    sizing *m = &p->memo[(key >> 1) % MEMO_SLOTS];
    if (recall_sizing(p, m, key, s, exact))
        return;
    const int64_t work = p->work;
    s->n_bands = (int)((H + s->band_rows - 1) / s->band_rows);
    const int64_t lead_in = sr_div_ceil(p->ahead, s->band_rows);
    s->first_band = -(int)(lead_in < INT32_MAX / 2 ? lead_in : INT32_MAX / 2);
    for (int k = 0; k < s->n_order; k++) {
        s->max_rows[k] = 0;
        p->node_flops[s->order[k]] = 0;
        p->window[s->order[k]] = 0;
    }
    reset_done(p, s);
    p->io = p->window_io = p->overhead = 0;
    int64_t flops = 0;
    /* With lead-in bands, the windows are widest near the top, where the
     * deeper nodes have run ahead of their slowest readers: only every
     * band shows that. */
    if (exact || s->n_bands <= 3 || s->first_band < 0) {
        flops = simulate_bands(p, plan, s);
    } else {
        simulate_band(p, plan, s, s->first_band);
        const int64_t mid = s->n_bands / 2;
        reset_done(p, s);
        simulate_band(p, plan, s, mid - 1); /* so that mid starts where kept rows end */
        p->io = p->window_io = p->overhead = 0;
        flops = simulate_band(p, plan, s, mid) * s->n_bands;
        p->io *= s->n_bands;
        p->window_io *= s->n_bands;
        p->overhead *= s->n_bands;
    }
    /* Kept nodes are computed exactly once, in the stage that first needs
     * them. */
    s->flops = flops + p->made_flops;
    s->scratch_io = p->io;
    s->window_io = p->window_io;
    s->overhead = p->overhead;
    s->window_bytes = 0;
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        if (p->home[n] == s->index && (p->flags[k] & AT_WINDOW))
            s->window_bytes += p->window[n] * p->row_bytes[k];
    }
    s->arena_bytes = pack_arena(p, s);
    s->workspace_bytes = p->workspace;
    remember_sizing(p, m, key, s, exact, p->work - work);
}

/* The least stage s can cost: the FLOPs of the nodes it computes once
 * at least (every row of those every band computes, and the kept ones
 * it makes), and per band, the overhead of those every band computes:
 * the target, unless kept, and back from it the nodes not kept (a kept
 * node makes only rows no band made before, and a band may need none). */
static void stage_floor(planner *p, const sr_plan *plan, const sr_stage *s, int64_t *flops,
                        int64_t *per_band)
{
    p->epoch++;
    for (int k = 0; k < s->n_order; k++) {
        p->mark[s->order[k]] = p->epoch;
        p->every[s->order[k]] = false;
    }
    if (s->n_order && s->order[s->n_order - 1] == s->target && !plan->keep[s->target])
        p->every[s->target] = true;
    *flops = *per_band = 0;
    for (int k = s->n_order - 1; k >= 0; k--) {
        const int n = s->order[k];
        if (plan->keep[n] && plan->first_stage[n] == s->index)
            *flops += p->flops[n];
        if (!p->every[n])
            continue;
        *flops += p->row_flops[n] * p->shapes[n].h;
        *per_band += p->band_flops[n];
        for (int j = 0; j < p->g->nodes[n].n_inputs; j++) {
            const int i = p->g->nodes[n].inputs[j];
            if (p->mark[i] == p->epoch && !plan->keep[i])
                p->every[i] = true;
        }
    }
}

/* Leaves stage s costing more than p->stage_bound and over the budget by
 * a petabyte, so that nothing takes it for a plan that fits. */
static void beyond_bound(const planner *p, sr_stage *s)
{
    s->flops = s->scratch_io = s->window_io = 0;
    /* (The bound is a real cost, below INT64_MAX.) */
    s->overhead = (p->stage_bound > 0 ? p->stage_bound : 0) + 1;
    s->arena_bytes = INT64_C(1) << 50; /* summed over stages, no overflow */
}

/* Bands for stage s (its cone built, its kept bytes set): the largest
 * height that fits the budget, or `probe` rows when probe > 0. A search
 * that can only end in bands costing more than p->stage_bound stops
 * there (beyond_bound): when even the floor of the bands left does, or
 * when bands too tall to fit already cost twice the bound (thinner ones
 * recompute more halo rows, copy more window rows and pay more bands'
 * overhead). Twice, as the cost is not quite monotone in the height: cut
 * at the bound itself, the search's toggles chose RealESRGAN_x4plus's
 * 700x700 plan under 1G 12% costlier. RealESRGAN_x4plus's windowed seed
 * at 96x60 went down to 2-row bands, half of its planning, to cost 5 times
 * its bound. */
void sr_plan_stage(planner *p, const sr_plan *plan, sr_stage *s, int64_t probe, bool exact)
{
    const int64_t budget = p->budget;
    const int64_t H = p->shapes[s->target].h;
    /* Bands in multiples of the target's rows per input row, so that
     * every band meets the low-resolution rows the same way. */
    const int64_t align = H / p->shapes[0].h > 1 ? H / p->shapes[0].h : 1;
    int64_t h = probe ? probe * align : p->req->tile_rows ? p->req->tile_rows : H;
    sr_plan_prepare_stage(p, plan, s);
    sr_plan_size_stage(p, plan, s, h, exact);
    if (!probe && !p->req->tile_rows && budget && sr_plan_stage_peak(plan, s) > budget) {
        int64_t floor_flops = 0, per_band = 0;
        if (p->stage_bound < INT64_MAX)
            stage_floor(p, plan, s, &floor_flops, &per_band);
        int64_t lo = 1, hi = H; /* largest fitting h in [lo, hi) */
        while (hi - lo > 1) {
            if (p->stage_bound < INT64_MAX &&
                floor_flops + sr_div_ceil(H, hi - 1) * per_band > p->stage_bound) {
                beyond_bound(p, s);
                return;
            }
            int64_t mid = lo + (hi - lo) / 2;
            mid = mid >= align ? mid / align * align : mid;
            if (mid <= lo)
                break;
            sr_plan_size_stage(p, plan, s, mid, false);
            if (sr_plan_stage_peak(plan, s) <= budget) {
                lo = mid;
            } else if (sr_plan_stage_cost(s) / 2 > p->stage_bound) {
                beyond_bound(p, s);
                return;
            } else {
                hi = mid;
            }
        }
        sr_plan_size_stage(p, plan, s, lo, exact);
    }
}

/* FLOPs of each node as the plan computes it: every band of every stage. */
void sr_plan_count_node_flops(planner *p, sr_plan *plan)
{
    for (int si = 0; si < plan->n_stages; si++) {
        sr_stage *s = &plan->stages[si];
        for (int k = 0; k < s->n_order; k++)
            p->node_flops[s->order[k]] = 0;
        sr_plan_prepare_stage(p, plan, s);
        reset_done(p, s);
        simulate_bands(p, plan, s);
        for (int k = 0; k < s->n_order; k++)
            plan->node_flops[s->order[k]] += p->node_flops[s->order[k]];
    }
}
