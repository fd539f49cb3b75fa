/* The part of the CUDA runtime that backends/cuda uses, on the host, for
 * test_cuda_host: the CUDA backend built as plain C++ and run on machines
 * without a GPU. "Device" memory is host memory handed out here, filled
 * with NaN so that a value read before it is written shows; a copy or a
 * free of memory not handed out here (a host pointer passed as a device
 * one, say) stops the test with a message. */
#ifndef SR_TESTS_CUDA_HOST_RUNTIME_H
#define SR_TESTS_CUDA_HOST_RUNTIME_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#define __host__
#define __device__
#define __global__
#define __shared__

/* The device's rounded arithmetic that is never contracted into an FMA. */
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

enum cudaError_t {
    cudaSuccess,
    cudaErrorInvalidValue,
    cudaErrorMemoryAllocation,
    cudaErrorIllegalAddress,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };

/* The blocks handed out, by address, and how much the pretend device has;
 * fail_alloc > 0 makes that many cudaMallocs from now the one to fail;
 * fault_check > 0 makes that many checks for a launch's error
 * (cudaGetLastError) from now find a kernel's fault, after which, as on a
 * real device, the context is broken: every call fails with it (cudaFree
 * still frees, so that the test can count the bytes). */
struct cuda_host_device {
    std::map<const char *, size_t> blocks;
    size_t live_bytes = 0;
    int fail_alloc = 0;
    int fault_check = 0;
    bool faulted = false;
    static const size_t capacity = size_t(4) << 30;
};
inline cuda_host_device cuda_host;

/* Stops the test: what went wrong, about the pointer p. */
[[noreturn]] inline void cuda_host_misuse(const char *what, const void *p)
{
    fprintf(stderr, "cuda_host: %s (%p)\n", what, p);
    abort();
}

/* Whether [p, p + n) lies in one block handed out. */
inline bool cuda_host_on_device(const void *p, size_t n)
{
    const char *c = (const char *)p;
    auto it = cuda_host.blocks.upper_bound(c);
    if (it == cuda_host.blocks.begin())
        return false;
    --it;
    return c >= it->first && c + n <= it->first + it->second;
}

/* A failure leaves *p pointing nowhere, which the caller must not free:
 * CUDA does not promise what it leaves there. */
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes)
{
    *p = (T *)(uintptr_t)0xdead0000;
    if (cuda_host.faulted)
        return cudaErrorIllegalAddress;
    if ((cuda_host.fail_alloc > 0 && --cuda_host.fail_alloc == 0) ||
        bytes > cuda_host_device::capacity - cuda_host.live_bytes)
        return cudaErrorMemoryAllocation;
    char *block = (char *)malloc(bytes ? bytes : 1);
    if (!block)
        return cudaErrorMemoryAllocation;
    memset(block, 0xff, bytes); /* NaN, as float and as double */
    cuda_host.blocks[block] = bytes;
    cuda_host.live_bytes += bytes;
    *p = (T *)block;
    return cudaSuccess;
}

inline cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    auto it = cuda_host.blocks.find((const char *)p);
    if (it == cuda_host.blocks.end())
        cuda_host_misuse("cudaFree of memory cudaMalloc did not hand out", p);
    cuda_host.live_bytes -= it->second;
    cuda_host.blocks.erase(it);
    free(p);
    return cudaSuccess;
}

inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    const void *device = kind == cudaMemcpyHostToDevice ? dst : src;
    const void *host = kind == cudaMemcpyHostToDevice ? src : dst;
    if (!cuda_host_on_device(device, bytes))
        cuda_host_misuse("cudaMemcpy: the device side is not device memory", device);
    if (cuda_host_on_device(host, 1))
        cuda_host_misuse("cudaMemcpy: the host side is device memory", host);
    if (cuda_host.faulted)
        return cudaErrorIllegalAddress;
    memcpy(dst, src, bytes);
    return cudaSuccess;
}

inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    *free_bytes = cuda_host_device::capacity - cuda_host.live_bytes;
    *total = cuda_host_device::capacity;
    return cudaSuccess;
}

inline cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

/* Kernels run as they are launched; a fault shows at a check, and stays. */
inline cudaError_t cudaGetLastError(void)
{
    if (cuda_host.fault_check > 0 && --cuda_host.fault_check == 0)
        cuda_host.faulted = true;
    return cuda_host.faulted ? cudaErrorIllegalAddress : cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize(void)
{
    return cuda_host.faulted ? cudaErrorIllegalAddress : cudaSuccess;
}

inline const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? "out of memory"
           : e == cudaErrorIllegalAddress ? "an illegal memory access was encountered"
                                          : "invalid value";
}

#endif
