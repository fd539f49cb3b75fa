/* What the planner's files (plan.c, plan_stage.c, plan_search.c) share: the
 * search's state, the memos of a stage's sizing, the small predicates on a
 * plan they read, and the functions one of them calls in another. The
 * planner's own: not installed, and included by nothing else. */
#ifndef SR_RUNTIME_PLAN_INTERNAL_H
#define SR_RUNTIME_PLAN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/plan.h"

typedef struct block {
    int64_t offset;
    int end; /* last position in the order that reads it */
} block;

/* A block alive at the position pack_arena places, by value: its first
 * fit scans them in one array. */
typedef struct live_block {
    int64_t offset, top; /* top: where it ends (0 if empty: in no one's way) */
    int block;
} live_block;

/* A stage sized (sr_plan_size_stage's memo): the search sizes the same stage,
 * keep set and height again and again (the same seed in both ladders, a
 * rung's walks starting from the same sets, a band search ending on a
 * height it tried), and the work it counts is counted again. */
typedef struct sizing {
    uint64_t key; /* 0: empty */
    int index, n_order, capacity;
    bool exact;
    int *order;
    unsigned char *flags;
    int64_t *max_rows, *offset, *window;
    int64_t band_rows;
    int n_bands, first_band;
    int64_t flops, scratch_io, window_io, overhead, window_bytes, arena_bytes, work;
} sizing;

/* Sizings remembered, one per slot of a hash of their key. */
#define MEMO_SLOTS 64

/* A band's rows walked from a stage's first state (no kept rows made yet,
 * the scratch file's all there): they depend on the band, the stage's
 * nodes and which of them the file holds, not on which are kept, so the
 * toggles a walk judges share them (each band search sizes from there the
 * first band, and the one before the middle). */
typedef struct first_spans {
    uint64_t key; /* 0: empty */
    int index, n_order, capacity;
    int64_t t0, t1;
    int *order;
    bool *in_file;
    sr_span *need, *comp; /* per position */
} first_spans;

#define FIRST_SPANS_SLOTS 32

/* A toggle judged: the whole plan's totals were it committed. */
typedef struct trial {
    int node, lo, hi; /* the stages it changes */
    bool keep, spill; /* the node's state it tries */
    int64_t cost, excess; /* cost: FLOPs, and scratch I/O as FLOPs */
    int n_unfit;
    double score;
} trial;

/* The search's state: the committed keep set's stages live in the plan,
 * with these totals; scratch for building stages and judging toggles. */
typedef struct planner {
    const sr_graph *g;
    const sr_plan_request *req;
    int n, n_stages;
    sr_shape *shapes;
    int *n_consumers;
    int **consumers;
    int64_t *flops;     /* whole-image FLOPs of each node */
    int64_t *row_flops; /* and of each of its rows */
    int64_t *band_flops; /* and what each band that computes it adds */
    int64_t least_overhead; /* every node's band_flops once: no plan costs less */
    int64_t workspace;  /* the backend's largest, which it keeps */
    int64_t budget;     /* the one being planned for: req's, or a probe */
    int64_t stage_bound; /* a stage costing more is of no use (INT64_MAX: any) */
    bool may_spill;     /* the search may spill kept tensors */
    bool may_window;    /* the backend's memory is the host's, where windows are */
    int *stage_target, *stage_global; /* stage_global: statistics stages' */
    sr_stage_role *stage_role;
    int *home;      /* per node: the first stage whose target needs it */
    int *last;      /* kept nodes: the last stage that reads them */
    int *last_comp; /* per node: at least the last stage computing it */
    int64_t total_cost, total_excess;
    int n_unfit;
    int64_t work, work_cap; /* work_cap: past it the walks keep what they have */
    bool out_of_memory;
    /* scratch */
    int *mark, epoch;   /* a node is marked when mark[n] == epoch */
    bool *every;        /* stage_floor's: computed in every band */
    int *seen, seen_epoch;
    int *pos;           /* node -> position in the stage being packed */
    int *list;          /* nodes of a cone, or of a toggle's reach */
    int n_list;
    int *reads;         /* nodes a stage reads whole */
    int n_reads;
    int *new_last;
    int64_t *delta;     /* kept bytes a toggle adds, per stage of its range */
    int *taken;         /* stages a batch has changed */
    sr_stage *trial_stages;
    int n_trial_stages;
    trial *trials;
    block *blocks;
    int *owner;
    live_block *active; /* pack_arena's, by offset */
    int64_t *done;
    sr_span *need, *comp;
    int64_t *node_flops;             /* per node, in the bands simulated */
    int64_t io;                      /* scratch bytes, in the bands simulated */
    int64_t window_io;               /* window bytes, in the bands simulated */
    int64_t overhead;                /* band_flops, in the bands simulated */
    int64_t *window;                 /* per windowed node: the rows it carries */
    bool *in_file; /* spilled nodes in the file though only their stage reads
                      them (their windows would hold too many rows) */
    int64_t *shift;                  /* per node: its rows per period of bands */
    /* sr_plan_prepare_stage's: what sizing the stage being planned reads, per
     * position in its order, fixed while its keep set is */
    unsigned char *flags;            /* AT_* (plan_stage.c) */
    int64_t *row_bytes;
    int *end;                        /* the last position reading it */
    int *reuse_in;                   /* SR_STAGE_INPUTS per position, ending in
                                        -1: inputs whose buffer it may write over */
    int64_t ahead;                   /* lead-in: target rows the deepest node
                                        runs ahead; 0 without windows */
    int64_t made_flops;              /* FLOPs of the kept nodes it computes */
    uint64_t stage_key;              /* a hash of its index, order and flags */
    uint64_t spans_key;              /* and of those first_spans depend on */
    sizing memo[MEMO_SLOTS];
    bool at_first;                   /* done[] is reset_done's */
    bool at_edge; /* a span of simulate_band's last band starts at row 0 or
                     reaches the end (periods_clear would say 0) */
    first_spans first[FIRST_SPANS_SLOTS];
    int64_t *snap_done, *snap_flops; /* done and node_flops a period ago */
} planner;

static inline int64_t sr_plan_tensor_bytes(sr_shape s)
{
    return sr_shape_numel(s) * (int64_t)sizeof(float);
}

/* Kept in memory (not spilled). */
static inline bool sr_plan_in_memory(const sr_plan *plan, int n)
{
    return plan->keep[n] && !plan->spill[n];
}

/* The last stage that reads kept node n: try_toggle's trial value for the
 * nodes it reaches (marked in seen), else the committed plan's. */
static inline int sr_plan_last_reader(const planner *p, int n)
{
    return p->seen[n] == p->seen_epoch ? p->new_last[n] : p->last[n];
}

/* Spilled, and read only in the stage that computes it: the rows bands
 * read back are carried in a window in memory instead of the file. Only
 * where the backend computes in host memory: a device's rows would cross
 * to the window and back every band. */
static inline bool sr_plan_windowed(const planner *p, const sr_plan *plan, int n)
{
    return p->may_window && plan->keep[n] && plan->spill[n] && n > 0 && !p->in_file[n] &&
           sr_plan_last_reader(p, n) <= p->home[n];
}

static inline int64_t sr_plan_stage_peak(const sr_plan *plan, const sr_stage *s)
{
    return s->kept_bytes + s->window_bytes + s->arena_bytes + s->workspace_bytes +
           plan->stats_bytes;
}

/* What a byte through the scratch file costs, in FLOPs of recomputation:
 * the CPU backend runs SRPGAN's convolutions at some 100 GFLOP/s on this
 * project's 2-core test machine, and a file in the page cache moved
 * 0.3-0.9 GB/s written and 1.6-3.3 GB/s read there (pwrite and pread of
 * 4 MB pieces, /tmp and /dev/shm, the machine loaded): about 1 GB/s for a
 * byte written once and read back, so 100 FLOPs a byte. A GPU computes
 * faster and moves its rows over PCIe as well, so there a byte costs more
 * FLOPs still; the figure only decides spill against recompute. */
#define FLOPS_PER_SCRATCH_BYTE 100
/* And a byte copied to or from a window in memory: memcpy moves some
 * 10 GB/s there, a tenth of the convolutions' FLOP rate. */
#define FLOPS_PER_WINDOW_BYTE 10

/* What the search minimises: FLOPs, and bytes moved and bands priced as
 * FLOPs. */
static inline int64_t sr_plan_stage_cost(const sr_stage *s)
{
    return s->flops + s->scratch_io * FLOPS_PER_SCRATCH_BYTE +
           s->window_io * FLOPS_PER_WINDOW_BYTE + s->overhead;
}

/* One stage (plan_stage.c). */
bool sr_plan_build_stage(planner *p, const sr_plan *plan, int si, sr_stage *s);
void sr_plan_prepare_stage(planner *p, const sr_plan *plan, const sr_stage *s);
void sr_plan_size_stage(planner *p, const sr_plan *plan, sr_stage *s, int64_t h, bool exact);
void sr_plan_stage(planner *p, const sr_plan *plan, sr_stage *s, int64_t probe, bool exact);
void sr_plan_count_node_flops(planner *p, sr_plan *plan);

/* The kept tensors (plan_search.c). */
bool sr_plan_evaluate(planner *p, sr_plan *plan, int64_t probe, bool exact);
void sr_plan_initial_keep_set(planner *p, sr_plan *plan);
void sr_plan_window_keep_set(planner *p, sr_plan *plan, bool file);
bool sr_plan_add_kept_affordable(const planner *p);
bool sr_plan_search(planner *p, sr_plan *plan);

#endif
