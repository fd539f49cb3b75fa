/* A program may load a model, then fork and run it in the child, as
 * bench/srbench.c does and Python's multiprocessing may: loading starts no
 * OpenMP threads, whose pool would be gone in the child, which would then
 * wait for it forever (base/threads.h). The model is loaded in a process
 * that has run nothing else; the child gets a minute. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

/* Runs the model on 2 threads (a parallel region) in the child. */
static int run_in_child(sr_model *model)
{
    alarm(60);
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    options.backend = SR_BACKEND_CPU;
    options.n_threads = 2;
    sr_session *session;
    sr_image in, out;
    if (sr_session_new(model, &options, &session, NULL) != SR_OK ||
        sr_image_alloc(&in, 24, 16, 3, SR_PIXEL_U8, NULL) != SR_OK ||
        sr_image_alloc(&out, 48, 32, 3, SR_PIXEL_U8, NULL) != SR_OK)
        return 2;
    return sr_session_run(session, &in, &out) == SR_OK ? 0 : 1;
}

static void test_model_loaded_before_fork_runs_in_child(void **state)
{
    (void)state;
    sr_model *model;
    sr_error err = {0};
    if (sr_model_load(SR_FIXTURES_DIR "/rrdbnet_x2.pth", NULL, &model, &err) != SR_OK)
        fail_msg("%s", err.message);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(run_in_child(model));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the child died of signal %d (14: it hung)", WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_loaded_before_fork_runs_in_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
