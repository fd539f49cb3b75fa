/* BF16 for test_cuda_host (see cuda_runtime.h here): float's top 16 bits,
 * rounded to nearest even as __float2bfloat16_rn does. */
#ifndef SR_TESTS_CUDA_HOST_BF16_H
#define SR_TESTS_CUDA_HOST_BF16_H

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    uint16_t bits;
};

inline __nv_bfloat16 __float2bfloat16_rn(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
        return __nv_bfloat16{(uint16_t)(u >> 16 | 0x40)};
    return __nv_bfloat16{(uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16)};
}

inline float __bfloat162float(__nv_bfloat16 b)
{
    const uint32_t u = (uint32_t)b.bits << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

#endif
