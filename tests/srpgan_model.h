/* An SRPGAN of any width, depth and scale with random weights, made in
 * memory the way sr_model_load makes a loaded one (the architecture's
 * builder, then fusion): for tests and fuzzers that need deep or odd
 * networks without writing files. Header-only, like testutil.h. */
#ifndef SR_TESTS_SRPGAN_MODEL_H
#define SR_TESTS_SRPGAN_MODEL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"
#include "runtime/model.h"

/* Appends a weight of the given shape, uniform in [-bound, bound). */
static inline sr_status test_srpgan_weight(sr_weights *w, const char *name, int ndim,
                                           const int64_t *shape, float bound, uint64_t *rng,
                                           sr_error *err)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *data = malloc((size_t)n * sizeof *data);
    if (!data)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        *rng = *rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        data[i] = bound * ((float)(*rng >> 40) / (float)(1 << 23) - 1.0f);
    }
    return sr_weights_add(w, name, ndim, shape, data, data, err);
}

/* A conv's weight and bias, scaled so that activations keep their size. */
static inline sr_status test_srpgan_conv(sr_weights *w, const char *prefix, int64_t c_out,
                                         int64_t c_in, int64_t k, uint64_t *rng, sr_error *err)
{
    char name[128];
    const float bound = 1.0f / sqrtf((float)(c_in * k * k));
    snprintf(name, sizeof name, "%s.weight", prefix);
    sr_status st = test_srpgan_weight(w, name, 4, (int64_t[]){c_out, c_in, k, k}, bound, rng, err);
    snprintf(name, sizeof name, "%s.bias", prefix);
    return st != SR_OK ? st : test_srpgan_weight(w, name, 1, (int64_t[]){c_out}, bound, rng, err);
}

static inline sr_status test_srpgan_prelu(sr_weights *w, const char *prefix, uint64_t *rng,
                                          sr_error *err)
{
    char name[128];
    snprintf(name, sizeof name, "%s.weight", prefix);
    return test_srpgan_weight(w, name, 1, (int64_t[]){1}, 0.5f, rng, err);
}

/* NULL when it cannot be made (err says why). scale: 2, 4 or 8. */
static inline sr_model *test_srpgan_model(int64_t width, int n_blocks, int scale, uint64_t seed,
                                          sr_error *err)
{
    sr_model *m = calloc(1, sizeof *m);
    if (!m) {
        sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    uint64_t rng = seed;
    sr_weights *w = &m->weights;
    const int64_t f = width;
    char p[64];
    sr_status st = test_srpgan_conv(w, "block1.0", f, 3, 9, &rng, err);
    if (st == SR_OK)
        st = test_srpgan_prelu(w, "block1.1", &rng, err);
    for (int i = 0; i < n_blocks && st == SR_OK; i++) {
        snprintf(p, sizeof p, "res_blocks.%d.conv1", i);
        st = test_srpgan_conv(w, p, f, f, 3, &rng, err);
        snprintf(p, sizeof p, "res_blocks.%d.prelu", i);
        if (st == SR_OK)
            st = test_srpgan_prelu(w, p, &rng, err);
        snprintf(p, sizeof p, "res_blocks.%d.conv2", i);
        if (st == SR_OK)
            st = test_srpgan_conv(w, p, f, f, 3, &rng, err);
    }
    if (st == SR_OK)
        st = test_srpgan_conv(w, "block3.0", f, f, 3, &rng, err);
    if (st == SR_OK)
        st = test_srpgan_prelu(w, "block3.1", &rng, err);
    for (int i = 0; (1 << i) < scale && st == SR_OK; i++) {
        snprintf(p, sizeof p, "up_blocks.%d.conv", i);
        st = test_srpgan_conv(w, p, 4 * f, f, 3, &rng, err);
        snprintf(p, sizeof p, "up_blocks.%d.prelu", i);
        if (st == SR_OK)
            st = test_srpgan_prelu(w, p, &rng, err);
    }
    if (st == SR_OK)
        st = test_srpgan_conv(w, "block4", 3, f, 9, &rng, err);
    if (st == SR_OK)
        st = sr_model_build(w, true, &m->graph, &m->info, &m->notices, err);
    if (st == SR_OK && sr_graph_fuse(&m->graph, err) < 0)
        st = SR_ERR_NO_MEMORY;
    if (st != SR_OK) {
        sr_model_free(m);
        return NULL;
    }
    return m;
}

#endif
