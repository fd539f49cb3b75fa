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

#include "backends/backend.h"
#include "runtime/resample.h"
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
    copy_fixture("path_rgba_30x21.png");
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
    expect_failure((const char *[]){"--precision", "fp8", "x.png", NULL}, 2,
                   "unknown precision 'fp8'");
    expect_failure((const char *[]){"-b", "cpu", "--precision", "fp16", "srpgan_x2.pth",
                                    "leaves_37x29.png", NULL},
                   1, "precision fp16 needs the CUDA backend");
    expect_failure((const char *[]){"--frobnicate", "x.png", NULL}, 2, "invalid option");
    expect_failure((const char *[]){"--quality", "0", "x.png", NULL}, 2,
                   "--quality needs a number from 1 to 100, not '0'");
    expect_failure((const char *[]){"--quality", "101", "x.png", NULL}, 2, "--quality needs");
    expect_failure((const char *[]){"--quality", "9x", "x.png", NULL}, 2, "--quality needs");
    expect_failure((const char *[]){"--alpha", "black", "x.png", NULL}, 2,
                   "--alpha needs white or keep, not 'black'");
    expect_failure((const char *[]){"--depth", "12", "x.png", NULL}, 2,
                   "--depth needs 8 or 16, not '12'");
    expect_failure((const char *[]){"--alpha", "keep", "-o", "y.jpg", "x.png", NULL}, 2,
                   "--alpha keep needs a PNG output");
    expect_failure((const char *[]){"--depth", "16", "-o", "y.JPEG", "x.png", NULL}, 2,
                   "--depth 16 needs a PNG output");
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

/* --backend cuda where no device is usable: one line saying why, exit 1,
 * nothing written; auto falls back to the CPU. (Where a GPU is,
 * tests/backends/test_cuda runs it.) */
static void test_cuda_without_a_device_says_why(void **state)
{
    (void)state;
    sr_backend_handle probe;
    if (sr_cuda_backend_new(SR_PRECISION_FP32, &probe, NULL) == SR_OK) {
        sr_backend_free(&probe);
        skip();
    }
    expect_failure((const char *[]){"-b", "cuda", "srpgan_x2.pth", "leaves_37x29.png", NULL}, 1,
                   "no CUDA");
    /* auto runs on the CPU, and -v says why. */
    cli_result r = run_cli((const char *[]){"-v", "-o", "auto.png", "srpgan_x2.pth",
                                            "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    if (!strstr(r.err, "srrun: no CUDA") || !strstr(r.err, "; running on the CPU\n") ||
        !strstr(r.err, "on cpu"))
        fail_msg("auto without a GPU said: %s", r.err);
    r = run_cli((const char *[]){"-o", "auto.png", "srpgan_x2.pth", "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.err, ""); /* quiet about it without -v */
    /* A GPU precision falls back to float32 with the CPU, and says so. */
    r = run_cli((const char *[]){"-v", "--precision", "bf16", "-o", "auto.png", "srpgan_x2.pth",
                                 "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 0);
    if (!strstr(r.err, "; running on the CPU in fp32\n"))
        fail_msg("auto with bf16 without a GPU said: %s", r.err);
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

    /* --scale picks the shipped x2 model, and checks a given MODEL. */
    r = run_cli((const char *[]){"-q", "-s", "2", "-o", "small.png", "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    snprintf(path, sizeof path, "%s/small.png", workdir);
    assert_int_equal(sr_image_read(path, 0, &img, NULL), SR_OK);
    assert_int_equal(img.width, 37 * 2);
    sr_image_free(&img);
    r = run_cli((const char *[]){"--scale", "4", "srpgan_x2.pth", "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "upscales x2, not x4"));
    r = run_cli((const char *[]){"--scale", "3", "leaves_37x29.png", NULL});
    assert_int_equal(r.exit_code, 2);
    assert_non_null(strstr(r.err, "--scale needs 2 or 4"));

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

/* The tensors of srpgan_x2.pth in its order (scale 2, one residual block,
 * width 64: models/srpgan/srpgan.py's Generator), by element count. */
static const int64_t srpgan_x2_numel[] = {
    64 * 3 * 9 * 9, 64, 1,           /* block1: conv, PReLU */
    64 * 64 * 3 * 3, 64, 1,          /* res_blocks.0: conv1, PReLU */
    64 * 64 * 3 * 3, 64,             /* res_blocks.0.conv2 */
    64 * 64 * 3 * 3, 64, 1,          /* block3 */
    256 * 64 * 3 * 3, 256, 1,        /* up_blocks.0: conv, PReLU */
    3 * 64 * 9 * 9, 3,               /* block4 */
};

/* A model.bin's size by docs/model-bin.md's layout, computed here and not
 * by srrun's writer: a 128-byte header, a 128-byte table entry per tensor,
 * then the tensors, each at the next multiple of 64 (none after the last). */
static int64_t model_bin_size(const int64_t *numel, size_t n, int64_t value_bytes)
{
    int64_t end = 128 + 128 * (int64_t)n;
    for (size_t i = 0; i < n; i++)
        end = (end + 63) / 64 * 64 + numel[i] * value_bytes;
    return end;
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
    const size_t n_tensors = sizeof srpgan_x2_numel / sizeof *srpgan_x2_numel;
    int64_t n_params = 0;
    for (size_t i = 0; i < n_tensors; i++)
        n_params += srpgan_x2_numel[i];
    char params[64], size[64];
    snprintf(params, sizeof params, "parameters:    %lld\n", (long long)n_params);
    snprintf(size, sizeof size, "file size:     %lld bytes",
             (long long)model_bin_size(srpgan_x2_numel, n_tensors, 4));
    const char *const want_bin[] = {
        "format:        model.bin\n", "architecture:  srpgan\n", "scale:         2\n",
        "blocks:        1\n", params, "dtype:         float32\n",
        size, "checksum:      crc32 header ",
    };
    for (size_t i = 0; i < sizeof want_bin / sizeof *want_bin; i++)
        if (!strstr(r.out, want_bin[i]))
            fail_msg("no '%s' in:\n%s", want_bin[i], r.out);
    /* And in float16: half the data, padded again. */
    r = run_cli((const char *[]){"convert", "-q", "--fp16", "srpgan_x2.pth", "i16.bin", NULL});
    assert_int_equal(r.exit_code, 0);
    uint8_t *data;
    int64_t n16;
    read_whole("i16.bin", &data, &n16);
    free(data);
    assert_int_equal(n16, model_bin_size(srpgan_x2_numel, n_tensors, 2));
    remove_file("i16.bin");
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

static sr_image read_work(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    sr_image img = {0};
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

static void write_work(const char *name, const sr_image *img)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    sr_error err = {0};
    sr_status st = strstr(name, ".jpg") ? sr_image_write_jpeg(path, img, 95, &err)
                                        : sr_image_write_png(path, img, &err);
    if (st != SR_OK)
        fail_msg("%s", err.message);
}

static void run_ok(const char *const *args)
{
    cli_result r = run_cli(args);
    if (r.exit_code != 0)
        fail_msg("exit %d: %s", r.exit_code, r.err);
}

/* --alpha keep: RGBA whose RGB is the network's output on the input's
 * colour as stored (the same as upscaling an RGB copy, bit for bit) and
 * whose alpha is the bicubic upscale; the default composites on white. */
static void test_alpha_keep(void **state)
{
    (void)state;
    run_ok((const char *[]){"-q", "--alpha", "keep", "-o", "keep.png", "srpgan_x2.pth",
                            "path_rgba_30x21.png", NULL});
    sr_image in = read_work("path_rgba_30x21.png"), colour;
    assert_int_equal(sr_image_alloc(&colour, in.width, in.height, 3, SR_PIXEL_U8, NULL), SR_OK);
    for (int64_t i = 0; i < in.width * in.height; i++)
        memcpy((uint8_t *)colour.data + i * 3, (uint8_t *)in.data + i * 4, 3);
    write_work("colour.png", &colour);
    run_ok((const char *[]){"-q", "-o", "colour_x2.png", "srpgan_x2.pth", "colour.png", NULL});
    run_ok((const char *[]){"-q", "-o", "white.png", "srpgan_x2.pth", "path_rgba_30x21.png",
                            NULL});
    sr_image keep = read_work("keep.png"), rgb = read_work("colour_x2.png");
    sr_image white = read_work("white.png"), alpha;
    assert_int_equal(keep.channels, 4);
    assert_int_equal(keep.type, SR_PIXEL_U8);
    assert_int_equal(white.channels, 3);
    assert_int_equal(sr_image_alloc(&alpha, keep.width, keep.height, 4, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_resample_alpha(&in, &alpha, NULL), SR_OK);
    int64_t differ = 0;
    for (int64_t i = 0; i < keep.width * keep.height; i++) {
        const uint8_t *p = (uint8_t *)keep.data + i * 4;
        assert_memory_equal(p, (uint8_t *)rgb.data + i * 3, 3);
        assert_int_equal(p[3], ((uint8_t *)alpha.data)[i * 4 + 3]);
        differ += memcmp(p, (uint8_t *)white.data + i * 3, 3) != 0;
    }
    assert_true(differ > 0); /* composited on white is another picture */
    sr_image_free(&in), sr_image_free(&colour), sr_image_free(&keep);
    sr_image_free(&rgb), sr_image_free(&white), sr_image_free(&alpha);
}

/* --depth 16 writes 16-bit samples: v * 65535 rounded, within half an
 * 8-bit level of the 8-bit output (which rounds v * 255). A 16-bit input
 * gives 16-bit output by default; --depth 8 overrides. */
static void test_depth(void **state)
{
    (void)state;
    run_ok((const char *[]){"-q", "--depth", "16", "-o", "d16.png", "srpgan_x2.pth",
                            "leaves_37x29.png", NULL});
    run_ok((const char *[]){"-q", "-o", "d8.png", "srpgan_x2.pth", "leaves_37x29.png", NULL});
    sr_image d16 = read_work("d16.png"), d8 = read_work("d8.png");
    assert_int_equal(d16.type, SR_PIXEL_U16);
    assert_int_equal(d8.type, SR_PIXEL_U8);
    for (int64_t i = 0; i < d16.width * d16.height * 3; i++) {
        const double v16 = ((uint16_t *)d16.data)[i] / 257.0;
        const double v8 = ((uint8_t *)d8.data)[i];
        assert_true(fabs(v16 - v8) <= 0.5 + 1.0 / 257);
    }
    write_work("in16.png", &d16); /* a 16-bit input */
    run_ok((const char *[]){"-q", "-o", "a.png", "srpgan_x2.pth", "in16.png", NULL});
    run_ok((const char *[]){"-q", "--depth", "8", "-o", "b.png", "srpgan_x2.pth", "in16.png", NULL});
    sr_image a = read_work("a.png"), b = read_work("b.png");
    assert_int_equal(a.type, SR_PIXEL_U16);
    assert_int_equal(b.type, SR_PIXEL_U8);
    sr_image_free(&d16), sr_image_free(&d8), sr_image_free(&a), sr_image_free(&b);
}

/* A minimal valid RGB ICC profile (display, v2, no tags, D50). */
static uint8_t *make_icc(uint32_t size)
{
    uint8_t *p = calloc(1, size);
    const uint8_t be[][4] = {{(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                              (uint8_t)size},
                             {2, 0x10, 0, 0}, {0, 0, 0xf6, 0xd6}, {0, 1, 0, 0}, {0, 0, 0xd3, 0x2d}};
    memcpy(p, be[0], 4);
    memcpy(p + 8, be[1], 4);
    memcpy(p + 12, "mntrRGB XYZ ", 12);
    memcpy(p + 36, "acsp", 4);
    memcpy(p + 68, be[2], 4);
    memcpy(p + 72, be[3], 4);
    memcpy(p + 76, be[4], 4);
    for (uint32_t i = 132; i < size; i++)
        p[i] = (uint8_t)(i * 13);
    return p;
}

static void expect_icc(const char *name, const uint8_t *icc, size_t size)
{
    sr_image img = read_work(name);
    if (img.meta.icc_size != size)
        fail_msg("%s: ICC profile of %zu bytes, wanted %zu", name, img.meta.icc_size, size);
    assert_memory_equal(img.meta.icc, icc, size);
    sr_image_free(&img);
}

/* The input's ICC profile reaches the output: PNG to PNG, JPEG to PNG,
 * PNG to JPEG. */
static void test_icc_carried(void **state)
{
    (void)state;
    sr_image img = read_work("leaves_37x29.png");
    img.meta.icc = make_icc(500);
    img.meta.icc_size = 500;
    write_work("icc.png", &img);
    write_work("icc.jpg", &img);
    run_ok((const char *[]){"-q", "-o", "icc_png.png", "srpgan_x2.pth", "icc.png", NULL});
    run_ok((const char *[]){"-q", "-o", "icc_jpg.png", "srpgan_x2.pth", "icc.jpg", NULL});
    run_ok((const char *[]){"-q", "-o", "icc_png.jpg", "srpgan_x2.pth", "icc.png", NULL});
    expect_icc("icc_png.png", img.meta.icc, 500);
    expect_icc("icc_jpg.png", img.meta.icc, 500);
    expect_icc("icc_png.jpg", img.meta.icc, 500);
    sr_image_free(&img);
}

/* -o NAME.jpg writes JPEG; at the default quality 90 (4:4:4) it decodes
 * within a mean of 4.5 levels and a maximum of 32 of the PNG output (3.8
 * and 26 measured: the leaves are all fine detail, JPEG's worst case); a
 * lower --quality makes a smaller file. */
static void test_jpeg_output(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"-o", "photo.JPG", "srpgan_x2.pth",
                                            "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    assert_string_equal(r.out, "photo.JPG\n");
    run_ok((const char *[]){"-q", "-o", "photo.png", "srpgan_x2.pth", "leaves_37x29.png", NULL});
    run_ok((const char *[]){"-q", "--quality", "20", "-o", "small.jpeg", "srpgan_x2.pth",
                            "leaves_37x29.png", NULL});
    sr_image jpg = read_work("photo.JPG"), png = read_work("photo.png");
    assert_int_equal(jpg.width, png.width);
    assert_int_equal(jpg.channels, 3);
    double sum = 0;
    int worst = 0;
    const int64_t n = png.width * png.height * 3;
    for (int64_t i = 0; i < n; i++) {
        const int d = abs(((uint8_t *)jpg.data)[i] - ((uint8_t *)png.data)[i]);
        sum += d;
        worst = d > worst ? d : worst;
    }
    if (sum / (double)n > 4.5 || worst > 32)
        fail_msg("JPEG vs PNG: mean %.2f, max %d", sum / (double)n, worst);
    uint8_t *data;
    int64_t big, small;
    read_whole("photo.JPG", &data, &big);
    free(data);
    read_whole("small.jpeg", &data, &small);
    free(data);
    assert_true(small < big);
    sr_image_free(&jpg), sr_image_free(&png);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_usage_exits_2),
        cmocka_unit_test(test_bad_files_exit_1_naming_them),
        cmocka_unit_test(test_cuda_without_a_device_says_why),
        cmocka_unit_test(test_upscales_to_default_name),
        cmocka_unit_test(test_default_model_and_output_option),
        cmocka_unit_test(test_convert_then_upscale),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_bad_bin_and_subcommand_usage),
        cmocka_unit_test(test_alpha_keep),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_icc_carried),
        cmocka_unit_test(test_jpeg_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
