/* float16 <-> float32: every float16 against a plain computation of its
 * value (Inf and NaN included), and rounding back: each float16 exactly,
 * midpoints to even, and overflow refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/half.h"

static float value_of(uint16_t h)
{
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0x1f ? (m ? NAN : INFINITY)
              : e      ? ldexpf((float)(m | 0x400), e - 25)
                       : ldexpf((float)m, -24);
    return h & 0x8000 ? -v : v;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static void test_every_half_to_float(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        const float got = sr_half_to_float((uint16_t)h), want = value_of((uint16_t)h);
        if (isnan(want)) {
            /* A NaN keeps its sign and payload, shifted into place (the
             * quiet bit, 0x400000, may be set on the way). */
            assert_true(isnan(got));
            assert_int_equal(bits_of(got) & 0x803fffffu,
                             (h & 0x8000u) << 16 | (h & 0x1ffu) << 13);
        } else if (bits_of(got) != bits_of(want)) {
            fail_msg("0x%04x: %g, want %g", (unsigned)h, (double)got, (double)want);
        }
    }
}

static void test_float_to_half_rounds_to_nearest_even(void **state)
{
    (void)state;
    uint16_t out;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f)
            continue;
        assert_true(sr_float_to_half(value_of((uint16_t)h), &out));
        assert_int_equal(out, h);
    }
    for (uint32_t h = 0; h < 0x7bff; h++) { /* positive neighbours h, h+1 */
        const float lo = value_of((uint16_t)h), hi = value_of((uint16_t)(h + 1));
        assert_true(sr_float_to_half((lo + hi) / 2, &out)); /* exact: one more bit */
        assert_int_equal(out, h & 1 ? h + 1 : h);
    }
    assert_true(sr_float_to_half(65519.0f, &out));
    assert_int_equal(out, 0x7bff); /* 65504 */
    assert_false(sr_float_to_half(65520.0f, &out));
    assert_false(sr_float_to_half(-INFINITY, &out));
    assert_false(sr_float_to_half(NAN, &out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_half_to_float),
        cmocka_unit_test(test_float_to_half_rounds_to_nearest_even),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
