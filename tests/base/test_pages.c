/* The page pool: the best fit is taken and trimmed, the largest grown when
 * none fits, nothing is taken from an empty pool
 * or for no bytes, a full pool unmaps what it cannot keep, and draining
 * empties it. Pages are written through their whole length each time, so
 * a trim or growth gone wrong faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/pages.h"

static void fill(void *p, int64_t bytes, int value) { memset(p, value, (size_t)bytes); }

static void test_best_fit_then_trim(void **state)
{
    (void)state;
    sr_page_pool pool = {0};
    const int64_t sizes[] = {3 << 20, 1 << 20, 2 << 20};
    void *maps[3];
    for (int i = 0; i < 3; i++) {
        maps[i] = sr_pages_alloc(sizes[i]);
        assert_non_null(maps[i]);
        fill(maps[i], sizes[i], i + 1);
        sr_page_pool_put(&pool, maps[i], sizes[i]);
    }
    assert_null(sr_page_pool_take(&pool, 0));
    /* 1.5 MB: the 2 MB one, trimmed. */
    char *p = sr_page_pool_take(&pool, 3 << 19);
    assert_ptr_equal(p, maps[2]);
    assert_int_equal(pool.n, 2);
    fill(p, 3 << 19, 9);
    /* 1 MB exactly: the 1 MB one. */
    assert_ptr_equal(sr_page_pool_take(&pool, 1 << 20), maps[1]);
    sr_pages_free(maps[1], 1 << 20);
    sr_pages_free(p, 3 << 19);
    sr_page_pool_drain(&pool);
    assert_int_equal(pool.n, 0);
    assert_null(sr_page_pool_take(&pool, 1));
}

static void test_grows_the_largest(void **state)
{
    (void)state;
    sr_page_pool pool = {0};
    char *small = sr_pages_alloc(1 << 20), *large = sr_pages_alloc(2 << 20);
    fill(small, 1 << 20, 1);
    fill(large, 2 << 20, 7);
    sr_page_pool_put(&pool, small, 1 << 20);
    sr_page_pool_put(&pool, large, 2 << 20);
    char *p = sr_page_pool_take(&pool, 5 << 20);
    assert_non_null(p);
    assert_int_equal(pool.n, 1);
    assert_ptr_equal(pool.pages[0], small);
    fill(p, 5 << 20, 3); /* the new pages too */
    sr_pages_free(p, 5 << 20);
    sr_page_pool_drain(&pool);
}

static void test_full_pool_unmaps(void **state)
{
    (void)state;
    sr_page_pool pool = {0};
    for (int i = 0; i < SR_PAGE_POOL_MAX + 3; i++) {
        void *p = sr_pages_alloc(4096);
        assert_non_null(p);
        sr_page_pool_put(&pool, p, 4096);
    }
    assert_int_equal(pool.n, SR_PAGE_POOL_MAX);
    sr_page_pool_put(&pool, NULL, 4096);
    assert_int_equal(pool.n, SR_PAGE_POOL_MAX);
    sr_page_pool_drain(&pool);
    assert_int_equal(pool.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_best_fit_then_trim),
        cmocka_unit_test(test_grows_the_largest),
        cmocka_unit_test(test_full_pool_unmaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
