/* SIGINT and SIGTERM reaching the srrun command as it writes its output
 * (tools/interrupt.c): srrun dies of the signal and leaves no partial file
 * nor temporary; and one Ctrl-C ends its wait for a reader of a FIFO given
 * as -o. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "cli_cases.h"

/* Starts srrun in the work folder with args (NULL-terminated), its output
 * and messages discarded; the caller waits for it. */
static pid_t spawn_quiet(const char *const *args)
{
    const char *argv[32] = {"srrun"};
    int n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const int null = open("/dev/null", O_WRONLY);
        if (null < 0 || chdir(workdir) != 0)
            _exit(99);
        dup2(null, 1);
        dup2(null, 2);
        execv(SR_CLI_PATH, (char *const *)argv);
        _exit(98);
    }
    return pid;
}

/* Whether srrun (pid) holds its output's temporary open: an unnamed
 * O_TMPFILE in workdir ("#123 (deleted)") or a named out.png.XXXXXX. */
static int writing_output(pid_t pid)
{
    char dir[64], link[600], target[600];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        const ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = strncmp(target, workdir, strlen(workdir)) == 0 &&
                (strstr(target, "(deleted)") || strstr(target, "/sig.png."));
    }
    if (d)
        closedir(d);
    return found;
}

/* SIGINT or SIGTERM while srrun writes its output, which it does as the
 * run computes the rows: the run stops at its next band, then srrun dies
 * of the signal (exit status 130 or 143 in the shell), leaving no partial
 * file and no temporary (a complete file only when the signal came after
 * the last band). srrun is stopped while it holds the temporary (SIGSTOP)
 * so that the signal surely comes during the write; a run whose write was
 * over before the test saw it is tried again. */
static void test_signal_during_write(void **state)
{
    (void)state;
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, 96, 72, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng rng = {7};
    for (int64_t i = 0; i < img.stride * img.height; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&rng);
    write_work("noise.png", &img);
    sr_image_free(&img);
    const int signals[] = {SIGINT, SIGTERM};
    for (int s = 0; s < 2; s++) {
        int caught = 0;
        for (int attempt = 0; attempt < 30 && !caught; attempt++) {
            const pid_t pid = spawn_quiet((const char *[]){"-q", "-t", "1", "-o", "sig.png",
                                                           "srpgan_x2.pth", "noise.png", NULL});
            int status;
            while (waitpid(pid, &status, WNOHANG) == 0) {
                if (!writing_output(pid)) {
                    nanosleep(&(struct timespec){0, 100000}, NULL); /* leave srrun the CPU */
                    continue;
                }
                kill(pid, SIGSTOP);
                assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
                if (WIFSTOPPED(status)) {
                    /* Stopped while holding it: the signal comes mid-write. */
                    caught = writing_output(pid);
                    if (caught)
                        kill(pid, signals[s]);
                    kill(pid, SIGCONT);
                    assert_int_equal(waitpid(pid, &status, 0), pid);
                }
                break;
            }
            if (caught && !(WIFSIGNALED(status) && WTERMSIG(status) == signals[s]))
                fail_msg("signal %d during the write: status 0x%x", signals[s], status);
            if (!caught && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                fail_msg("srrun failed: status 0x%x", status);
            char path[600];
            snprintf(path, sizeof path, "%s/sig.png", workdir);
            if (!caught || access(path, F_OK) == 0) {
                sr_image out = read_work("sig.png"); /* complete: it decodes */
                assert_int_equal(out.width, 192);
                sr_image_free(&out);
                remove_file("sig.png");
            }
        }
        assert_true(caught);
        DIR *d = opendir(workdir);
        for (struct dirent *e; (e = readdir(d));)
            if (strstr(e->d_name, "sig.png"))
                fail_msg("%s left behind", e->d_name);
        closedir(d);
    }
    remove_file("noise.png");
}

/* Whether pid sleeps in open() waiting for a FIFO's reader. */
static int waiting_on_fifo(pid_t pid)
{
    char path[64], wchan[64] = "";
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(wchan, sizeof wchan, f))
            wchan[0] = '\0';
        fclose(f);
    }
    return strstr(wchan, "wait_for_partner") || strstr(wchan, "fifo");
}

/* A FIFO as -o is written into, with no temporary, so srrun defers no
 * signal there: opening it waits for a reader, and one Ctrl-C must end
 * that wait (it once printed "finishing the output" and went on waiting). */
static void test_interrupt_while_waiting_on_fifo(void **state)
{
    (void)state;
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, 8, 6, 3, SR_PIXEL_U8, NULL), SR_OK);
    write_work("tiny.png", &img);
    sr_image_free(&img);
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/out.fifo", workdir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const pid_t pid = spawn_quiet((const char *[]){"-q", "-t", "1", "--format", "png", "-o",
                                                   "out.fifo", "srpgan_x2.pth", "tiny.png", NULL});
    int status, waited = 0;
    for (; waited < 600 && !waiting_on_fifo(pid); waited++) /* up to 60 s under ASan */
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    assert_true(waiting_on_fifo(pid));
    kill(pid, SIGINT);
    pid_t done = 0;
    for (int i = 0; i < 100 && !(done = waitpid(pid, &status, WNOHANG)); i++)
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("one SIGINT did not end srrun's wait for a reader of its FIFO output");
    }
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
    remove_file("out.fifo");
    remove_file("tiny.png");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_during_write),
        cmocka_unit_test(test_interrupt_while_waiting_on_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
