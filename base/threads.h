/* Short parallel work on threads of its own: what runs before a model's
 * first session, loading it. OpenMP's thread pool does not survive a fork
 * (its threads are gone in the child, which then waits for them forever),
 * and programs load a model and then fork: bench/srbench.c's children,
 * Python's multiprocessing, pre-forking servers. These threads end before
 * sr_run_threads returns. */
#ifndef SR_BASE_THREADS_H
#define SR_BASE_THREADS_H

/* Runs work(arg) on n threads at once, the caller's among them, and returns
 * when every one has returned. A thread that cannot be started is left
 * out, so work should take its items from a shared atomic counter until
 * none is left, not a share fixed in advance. */
void sr_run_threads(int n, void (*work)(void *arg), void *arg);

/* Threads worth starting for `items` items: at most `most` (0: one per
 * core OpenMP would use, OMP_NUM_THREADS or every core), at most one per
 * item, at least one. */
int sr_threads_for(long long items, int most);

#endif
