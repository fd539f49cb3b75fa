/* The named-weight collection: growth, lookup, release. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "runtime/weights.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

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
    return SR_OK;
}

const sr_weight *sr_weights_find(const sr_weights *w, const char *name)
{
    for (int64_t i = 0; i < w->n_items; i++)
        if (strcmp(w->items[i].name, name) == 0)
            return &w->items[i];
    return NULL;
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
    if (n < w->n_items)
        w->n_items = n;
}

void sr_weights_free(sr_weights *w)
{
    sr_weights_truncate(w, 0);
    free(w->items);
    memset(w, 0, sizeof *w);
}
