/* Activations: one image, float32, planar (channel, row, column), packed. */
#ifndef SR_RUNTIME_TENSOR_H
#define SR_RUNTIME_TENSOR_H

#include <stdint.h>

typedef struct sr_shape {
    int64_t c, h, w;
} sr_shape;

typedef struct sr_tensor {
    sr_shape shape;
    float *data;
} sr_tensor;

static inline int64_t sr_shape_numel(sr_shape s) { return s.c * s.h * s.w; }

#endif
