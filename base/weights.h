/* A model's named weight tensors, as float32, in the order the file lists
 * them. A weight either views memory owned elsewhere (the mapped model
 * file) or owns a converted copy. Loaders fill it; models read it. */
#ifndef SR_BASE_WEIGHTS_H
#define SR_BASE_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "srrun.h"

#define SR_WEIGHT_MAX_DIMS 4
/* Real-ESRGAN's RRDBNet has some 700 tensors; a file naming more than this
 * is refused (SR_ERR_LIMIT) before its names cost much memory. */
#define SR_WEIGHTS_MAX_COUNT (1 << 16)

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
    /* items by name, open addressing: an item's index + 1, 0 when free */
    uint32_t *by_name;
    int64_t by_name_cap;
    uint64_t by_name_seed; /* base/hash.h */
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

/* Keeps the weights whose keep[i] is true, in order, and frees the others
 * (what a network does not use). Pointers to the kept data stay valid. */
void sr_weights_keep(sr_weights *w, const bool *keep);
int64_t sr_weight_numel(const sr_weight *w);
void sr_weights_free(sr_weights *w);

#endif
