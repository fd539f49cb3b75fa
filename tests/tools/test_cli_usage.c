/* The srrun command's usage and refusals: --help and --version, exit codes
 * (0 done, 1 failure, 2 bad usage), one-line messages that name the file,
 * and what is refused before any work (bad options and sizes, missing,
 * corrupt or wrong files, FIFOs, an output that is an input, an image or
 * output too large, CUDA without a device) leaving no output nor temporary
 * behind. What srrun writes is test_cli_output.c's, convert and info
 * test_cli_commands.c's, signals test_cli_interrupt.c's. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "srrun.h"
#include "testutil.h"
#include "cli_cases.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_usage_exits_2),
        cmocka_unit_test(test_bad_files_exit_1_naming_them),
        cmocka_unit_test(test_cuda_without_a_device_says_why),
        cmocka_unit_test(test_huge_image_refused_from_header),
        cmocka_unit_test(test_output_limits_checked_first),
        cmocka_unit_test(test_sizes_and_stats_checked_first),
        cmocka_unit_test(test_output_must_not_be_an_input),
        cmocka_unit_test(test_fifo_input_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
