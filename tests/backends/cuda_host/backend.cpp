/* backends/cuda/backend.cu built for the host: see cuda_runtime.h here. */
#include "backends/cuda/backend.cu"

/* Fault injection for test_cuda: the k-th cudaMalloc from now fails (0:
 * none); and the device bytes still handed out. */
extern "C" void cuda_host_fail_alloc(int k) { cuda_host.fail_alloc = k; }
extern "C" int64_t cuda_host_live_bytes(void) { return (int64_t)cuda_host.live_bytes; }

/* The k-th check for a launch's error from now finds a fault, which stays
 * (0: a working device again; negative: faulted now, as when a kernel
 * failed after the last check, which the next call of any kind reports). */
extern "C" void cuda_host_fault(int k)
{
    cuda_host.fault_check = k > 0 ? k : 0;
    cuda_host.faulted = k < 0;
}
