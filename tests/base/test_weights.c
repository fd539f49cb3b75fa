/* The named-weight collection: lookup by name through its hash index
 * (growth, removals by truncate and keep), the duplicate and count limits.
 * A file may name 10^5 tensors; a linear search per add or lookup made
 * that minutes, so the big case runs under an alarm far above its time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/weights.h"

static void add_named(sr_weights *w, int i, sr_status want)
{
    char name[32];
    snprintf(name, sizeof name, "layer.%d.weight", i);
    sr_error err = {{0}};
    float *owned = malloc(sizeof *owned);
    assert_non_null(owned);
    *owned = (float)i;
    sr_status st = sr_weights_add(w, name, 1, (int64_t[]){1}, owned, owned, &err);
    if (st != want)
        fail_msg("%s: status %d, wanted %d: %s", name, st, want, err.message);
}

static float value_of(const sr_weights *w, int i)
{
    char name[32];
    snprintf(name, sizeof name, "layer.%d.weight", i);
    const sr_weight *t = sr_weights_find(w, name);
    return t ? t->data[0] : -1.0f;
}

static void test_find_after_growth_and_removal(void **state)
{
    (void)state;
    sr_weights w = {0};
    assert_null(sr_weights_find(&w, "x")); /* empty: no index yet */
    for (int i = 0; i < 1000; i++)
        add_named(&w, i, SR_OK);
    for (int i = 0; i < 1000; i++)
        assert_true(value_of(&w, i) == (float)i);
    add_named(&w, 7, SR_ERR_FORMAT); /* duplicate */
    assert_int_equal(w.n_items, 1000);

    sr_weights_truncate(&w, 600);
    assert_true(value_of(&w, 599) == 599.0f);
    assert_true(value_of(&w, 600) == -1.0f);
    add_named(&w, 600, SR_OK); /* its name is free again */
    assert_true(value_of(&w, 600) == 600.0f);

    bool *keep = calloc((size_t)w.n_items, sizeof *keep);
    for (int64_t i = 0; i < w.n_items; i++)
        keep[i] = i % 3 == 0;
    sr_weights_keep(&w, keep);
    free(keep);
    assert_int_equal(w.n_items, 201);
    for (int i = 0; i <= 600; i++)
        assert_true(value_of(&w, i) == (i % 3 == 0 ? (float)i : -1.0f));
    assert_string_equal(w.items[1].name, "layer.3.weight"); /* order kept */
    sr_weights_free(&w);
}

static void test_many_names_and_the_limit(void **state)
{
    (void)state;
    sr_weights w = {0};
    alarm(30);
    for (int i = 0; i < SR_WEIGHTS_MAX_COUNT; i++)
        add_named(&w, i, SR_OK);
    for (int round = 0; round < 8; round++)
        for (int i = SR_WEIGHTS_MAX_COUNT - 1; i >= 0; i--)
            assert_true(value_of(&w, i) == (float)i);
    alarm(0);
    sr_error err = {{0}};
    float *owned = malloc(sizeof *owned);
    assert_int_equal(sr_weights_add(&w, "one.more", 1, (int64_t[]){1}, owned, owned, &err),
                     SR_ERR_LIMIT);
    assert_string_equal(err.message, "more than 65536 tensors (limit); no network needs so many");
    sr_weights_free(&w);
}

/* 65536 names of 16 three-byte blocks that unseeded FNV-1a sends to one
 * bucket of any table up to 2^20 slots: its low k bits depend only on the
 * low k bits of its state, so two blocks that take one low state to the
 * same next one can be chosen freely, stage after stage. A file holding
 * such names once made loading quadratic (2^31 string compares); with the
 * table's seeded hash they spread like any others. */
static void test_names_made_to_collide(void **state)
{
    (void)state;
    enum { STAGES = 16, LOW_BITS = 20, BLOCK = 3 };
    const uint64_t mask = (UINT64_C(1) << LOW_BITS) - 1, prime = UINT64_C(1099511628211);
    uint8_t blocks[STAGES][2][BLOCK];
    uint32_t *seen = malloc((size_t)(mask + 1) * sizeof *seen);
    assert_non_null(seen);
    uint64_t low = UINT64_C(14695981039346656037) & mask;
    for (int stage = 0; stage < STAGES; stage++) {
        memset(seen, 0, (size_t)(mask + 1) * sizeof *seen);
        bool found = false;
        for (uint32_t b = 0; b < 255 * 255 * 255 && !found; b++) {
            const uint8_t block[BLOCK] = {(uint8_t)(1 + b / 65025), (uint8_t)(1 + b / 255 % 255),
                                          (uint8_t)(1 + b % 255)};
            uint64_t next = low;
            for (int i = 0; i < BLOCK; i++)
                next = (next ^ block[i]) * prime & mask;
            if (seen[next]) {
                const uint32_t a = seen[next] - 1;
                const uint8_t first[BLOCK] = {(uint8_t)(1 + a / 65025),
                                              (uint8_t)(1 + a / 255 % 255), (uint8_t)(1 + a % 255)};
                memcpy(blocks[stage][0], first, BLOCK);
                memcpy(blocks[stage][1], block, BLOCK);
                low = next;
                found = true;
            }
            seen[next] = b + 1;
        }
        assert_true(found);
    }
    free(seen);
    sr_weights w = {0};
    alarm(20); /* the seeded table takes well under a second, even under ASan */
    for (uint32_t pick = 0; pick < (1u << STAGES); pick++) {
        char name[BLOCK * STAGES + 1];
        for (int stage = 0; stage < STAGES; stage++)
            memcpy(name + BLOCK * stage, blocks[stage][pick >> stage & 1], BLOCK);
        name[BLOCK * STAGES] = '\0';
        sr_error err = {{0}};
        float *owned = malloc(sizeof *owned);
        assert_non_null(owned);
        *owned = (float)pick;
        if (sr_weights_add(&w, name, 1, (int64_t[]){1}, owned, owned, &err) != SR_OK)
            fail_msg("%s", err.message);
        assert_non_null(sr_weights_find(&w, name));
    }
    alarm(0);
    assert_int_equal(w.n_items, 1 << STAGES);
    sr_weights_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_after_growth_and_removal),
        cmocka_unit_test(test_many_names_and_the_limit),
        cmocka_unit_test(test_names_made_to_collide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
