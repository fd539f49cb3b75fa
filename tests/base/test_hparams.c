/* Hyper-parameter lists: what fits in one, and how a recorded list is
 * checked against the one derived from the weights, named (model.bin 2)
 * or by position (model.bin 1), each difference named in one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/hparams.h"

static sr_hparams srpgan(int64_t scale, int64_t blocks, int64_t width)
{
    sr_hparams h = {0};
    assert_true(sr_hparams_add(&h, "scale", scale));
    assert_true(sr_hparams_add(&h, "blocks", blocks));
    assert_true(sr_hparams_add(&h, "width", width));
    return h;
}

static void test_add(void **state)
{
    (void)state;
    sr_hparams h = {0};
    assert_false(sr_hparams_add(&h, "", 1));
    assert_false(sr_hparams_add(&h, "a_name_of_24_bytes_long_", 1));
    assert_true(sr_hparams_add(&h, "a_name_of_23_bytes_long", 1));
    for (int i = 1; i < SR_HPARAMS_MAX; i++)
        assert_true(sr_hparams_add(&h, "x", i));
    assert_false(sr_hparams_add(&h, "one_too_many", 0));
    assert_int_equal(h.n, SR_HPARAMS_MAX);
    assert_string_equal(h.items[0].name, "a_name_of_23_bytes_long");
    assert_int_equal(h.items[SR_HPARAMS_MAX - 1].value, SR_HPARAMS_MAX - 1);
}

static void check_says(const sr_hparams *recorded, const sr_hparams *derived, const char *message)
{
    sr_error err = {0};
    const sr_status st = sr_hparams_check(recorded, derived, "srpgan", &err);
    if (!message) {
        if (st != SR_OK)
            fail_msg("%s", err.message);
        return;
    }
    assert_int_equal(st, SR_ERR_MODEL);
    assert_string_equal(err.message, message);
}

static void test_check_by_name(void **state)
{
    (void)state;
    const sr_hparams derived = srpgan(4, 16, 64);
    sr_hparams r = srpgan(4, 16, 64);
    check_says(&r, &derived, NULL);
    /* Any order. */
    sr_hparams swapped = r;
    swapped.items[0] = r.items[2];
    swapped.items[2] = r.items[0];
    check_says(&swapped, &derived, NULL);
    r.items[2].value = 32;
    check_says(&r, &derived, "header says width 32, the weights have 64");
    r = srpgan(4, 16, 64);
    r.n = 2;
    check_says(&r, &derived, "header lacks width (the weights have 64)");
    r = srpgan(4, 16, 64);
    sr_hparams_add(&r, "growth", 32);
    check_says(&r, &derived, "header says growth 32, but srpgan has no growth");
    r.n = 0;
    check_says(&r, &derived, "header lacks scale (the weights have 4)");
    sr_hparams none = {0};
    check_says(&none, &none, NULL);
}

/* model.bin version 1: eight unnamed values, in the architecture's order. */
static void test_check_by_position(void **state)
{
    (void)state;
    const sr_hparams derived = srpgan(4, 16, 64);
    sr_hparams r = {.n = 8};
    r.items[0].value = 4;
    r.items[1].value = 16;
    r.items[2].value = 64;
    check_says(&r, &derived, NULL);
    r.items[1].value = 15;
    check_says(&r, &derived, "header says blocks 15, the weights have 16");
    r.items[1].value = 16;
    r.items[7].value = 2;
    check_says(&r, &derived, "header says hyper-parameter 7 is 2, must be 0");
    r.items[7].value = 0;
    r.n = 2;
    check_says(&r, &derived, "header lacks width (the weights have 64)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_check_by_name),
        cmocka_unit_test(test_check_by_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
