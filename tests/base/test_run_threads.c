/* base/threads.c: sr_run_threads does every item once on the threads it
 * starts and returns after them; sr_threads_for counts the threads worth
 * starting, capped by the caller's most (sr_model_options.n_threads). */
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/threads.h"

enum { N_ITEMS = 1000 };

typedef struct job {
    atomic_int next;
    atomic_int done[N_ITEMS];
} job;

static void work(void *arg)
{
    job *j = arg;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < N_ITEMS;)
        atomic_fetch_add(&j->done[i], 1);
}

static void test_every_item_once(void **state)
{
    (void)state;
    for (int n = 1; n <= 8; n++) {
        static job j;
        atomic_init(&j.next, 0);
        for (int i = 0; i < N_ITEMS; i++)
            atomic_init(&j.done[i], 0);
        sr_run_threads(n, work, &j);
        for (int i = 0; i < N_ITEMS; i++)
            assert_int_equal(atomic_load(&j.done[i]), 1);
    }
}

static void test_threads_for_caps(void **state)
{
    (void)state;
    const int cores = omp_get_max_threads();
    assert_int_equal(sr_threads_for(100000, 0), cores);
    assert_int_equal(sr_threads_for(100000, 1), 1);
    assert_int_equal(sr_threads_for(100000, 3), 3);
    assert_int_equal(sr_threads_for(2, 3), 2);
    assert_int_equal(sr_threads_for(0, 3), 1);
    assert_int_equal(sr_threads_for(1, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once),
        cmocka_unit_test(test_threads_for_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
