/* What the tests of the srrun command (tests/tools/test_cli_*.c) share: a
 * work folder in a temporary one, the fixtures they upscale copied in, as
 * cmocka group setup and teardown; srrun run there (cli_run.h), expecting
 * success or a one-line failure that leaves the folder as it was; files
 * written, read and removed there. Header-only, after cmocka.h and
 * testutil.h. */
#ifndef SR_TESTS_TOOLS_CLI_CASES_H
#define SR_TESTS_TOOLS_CLI_CASES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_run.h"
#include "srrun.h"

static char basedir[128], workdir[256];

/* Runs srrun with args (NULL-terminated) inside workdir. */
static inline cli_result run_cli(const char *const *args)
{
    return cli_run(workdir, args);
}

static inline int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Failure: the exit code, one line on stderr holding `message`, and the
 * work folder exactly as before (no output, no temporary). */
static inline void expect_failure(const char *const *args, int code, const char *message)
{
    int before = 0, after = 0;
    DIR *d = opendir(workdir);
    for (struct dirent *e; (e = readdir(d));)
        before++;
    closedir(d);
    cli_result r = run_cli(args);
    if (r.exit_code != code || !strstr(r.err, message) || strncmp(r.err, "srrun: ", 7) != 0)
        fail_msg("exit %d, stderr '%s'; wanted exit %d and '%s'", r.exit_code, r.err, code,
                 message);
    if (code == 1)
        assert_int_equal(count_lines(r.err), 1);
    d = opendir(workdir);
    for (struct dirent *e; (e = readdir(d));)
        after++;
    closedir(d);
    assert_int_equal(after, before);
}

static inline void write_file(const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static inline void copy_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, name);
    int64_t size;
    void *data = test_read_file(path, &size);
    assert_non_null(data);
    write_file(name, data, (size_t)size);
    free(data);
}

/* The whole of work/name, which must exist; the caller frees it. */
static inline void read_whole(const char *name, uint8_t **data, int64_t *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    *data = test_read_file(path, size);
    assert_non_null(*data);
}

static inline void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    assert_int_equal(unlink(path), 0);
}

/* work/name decoded; a failure fails the test. */
static inline sr_image read_work(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    sr_image img = {0};
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

/* img as work/name: JPEG (quality 95) for a .jpg name, else PNG. */
static inline void write_work(const char *name, const sr_image *img)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    sr_error err = {0};
    sr_status st = strstr(name, ".jpg") ? sr_image_write_jpeg(path, img, 95, &err)
                                        : sr_image_write_png(path, img, &err);
    if (st != SR_OK)
        fail_msg("%s", err.message);
}

static inline void run_ok(const char *const *args)
{
    cli_result r = run_cli(args);
    if (r.exit_code != 0)
        fail_msg("exit %d: %s", r.exit_code, r.err);
}

/* cmocka group setup and teardown: the work folder with srpgan_x2.pth,
 * leaves_37x29.png and path_rgba_30x21.png in it, removed at the end. */
static inline int setup(void **state)
{
    (void)state;
    snprintf(basedir, sizeof basedir, "/tmp/srrun-cli-XXXXXX");
    if (!mkdtemp(basedir))
        return -1;
    snprintf(workdir, sizeof workdir, "%s/work", basedir);
    if (mkdir(workdir, 0755) != 0)
        return -1;
    copy_fixture("srpgan_x2.pth");
    copy_fixture("leaves_37x29.png");
    copy_fixture("path_rgba_30x21.png");
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", basedir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
