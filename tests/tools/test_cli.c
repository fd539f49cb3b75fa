/* The srrun command as a user runs it: exit codes (0 done, 1 failure, 2 bad
 * usage), one-line messages that name the file, default names, and no
 * output file (nor temporary) left behind by a failed run. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/resample.h"
#include "cli_run.h"
#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"

static char basedir[128], workdir[256];

/* Runs srrun with args (NULL-terminated) inside workdir. */
static cli_result run_cli(const char *const *args)
{
    return cli_run(workdir, args);
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
    snprintf(want, sizeof want, "srrun %s\n", sr_version());
    assert_string_equal(r.out, want);
}

static void test_bad_usage_exits_2(void **state)
{
    (void)state;
    expect_failure((const char *[]){NULL}, 2, "no input image given");
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
 * a 32-byte one per hyper-parameter (srpgan's three), then the tensors,
 * each at the next multiple of 64 (none after the last). */
static int64_t model_bin_size(const int64_t *numel, size_t n, int64_t value_bytes)
{
    int64_t end = 128 + 128 * (int64_t)n + 32 * 3;
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
        "format:        model.bin\n", "architecture:  srpgan\n  scale:       2\n"
        "  blocks:      1\n  width:       64\nparameters", params, "dtype:         float32\n",
        size, "checksum:      crc32 header ",
    };
    for (size_t i = 0; i < sizeof want_bin / sizeof *want_bin; i++)
        if (!strstr(r.out, want_bin[i]))
            fail_msg("no '%s' in:\n%s", want_bin[i], r.out);
    /* A model.bin of an architecture this srrun does not know (its header
     * CRC made to match): refused, naming those it knows. */
    uint8_t *bin;
    int64_t bin_size;
    read_whole("i.bin", &bin, &bin_size);
    memcpy(bin + 48, "esrgan", 6);
    uint64_t data_start = 0;
    for (int k = 7; k >= 0; k--)
        data_start = data_start << 8 | bin[24 + k];
    const uint32_t crc = (uint32_t)crc32(0, bin + 24, (uInt)(data_start - 24));
    for (int k = 0; k < 4; k++)
        bin[16 + k] = (uint8_t)(crc >> 8 * k);
    write_file("esrgan.bin", bin, (size_t)bin_size);
    free(bin);
    expect_failure((const char *[]){"info", "esrgan.bin", NULL}, 1,
                   "srrun: esrgan.bin: unknown architecture 'esrgan' (srrun knows srpgan, "
                   "rrdbnet, srvgg, edsr, msrresnet)\n");
    remove_file("esrgan.bin");
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

/* Writes a width x height PNG of 16-bit RGBA zeros whose IDAT repeats one
 * row's deflate output (each row flushed whole, so the bytes are the
 * same): 13377x13377, 1.4 GB of pixels, is a 1.6 MB file made at once. */
static void write_zero_png(const char *name, uint32_t width, uint32_t height)
{
    const size_t row = 1 + (size_t)width * 8;
    uint8_t *zeros = calloc(1, row), *first = malloc(row + 64), *again = malloc(row + 64);
    uint8_t end[64];
    z_stream z = {0};
    assert_int_equal(deflateInit(&z, 9), Z_OK);
    uint8_t *outs[3] = {first, again, end};
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        z.next_in = zeros;
        z.avail_in = i < 2 ? (uInt)row : 0;
        z.next_out = outs[i];
        z.avail_out = i < 2 ? (uInt)(row + 64) : sizeof end;
        assert_int_not_equal(deflate(&z, i < 2 ? Z_FULL_FLUSH : Z_FINISH), Z_STREAM_ERROR);
        sizes[i] = (size_t)(z.next_out - outs[i]);
    }
    deflateEnd(&z);
    uLong adler = adler32(1, zeros, (uInt)row), row_adler = adler;
    for (uint32_t y = 1; y < height; y++)
        adler = adler32_combine(adler, row_adler, (z_off_t)row);
    uint8_t *p = end + sizes[2] - 4; /* the stream's Adler-32, of every row */
    p[0] = (uint8_t)(adler >> 24), p[1] = (uint8_t)(adler >> 16);
    p[2] = (uint8_t)(adler >> 8), p[3] = (uint8_t)adler;

    const size_t idat = sizes[0] + (height - 1) * sizes[1] + sizes[2];
    const size_t size = 8 + 25 + 12 + idat + 12;
    uint8_t *file = malloc(size), *at = file;
#define PUT32(v) (at[0] = (uint8_t)((v) >> 24), at[1] = (uint8_t)((v) >> 16), \
                  at[2] = (uint8_t)((v) >> 8), at[3] = (uint8_t)(v), at += 4)
    memcpy(at, "\x89PNG\r\n\x1a\n", 8), at += 8;
    uint8_t *chunk = at + 4;
    PUT32(13), memcpy(at, "IHDR", 4), at += 4;
    PUT32(width), PUT32(height);
    memcpy(at, "\x10\x06\0\0\0", 5), at += 5; /* 16-bit RGBA */
    PUT32(crc32(0, chunk, 17));
    chunk = at + 4;
    PUT32((uint32_t)idat), memcpy(at, "IDAT", 4), at += 4;
    memcpy(at, first, sizes[0]), at += sizes[0];
    for (uint32_t y = 1; y < height; y++)
        memcpy(at, again, sizes[1]), at += sizes[1];
    memcpy(at, end, sizes[2]), at += sizes[2];
    PUT32(crc32(0, chunk, (uInt)(at - chunk)));
    PUT32(0), memcpy(at, "IEND", 4), at += 4;
    PUT32(crc32(0, at - 4, 4));
#undef PUT32
    assert_int_equal(at - file, size);
    write_file(name, file, size);
    free(file);
    free(zeros);
    free(first);
    free(again);
}

/* --max-memory covers the input image: a small file holding a huge image
 * is refused from its header, naming the least memory that would do,
 * without decoding a byte of its 1.4 GB (nor with --plan). */
static void test_huge_image_refused_from_header(void **state)
{
    (void)state;
    write_zero_png("huge.png", 13377, 13377);
    for (int plan = 0; plan < 2; plan++) {
        cli_result r = run_cli((const char *[]){"-m", "300M", plan ? "--plan" : "-q",
                                                "srpgan_x2.pth", "huge.png", NULL});
        if (r.exit_code != 1 || count_lines(r.err) != 1 ||
            !strstr(r.err, "srrun: huge.png: a 13377x13377 image needs a max memory of "
                           "at least "))
            fail_msg("exit %d: %s", r.exit_code, r.err);
        if (r.peak_rss > (INT64_C(256) << 20))
            fail_msg("refusing took %lld MB", (long long)(r.peak_rss >> 20));
    }
    remove_file("huge.png");
}

/* An output a format cannot hold fails before any work: a 32751-pixel row
 * upscaled x2 is 65502 wide, too wide for JPEG. Refused naming the output,
 * ahead of the plan (which -m 1M would fail) and --plan, and nothing is
 * written. */
static void test_output_limits_checked_first(void **state)
{
    (void)state;
    sr_image row;
    assert_int_equal(sr_image_alloc(&row, 32751, 1, 3, SR_PIXEL_U8, NULL), SR_OK);
    write_work("row.png", &row);
    sr_image_free(&row);
    expect_failure((const char *[]){"-o", "wide.jpg", "srpgan_x2.pth", "row.png", NULL}, 1,
                   "srrun: wide.jpg: a 65502x2 image is too large for JPEG (at most 65500 "
                   "pixels a side)");
    expect_failure((const char *[]){"-m", "1M", "-o", "wide.jpg", "srpgan_x2.pth", "row.png",
                                    NULL},
                   1, "wide.jpg: a 65502x2 image is too large for JPEG");
    expect_failure((const char *[]){"--plan", "-o", "wide.jpg", "srpgan_x2.pth", "row.png", NULL},
                   1, "wide.jpg: a 65502x2 image is too large for JPEG");
    remove_file("row.png");
}

/* A phone portrait: stored sideways with EXIF orientation 6, upscaled
 * upright; --no-exif-rotate keeps it as stored. */
static void test_exif_orientation(void **state)
{
    (void)state;
    int64_t size;
    uint8_t *jpg = test_read_file(SR_FIXTURES_DIR "/exif/orient_6.jpg", &size);
    assert_non_null(jpg);
    write_file("orient_6.jpg", jpg, (size_t)size);
    free(jpg);
    static const struct { const char *option, *output; int64_t width, height; } cases[] = {
        {"-q", "portrait.png", 12, 18},
        {"-q", "portrait.jpg", 12, 18},
        {"--no-exif-rotate", "portrait.png", 18, 12}};
    for (int i = 0; i < 3; i++) {
        run_ok((const char *[]){cases[i].option, "-o", cases[i].output, "srpgan_x2.pth",
                                "orient_6.jpg", NULL});
        char path[512];
        snprintf(path, sizeof path, "%s/%s", workdir, cases[i].output);
        sr_image info;
        assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_OK);
        assert_int_equal(info.width, cases[i].width);
        assert_int_equal(info.height, cases[i].height);
        assert_int_equal(info.meta.orientation, 0); /* no EXIF written */
        remove_file(cases[i].output);
    }
    cli_result r = run_cli((const char *[]){"--help", NULL});
    assert_non_null(strstr(r.out, "--no-exif-rotate"));
    remove_file("orient_6.jpg");
}

/* The files srrun writes as the run computes their rows are the bytes of
 * the whole-image path: sr_session_run, the input's metadata copied, then
 * sr_image_write_png or _jpeg. PNG and JPEG (both chroma settings), RGB,
 * gray, RGBA composited or kept, 16-bit, an EXIF-rotated JPEG. */
static void test_streamed_files_equal_whole_image(void **state)
{
    (void)state;
    sr_image gray;
    assert_int_equal(sr_image_alloc(&gray, 23, 17, 1, SR_PIXEL_U8, NULL), SR_OK);
    for (int64_t i = 0; i < 23 * 17; i++)
        ((uint8_t *)gray.data)[i] = (uint8_t)(i * 37 % 251);
    write_work("gray.png", &gray);
    sr_image_free(&gray);
    copy_fixture("kite_41x27.jpg");
    int64_t size;
    uint8_t *jpg = test_read_file(SR_FIXTURES_DIR "/exif/orient_6.jpg", &size);
    assert_non_null(jpg);
    write_file("orient_6.jpg", jpg, (size_t)size);
    free(jpg);
    static const struct {
        const char *input, *output, *option, *value;
        int channels, quality;
        sr_pixel_type type;
    } cases[] = {
        {"leaves_37x29.png", "a.png", NULL, NULL, 3, 0, SR_PIXEL_U8},
        {"leaves_37x29.png", "a.jpg", NULL, NULL, 3, 90, SR_PIXEL_U8},
        {"leaves_37x29.png", "a.jpg", "--quality", "75", 3, 75, SR_PIXEL_U8},
        {"path_rgba_30x21.png", "a.png", NULL, NULL, 3, 0, SR_PIXEL_U8},
        {"path_rgba_30x21.png", "a.png", "--alpha", "keep", 4, 0, SR_PIXEL_U8},
        {"path_rgba_30x21.png", "a.png", "--depth", "16", 3, 0, SR_PIXEL_U16},
        {"gray.png", "a.jpg", NULL, NULL, 3, 90, SR_PIXEL_U8},
        {"kite_41x27.jpg", "a.jpg", NULL, NULL, 3, 90, SR_PIXEL_U8},
        {"orient_6.jpg", "a.png", NULL, NULL, 3, 0, SR_PIXEL_U8},
    };
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[10] = {"-q", "-t", "2", "-o", cases[i].output};
        int n = 5;
        if (cases[i].option) {
            args[n++] = cases[i].option;
            args[n++] = cases[i].value;
        }
        args[n++] = "srpgan_x2.pth";
        args[n++] = cases[i].input;
        args[n] = NULL;
        run_ok(args);

        sr_image in = read_work(cases[i].input), out;
        assert_int_equal(sr_image_alloc(&out, in.width * 2, in.height * 2, cases[i].channels,
                                        cases[i].type, NULL),
                         SR_OK);
        assert_int_equal(sr_image_copy_meta(&out, &in, NULL), SR_OK);
        assert_int_equal(sr_session_run(session, &in, &out), SR_OK);
        char path[512];
        snprintf(path, sizeof path, "%s/want", workdir);
        assert_int_equal(cases[i].quality ? sr_image_write_jpeg(path, &out, cases[i].quality, NULL)
                                          : sr_image_write_png(path, &out, NULL),
                         SR_OK);
        uint8_t *got, *want;
        int64_t got_size, want_size;
        read_whole(cases[i].output, &got, &got_size);
        read_whole("want", &want, &want_size);
        if (got_size != want_size || memcmp(got, want, (size_t)got_size) != 0)
            fail_msg("case %zu (%s to %s): the streamed file differs", i, cases[i].input,
                     cases[i].output);
        free(got);
        free(want);
        remove_file(cases[i].output);
        remove_file("want");
        sr_image_free(&in);
        sr_image_free(&out);
    }
    sr_session_free(session);
    sr_model_free(model);
    remove_file("gray.png");
    remove_file("kite_41x27.jpg");
    remove_file("orient_6.jpg");
}

/* Sizes under one byte (which truncated to 0, the default budget) and junk
 * are refused; a --stats file that cannot be written fails the run before
 * any work (no image written). */
static void test_sizes_and_stats_checked_first(void **state)
{
    (void)state;
    static const char *const sizes[] = {"0.5", "1e-300", "0", "-1", "1x", "", "nan", "1e30G"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        expect_failure((const char *[]){"-m", sizes[i], "srpgan_x2.pth", "leaves_37x29.png", NULL},
                       2, "--max-memory needs a size of at least one byte");
    run_ok((const char *[]){"-q", "-m", "1.5G", "-o", "m.png", "srpgan_x2.pth", "leaves_37x29.png",
                            NULL});
    remove_file("m.png");
    expect_failure((const char *[]){"--stats", "no/such/dir/s.json", "srpgan_x2.pth",
                                    "leaves_37x29.png", NULL},
                   1, "srrun: no/such/dir/s.json: cannot write stats: No such file or directory");
}

/* --stats names each conv layer's algorithm on the CPU (null for the
 * other layers). */
static void test_stats_name_conv_algorithms(void **state)
{
    (void)state;
    cli_result r = run_cli((const char *[]){"-q", "-b", "cpu", "--stats", "-", "-o", "s.png",
                                            "srpgan_x2.pth", "leaves_37x29.png", NULL});
    if (r.exit_code != 0)
        fail_msg("exit %d: %s", r.exit_code, r.err);
    remove_file("s.png");
    static const char *const want[] = {
        "{\"name\": \"block1.0\", \"op\": \"conv2d\", \"algorithm\": \"im2col\",",
        "{\"name\": \"res_blocks.0.conv1\", \"op\": \"conv2d\", \"algorithm\": \"winograd\",",
        "{\"name\": \"block4\", \"op\": \"conv2d\", \"algorithm\": \"winograd_split\",",
        "{\"name\": \"output\", \"op\": \"tanh_affine\", \"algorithm\": null,",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(r.out, want[i]))
            fail_msg("no '%s' in the stats:\n%s", want[i], r.out);
}

/* -o naming a file the run reads (the input, the model; through another
 * spelling or a hard link too) is refused before any work, and the file is
 * left as it was; so is --stats naming one, or the output. */
static void test_output_must_not_be_an_input(void **state)
{
    (void)state;
    uint8_t *before, *after;
    int64_t n_before, n_after;
    read_whole("leaves_37x29.png", &before, &n_before);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/leaves_37x29.png", workdir);
    snprintf(to, sizeof to, "%s/hard.png", workdir);
    assert_int_equal(link(from, to), 0);
    expect_failure((const char *[]){"-o", "leaves_37x29.png", "srpgan_x2.pth", "leaves_37x29.png",
                                    NULL},
                   1, "srrun: leaves_37x29.png: is the input image; the output must be another file");
    expect_failure((const char *[]){"-o", "./hard.png", "srpgan_x2.pth", "leaves_37x29.png", NULL},
                   1, "srrun: ./hard.png: is the input image");
    expect_failure((const char *[]){"-o", "../work/srpgan_x2.pth", "srpgan_x2.pth",
                                    "leaves_37x29.png", NULL},
                   1, "srrun: ../work/srpgan_x2.pth: is the model");
    expect_failure((const char *[]){"--stats", "hard.png", "srpgan_x2.pth", "leaves_37x29.png",
                                    NULL},
                   1, "srrun: hard.png: is the input image; --stats must be another file");
    expect_failure((const char *[]){"--stats", "same.json", "-o", "same.json", "srpgan_x2.pth",
                                    "leaves_37x29.png", NULL},
                   1, "srrun: same.json: is the --stats file");
    read_whole("leaves_37x29.png", &after, &n_after);
    assert_int_equal(n_after, n_before);
    assert_memory_equal(after, before, (size_t)n_before);
    free(before);
    free(after);
    remove_file("hard.png");
}

/* -o - writes the image to stdout (PNG, or JPEG with --format) and nothing
 * else there: the very bytes -o FILE writes. */
static void test_output_to_stdout(void **state)
{
    (void)state;
    copy_fixture("dot_1x1.png");
    run_ok((const char *[]){"-q", "-o", "dot.png", "srpgan_x2.pth", "dot_1x1.png", NULL});
    cli_result r = run_cli((const char *[]){"-o", "-", "srpgan_x2.pth", "dot_1x1.png", NULL});
    if (r.exit_code != 0)
        fail_msg("%s", r.err);
    assert_string_equal(r.err, "");
    uint8_t *want;
    int64_t n;
    read_whole("dot.png", &want, &n);
    assert_true(n < (int64_t)sizeof r.out);
    assert_memory_equal(r.out, want, (size_t)n);
    free(want);
    r = run_cli((const char *[]){"-o", "-", "--format", "jpeg", "srpgan_x2.pth", "dot_1x1.png",
                                 NULL});
    assert_int_equal(r.exit_code, 0);
    assert_memory_equal(r.out, "\xff\xd8\xff", 3);
    expect_failure((const char *[]){"-o", "-", "--stats", "-", "srpgan_x2.pth", "dot_1x1.png",
                                    NULL},
                   2, "-o - and --stats - cannot both write to stdout");
    expect_failure((const char *[]){"--format", "gif", "dot_1x1.png", NULL}, 2,
                   "--format needs png or jpeg, not 'gif'");
    expect_failure((const char *[]){"--format", "jpeg", "--depth", "16", "dot_1x1.png", NULL}, 2,
                   "--depth 16 needs a PNG output");
    remove_file("dot.png");
    remove_file("dot_1x1.png");
}

/* A FIFO as the model or the image fails at once instead of waiting for a
 * writer (the alarm fails the test if srrun waits). */
static void test_fifo_input_refused(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/fifo", workdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(20);
    expect_failure((const char *[]){"fifo", "leaves_37x29.png", NULL}, 1,
                   "srrun: fifo: not a regular file");
    expect_failure((const char *[]){"srpgan_x2.pth", "fifo", NULL}, 1,
                   "srrun: fifo: not a regular file");
    alarm(0);
    remove_file("fifo");
}

/* Whether srrun (pid) holds its output's temporary open: an unnamed
 * O_TMPFILE in workdir ("#123 (deleted)") or a named out.png.XXXXXX. */
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
        cmocka_unit_test(test_huge_image_refused_from_header),
        cmocka_unit_test(test_output_limits_checked_first),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_streamed_files_equal_whole_image),
        cmocka_unit_test(test_sizes_and_stats_checked_first),
        cmocka_unit_test(test_stats_name_conv_algorithms),
        cmocka_unit_test(test_output_must_not_be_an_input),
        cmocka_unit_test(test_output_to_stdout),
        cmocka_unit_test(test_fifo_input_refused),
        cmocka_unit_test(test_signal_during_write),
        cmocka_unit_test(test_interrupt_while_waiting_on_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
