/* The fast CRC-32 (formats/crc32.c) against zlib's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "../testutil.h"
#include "formats/crc32.h"

static void test_crc32_matches_zlib(void **state)
{
    (void)state;
    const size_t n = (1 << 20) + 100;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    test_rng r = {7};
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)test_rng_next(&r);
    /* Every length around the 16- and 64-byte fold steps, at every
     * misalignment, continuing from a non-zero CRC. */
    for (size_t len = 0; len < 300; len++)
        for (size_t off = 0; off < 16; off += 5) {
            uint32_t want = (uint32_t)crc32(12345, buf + off, (uInt)len);
            assert_int_equal(sr_crc32(12345, buf + off, len), want);
        }
    assert_int_equal(sr_crc32(0, buf + 3, n - 3), (uint32_t)crc32(0, buf + 3, (uInt)(n - 3)));
    /* Chained in uneven pieces equals one call. */
    uint32_t c = 0;
    for (size_t at = 0; at < n;) {
        size_t len = (size_t)test_rng_int(&r, 0, 5000);
        len = len > n - at ? n - at : len;
        c = sr_crc32(c, buf + at, len);
        at += len;
    }
    assert_int_equal(c, (uint32_t)crc32(0, buf, (uInt)n));
    memset(buf, 0, 4096);
    assert_int_equal(sr_crc32(0, buf, 4096), (uint32_t)crc32(0, buf, 4096));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_matches_zlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
