/* `srrun convert` and `srrun info` (tools/commands.c): a converted
 * model.bin upscales to the very PNG of its .pth (its float16 within a
 * level), info's listing with a file size computed from docs/model-bin.md,
 * a model.bin of an unknown architecture or with a flipped bit refused in
 * one line, patches recorded and dropped, and the two subcommands' bad
 * usage. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"
#include "cli_cases.h"

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

/* convert --patch records patches: info lists them, --plan tells them, the
 * upscale is PyTorch's on those patches, and --patch none (upscaling or
 * converting) runs or records the whole image again. */
static void test_convert_with_patches(void **state)
{
    (void)state;
    run_ok((const char *[]){"convert", "-q", "--patch", "12:1", "srpgan_x2.pth", "p.bin", NULL});
    cli_result r = run_cli((const char *[]){"info", "p.bin", NULL});
    assert_int_equal(r.exit_code, 0);
    if (!strstr(r.out, "  width:       64\n  patch:       12\n  patch_margin: 1\n"))
        fail_msg("no patch in:\n%s", r.out);
    r = run_cli((const char *[]){"--plan", "p.bin", "path_rgba_30x21.png", NULL});
    assert_int_equal(r.exit_code, 0);
    if (!strstr(r.out, "run on 6 patches of 12x12, the plan below for each"))
        fail_msg("no patches in:\n%s", r.out);

    run_ok((const char *[]){"-q", "-o", "patched.png", "p.bin", "path_rgba_30x21.png", NULL});
    sr_image got = read_work("patched.png"), want = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/path_rgba_30x21.srpgan_x2.patch12m1.png", SR_FIXTURES_DIR);
    assert_int_equal(sr_image_read(path, 0, &want, NULL), SR_OK);
    assert_int_equal(got.width, want.width);
    assert_int_equal(got.channels, 3);
    for (int64_t y = 0; y < got.height; y++)
        for (int64_t i = 0; i < got.width * 3; i++) {
            const int d = ((uint8_t *)got.data)[y * got.stride + i] -
                          ((uint8_t *)want.data)[y * want.stride + i];
            if (abs(d) > SR_TOL_LEVELS)
                fail_msg("row %lld: %d levels from PyTorch's", (long long)y, d);
        }
    sr_image_free(&got);
    sr_image_free(&want);

    run_ok((const char *[]){"-q", "-o", "whole_bin.png", "--patch", "none", "p.bin",
                            "path_rgba_30x21.png", NULL});
    run_ok((const char *[]){"convert", "-q", "--patch", "none", "p.bin", "w.bin", NULL});
    run_ok((const char *[]){"-q", "-o", "whole_pth.png", "srpgan_x2.pth", "path_rgba_30x21.png",
                            NULL});
    uint8_t *a, *b;
    int64_t na, nb;
    read_whole("whole_bin.png", &a, &na);
    read_whole("whole_pth.png", &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na);
    free(a);
    free(b);
    r = run_cli((const char *[]){"info", "w.bin", NULL});
    assert_null(strstr(r.out, "patch"));

    expect_failure((const char *[]){"--patch", "10:5", "srpgan_x2.pth", "leaves_37x29.png", NULL},
                   1, "srpgan_x2.pth: the options' patch 10 with margin 5: the side must be 1 to "
                      "1048576 and more than twice the margin");
    expect_failure((const char *[]){"--patch", "12:", "srpgan_x2.pth", "leaves_37x29.png", NULL},
                   2, "--patch needs N, N:M (sizes in pixels) or none, not '12:'");
    expect_failure((const char *[]){"convert", "--patch", "0", "p.bin", "x.bin", NULL}, 2,
                   "convert: --patch needs N, N:M or none");
    remove_file("p.bin");
    remove_file("w.bin");
    remove_file("patched.png");
    remove_file("whole_bin.png");
    remove_file("whole_pth.png");
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
        cmocka_unit_test(test_convert_then_upscale),
        cmocka_unit_test(test_convert_with_patches),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_bad_bin_and_subcommand_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
