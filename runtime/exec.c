/* The executor: follows a plan exactly (which nodes, which rows, which
 * buffers); the planner made every decision. It owns the run's memory:
 * the arena, the kept tensors (all from the backend's memory), the global
 * ops' statistics and the scratch file of the spilled tensors. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/scratch.h"

/* Rows cross between the host and the backend's memory in pieces of about
 * this size (a row at least): few calls, and a buffer small next to any
 * plan's. */
#define STAGING_BYTES (INT64_C(4) << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A buffer a stage allocates: its arena (SR_ROWS_BAND), or a kept node's
 * whole tensor (SR_ROWS_KEPT). */
typedef struct stage_buffer {
    sr_rows_home home;
    int node;
    int64_t bytes;
} stage_buffer;

typedef struct run_state {
    const sr_backend_memory *memory; /* the backend's */
    void *ctx;
    float *arena;
    int64_t arena_bytes;
    sr_tensor *kept;   /* whole tensors: the input and the kept nodes */
    sr_tensor *band;   /* this band's buffer of each node */
    float **stats;     /* per global node */
    double *acc;
    int64_t *done;
    sr_span *need, *comp;
    stage_buffer *order; /* allocate_stage's list */
    float *staging;    /* rows crossing to or from the host */
    int64_t staging_floats;
    int scratch;          /* the scratch file, or -1 */
    float **window;       /* SR_ROWS_WINDOW nodes' rows, in host memory, per channel
                             window_rows rows: row y at y % window_rows */
    void **held;          /* sr_exec_held's slots, or NULL */
} run_state;

static int64_t tensor_bytes(sr_shape s) { return sr_shape_numel(s) * (int64_t)sizeof(float); }

/* Why an allocation failed when the backend itself has failed: a device
 * kernel's fault shows at the next call, which may be the allocation; its
 * status then, not a lack of memory. SR_OK for a plain lack. */
static sr_status memory_fault(run_state *r, sr_error *err)
{
    return r->memory->synchronize(r->ctx, err);
}

/* A held buffer stays in its slot for the next run. */
static void give_back(run_state *r, void *p, int64_t bytes)
{
    if (p && !r->held)
        r->memory->release(r->ctx, p, bytes);
}

/* Gives back the pages the backend keeps for reuse, unless the run's
 * buffers are held: then nothing was given back. */
static void trim(run_state *r)
{
    if (!r->held)
        r->memory->trim(r->ctx);
}

static void run_state_free(run_state *r, const sr_plan *plan)
{
    for (int n = 0; r->kept && n < plan->n_nodes; n++)
        give_back(r, r->kept[n].data, tensor_bytes(plan->shapes[n]));
    for (int n = 0; r->stats && n < plan->n_nodes; n++)
        free(r->stats[n]);
    for (int n = 0; r->window && n < plan->n_nodes; n++)
        free(r->window[n]);
    give_back(r, r->arena, r->arena_bytes);
    trim(r);
    if (r->scratch >= 0)
        close(r->scratch);
    free(r->staging);
    free(r->window);
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
                                const sr_backend_handle *be, const char *scratch_dir,
                                sr_exec_held *held, sr_error *err)
{
    const size_t n = (size_t)plan->n_nodes;
    memset(r, 0, sizeof *r);
    r->scratch = -1;
    r->memory = be->iface->memory;
    r->ctx = be->ctx;
    if (held && !held->slots && !(held->slots = calloc(n + (size_t)plan->n_stages, sizeof(void *))))
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    r->held = held ? held->slots : NULL;
    r->kept = calloc(n, sizeof *r->kept);
    r->band = calloc(n, sizeof *r->band);
    r->stats = calloc(n, sizeof *r->stats);
    r->done = calloc(n, sizeof *r->done);
    r->need = calloc(n, sizeof *r->need);
    r->comp = calloc(n, sizeof *r->comp);
    r->order = calloc(n + 1, sizeof *r->order);
    r->window = calloc(n, sizeof *r->window);
    if (!r->kept || !r->band || !r->stats || !r->done || !r->need || !r->comp || !r->order ||
        !r->window)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (plan->scratch_bytes > 0) {
        sr_status st = sr_scratch_open(scratch_dir, plan->scratch_bytes, &r->scratch, err);
        if (st != SR_OK)
            return st;
    }
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
    r->staging_floats = sr_exec_staging_bytes(plan->shapes[0], plan->shapes[plan->n_nodes - 1]) /
                        (int64_t)sizeof(float);
    r->staging = malloc((size_t)r->staging_floats * sizeof(float));
    if (!r->staging)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    return SR_OK;
}

/* Memory from the backend, or why there is none: its failure, else a lack
 * (NULL and SR_OK). slot: sr_exec_held's for the buffer, which serves it
 * when held. */
static void *allocate(run_state *r, int64_t bytes, int slot, sr_status *st, sr_error *err)
{
    void *p = r->held && r->held[slot] ? r->held[slot] : r->memory->alloc(r->ctx, bytes);
    if (r->held)
        r->held[slot] = p;
    *st = p ? SR_OK : memory_fault(r, err);
    return p;
}

/* Each stage gets an arena of its own size, given back at its end: one
 * arena of the largest size would keep every page some stage touched
 * resident, beyond the plan's per-stage peak. Stage si's buffers (its
 * arena and the kept tensors it computes) are asked for largest first, so
 * that host memory serves them from what the last stage gave back; the
 * rest of that is trimmed away, so the resident memory stays within the
 * plan's. */
static sr_status allocate_stage(run_state *r, const sr_plan *plan, int si, sr_error *err)
{
    const sr_stage *s = &plan->stages[si];
    stage_buffer *order = r->order;
    int n_buffers = 0;
    if (s->arena_bytes > 0)
        order[n_buffers++] = (stage_buffer){SR_ROWS_BAND, 0, s->arena_bytes};
    for (int n = 0; n < plan->n_nodes; n++) {
        if (sr_plan_rows_home(plan, n) != SR_ROWS_KEPT || plan->first_stage[n] != si)
            continue;
        const stage_buffer b = {SR_ROWS_KEPT, n, tensor_bytes(plan->shapes[n])};
        int k = n_buffers++;
        for (; k > 0 && order[k - 1].bytes < b.bytes; k--)
            order[k] = order[k - 1];
        order[k] = b;
        r->done[n] = 0;
    }
    r->arena_bytes = s->arena_bytes;
    sr_status st = SR_OK;
    for (int n = 0; n < plan->n_nodes && st == SR_OK; n++) {
        if (sr_plan_rows_home(plan, n) != SR_ROWS_WINDOW || plan->first_stage[n] != si)
            continue;
        const sr_shape sh = plan->shapes[n];
        r->window[n] = malloc((size_t)(plan->window_rows[n] * sh.c * sh.w) * sizeof(float));
        if (!r->window[n])
            st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a window of %lld rows",
                         (long long)plan->window_rows[n]);
    }
    for (int k = 0; k < n_buffers && st == SR_OK; k++) {
        const stage_buffer *b = &order[k];
        const sr_shape sh = plan->shapes[b->node];
        const int slot = b->home == SR_ROWS_BAND ? plan->n_nodes + si : b->node;
        void *p = allocate(r, b->bytes, slot, &st, err);
        if (b->home == SR_ROWS_BAND) {
            r->arena = p;
            if (!p && st == SR_OK)
                st = sr_fail(err, SR_ERR_NO_MEMORY,
                             "out of memory for %lld bytes of band buffers", (long long)b->bytes);
        } else {
            r->kept[b->node] = sr_tensor_whole(sh, p);
            if (!p && st == SR_OK)
                st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a %lldx%lldx%lld tensor",
                             (long long)sh.c, (long long)sh.h, (long long)sh.w);
        }
    }
    trim(r);
    return st;
}

/* Discards spilled node n's place in the scratch file, its last stage
 * done, but for the span that nodes spilled in later stages overwrite: a
 * write into pages the file has costs a copy, one that must first
 * allocate them costs seven times as much (4.0 against 0.55 GB/s here),
 * and under a tight budget the writes are the serial tail of each band. */
static void discard_spilled(run_state *r, const sr_plan *plan, int n)
{
    const int64_t lo = plan->scratch_offset[n], hi = lo + tensor_bytes(plan->shapes[n]);
    int64_t a = hi, b = lo; /* the span overwritten later, if a < b */
    for (int m = 1; m < plan->n_nodes; m++) {
        if (sr_plan_rows_home(plan, m) != SR_ROWS_SPILLED ||
            plan->first_stage[m] <= plan->last_stage[n])
            continue;
        const int64_t m_lo = plan->scratch_offset[m], m_hi = m_lo + tensor_bytes(plan->shapes[m]);
        if (m_lo >= hi || m_hi <= lo)
            continue;
        const int64_t from = m_lo > lo ? m_lo : lo, to = m_hi < hi ? m_hi : hi;
        a = from < a ? from : a;
        b = to > b ? to : b;
    }
    if (a >= b) {
        sr_scratch_discard(r->scratch, lo, hi - lo);
        return;
    }
    if (a > lo)
        sr_scratch_discard(r->scratch, lo, a - lo);
    if (b < hi)
        sr_scratch_discard(r->scratch, b, hi - b);
}

/* Rows [lo, hi) of spilled node n between its band buffer and the scratch
 * file (`write`: to the file), channel by channel: straight from host
 * memory, through the staging buffer from a device's. */
static sr_status spill_rows(run_state *r, const sr_plan *plan, int n, const sr_tensor *band,
                            int64_t lo, int64_t hi, bool write, sr_error *err)
{
    const sr_shape sh = plan->shapes[n];
    const bool host = r->memory->is_host;
    const int64_t step = host ? hi - lo : r->staging_floats / sh.w;
    if (step < 1)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "plan: node %d's rows pass no staging buffer",
                       n);
    sr_status st = SR_OK;
    for (int64_t c = 0; c < sh.c && st == SR_OK; c++)
        for (int64_t y = lo; y < hi && st == SR_OK; y += step) {
            const int64_t bytes = (y + step < hi ? step : hi - y) * sh.w * (int64_t)sizeof(float);
            const int64_t at =
                plan->scratch_offset[n] + (c * sh.h + y) * sh.w * (int64_t)sizeof(float);
            float *rows = sr_tensor_row(band, c, y);
            if (host && write)
                st = sr_scratch_write(r->scratch, rows, bytes, at, err);
            else if (host)
                st = sr_scratch_read(r->scratch, rows, bytes, at, err);
            else if (write) {
                st = r->memory->download(r->ctx, r->staging, rows, bytes, err);
                if (st == SR_OK)
                    st = sr_scratch_write(r->scratch, r->staging, bytes, at, err);
            } else {
                st = sr_scratch_read(r->scratch, r->staging, bytes, at, err);
                if (st == SR_OK)
                    st = r->memory->upload(r->ctx, rows, r->staging, bytes, err);
            }
        }
    return st;
}

/* Rows [lo, hi) of windowed node n between its band buffer and its window
 * (`write`: to the window), in runs that do not wrap around the window.
 * The planner makes windows for host backends only. */
static void window_rows(run_state *r, const sr_plan *plan, int n, const sr_tensor *band,
                        int64_t lo, int64_t hi, bool write)
{
    const sr_shape sh = plan->shapes[n];
    const int64_t w = plan->window_rows[n];
    for (int64_t c = 0; c < sh.c; c++)
        for (int64_t y = lo; y < hi;) {
            const int64_t slot = y % w, run = hi - y < w - slot ? hi - y : w - slot;
            float *rows = sr_tensor_row(band, c, y);
            float *kept = r->window[n] + (c * w + slot) * sh.w;
            memcpy(write ? kept : rows, write ? rows : kept, (size_t)(run * sh.w) * sizeof(float));
            y += run;
        }
}

static sr_status run_band(run_state *r, const sr_graph *g, const sr_plan *plan,
                          const sr_stage *s, const sr_backend_handle *be, int64_t t0,
                          int64_t t1, double *node_seconds, sr_error *err)
{
    sr_plan_band_spans(plan, s, t0, t1, r->done, r->need, r->comp);
    for (int k = 0; k < s->n_order; k++) {
        const int n = s->order[k];
        const sr_rows_home home = sr_plan_rows_home(plan, n);
        if ((home != SR_ROWS_BAND && home != SR_ROWS_SPILLED && home != SR_ROWS_WINDOW) ||
            r->need[n].lo >= r->need[n].hi)
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
        const sr_span c = r->comp[n], need = r->need[n];
        const sr_rows_home home = sr_plan_rows_home(plan, n);
        const bool spilled = home == SR_ROWS_SPILLED, windowed = home == SR_ROWS_WINDOW;
        if ((spilled || windowed) && need.lo < need.hi && need.lo < r->done[n]) {
            /* The rows it has made already (its buffer's place in the
             * arena was another node's until now). */
            const int64_t hi = need.hi < r->done[n] ? need.hi : r->done[n];
            if (windowed && (need.lo < r->done[n] - plan->window_rows[n] || !r->memory->is_host))
                return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                               "plan: node %d reads rows its window no longer holds", n);
            if (windowed) {
                window_rows(r, plan, n, &r->band[n], need.lo, hi, false);
            } else {
                sr_status st = spill_rows(r, plan, n, &r->band[n], need.lo, hi, false, err);
                if (st != SR_OK)
                    return st;
            }
        }
        if (c.lo >= c.hi)
            continue;
        const sr_node *node = &g->nodes[n];
        sr_tensor in[SR_NODE_MAX_INPUTS];
        for (int j = 0; j < node->n_inputs; j++) {
            const int i = node->inputs[j];
            const sr_rows_home home = sr_plan_rows_home(plan, i);
            in[j] = home == SR_ROWS_INPUT || home == SR_ROWS_KEPT ? r->kept[i] : r->band[i];
        }
        const bool whole = sr_plan_rows_home(plan, n) == SR_ROWS_KEPT;
        sr_tensor out = sr_tensor_rows(whole ? &r->kept[n] : &r->band[n], c.lo, c.hi);
        const double start = node_seconds ? now() : 0.0;
        sr_status st = be->iface->run(be->ctx, node, in, &out, r->stats[n], err);
        if (st == SR_OK && node_seconds) /* a device returns before it is done */
            st = r->memory->synchronize(r->ctx, err);
        if (st != SR_OK)
            return st;
        if (spilled)
            st = spill_rows(r, plan, n, &r->band[n], c.lo, c.hi, true, err);
        else if (windowed) /* the rows a later band may read back */
            window_rows(r, plan, n, &r->band[n],
                        c.hi - c.lo > plan->window_rows[n] ? c.hi - plan->window_rows[n] : c.lo,
                        c.hi, true);
        if (st != SR_OK)
            return st;
        if (node_seconds)
            node_seconds[n] += now() - start;
        if (whole || spilled || windowed)
            r->done[n] = c.hi;
    }
    return SR_OK;
}

/* The input in the backend's memory, filled from the source through the
 * staging buffer a few rows at a time. */
static sr_status place_input(run_state *r, const sr_plan *plan, sr_exec_source source,
                             void *source_user, sr_error *err)
{
    const sr_shape sh = plan->shapes[0];
    sr_status st;
    r->kept[0] = sr_tensor_whole(sh, allocate(r, tensor_bytes(sh), 0, &st, err));
    if (!r->kept[0].data && st == SR_OK)
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for the %lldx%lld input",
                     (long long)sh.w, (long long)sh.h);
    const int64_t step = r->staging_floats / (sh.c * sh.w);
    for (int64_t y = 0; st == SR_OK && y < sh.h; y += step) {
        const int64_t rows = y + step < sh.h ? step : sh.h - y;
        sr_tensor host = {{sh.c, rows, sh.w}, r->staging, rows * sh.w, y, sh.h};
        st = source(source_user, &host, err);
        for (int64_t c = 0; st == SR_OK && c < sh.c; c++)
            st = r->memory->upload(r->ctx, sr_tensor_row(&r->kept[0], c, y),
                                   host.data + c * host.cstride,
                                   rows * sh.w * (int64_t)sizeof(float), err);
    }
    return st;
}

int64_t sr_exec_staging_bytes(sr_shape in, sr_shape out)
{
    int64_t floats = STAGING_BYTES / (int64_t)sizeof(float);
    if (floats < in.c * in.w)
        floats = in.c * in.w;
    if (floats < out.c * out.w)
        floats = out.c * out.w;
    return floats * (int64_t)sizeof(float);
}

/* Output rows to the sink, through the staging buffer a few at a time. */
static sr_status deliver(run_state *r, const sr_tensor *rows, sr_exec_sink sink,
                         void *sink_user, sr_error *err)
{
    const sr_shape sh = rows->shape;
    const int64_t step = r->staging_floats / (sh.c * sh.w), y1 = rows->y0 + sh.h;
    sr_status st = SR_OK;
    for (int64_t y = rows->y0; st == SR_OK && y < y1; y += step) {
        const int64_t n = y + step < y1 ? step : y1 - y;
        sr_tensor host = {{sh.c, n, sh.w}, r->staging, n * sh.w, y, rows->image_h};
        for (int64_t c = 0; st == SR_OK && c < sh.c; c++)
            st = r->memory->download(r->ctx, host.data + c * host.cstride,
                                     sr_tensor_row(rows, c, y),
                                     n * sh.w * (int64_t)sizeof(float), err);
        if (st == SR_OK)
            st = sink(sink_user, &host, err);
    }
    return st;
}

sr_status sr_exec_read_tensor(void *user, sr_tensor *rows, sr_error *err)
{
    (void)err;
    const sr_tensor *whole = user;
    for (int64_t c = 0; c < rows->shape.c; c++)
        memcpy(sr_tensor_row(rows, c, rows->y0), sr_tensor_row(whole, c, rows->y0),
               (size_t)(rows->shape.h * rows->shape.w) * sizeof(float));
    return SR_OK;
}

sr_status sr_plan_execute(const sr_graph *g, const sr_plan *plan,
                          const sr_backend_handle *be, const char *scratch_dir,
                          sr_exec_source source, void *source_user, sr_exec_sink sink,
                          void *sink_user, sr_exec_progress progress, sr_exec_timing timing,
                          sr_exec_held *held, sr_error *err)
{
    run_state r;
    sr_status st = run_state_init(&r, g, plan, be, scratch_dir, held, err);
    if (st == SR_OK)
        st = place_input(&r, plan, source, source_user, err);
    int64_t flops_done = 0;
    for (int si = 0; st == SR_OK && si < plan->n_stages; si++) {
        const sr_stage *s = &plan->stages[si];
        const double stage_start = now();
        st = allocate_stage(&r, plan, si, err);
        const sr_node *global = s->role == SR_STAGE_STATISTICS ? &g->nodes[s->global] : NULL;
        const sr_shape target = plan->shapes[s->target];
        if (global)
            memset(r.acc, 0,
                   (size_t)sr_op_get(global->op)->n_stats(global, target) * sizeof *r.acc);
        for (int b = s->first_band; st == SR_OK && b < s->n_bands; b++) {
            const int64_t t0 = b * s->band_rows;
            const int64_t t1 = t0 + s->band_rows < target.h ? t0 + s->band_rows : target.h;
            st = run_band(&r, g, plan, s, be, t0, t1, timing.node_seconds, err);
            if (st == SR_OK && b >= 0) { /* a lead-in band makes no rows of the target */
                const bool whole = sr_plan_rows_home(plan, s->target) == SR_ROWS_KEPT;
                const sr_tensor *made = whole ? &r.kept[s->target] : &r.band[s->target];
                const sr_tensor rows = sr_tensor_rows(made, t0, t1);
                st = global ? be->iface->accumulate(be->ctx, global, &rows, t0, t1, r.acc, err)
                            : deliver(&r, &rows, sink, sink_user, err);
            }
            const int64_t done = flops_done + s->flops * (b - s->first_band + 1) /
                                                  (s->n_bands - s->first_band);
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
        for (int n = 0; n < plan->n_nodes; n++)
            if (sr_plan_rows_home(plan, n) == SR_ROWS_KEPT && plan->last_stage[n] == si) {
                give_back(&r, r.kept[n].data, tensor_bytes(plan->shapes[n]));
                r.kept[n].data = NULL;
            } else if (sr_plan_rows_home(plan, n) == SR_ROWS_SPILLED && plan->last_stage[n] == si) {
                discard_spilled(&r, plan, n);
            } else if (sr_plan_rows_home(plan, n) == SR_ROWS_WINDOW && plan->first_stage[n] == si) {
                free(r.window[n]);
                r.window[n] = NULL;
            }
    }
    run_state_free(&r, plan);
    return st;
}

int64_t sr_exec_held_bytes(const sr_plan *plan)
{
    int64_t bytes = 0;
    for (int n = 0; n < plan->n_nodes; n++)
        if (n == 0 || sr_plan_rows_home(plan, n) == SR_ROWS_KEPT)
            bytes += tensor_bytes(plan->shapes[n]);
    for (int si = 0; si < plan->n_stages; si++)
        bytes += plan->stages[si].arena_bytes;
    return bytes;
}

void sr_exec_held_free(sr_exec_held *held, const sr_plan *plan, const sr_backend_handle *backend)
{
    const sr_backend_memory *memory = backend->iface->memory;
    for (int n = 0; held->slots && n < plan->n_nodes; n++)
        if (held->slots[n])
            memory->release(backend->ctx, held->slots[n], tensor_bytes(plan->shapes[n]));
    for (int si = 0; held->slots && si < plan->n_stages; si++)
        if (held->slots[plan->n_nodes + si])
            memory->release(backend->ctx, held->slots[plan->n_nodes + si],
                            plan->stages[si].arena_bytes);
    memory->trim(backend->ctx);
    free(held->slots);
    held->slots = NULL;
}
