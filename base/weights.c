/* The named-weight collection: growth, lookup by a hash of the name (a file
 * may hold 10^5 tensors, so a linear search per add would be quadratic),
 * release. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "base/weights.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/hash.h"

/* The slot holding `name`, or the free slot it would take; the table is
 * never full. */
static uint32_t *name_slot(const sr_weights *w, const char *name)
{
    const uint64_t mask = (uint64_t)w->by_name_cap - 1;
    uint64_t i = sr_hash_string(name, w->by_name_seed) & mask;
    while (w->by_name[i] && strcmp(w->items[w->by_name[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return &w->by_name[i];
}

/* Indexes every item afresh (after growth or removals). */
static void fill_index(sr_weights *w)
{
    if (!w->by_name_cap)
        return;
    memset(w->by_name, 0, (size_t)w->by_name_cap * sizeof *w->by_name);
    for (int64_t i = 0; i < w->n_items; i++)
        *name_slot(w, w->items[i].name) = (uint32_t)(i + 1);
}

/* A table of `cap` slots (a power of two, more than twice n_items). */
static bool grow_index(sr_weights *w, int64_t cap)
{
    uint32_t *table = calloc((size_t)cap, sizeof *table);
    if (!table)
        return false;
    if (!w->by_name)
        w->by_name_seed = sr_hash_seed(table);
    free(w->by_name);
    w->by_name = table;
    w->by_name_cap = cap;
    fill_index(w);
    return true;
}

sr_status sr_weights_add(sr_weights *w, const char *name, int ndim,
                         const int64_t *shape, const float *data, float *owned,
                         sr_error *err)
{
    if (ndim < 0 || ndim > SR_WEIGHT_MAX_DIMS) {
        free(owned);
        return sr_fail(err, SR_ERR_MODEL, "tensor '%s' has %d dimensions (at most %d)",
                       name, ndim, SR_WEIGHT_MAX_DIMS);
    }
    if (sr_weights_find(w, name)) {
        free(owned);
        return sr_fail(err, SR_ERR_FORMAT, "duplicate tensor '%s'", name);
    }
    if (w->n_items == SR_WEIGHTS_MAX_COUNT) {
        free(owned);
        return sr_fail(err, SR_ERR_LIMIT, "more than %d tensors (limit); no network needs so many",
                       SR_WEIGHTS_MAX_COUNT);
    }
    if (w->n_items == w->capacity) {
        int64_t cap = w->capacity ? 2 * w->capacity : 32;
        sr_weight *items = realloc(w->items, (size_t)cap * sizeof *items);
        if (!items) {
            free(owned);
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        }
        w->items = items;
        w->capacity = cap;
    }
    /* At most half full, so probes stay short. */
    if (2 * (w->n_items + 1) > w->by_name_cap &&
        !grow_index(w, w->by_name_cap ? 2 * w->by_name_cap : 64)) {
        free(owned);
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    }
    char *copy = strdup(name);
    if (!copy) {
        free(owned);
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    }
    sr_weight *t = &w->items[w->n_items++];
    memset(t, 0, sizeof *t);
    t->name = copy;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->owned = owned;
    *name_slot(w, copy) = (uint32_t)w->n_items;
    return SR_OK;
}

const sr_weight *sr_weights_find(const sr_weights *w, const char *name)
{
    if (!w->by_name_cap)
        return NULL;
    const uint32_t slot = *name_slot(w, name);
    return slot ? &w->items[slot - 1] : NULL;
}

int64_t sr_weight_numel(const sr_weight *w)
{
    int64_t n = 1;
    for (int i = 0; i < w->ndim; i++)
        n *= w->shape[i];
    return n;
}

void sr_weights_truncate(sr_weights *w, int64_t n)
{
    for (int64_t i = n; i < w->n_items; i++) {
        free(w->items[i].name);
        free(w->items[i].owned);
    }
    if (n < w->n_items) {
        w->n_items = n;
        fill_index(w);
    }
}

void sr_weights_keep(sr_weights *w, const bool *keep)
{
    int64_t n = 0;
    for (int64_t i = 0; i < w->n_items; i++) {
        if (keep[i]) {
            w->items[n++] = w->items[i];
        } else {
            free(w->items[i].name);
            free(w->items[i].owned);
        }
    }
    if (n < w->n_items) {
        w->n_items = n;
        fill_index(w);
    }
}

void sr_weights_free(sr_weights *w)
{
    sr_weights_truncate(w, 0);
    free(w->items);
    free(w->by_name);
    memset(w, 0, sizeof *w);
}
