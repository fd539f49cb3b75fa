/* Every floating-point tolerance the tests use, in one place. */
#ifndef SR_TESTS_TOLERANCE_H
#define SR_TESTS_TOLERANCE_H

/* A backend kernel against the reference kernel of its op: summation order
 * differs, so errors grow with the reduction length; relative to the
 * largest magnitude in the output. */
#define SR_TOL_KERNEL_REL 1e-5f

/* The reference kernels (and the CPU backend) against PyTorch computing
 * in float64 (tests/fixtures/ops), relative to PyTorch's largest magnitude:
 * a conv's float32 sums (measured: 6.3e-6 over kernel_cases.h's convs),
 * and the other ops, a few float32 roundings (measured: 1.3e-7). */
#define SR_TOL_ORACLE_CONV_REL 1e-5f
#define SR_TOL_ORACLE_OP_REL 1e-6f

/* The whole network against PyTorch's float32 output, in [0, 1] units. */
#define SR_TOL_NETWORK_ABS 2e-5f

/* The CUDA backend with its GEMMs' inputs rounded to TF32, FP16 or BF16
 * (sr_precision): a conv against the reference, relative as above, and the
 * network against PyTorch's float32, in [0, 1] units. Measured on the host
 * emulation (test_cuda_host): 4.1e-4, 4.0e-4 and 3.8e-3 for a conv;
 * 2.5e-4, 2.4e-4 and 1.8e-3 for the fixture networks. */
#define SR_TOL_TF32_KERNEL_REL 2e-3f
#define SR_TOL_FP16_KERNEL_REL 2e-3f
#define SR_TOL_BF16_KERNEL_REL 2e-2f
#define SR_TOL_TF32_NETWORK_ABS 2e-3f
#define SR_TOL_FP16_NETWORK_ABS 2e-3f
#define SR_TOL_BF16_NETWORK_ABS 1.2e-2f

/* The network with float16 weights (a model.bin saved with --fp16) against
 * the same network with the float32 weights, in [0, 1] units: each weight
 * moves by up to 2^-11 of itself. Hand-set weights that rely on
 * cancellation can do worse (a bilinear network built by hand: 0.027). */
#define SR_TOL_FP16_WEIGHTS_ABS 1e-3f /* measured: 1.7e-4 on the fixtures */

/* 8-bit images against PyTorch's: rounding may flip one level. */
#define SR_TOL_LEVELS 1

#endif
