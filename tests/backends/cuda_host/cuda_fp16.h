/* FP16 for test_cuda_host (see cuda_runtime.h here): GCC's _Float16, which
 * rounds to nearest even as __float2half_rn does. */
#ifndef SR_TESTS_CUDA_HOST_FP16_H
#define SR_TESTS_CUDA_HOST_FP16_H

struct __half {
    _Float16 value;
};

inline __half __float2half_rn(float v) { return __half{(_Float16)v}; }
inline float __half2float(__half h) { return (float)h.value; }

#endif
