/* Runs a graph over one whole image on a backend. Buffers are freed after
 * their last reader, and ops that allow it write over their input. */
#ifndef SR_RUNTIME_EXEC_H
#define SR_RUNTIME_EXEC_H

#include "backends/backend.h"
#include "runtime/graph.h"

typedef struct sr_exec_progress {
    sr_progress_fn fn; /* may be NULL */
    void *user;
} sr_exec_progress;

/* input: 3 x H x W, owned by the caller. On success *output holds the last
 * node's tensor, whose data the caller frees. */
sr_status sr_graph_run(const sr_graph *g, const sr_backend_handle *backend,
                       const sr_tensor *input, sr_tensor *output,
                       sr_exec_progress progress, sr_error *err);

#endif
