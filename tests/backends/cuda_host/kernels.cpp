/* backends/cuda/kernels.cu built for the host: see cuda_runtime.h here. */
#include "backends/cuda/kernels.cu"
