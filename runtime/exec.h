/* Runs a plan (runtime/plan.h) on a backend: stage by stage, band by band,
 * kept tensors allocated when first computed and freed after their last
 * reader (spilled ones written to a scratch file and read back by band), band buffers in one arena, all in the backend's memory. The
 * input comes from a source a few rows at a time, and the output's rows go
 * to a sink as their bands complete, both in host memory. */
#ifndef SR_RUNTIME_EXEC_H
#define SR_RUNTIME_EXEC_H

#include "backends/backend.h"
#include "runtime/plan.h"

typedef struct sr_exec_progress {
    sr_progress_fn fn; /* may be NULL */
    void *user;
} sr_exec_progress;

/* Fills rows of the input (rows->y0 and shape.h say which, in order); a
 * non-OK status stops the run. */
typedef sr_status (*sr_exec_source)(void *user, sr_tensor *rows, sr_error *err);

/* Receives rows of the output in order; a non-OK status stops the run. */
typedef sr_status (*sr_exec_sink)(void *user, const sr_tensor *rows, sr_error *err);

/* Host memory a run takes besides its plan's, for an input and output of
 * these shapes: the buffer their rows cross to and from the backend
 * through (a few MB, at least a row of each). */
int64_t sr_exec_staging_bytes(sr_shape in, sr_shape out);

/* A source reading a whole 3 x H x W tensor in host memory (user). */
sr_status sr_exec_read_tensor(void *user, sr_tensor *rows, sr_error *err);

/* Where the run's time went, if wanted: seconds per node and per stage
 * (arrays of the graph's and the plan's length, or NULL). */
typedef struct sr_exec_timing {
    double *node_seconds;
    double *stage_seconds;
} sr_exec_timing;

/* Buffers held from one run of a plan to the next (a model's patches, each
 * run of the same plan): the input, each stage's arena and each kept
 * tensor, allocated on first use and kept until sr_exec_held_free. Runs
 * after the first map no pages anew; they hold sr_exec_held_bytes rather
 * than the plan's peak of them. Zero-initialise; one plan and backend. */
typedef struct sr_exec_held {
    void **slots; /* per node (its kept tensor), then per stage (its arena) */
} sr_exec_held;

int64_t sr_exec_held_bytes(const sr_plan *plan);
void sr_exec_held_free(sr_exec_held *held, const sr_plan *plan, const sr_backend_handle *backend);

/* source: the 3 x H x W image the plan was made for. A plan that spills
 * tensors keeps them in a scratch file opened in scratch_dir (NULL:
 * $TMPDIR, else /tmp) for the run; it fails with SR_ERR_IO, one line, when
 * that cannot be made or the disk fills. held: NULL, or the buffers kept
 * between runs of this plan. */
sr_status sr_plan_execute(const sr_graph *g, const sr_plan *plan,
                          const sr_backend_handle *backend, const char *scratch_dir,
                          sr_exec_source source, void *source_user, sr_exec_sink sink,
                          void *sink_user, sr_exec_progress progress, sr_exec_timing timing,
                          sr_exec_held *held, sr_error *err);

#endif
