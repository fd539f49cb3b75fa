/* The planner: how a graph runs on one image size within a memory budget,
 * decided before anything runs.
 *
 * A run is a sequence of stages, one per global op (it sweeps the op's input
 * over the whole image to gather statistics) and a last one that sweeps the
 * output into the caller's sink. A stage sweeps its target in horizontal
 * bands; each band computes, for every node of the stage, just the rows the
 * band needs (walking halos and scales back from the target). Some nodes are
 * kept: their whole output is materialised once, in the stage that first
 * needs it, and read by later stages, either from memory or, spilled, from
 * a scratch file a band at a time; every other node lives in a band
 * buffer of one arena and is recomputed wherever it is needed. A spilled
 * node that no later stage reads needs only the rows the next band reads
 * back: it carries them in a window in memory, not the file, so that a
 * deep network without global ops (one stage) can compute every row once
 * in thin bands (line buffers). Which nodes
 * are kept and how high each stage's bands are is the planner's choice: the
 * fastest plan whose predicted peak fits the budget. Bands never change a
 * result (see ops/op.h), so every plan gives the same bytes. */
#ifndef SR_RUNTIME_PLAN_H
#define SR_RUNTIME_PLAN_H

#include <stdbool.h>

#include "backends/backend.h"
#include "ops/graph.h"

/* What a stage does with its target's rows. */
typedef enum sr_stage_role {
    SR_STAGE_STATISTICS, /* sums them into a global op's statistics */
    SR_STAGE_OUTPUT,     /* hands them to the run's sink: the last stage */
} sr_stage_role;

/* Where a node's rows are while a stage runs. */
typedef enum sr_rows_home {
    SR_ROWS_INPUT, /* node 0, the input: whole, for the whole run */
    SR_ROWS_KEPT,  /* whole, from its first stage to the last that reads it */
    SR_ROWS_BAND,  /* a band buffer in the stage's arena, per band */
    SR_ROWS_SPILLED, /* kept in the scratch file: a band buffer in the arena
                        that each band fills with the rows already in the
                        file, and whose newly computed rows go to the file */
    SR_ROWS_WINDOW,  /* spilled but read only in its own stage: as
                        SR_ROWS_SPILLED, with the last window_rows rows
                        computed carried in memory instead of the file */
} sr_rows_home;

/* The stride of sr_stage.inputs. */
#define SR_STAGE_INPUTS (SR_NODE_MAX_INPUTS + 1)

typedef struct sr_stage {
    int index;         /* its place in the run */
    sr_stage_role role;
    int target;        /* node whose rows the stage sweeps */
    int global;        /* SR_STAGE_STATISTICS: the node they are for */
    int64_t band_rows; /* rows of the target per band */
    int n_bands;
    int first_band;    /* 0, or with windows, minus the lead-in bands: bands
                          above the image that run the deeper nodes ahead
                          (their rows, not the target's), so that no band
                          makes a whole receptive field's rows at once */
    int n_order, capacity; /* capacity: the nodes the arrays below hold */
    /* Per node computed, by its position in the order (so that a plan
     * takes memory in the nodes the stages compute, not nodes x stages). */
    int *order;            /* nodes computed per band, in graph order */
    int64_t *offset;       /* SR_ROWS_BAND: byte offset of its buffer */
    int64_t *max_rows;     /* most rows a band computes */
    int *inputs;           /* SR_STAGE_INPUTS per node, ending in -1:
                              those inputs whose rows its bands ask for (not
                              available whole; none for a node read back
                              from the scratch file), so that the band walk
                              reads one array, not the graph and the keep set */
    int64_t arena_bytes;   /* band buffers */
    int64_t workspace_bytes;
    int64_t kept_bytes;    /* whole tensors alive during the stage */
    int64_t window_bytes;  /* the windows of its SR_ROWS_WINDOW nodes */
    int64_t flops;         /* including rows recomputed for halos */
    int64_t scratch_io;    /* bytes written to and read from the scratch file */
    int64_t window_io;     /* and copied to and from windows */
    int64_t overhead;      /* what its bands cost beyond their rows, as FLOPs */
} sr_stage;

typedef struct sr_plan {
    int n_nodes;
    sr_shape *shapes;
    bool *keep;       /* materialised whole (node 0, the input, always) */
    bool *spill;      /* kept nodes held in the scratch file, not in memory */
    int64_t *scratch_offset; /* spilled nodes: where in the file (channel by
                                channel, whole); tensors alive in no stage
                                together share bytes */
    int64_t *window_rows;    /* SR_ROWS_WINDOW nodes: rows carried, else 0 */
    sr_row_tiling *row_tiling; /* how the backend makes each node's rows */
    int *scale;       /* each node's rows per row of its inputs (its op's) */
    int *first_stage; /* the first stage that needs each node (computes the kept) */
    int *last_stage;  /* kept nodes: the last stage that reads them */
    int n_stages;
    sr_stage *stages;
    int64_t arena_bytes;     /* the largest stage's arena */
    int64_t workspace_bytes; /* the largest stage's workspace */
    int64_t stats_bytes;     /* global ops' statistics */
    int64_t peak_bytes;      /* predicted: kept + windows + arena + workspace + stats */
    int64_t scratch_bytes;   /* the scratch file's size, on disk (not memory) */
    int64_t flops;           /* planned, including recomputation */
    int64_t whole_flops;     /* the same network without any */
    int64_t *node_flops;     /* planned, per node */
    int64_t work; /* nodes x bands the planner simulated, or remembered (its
                     own time, bounded), also after a failure */
} sr_plan;

typedef struct sr_plan_request {
    sr_shape input;    /* 3 x H x W */
    int64_t budget;    /* bytes for the plan's peak; 0: no limit */
    int64_t tile_rows; /* force every stage's band height; 0: choose */
    const sr_backend_handle *backend; /* asked for workspace sizes */
    bool may_spill;    /* a scratch file may hold kept tensors (windows
                          need none) */
} sr_plan_request;

static inline sr_rows_home sr_plan_rows_home(const sr_plan *plan, int n)
{
    if (n == 0)
        return SR_ROWS_INPUT;
    if (!plan->keep[n])
        return SR_ROWS_BAND;
    if (!plan->spill[n])
        return SR_ROWS_KEPT;
    return plan->window_rows[n] > 0 ? SR_ROWS_WINDOW : SR_ROWS_SPILLED;
}

/* Fails with SR_ERR_LIMIT when no plan fits the budget, and sets *least to
 * the smallest peak that would work; with SR_ERR_NO_MEMORY when the host
 * has no memory for the planner. */
sr_status sr_plan_make(const sr_graph *g, const sr_plan_request *req, sr_plan *plan,
                       int64_t *least, sr_error *err);
void sr_plan_free(sr_plan *plan);

/* Rows [lo, hi) of a node. */
typedef struct sr_span {
    int64_t lo, hi;
} sr_span;

/* For a band of stage s covering target rows [t0, t1): the rows each node
 * of the stage computes (comp) and must have available (need), given done[]
 * = rows [0, done) of each kept node already computed. */
void sr_plan_band_spans(const sr_plan *plan, const sr_stage *s, int64_t t0, int64_t t1,
                        const int64_t *done, sr_span *need, sr_span *comp);

#endif
