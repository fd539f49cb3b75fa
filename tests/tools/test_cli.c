/* The srrun command as a user runs it: exit codes (0 done, 1 failure, 2 bad
 * usage), one-line messages that name the file, default names, and no
 * output file (nor temporary) left behind by a failed run. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

typedef struct cli_result {
    int exit_code;
    char out[8192], err[8192];
} cli_result;

static char basedir[128], workdir[256];

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
}

/* Runs srrun with args (NULL-terminated) inside workdir. */
static cli_result run_cli(const char *const *args)
{
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/../stdout", workdir);
    snprintf(err_path, sizeof err_path, "%s/../stderr", workdir);
    const char *argv[32] = {"srrun"};
    int n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || chdir(workdir) != 0)
            _exit(99);
        dup2(o, 1);
        dup2(e, 2);
        execv(SR_CLI_PATH, (char *const *)argv);
        _exit(98);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    cli_result r;
    assert_true(WIFEXITED(status)); /* a signal (a crash) fails the test */
    r.exit_code = WEXITSTATUS(status);
    slurp(out_path, r.out, sizeof r.out);
    slurp(err_path, r.err, sizeof r.err);
    return r;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Failure: the exit code, one line on stderr holding `message`, and the
 * work folder exactly as before (no output, no temporary). */
static void expect_failure(const char *const *args, int code, const char *message)
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

static void write_file(const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void copy_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, name);
    int64_t size;
    void *data = test_read_file(path, &size);
    assert_non_null(data);
    write_file(name, data, (size_t)size);
    free(data);
}

static int setup(void **state)
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
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", basedir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_help_and_version(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"--help", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "usage: srrun [options] [MODEL] INPUT"));
    r = run_cli((const char *[]){"--version", NULL});
    assert_int_equal(r.exit_code, 0);
    char want[64];
    snprintf(want, sizeof want, "srrun %s\n", sr_version_string());
    assert_string_equal(r.out, want);
}

static void test_bad_usage_exits_2(void **state)
{
    (void)state;
    expect_failure((const char *[]){NULL}, 2, "no input image given");
    expect_failure((const char *[]){"a", "b", "c", NULL}, 2, "too many arguments");
    expect_failure((const char *[]){"--threads", "0", "x.png", NULL}, 2, "--threads needs a number");
    expect_failure((const char *[]){"--backend", "gpu", "x.png", NULL}, 2, "unknown backend 'gpu'");
    expect_failure((const char *[]){"--frobnicate", "x.png", NULL}, 2, "invalid option");
}

static void test_bad_files_exit_1_naming_them(void **state)
{
    (void)state;
    expect_failure((const char *[]){"missing.pth", "leaves_37x29.png", NULL}, 1,
                   "missing.pth: No such file or directory");
    expect_failure((const char *[]){"srpgan_x2.pth", "missing.png", NULL}, 1,
                   "missing.png: No such file or directory");
    test_rng r = {99};
    uint8_t noise[4096];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)test_rng_next(&r);
    write_file("noise.pth", noise, sizeof noise);
    expect_failure((const char *[]){"noise.pth", "leaves_37x29.png", NULL}, 1, "noise.pth: ");
    write_file("empty.pth", "", 0);
    expect_failure((const char *[]){"empty.pth", "leaves_37x29.png", NULL}, 1,
                   "empty.pth: empty file");
    write_file("text.png", "hello, world\n", 13);
    expect_failure((const char *[]){"srpgan_x2.pth", "text.png", NULL}, 1,
                   "text.png: not a PNG or JPEG image");
    /* A model file given as the image, and a folder that does not exist. */
    expect_failure((const char *[]){"srpgan_x2.pth", "srpgan_x2.pth", NULL}, 1,
                   "srpgan_x2.pth: not a PNG or JPEG image");
    expect_failure((const char *[]){"-o", "no/such/dir/out.png", "srpgan_x2.pth",
                                    "leaves_37x29.png", NULL},
                   1, "no/such/dir/out.png");
}

static void test_upscales_to_default_name(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"srpgan_x2.pth", "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    assert_string_equal(r.out, "leaves_37x29_x2.png\n");
    assert_string_equal(r.err, "");

    char path[512];
    snprintf(path, sizeof path, "%s/leaves_37x29_x2.png", workdir);
    sr_image got = {0}, want = {0};
    assert_int_equal(sr_image_read(path, 0, &got, NULL), SR_OK);
    snprintf(path, sizeof path, "%s/leaves_37x29.srpgan_x2.png", SR_FIXTURES_DIR);
    assert_int_equal(sr_image_read(path, 0, &want, NULL), SR_OK);
    assert_int_equal(got.width, 74);
    assert_int_equal(got.height, 58);
    assert_int_equal(got.channels, 3);
    for (int64_t y = 0; y < got.height; y++)
        for (int64_t i = 0; i < got.width * 3; i++) {
            int a = ((uint8_t *)got.data)[y * got.stride + i];
            int b = ((uint8_t *)want.data)[y * want.stride + i];
            assert_true(abs(a - b) <= SR_TOL_LEVELS);
        }
    sr_image_free(&got);
    sr_image_free(&want);
}

static void test_default_model_and_output_option(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"-q", "-o", "big.png", "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    assert_string_equal(r.out, "");
    char path[512];
    snprintf(path, sizeof path, "%s/big.png", workdir);
    sr_image img = {0};
    assert_int_equal(sr_image_read(path, 0, &img, NULL), SR_OK);
    assert_int_equal(img.width, 37 * 4); /* the default model is x4 */
    assert_int_equal(img.height, 29 * 4);
    sr_image_free(&img);

    r = run_cli((const char *[]){"-v", "--backend", "reference", "-t", "1", "srpgan_x2.pth",
                                 "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "srrun: srpgan x2, 1 blocks"));
    assert_non_null(strstr(r.err, "GFLOP/s"));
}

static void read_whole(const char *name, uint8_t **data, int64_t *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    *data = test_read_file(path, size);
    assert_non_null(*data);
}

static void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    assert_int_equal(unlink(path), 0);
}

/* convert, then upscaling with the .bin gives the very PNG of the .pth. */
static void test_convert_then_upscale(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"convert", "srpgan_x2.pth", "m.bin", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    assert_string_equal(r.out, "m.bin\n");
    assert_string_equal(r.err, "");
    r = run_cli((const char *[]){"-q", "-o", "from_pth.png", "srpgan_x2.pth", "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    r = run_cli((const char *[]){"-q", "-o", "from_bin.png", "m.bin", "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    uint8_t *a, *b;
    int64_t na, nb;
    read_whole("from_pth.png", &a, &na);
    read_whole("from_bin.png", &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na);
    free(a);
    free(b);

    /* float16 weights: half the file, the picture within a level or so. */
    r = run_cli((const char *[]){"convert", "--fp16", "srpgan_x2.pth", "m16.bin", NULL});
    assert_int_equal(r.exit_code, 0);
    r = run_cli((const char *[]){"-q", "-o", "from_bin16.png", "m16.bin", "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/from_pth.png", workdir);
    snprintf(pb, sizeof pb, "%s/from_bin16.png", workdir);
    sr_image ia = {0}, ib = {0};
    assert_int_equal(sr_image_read(pa, 0, &ia, NULL), SR_OK);
    assert_int_equal(sr_image_read(pb, 0, &ib, NULL), SR_OK);
    for (int64_t y = 0; y < ia.height; y++)
        for (int64_t i = 0; i < ia.width * 3; i++) {
            int d = ((uint8_t *)ia.data)[y * ia.stride + i] - ((uint8_t *)ib.data)[y * ib.stride + i];
            assert_true(abs(d) <= SR_TOL_LEVELS);
        }
    sr_image_free(&ia);
    sr_image_free(&ib);
    remove_file("from_pth.png");
    remove_file("from_bin.png");
    remove_file("from_bin16.png");
    remove_file("m16.bin");
}

static void test_info(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"convert", "-q", "srpgan_x2.pth", "i.bin", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "");
    r = run_cli((const char *[]){"info", "i.bin", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    static const char *const want_bin[] = {
        "format:        model.bin\n", "architecture:  srpgan\n", "scale:         2\n",
        "blocks:        1\n", "parameters:    289671\n", "dtype:         float32\n",
        "file size:     1161100 bytes", "checksum:      crc32 header ",
    };
    for (size_t i = 0; i < sizeof want_bin / sizeof *want_bin; i++)
        if (!strstr(r.out, want_bin[i]))
            fail_msg("no '%s' in:\n%s", want_bin[i], r.out);
    r = run_cli((const char *[]){"info", "srpgan_x2.pth", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "format:        pth\n"));
    assert_non_null(strstr(r.out, "file size:     1164121 bytes"));
    assert_null(strstr(r.out, "checksum"));
    remove_file("i.bin");
}

static void test_bad_bin_and_subcommand_usage(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"convert", "-q", "srpgan_x2.pth", "bad.bin", NULL});
    assert_int_equal(r.exit_code, 0);
    uint8_t *data;
    int64_t size;
    read_whole("bad.bin", &data, &size);
    data[size / 2] ^= 0x01; /* one flipped data bit */
    write_file("bad.bin", data, (size_t)size);
    free(data);
    expect_failure((const char *[]){"bad.bin", "leaves_37x29.png", NULL}, 1,
                   "srrun: bad.bin: data checksum mismatch");
    expect_failure((const char *[]){"info", "bad.bin", NULL}, 1, "bad.bin: data checksum mismatch");
    expect_failure((const char *[]){"convert", "bad.bin", "out.bin", NULL}, 1,
                   "bad.bin: data checksum mismatch");
    expect_failure((const char *[]){"convert", "srpgan_x2.pth", "no/such/dir/out.bin", NULL}, 1,
                   "no/such/dir/out.bin: ");
    expect_failure((const char *[]){"convert", "srpgan_x2.pth", NULL}, 2, "convert needs MODEL and OUTPUT");
    expect_failure((const char *[]){"convert", "--fp32", "a", "b", NULL}, 2, "convert: invalid option");
    expect_failure((const char *[]){"info", NULL}, 2, "info needs MODEL");
    expect_failure((const char *[]){"info", "a", "b", NULL}, 2, "info: too many arguments");
    remove_file("bad.bin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_usage_exits_2),
        cmocka_unit_test(test_bad_files_exit_1_naming_them),
        cmocka_unit_test(test_upscales_to_default_name),
        cmocka_unit_test(test_default_model_and_output_option),
        cmocka_unit_test(test_convert_then_upscale),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_bad_bin_and_subcommand_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
