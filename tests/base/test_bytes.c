/* Little-endian integers: read and written byte by byte, at any
 * alignment, whatever the host's byte order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytes.h"

static void test_read_and_write(void **state)
{
    (void)state;
    uint8_t buf[11] = {0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88, 0xff, 0xff};
    assert_int_equal(sr_le16(buf + 1), 0x0201);
    assert_int_equal(sr_le32(buf + 1), 0x04030201u);
    assert_int_equal(sr_le64(buf + 1), UINT64_C(0x8807060504030201));
    assert_int_equal(sr_le32(buf + 7), 0xffff8807u); /* no sign extension */
    uint8_t out[11];
    memset(out, 0xee, sizeof out);
    sr_put_le64(out + 1, UINT64_C(0x8807060504030201));
    assert_memory_equal(out + 1, buf + 1, 8);
    assert_int_equal(out[0], 0xee);
    assert_int_equal(out[9], 0xee);
    sr_put_le32(out + 3, 0xa1b2c3d4u);
    assert_int_equal(sr_le32(out + 3), 0xa1b2c3d4u);
    assert_int_equal(out[3], 0xd4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_and_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
