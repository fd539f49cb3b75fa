/* Small helpers shared by the test programs: a seeded generator, random
 * fills, comparisons and fixture files. Header-only: each test is one file. */
#ifndef SR_TESTS_TESTUTIL_H
#define SR_TESTS_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "srrun.h"

typedef struct test_rng {
    uint64_t state;
} test_rng;

static inline uint64_t test_rng_next(test_rng *r)
{
    /* xorshift64*: deterministic across platforms, enough for test data. */
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * UINT64_C(2685821657736338717);
}

/* Uniform in [lo, hi). */
static inline float test_rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)(test_rng_next(r) >> 40) / (float)(1 << 24);
}

static inline int test_rng_int(test_rng *r, int lo, int hi)
{
    return lo + (int)(test_rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline void test_fill(test_rng *r, float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = test_rng_uniform(r, lo, hi);
}

static inline void test_fill_nan(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = NAN;
}

/* Largest |a - b|; NaN anywhere makes it infinite, so unwritten outputs fail. */
static inline float test_max_abs_diff(const float *a, const float *b, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d != d)
            return INFINITY;
        if (d > m)
            m = d;
    }
    return m;
}

/* The largest |got - want| over an image's c channels: got interleaved
 * ([pixel][channel], an sr_image's float32 samples), want planar
 * ([channel][pixel], as the PyTorch fixtures hold them). INFINITY where a
 * difference is NaN, so that a pixel the run never wrote (test_fill_nan)
 * fails wherever it lies. */
static inline float test_max_abs_diff_planar(const float *got, const float *want,
                                             int64_t pixels, int c)
{
    float m = 0.0f;
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < pixels; i++) {
            const float d = fabsf(got[i * c + ch] - want[ch * pixels + i]);
            if (d != d)
                return INFINITY;
            if (d > m)
                m = d;
        }
    return m;
}

static inline float test_max_abs(const float *a, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(a[i]) > m)
            m = fabsf(a[i]);
    return m;
}

/* Reads a whole file; NULL if it cannot. */
static inline void *test_read_file(const char *path, int64_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = n;
    return buf;
}

#ifdef SR_FIXTURES_DIR
/* The fixture model <stem>.pth; fails the test with the loader's message
 * (cmocka.h comes first, as in every test). */
static inline sr_model *test_load_model(const char *stem)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pth", SR_FIXTURES_DIR, stem);
    sr_model *model = NULL;
    sr_error err = {0};
    if (sr_model_load(path, NULL, &model, &err) != SR_OK)
        fail_msg("%s", err.message);
    return model;
}
#endif

#endif
