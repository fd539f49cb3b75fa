/* The CUDA backend as test_cuda and test_archs_cuda open it. Each is built
 * twice: on the module (a GPU's), and with SR_CUDA_ON_HOST on the
 * backend's own source compiled for the host against the stand-in for the
 * CUDA runtime and cuBLAS (backends/cuda_host/). */
#ifndef SR_TESTS_CUDA_OPEN_H
#define SR_TESTS_CUDA_OPEN_H

#include <stdio.h>
#include <stdlib.h>

#include "backends/backend.h"

#ifdef SR_CUDA_ON_HOST
sr_cuda_module_open_fn sr_cuda_module_open;
#define cuda_open sr_cuda_module_open
#else
#define cuda_open sr_cuda_backend_new
#endif

/* Exits with 77, ctest's SKIP_RETURN_CODE, saying why, where the backend
 * does not open: no usable device, or a build without CUDA. */
static inline void test_cuda_or_skip(const char *program)
{
    sr_backend_handle probe;
    sr_error err = {0};
    if (cuda_open(SR_PRECISION_FP32, &probe, &err) != SR_OK) {
        fprintf(stderr, "%s: skipped: %s\n", program, err.message);
        exit(77);
    }
    sr_backend_free(&probe);
}

#endif
