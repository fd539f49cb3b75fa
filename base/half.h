/* IEEE binary16 ("half", PyTorch's float16) to and from float32, for the
 * loaders (pth, model.bin) and model.bin's writer. Inline and branch-free
 * so that loops converting whole tensors vectorise. */
#ifndef SR_BASE_HALF_H
#define SR_BASE_HALF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Exact: every float16 is a float32, Inf and NaN included (a NaN keeps its
 * payload). A normal h is its exponent and mantissa moved into float
 * position and rebiased; a subnormal one is made normal with an implicit
 * 2^-14 that is then subtracted, exactly. */
static inline float sr_half_to_float(uint16_t h)
{
    const uint32_t em = h & 0x7fffu, sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t normal = (em << 13) + (UINT32_C(112) << 23);
    normal += em >= 0x7c00u ? UINT32_C(112) << 23 : 0; /* Inf, NaN: exponent all ones */
    const uint32_t sub = normal + (UINT32_C(1) << 23);
    float fn, fs;
    memcpy(&fn, &normal, 4);
    memcpy(&fs, &sub, 4);
    fs -= 0x1p-14f;
    const float f = em < 0x400 ? fs : fn;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits |= sign;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

/* Rounds to nearest, ties to even; false when f rounds beyond the largest
 * float16 (65504) or is not finite. */
static inline bool sr_float_to_half(float f, uint16_t *out)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t a = bits & 0x7fffffffu;
    if (a >= 0x477ff000u) /* 65520 and up round to infinity; also Inf, NaN */
        return false;
    if (a < 0x38800000u) { /* below 2^-14: a subnormal (or zero) float16 */
        *out = sign | (uint16_t)nearbyintf(fabsf(f) * 0x1p24f);
        return true;
    }
    a += 0xc8000fffu + ((a >> 13) & 1); /* rebias the exponent, round */
    *out = sign | (uint16_t)(a >> 13);
    return true;
}

#endif
