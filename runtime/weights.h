/* A model's named weight tensors, as float32, in the order the file lists
 * them. A weight either views memory owned elsewhere (the mapped model
 * file) or owns a converted copy. Loaders fill it; models read it. */
#ifndef SR_RUNTIME_WEIGHTS_H
#define SR_RUNTIME_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "srrun.h"

#define SR_WEIGHT_MAX_DIMS 4

typedef struct sr_weight {
    char *name;
    int ndim;
    int64_t shape[SR_WEIGHT_MAX_DIMS];
    const float *data; /* packed row-major, shape's product elements */
    float *owned;      /* data when the weight owns it, else NULL */
} sr_weight;

typedef struct sr_weights {
    sr_weight *items;
    int64_t n_items, capacity;
} sr_weights;

/* Appends a weight; copies the name, takes ownership of `owned` (which may
 * be NULL when `data` views memory that outlives the collection). On
 * failure `owned` is freed. */
sr_status sr_weights_add(sr_weights *w, const char *name, int ndim,
                         const int64_t *shape, const float *data, float *owned,
                         sr_error *err);

const sr_weight *sr_weights_find(const sr_weights *w, const char *name);

/* Removes the weights added after the first n (a loader undoing its work). */
void sr_weights_truncate(sr_weights *w, int64_t n);
int64_t sr_weight_numel(const sr_weight *w);
void sr_weights_free(sr_weights *w);

#endif
