/* Every floating-point tolerance the tests use, in one place. */
#ifndef SR_TESTS_TOLERANCE_H
#define SR_TESTS_TOLERANCE_H

/* A backend kernel against the reference kernel of its op: summation order
 * differs, so errors grow with the reduction length; relative to the
 * largest magnitude in the output. */
#define SR_TOL_KERNEL_REL 1e-5f

/* The whole network against PyTorch's float32 output, in [0, 1] units. */
#define SR_TOL_NETWORK_ABS 2e-5f

/* 8-bit images against PyTorch's: rounding may flip one level. */
#define SR_TOL_LEVELS 1

#endif
