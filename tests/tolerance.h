/* Every floating-point tolerance the tests use, in one place. */
#ifndef SR_TESTS_TOLERANCE_H
#define SR_TESTS_TOLERANCE_H

/* A backend kernel against the reference kernel of its op: summation order
 * differs, so errors grow with the reduction length; relative to the
 * largest magnitude in the output. */
#define SR_TOL_KERNEL_REL 1e-5f

/* The whole network against PyTorch's float32 output, in [0, 1] units. */
#define SR_TOL_NETWORK_ABS 2e-5f

/* The network with float16 weights (a model.bin saved with --fp16) against
 * the same network with the float32 weights, in [0, 1] units: each weight
 * moves by up to 2^-11 of itself. Hand-set weights that rely on
 * cancellation can do worse (a bilinear network built by hand: 0.027). */
#define SR_TOL_FP16_WEIGHTS_ABS 1e-3f /* measured: 1.7e-4 on the fixtures */

/* 8-bit images against PyTorch's: rounding may flip one level. */
#define SR_TOL_LEVELS 1

#endif
