/* backends/cuda/backend.cu built for the host: see cuda_runtime.h here. */
#include "backends/cuda/backend.cu"
