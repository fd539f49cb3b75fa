/* Running the srrun command as a user does, for the tests of tools/: its
 * exit code, stdout, stderr and peak memory. Header-only, as testutil.h. */
#ifndef SR_TESTS_TOOLS_CLI_RUN_H
#define SR_TESTS_TOOLS_CLI_RUN_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct cli_result {
    int exit_code;
    char out[8192], err[8192];
    int64_t peak_rss; /* bytes */
} cli_result;

/* Reads the file into buf (NUL-terminated, cut to size - 1) and removes it. */
static void cli_slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
}

/* Runs srrun with args (NULL-terminated, at most 62) inside dir; stdout
 * and stderr go through files in dir's parent. A crash fails the test. */
static cli_result cli_run(const char *dir, const char *const *args)
{
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/../stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/../stderr", dir);
    const char *argv[64] = {"srrun"};
    int n = 1;
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || chdir(dir) != 0)
            _exit(99);
        dup2(o, 1);
        dup2(e, 2);
        execv(SR_CLI_PATH, (char *const *)argv);
        _exit(98);
    }
    int status;
    struct rusage usage;
    assert_int_equal(wait4(pid, &status, 0, &usage), pid);
    cli_result r;
    r.peak_rss = (int64_t)usage.ru_maxrss * 1024;
    assert_true(WIFEXITED(status)); /* a signal (a crash) fails the test */
    r.exit_code = WEXITSTATUS(status);
    cli_slurp(out_path, r.out, sizeof r.out);
    cli_slurp(err_path, r.err, sizeof r.err);
    return r;
}

#endif
