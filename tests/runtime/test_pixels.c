/* The conversions at the edges of a run: every channel count and pixel type
 * into the network's RGB tensor (alpha on white, gray replicated, rows read
 * through the stride), or unshuffled after padding by reflection, and the
 * tensor back out (clamped, rounded, wider tensors cropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/pixels.h"
#include "testutil.h"

/* The rule as the fixtures script writes it, in double. */
static double expected(double v, double a) { return v * a + (1.0 - a); }

static void check_input(int channels, sr_pixel_type type)
{
    const int64_t W = 5, H = 3, plane = W * H;
    const int bytes = type == SR_PIXEL_U8 ? 1 : type == SR_PIXEL_U16 ? 2 : 4;
    const double max = type == SR_PIXEL_U8 ? 255 : type == SR_PIXEL_U16 ? 65535 : 1;
    sr_image img = {W, H, channels, type, W * channels * bytes + 8, NULL, {0}}; /* padded rows */
    img.data = malloc((size_t)(img.stride * H));
    test_rng r = {(uint64_t)(channels * 10 + type + 1)};
    for (int64_t i = 0; i < img.stride * H; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&r);
    if (type == SR_PIXEL_F32)
        for (int64_t y = 0; y < H; y++)
            test_fill(&r, (float *)((uint8_t *)img.data + y * img.stride), W * channels, 0, 1);
    sr_tensor t = sr_tensor_whole((sr_shape){3, H, W}, malloc((size_t)(3 * plane) * sizeof(float)));
    test_fill_nan(t.data, 3 * plane);
    sr_image_to_tensor(&img, true, 1, &t, 0);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            const uint8_t *row = (const uint8_t *)img.data + y * img.stride;
            double s[4];
            for (int c = 0; c < channels; c++) {
                const int64_t i = x * channels + c;
                s[c] = type == SR_PIXEL_U8    ? row[i] / max
                       : type == SR_PIXEL_U16 ? ((const uint16_t *)row)[i] / max
                                              : ((const float *)row)[i];
            }
            const int colour = channels >= 3 ? 3 : 1;
            const double a = channels == 2 || channels == 4 ? s[colour] : 1.0;
            for (int c = 0; c < 3; c++) {
                double want = expected(s[colour == 3 ? c : 0], a);
                assert_float_equal(t.data[c * plane + y * W + x], want, 1e-6);
            }
        }
    free(t.data);
    free(img.data);
}

static void test_every_input_layout(void **state)
{
    (void)state;
    for (int channels = 1; channels <= 4; channels++)
        for (int type = 0; type < SR_PIXEL_TYPE_COUNT; type++)
            check_input(channels, (sr_pixel_type)type);
}

static void test_output_clamps_and_rounds(void **state)
{
    (void)state;
    float values[3][2] = {{-0.5f, 0.0f}, {0.5f, 1.0f}, {1.5f, NAN}};
    sr_tensor t = sr_tensor_whole((sr_shape){3, 1, 2}, &values[0][0]);
    uint8_t u8[6];
    sr_image img = {2, 1, 3, SR_PIXEL_U8, 6, u8, {0}};
    sr_tensor_to_image(&t, &img, 0);
    /* pixel 0: R -0.5, G 0.5, B 1.5; pixel 1: R 0, G 1, B NaN. 0.5 * 255
     * = 127.5 rounds to even, as numpy's round does. */
    const uint8_t want8[6] = {0, 128, 255, 0, 255, 0};
    assert_memory_equal(u8, want8, 6);
    uint16_t u16[6];
    img = (sr_image){2, 1, 3, SR_PIXEL_U16, 12, u16, {0}};
    sr_tensor_to_image(&t, &img, 0);
    const uint16_t want16[6] = {0, 32768, 65535, 0, 65535, 0};
    assert_memory_equal(u16, want16, sizeof want16);
}

/* Keeping alpha: the colour goes in as stored (straight alpha), and the
 * output's alpha channel is left for the resampler. */
static void test_raw_colour_and_rgba_output(void **state)
{
    (void)state;
    const uint8_t rgba[8] = {255, 0, 51, 0, 10, 20, 30, 128};
    const sr_image in = {2, 1, 4, SR_PIXEL_U8, 8, (void *)rgba, {0}};
    float data[6];
    sr_tensor t = sr_tensor_whole((sr_shape){3, 1, 2}, data);
    sr_image_to_tensor(&in, false, 1, &t, 0);
    const float want[6] = {1.0f, 10 / 255.0f, 0.0f, 20 / 255.0f, 0.2f, 30 / 255.0f};
    for (int i = 0; i < 6; i++)
        assert_float_equal(data[i], want[i], 1e-7);
    sr_image_to_tensor(&in, true, 1, &t, 0); /* on white: alpha 0 is white */
    assert_float_equal(data[0], 1.0f, 1e-7);
    assert_float_equal(data[2], 1.0f, 1e-7);
    assert_float_equal(data[4], 1.0f, 1e-7);
    uint8_t out[8] = {0, 0, 0, 77, 0, 0, 0, 99};
    sr_image img = {2, 1, 4, SR_PIXEL_U8, 8, out, {0}};
    sr_tensor_to_image(&t, &img, 0);
    assert_int_equal(out[3], 77);
    assert_int_equal(out[7], 99);
    assert_int_equal(out[4], 132); /* 10 * 128/255 + 127 = 132.02, composited */
}

/* Large images share rows among threads: the same values as one thread,
 * every type, rows at odd byte offsets. */
static void test_threads_change_nothing(void **state)
{
    (void)state;
    const int64_t W = 301, H = 257; /* over the threshold, odd sizes */
    test_rng r = {5};
    sr_tensor t = sr_tensor_whole((sr_shape){3, H, W}, malloc((size_t)(3 * W * H) * 4));
    assert_non_null(t.data);
    test_fill(&r, t.data, 3 * W * H, -0.2f, 1.2f);
    for (int type = 0; type < SR_PIXEL_TYPE_COUNT; type++) {
        const int64_t stride = W * 4 * 4 + 1;
        uint8_t *one = malloc((size_t)(stride * H)), *all = malloc((size_t)(stride * H));
        sr_tensor back = sr_tensor_whole(t.shape, malloc((size_t)(3 * W * H) * 4));
        assert_true(one && all && back.data);
        memset(one, 0, (size_t)(stride * H));
        memset(all, 0, (size_t)(stride * H));
        sr_image a = {W, H, 4, (sr_pixel_type)type, stride, one, {0}};
        sr_image b = {W, H, 4, (sr_pixel_type)type, stride, all, {0}};
        sr_tensor_to_image(&t, &a, 1);
        sr_tensor_to_image(&t, &b, 0);
        assert_memory_equal(one, all, (size_t)(stride * H));
        sr_image_to_tensor(&a, false, 1, &back, 1); /* alpha 0 on white would be all white */
        float *first = malloc((size_t)(3 * W * H) * 4);
        assert_non_null(first);
        memcpy(first, back.data, (size_t)(3 * W * H) * 4);
        sr_image_to_tensor(&b, false, 1, &back, 0);
        assert_memory_equal(first, back.data, (size_t)(3 * W * H) * 4);
        free(first);
        free(back.data);
        free(one);
        free(all);
    }
    free(t.data);
}

static void test_image_check_names_the_problem(void **state)
{
    (void)state;
    uint8_t px[12];
    sr_image img = {2, 2, 3, SR_PIXEL_U8, 6, px, {0}};
    sr_error err = {0};
    assert_int_equal(sr_image_check(&img, "input", &err), SR_OK);
    img.stride = 5;
    assert_int_equal(sr_image_check(&img, "input", &err), SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "input image stride 5 is shorter than a row");
    img = (sr_image){0, 2, 3, SR_PIXEL_U8, 6, px, {0}};
    assert_int_equal(sr_image_check(&img, "output", &err), SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "output image has size 0x2");
    img = (sr_image){2, 2, 3, SR_PIXEL_U8, 6, NULL, {0}};
    assert_int_equal(sr_image_check(&img, "input", &err), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_check_layout(&img, "input", &err), SR_OK); /* a description */
}

/* A 3x5 image (values 1 + 3 (5 x + y) + c, in levels) space-to-depth by 2
 * and 4: padded rows and columns reflect (row 5 is row 3; by 4, rows 5 to
 * 7 are 3, 2, 1 and column 3 is 1), channel c f^2 + i f + j of (x, y)
 * holds pixel (f x + j, f y + i); any rows of the tensor alone give the
 * same values. */
static void test_unshuffle_pads_by_reflection(void **state)
{
    (void)state;
    const int64_t W = 3, H = 5;
    uint8_t px[5][3][3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                px[y][x][c] = (uint8_t)(1 + 3 * (5 * x + y) + c);
    const sr_image in = {W, H, 3, SR_PIXEL_U8, 9, px, {0}};
    static const int rows_by[5][8] = {[2] = {0, 1, 2, 3, 4, 3}, [4] = {0, 1, 2, 3, 4, 3, 2, 1}};
    static const int cols_by[5][4] = {[2] = {0, 1, 2, 1}, [4] = {0, 1, 2, 1}};
    for (int f = 2; f <= 4; f += 2) {
        const sr_shape shape = {3 * f * f, (H + f - 1) / f, (W + f - 1) / f};
        float whole[48 * 3 * 2], part[48 * 1 * 2];
        sr_tensor t = sr_tensor_whole(shape, whole);
        test_fill_nan(whole, sr_shape_numel(shape));
        sr_image_to_tensor(&in, true, f, &t, 0);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < f; i++)
                for (int j = 0; j < f; j++)
                    for (int64_t y = 0; y < shape.h; y++)
                        for (int64_t x = 0; x < shape.w; x++) {
                            const int sy = rows_by[f][f * y + i], sx = cols_by[f][f * x + j];
                            assert_float_equal(sr_tensor_row(&t, (c * f + i) * f + j, y)[x],
                                               px[sy][sx][c] / 255.0f, 0);
                        }
        /* The last row alone, as the executor asks for a few at a time. */
        sr_tensor last = {{shape.c, 1, shape.w}, part, shape.w, shape.h - 1, shape.h};
        sr_image_to_tensor(&in, true, f, &last, 0);
        for (int64_t c = 0; c < shape.c; c++)
            assert_memory_equal(sr_tensor_row(&last, c, shape.h - 1),
                                sr_tensor_row(&t, c, shape.h - 1),
                                (size_t)shape.w * sizeof(float));
    }
}

/* A single pixel unshuffled by 4: the pixel in all 16 places, per channel. */
static void test_unshuffle_of_one_pixel_repeats_it(void **state)
{
    (void)state;
    const uint8_t gray = 51;
    const sr_image in = {1, 1, 1, SR_PIXEL_U8, 1, (void *)&gray, {0}};
    float data[48];
    sr_tensor t = sr_tensor_whole((sr_shape){48, 1, 1}, data);
    sr_image_to_tensor(&in, true, 4, &t, 0);
    for (int k = 0; k < 48; k++)
        assert_float_equal(data[k], 0.2f, 0);
}

/* An unshuffled input's output is padded too: a wider tensor's columns
 * past the image's are not written. */
static void test_wider_tensor_is_cropped(void **state)
{
    (void)state;
    float data[3 * 4];
    for (int i = 0; i < 12; i++)
        data[i] = 1.0f;
    const sr_tensor t = sr_tensor_whole((sr_shape){3, 1, 4}, data);
    uint8_t out[3 * 3 + 1] = {0};
    out[9] = 7; /* past the image */
    sr_image img = {3, 1, 3, SR_PIXEL_U8, 9, out, {0}};
    sr_tensor_to_image(&t, &img, 0);
    for (int i = 0; i < 9; i++)
        assert_int_equal(out[i], 255);
    assert_int_equal(out[9], 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_input_layout),
        cmocka_unit_test(test_output_clamps_and_rounds),
        cmocka_unit_test(test_raw_colour_and_rgba_output),
        cmocka_unit_test(test_threads_change_nothing),
        cmocka_unit_test(test_image_check_names_the_problem),
        cmocka_unit_test(test_unshuffle_pads_by_reflection),
        cmocka_unit_test(test_unshuffle_of_one_pixel_repeats_it),
        cmocka_unit_test(test_wider_tensor_is_cropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
