/* One model shared by sessions on several threads at once, as srrun.h
 * allows: each thread opens its own session on the one model and runs the
 * same images through it, and every output is bit for bit the output of a
 * session run alone. Each session's progress callback must be called on
 * the thread that called sr_session_run, with fractions that never go
 * back and end at 1. Built with SR_TSAN (.ci/run), ThreadSanitizer checks
 * the sharing itself; there every session runs on one thread (n_threads
 * 1, and OMP_NUM_THREADS=1 for OpenBLAS), because libgomp is not
 * instrumented and its barriers would look like races. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

#define N_WORKERS 4
#define N_RUNS 2 /* per worker and image */

#if defined(__SANITIZE_THREAD__)
#define SESSION_THREADS 1
#else
#define SESSION_THREADS 2
#endif

static const char *const inputs[] = {
    SR_FIXTURES_DIR "/kite_41x27.jpg",
    SR_FIXTURES_DIR "/path_rgba_30x21.png",
};
#define N_INPUTS (sizeof inputs / sizeof *inputs)

typedef struct shared {
    sr_model *model;
    sr_image in[N_INPUTS];
    sr_image want[N_INPUTS]; /* each input's output from a session run alone */
} shared;

/* What one run's progress callback saw. */
typedef struct progress_log {
    pthread_t runner; /* the thread that called sr_session_run */
    int n_calls, n_wrong_thread, n_backwards;
    double last;
} progress_log;

static int on_progress(void *user, double fraction)
{
    progress_log *log = user;
    log->n_calls++;
    log->n_wrong_thread += !pthread_equal(pthread_self(), log->runner);
    log->n_backwards += fraction < log->last;
    log->last = fraction;
    return 0;
}

typedef struct worker {
    const shared *shared;
    pthread_t thread;
    char failure[256]; /* "" when every run matched */
} worker;

static sr_status run_one(const sr_model *model, const sr_image *in, sr_image *out,
                         progress_log *log, char *failure, size_t size)
{
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = SR_BACKEND_CPU;
    opt.n_threads = SESSION_THREADS;
    opt.progress = on_progress;
    opt.progress_user = log;
    sr_session *session = NULL;
    sr_error err = {0};
    const int scale = sr_model_scale(model);
    sr_status st = sr_image_alloc(out, in->width * scale, in->height * scale, 3, SR_PIXEL_F32,
                                  &err);
    if (st == SR_OK)
        st = sr_session_new(model, &opt, &session, &err);
    if (st != SR_OK) {
        snprintf(failure, size, "%.200s", err.message);
        return st;
    }
    for (int r = 0; r < N_RUNS && st == SR_OK; r++) {
        *log = (progress_log){.runner = pthread_self()};
        st = sr_session_run(session, in, out);
        if (st != SR_OK)
            snprintf(failure, size, "%.200s", sr_session_last_error(session));
        else if (log->n_calls == 0 || log->n_wrong_thread || log->n_backwards || log->last != 1.0)
            snprintf(failure, size,
                     "progress: %d calls, %d on another thread, %d going back, last %g",
                     log->n_calls, log->n_wrong_thread, log->n_backwards, log->last);
        if (failure[0])
            st = SR_ERR_INVALID_ARGUMENT;
    }
    sr_session_free(session);
    return st;
}

static void *work(void *arg)
{
    worker *w = arg;
    for (size_t i = 0; i < N_INPUTS && !w->failure[0]; i++) {
        sr_image out;
        progress_log log;
        if (run_one(w->shared->model, &w->shared->in[i], &out, &log, w->failure,
                    sizeof w->failure) == SR_OK &&
            memcmp(out.data, w->shared->want[i].data,
                   (size_t)(out.stride * out.height)) != 0)
            snprintf(w->failure, sizeof w->failure, "%s: output differs from a lone run",
                     inputs[i]);
        sr_image_free(&out);
    }
    return NULL;
}

static void test_sessions_on_threads_share_one_model(void **state)
{
    (void)state;
    shared s = {.model = test_load_model("srpgan_x2")};
    for (size_t i = 0; i < N_INPUTS; i++) {
        sr_error err = {0};
        if (sr_image_read(inputs[i], NULL, &s.in[i], &err) != SR_OK)
            fail_msg("%s", err.message);
        progress_log log;
        char failure[256] = "";
        if (run_one(s.model, &s.in[i], &s.want[i], &log, failure, sizeof failure) != SR_OK)
            fail_msg("alone: %s", failure);
    }
    worker workers[N_WORKERS];
    for (int t = 0; t < N_WORKERS; t++) {
        workers[t] = (worker){.shared = &s};
        assert_int_equal(pthread_create(&workers[t].thread, NULL, work, &workers[t]), 0);
    }
    for (int t = 0; t < N_WORKERS; t++)
        assert_int_equal(pthread_join(workers[t].thread, NULL), 0);
    for (int t = 0; t < N_WORKERS; t++)
        if (workers[t].failure[0])
            fail_msg("thread %d: %s", t, workers[t].failure);
    for (size_t i = 0; i < N_INPUTS; i++) {
        sr_image_free(&s.in[i]);
        sr_image_free(&s.want[i]);
    }
    sr_model_free(s.model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_on_threads_share_one_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
