/* What the srrun command writes (tools/srrun.c, upscale.c): the default
 * output name and model, -o and --scale, PNG and JPEG (--quality), --alpha
 * keep, --depth, the input's ICC profile and EXIF orientation carried, -o -
 * to stdout, --stats naming each layer's algorithm, and files written as
 * the run computes their rows that are the bytes of the whole-image path. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/resample.h"
#include "srrun.h"
#include "testutil.h"
#include "tolerance.h"
#include "cli_cases.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upscales_to_default_name),
        cmocka_unit_test(test_default_model_and_output_option),
        cmocka_unit_test(test_alpha_keep),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_icc_carried),
        cmocka_unit_test(test_jpeg_output),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_streamed_files_equal_whole_image),
        cmocka_unit_test(test_stats_name_conv_algorithms),
        cmocka_unit_test(test_output_to_stdout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
