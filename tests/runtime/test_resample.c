/* The bicubic alpha upscale against values worked out by hand: Keys'
 * kernel (a = -0.5) at the offsets an x2 upscale uses, border taps that
 * repeat the edge pixel, overshoot clamped, every pixel type; 1x1 and 2x2
 * inputs; an input without alpha; the colour channels left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/resample.h"

/* Keys' kernel, a = -0.5, by hand:
 * |t| <= 1: 1.5|t|^3 - 2.5|t|^2 + 1;  1 < |t| < 2: -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2. */
static void test_kernel(void **state)
{
    (void)state;
    assert_true(sr_cubic_weight(0.0) == 1.0);
    assert_true(sr_cubic_weight(1.0) == 0.0);
    assert_true(sr_cubic_weight(2.0) == 0.0);
    assert_true(sr_cubic_weight(-3.0) == 0.0);
    assert_true(sr_cubic_weight(0.25) == 0.8671875);
    assert_true(sr_cubic_weight(-0.25) == 0.8671875);
    assert_true(sr_cubic_weight(0.5) == 0.5625);
    assert_true(sr_cubic_weight(0.75) == 0.2265625);
    assert_true(sr_cubic_weight(1.25) == -0.0703125);
    assert_true(sr_cubic_weight(1.5) == -0.0625);
    assert_true(sr_cubic_weight(1.75) == -0.0234375);
}

/* An x2 upscale of a step [0, 1] samples at -0.25, 0.25, 0.75, 1.25; with
 * the edge repeated the unclamped values are (by hand, from the weights
 * above): -0.0703125, 0.203125, 0.796875, 1.0703125. */
static const double step[4] = {-0.0703125, 0.203125, 0.796875, 1.0703125};

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static void test_step_every_type(void **state)
{
    (void)state;
    /* A 2x1 gray+alpha input: alpha 0 then full. */
    uint8_t in8[4] = {9, 0, 9, 255};
    uint16_t in16[4] = {9, 0, 9, 65535};
    float in32[4] = {0.5f, 0.0f, 0.5f, 1.0f};
    const sr_image ins[3] = {
        {2, 1, 2, SR_PIXEL_U8, sizeof in8, in8, {0}},
        {2, 1, 2, SR_PIXEL_U16, sizeof in16, in16, {0}},
        {2, 1, 2, SR_PIXEL_F32, sizeof in32, in32, {0}},
    };
    for (int i = 0; i < 3; i++) {
        uint8_t out8[4 * 2 * 4];
        uint16_t out16[4 * 2 * 4];
        float out32[4 * 2 * 4];
        sr_image outs[3] = {
            {4, 2, 4, SR_PIXEL_U8, 16, out8, {0}},
            {4, 2, 4, SR_PIXEL_U16, 32, out16, {0}},
            {4, 2, 4, SR_PIXEL_F32, 64, out32, {0}},
        };
        for (int o = 0; o < 3; o++) {
            memset(outs[o].data, 0x5a, (size_t)(outs[o].stride * 2));
            assert_int_equal(sr_resample_alpha(&ins[i], &outs[o], NULL), SR_OK);
        }
        /* By hand: 0, round(0.203125 * 255 = 51.797) = 52,
         * round(0.796875 * 255 = 203.203) = 203, 255 (overshoot clamped). */
        const uint8_t want8[4] = {0, 52, 203, 255};
        const uint16_t want16[4] = {0, 13312, 52223, 65535}; /* 13311.797, 52223.203 */
        for (int y = 0; y < 2; y++) /* one input row: both output rows equal */
            for (int x = 0; x < 4; x++) {
                assert_int_equal(out8[y * 16 + x * 4 + 3], want8[x]);
                assert_int_equal(out16[y * 16 + x * 4 + 3], want16[x]);
                assert_float_equal(out32[y * 16 + x * 4 + 3], clamp01(step[x]), 1e-7);
                for (int c = 0; c < 3; c++) /* colour untouched */
                    assert_int_equal(out8[y * 16 + x * 4 + c], 0x5a);
            }
    }
}

/* 2x2 checkerboard [[0, 1], [1, 0]] to 4x4: separable, so the value is
 * (1 - s[y]) * s[x] + s[y] * (1 - s[x]) with s the step above; e.g. at
 * (1, 1) 2 * 0.796875 * 0.203125 = 0.32373 -> 82.55 -> 83, and at (0, 0)
 * 2 * 1.0703125 * -0.0703125 < 0 -> 0. */
static void test_checkerboard_2x2(void **state)
{
    (void)state;
    uint8_t in[2 * 2 * 4] = {0};
    in[3] = 0, in[7] = 255, in[11] = 255, in[15] = 0;
    const sr_image src = {2, 2, 4, SR_PIXEL_U8, 8, in, {0}};
    uint8_t out[4 * 4 * 2];
    sr_image dst = {4, 4, 2, SR_PIXEL_U8, 8, out, {0}};
    assert_int_equal(sr_resample_alpha(&src, &dst, NULL), SR_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            const double v = (1 - step[y]) * step[x] + step[y] * (1 - step[x]);
            assert_int_equal(out[y * 8 + x * 2 + 1], (int)(clamp01(v) * 255 + 0.5));
        }
    assert_int_equal(out[1 * 8 + 1 * 2 + 1], 83);
    assert_int_equal(out[0 * 8 + 0 * 2 + 1], 0);
    assert_int_equal(out[0 * 8 + 3 * 2 + 1], 255); /* 1.0703^2 + 0.0703^2 > 1 */
}

/* A 1x1 input: every tap is the one pixel, so every output is it (the
 * weights sum to 1), at x2, x4 and x8. Without alpha: opaque. */
static void test_1x1_and_no_alpha(void **state)
{
    (void)state;
    uint16_t in[4] = {1, 2, 3, 40000};
    const sr_image src = {1, 1, 4, SR_PIXEL_U16, 8, in, {0}};
    for (int s = 2; s <= 8; s *= 2) {
        uint16_t out[8 * 8 * 4];
        sr_image dst = {s, s, 4, SR_PIXEL_U16, s * 8, out, {0}};
        assert_int_equal(sr_resample_alpha(&src, &dst, NULL), SR_OK);
        for (int i = 0; i < s * s; i++)
            assert_int_equal(out[i * 4 + 3], 40000);
    }
    uint8_t rgb[3 * 3 * 3] = {0};
    const sr_image opaque = {3, 3, 3, SR_PIXEL_U8, 9, rgb, {0}};
    uint8_t out[6 * 6 * 4] = {0};
    sr_image dst = {6, 6, 4, SR_PIXEL_U8, 24, out, {0}};
    assert_int_equal(sr_resample_alpha(&opaque, &dst, NULL), SR_OK);
    for (int i = 0; i < 36; i++)
        assert_int_equal(out[i * 4 + 3], 255);
    sr_image rgb_out = {6, 6, 3, SR_PIXEL_U8, 18, out, {0}};
    sr_error err = {0};
    assert_int_equal(sr_resample_alpha(&opaque, &rgb_out, &err), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "no alpha"));
}

/* A constant alpha stays exactly constant at every size (the edge is
 * repeated, not faded), and a padded stride is honoured. */
static void test_constant_and_stride(void **state)
{
    (void)state;
    uint8_t in[5 * 12];
    memset(in, 0, sizeof in);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 3; x++)
            in[y * 12 + x * 2 + 1] = 200;
    const sr_image src = {3, 5, 2, SR_PIXEL_U8, 12, in, {0}};
    uint8_t out[20 * 16];
    sr_image dst = {6, 20, 2, SR_PIXEL_U8, 16, out, {0}};
    assert_int_equal(sr_resample_alpha(&src, &dst, NULL), SR_OK);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 6; x++)
            assert_int_equal(out[y * 16 + x * 2 + 1], 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel),
        cmocka_unit_test(test_step_every_type),
        cmocka_unit_test(test_checkerboard_2x2),
        cmocka_unit_test(test_1x1_and_no_alpha),
        cmocka_unit_test(test_constant_and_stride),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
