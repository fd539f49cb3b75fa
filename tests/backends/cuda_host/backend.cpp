/* backends/cuda/backend.cu built for the host: see cuda_runtime.h here. */
#include "backends/cuda/backend.cu"

/* Fault injection for test_cuda: the k-th cudaMalloc from now fails (0:
 * none); and the device bytes still handed out. */
extern "C" void cuda_host_fail_alloc(int k) { cuda_host.fail_alloc = k; }
extern "C" int64_t cuda_host_live_bytes(void) { return (int64_t)cuda_host.live_bytes; }
