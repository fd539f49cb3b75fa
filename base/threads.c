/* sr_run_threads: pthreads started and joined within the call. */
#include "base/threads.h"

#include <omp.h>
#include <pthread.h>

/* Beyond the caller's: a model file's 8 MB chunks give more only past
 * half a gigabyte, and the weights' check is memory-bound long before. */
#define MAX_THREADS 64

typedef struct job {
    void (*work)(void *arg);
    void *arg;
} job;

static void *run_job(void *p)
{
    const job *j = p;
    j->work(j->arg);
    return NULL;
}

void sr_run_threads(int n, void (*work)(void *arg), void *arg)
{
    job j = {work, arg};
    pthread_t threads[MAX_THREADS];
    int started = 0;
    for (; started < n - 1 && started < MAX_THREADS; started++)
        if (pthread_create(&threads[started], NULL, run_job, &j) != 0)
            break;
    work(arg);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

int sr_threads_for(long long items, int most)
{
    /* omp_get_max_threads reads a setting; it starts no threads. */
    const int cores = most > 0 ? most : omp_get_max_threads();
    return items < 1 ? 1 : items < cores ? (int)items : cores;
}
