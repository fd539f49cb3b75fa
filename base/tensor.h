/* Activations: one image, float32, planar (channel, row, column). A tensor
 * may hold only a horizontal band of its image: rows [y0, y0 + shape.h) of
 * an image image_h rows high, with channels cstride elements apart (a band
 * viewed inside a whole tensor keeps the whole tensor's channel stride). */
#ifndef SR_BASE_TENSOR_H
#define SR_BASE_TENSOR_H

#include <stdint.h>

typedef struct sr_shape {
    int64_t c, h, w;
} sr_shape;

typedef struct sr_tensor {
    sr_shape shape; /* h: the rows held */
    float *data;
    int64_t cstride; /* elements from one channel to the next */
    int64_t y0;      /* image row of the first row held */
    int64_t image_h; /* rows of the whole image */
} sr_tensor;

static inline int64_t sr_shape_numel(sr_shape s) { return s.c * s.h * s.w; }

/* Row arithmetic that reaches above the image (negative rows) rounds down. */
static inline int64_t sr_div_floor(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
static inline int64_t sr_div_ceil(int64_t a, int64_t b) { return sr_div_floor(a + b - 1, b); }

/* A packed tensor holding a whole image. */
static inline sr_tensor sr_tensor_whole(sr_shape s, float *data)
{
    return (sr_tensor){s, data, s.h * s.w, 0, s.h};
}

/* Channel c, image row y (which the tensor must hold). */
static inline float *sr_tensor_row(const sr_tensor *t, int64_t c, int64_t y)
{
    return t->data + c * t->cstride + (y - t->y0) * t->shape.w;
}

/* The rows [y0, y1) of t (which it must hold), as a view. */
static inline sr_tensor sr_tensor_rows(const sr_tensor *t, int64_t y0, int64_t y1)
{
    sr_tensor v = *t;
    v.data = t->data + (y0 - t->y0) * t->shape.w;
    v.shape.h = y1 - y0;
    v.y0 = y0;
    return v;
}

#endif
