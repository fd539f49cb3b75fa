/* The CPU backend's tanh (backends/cpu/cpu.h, tanh.c): sr_cpu_tanh against
 * tanh in double over a sweep of every sign, exponent and much of each
 * mantissa (fit_tanh.py measures every float), odd, NaN and infinities;
 * the tanh_affine kernel on rows whose lengths reach both the vectorised
 * loop and its scalar tail, in place or not, the same bits. (That it
 * matches the reference and PyTorch, banded bit for bit: test_ops.) */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/cpu.h"
#include "testutil.h"

#define TANH_MAX_ERR 3.6e-7 /* fit_tanh.py, over every float: 3.57e-7 */

static float from_bits(uint32_t b)
{
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

static void test_tanh_within_its_error_everywhere(void **state)
{
    (void)state;
    double worst = 0.0;
    /* Every 61st float from +0 to +inf (odd stride: all mantissa bits
     * move), both signs. */
    for (uint32_t b = 0; b < 0x7f800000u; b += 61)
        for (int sign = 0; sign < 2; sign++) {
            const float x = from_bits(b | (uint32_t)sign << 31);
            const float t = sr_cpu_tanh(x);
            const double e = fabs((double)t - tanh((double)x));
            if (!(e <= TANH_MAX_ERR))
                fail_msg("tanh(%.9g): %.9g, off by %g", x, t, e);
            worst = e > worst ? e : worst;
            if (t != -sr_cpu_tanh(-x))
                fail_msg("tanh(%.9g) is not odd", x);
        }
    /* And densely where it bends, [-10, 10] by 2^-16. */
    for (int i = -(10 << 16); i <= 10 << 16; i++) {
        const float x = ldexpf((float)i, -16);
        const double e = fabs((double)sr_cpu_tanh(x) - tanh((double)x));
        if (!(e <= TANH_MAX_ERR))
            fail_msg("tanh(%.9g) off by %g", x, e);
        worst = e > worst ? e : worst;
    }
    printf("max |sr_cpu_tanh - tanh|: %.3g\n", worst);
}

static void test_tanh_special_values(void **state)
{
    (void)state;
    assert_true(isnan(sr_cpu_tanh(NAN)));
    assert_true(isnan(sr_cpu_tanh(-NAN)));
    assert_true(sr_cpu_tanh(INFINITY) == 1.0f && sr_cpu_tanh(-INFINITY) == -1.0f);
    assert_true(sr_cpu_tanh(FLT_MAX) == 1.0f && sr_cpu_tanh(9.0f) == 1.0f);
    assert_true(sr_cpu_tanh(0.0f) == 0.0f && !signbit(sr_cpu_tanh(0.0f)));
    assert_true(sr_cpu_tanh(-0.0f) == 0.0f && signbit(sr_cpu_tanh(-0.0f)));
    assert_float_equal(sr_cpu_tanh(1e-30f) / 1e-30f, 1.0f, 2e-7); /* x^2 underflows, x not */
}

/* Rows of every length 1 to 21, values with NaN and infinities among
 * them, at every position of the vector loop and the tail. */
static void test_tanh_affine_kernel(void **state)
{
    (void)state;
    test_rng r = {7};
    for (int64_t w = 1; w <= 21; w++) {
        const sr_shape s = {2, 3, w};
        const int64_t n = sr_shape_numel(s);
        float *x = malloc((size_t)n * sizeof *x), *o = malloc((size_t)n * sizeof *o),
              *io = malloc((size_t)n * sizeof *io);
        test_fill(&r, x, n, -12, 12);
        x[n / 3] = NAN;
        x[n / 2] = INFINITY;
        x[n - 1] = -INFINITY;
        memcpy(io, x, (size_t)n * sizeof *x);
        sr_tensor in = sr_tensor_whole(s, x), out = sr_tensor_whole(s, o),
                  inout = sr_tensor_whole(s, io);
        const sr_node node = {.op = SR_OP_TANH_AFFINE, .n_inputs = 1};
        sr_cpu_tanh_affine(&node, &in, &out, NULL);
        sr_cpu_tanh_affine(&node, &inout, &inout, NULL);
        for (int64_t i = 0; i < n; i++) {
            const float want = (sr_cpu_tanh(x[i]) + 1.0f) * 0.5f;
            if (memcmp(&o[i], &want, sizeof want) != 0 || memcmp(&io[i], &want, sizeof want) != 0)
                fail_msg("width %lld, value %lld: %.9g and in place %.9g, wanted %.9g",
                         (long long)w, (long long)i, o[i], io[i], want);
            if (!isnan(x[i]))
                assert_float_equal(o[i], (tanh((double)x[i]) + 1.0) / 2.0, 2.5e-7);
        }
        assert_true(isnan(o[n / 3]));
        assert_true(o[n / 2] == 1.0f && o[n - 1] == 0.0f);
        free(x);
        free(o);
        free(io);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tanh_within_its_error_everywhere),
        cmocka_unit_test(test_tanh_special_values),
        cmocka_unit_test(test_tanh_affine_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
