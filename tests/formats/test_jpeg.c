/* Tests of formats/jpeg.c: JPEGs written with libjpeg, decoded by
 * sr_image_read and compared exactly against libjpeg's own decode of the
 * same bytes; malformed and hostile JPEGs. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jpeglib.h>

#include "srrun.h"
#include "testutil.h"
#include "image_cases.h"

/* ---- JPEG --------------------------------------------------------------- */

typedef struct jpeg_bytes {
    unsigned char *data;
    unsigned long size;
} jpeg_bytes;

static jpeg_bytes encode_jpeg(int w, int h, int components, J_COLOR_SPACE space,
                              int progressive, int n_scans, jpeg_scan_info *scans)
{
    uint8_t *pixels = malloc((size_t)w * h * components);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w * components; x++)
            pixels[(size_t)y * w * components + x] = (uint8_t)(x * 5 + y * 3 + rnd(40));
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr errors;
    c.err = jpeg_std_error(&errors);
    jpeg_create_compress(&c);
    jpeg_bytes out = {NULL, 0};
    jpeg_mem_dest(&c, &out.data, &out.size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = components;
    c.in_color_space = space;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    if (n_scans) {
        c.scan_info = scans;
        c.num_scans = n_scans;
    }
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = pixels + (size_t)c.next_scanline * w * components;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(pixels);
    return out;
}

/* libjpeg's own decode with default settings: the pixels to match. */
static uint8_t *decode_jpeg(const jpeg_bytes *j, int *components)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr errors;
    d.err = jpeg_std_error(&errors);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, j->data, j->size);
    jpeg_read_header(&d, TRUE);
    jpeg_start_decompress(&d);
    size_t stride = (size_t)d.output_width * d.output_components;
    uint8_t *pixels = malloc(stride * d.output_height);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = pixels + d.output_scanline * stride;
        jpeg_read_scanlines(&d, &row, 1);
    }
    *components = d.output_components;
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return pixels;
}

static void check_jpeg(int w, int h, int components, J_COLOR_SPACE space,
                       int progressive, int n_scans, jpeg_scan_info *scans,
                       const char *name)
{
    jpeg_bytes j = encode_jpeg(w, h, components, space, progressive, n_scans, scans);
    char path[512];
    tpath(path, name);
    write_bytes(path, j.data, j.size);
    int expect_components;
    uint8_t *expect = decode_jpeg(&j, &expect_components);
    sr_image image;
    sr_error err = {0};
    if (sr_image_read(path, 0, &image, &err) != SR_OK)
        fail_msg("%s: %s", name, err.message);
    assert_int_equal(image.width, w);
    assert_int_equal(image.height, h);
    assert_int_equal(image.type, SR_PIXEL_U8);
    assert_int_equal(image.channels, expect_components);
    size_t n = (size_t)w * h * expect_components, nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += expect[i] != 0;
    assert_true(nonzero > n / 2);
    assert_memory_equal(image.data, expect, n);
    sr_image_free(&image);
    free(expect);
    free(j.data);
}

static void test_jpeg_decode(void **state)
{
    (void)state;
    check_jpeg(37, 29, 3, JCS_RGB, 0, 0, NULL, "rgb.jpg");
    check_jpeg(1, 1, 3, JCS_RGB, 0, 0, NULL, "one.jpg");
    check_jpeg(37, 29, 1, JCS_GRAYSCALE, 0, 0, NULL, "gray.jpg");
    check_jpeg(50, 33, 3, JCS_RGB, 1, 0, NULL, "progressive.jpg");
    check_jpeg(40, 24, 3, JCS_RGB, 0, 0, NULL, "named-as.png"); /* content wins */
    /* 64 scans (DC, then each AC coefficient alone) is under the cap. */
    jpeg_scan_info scans[64] = {{1, {0}, 0, 0, 0, 0}};
    for (int k = 1; k < 64; k++)
        scans[k] = (jpeg_scan_info){1, {0}, k, k, 0, 0};
    check_jpeg(16, 16, 1, JCS_GRAYSCALE, 0, 64, scans, "scans64.jpg");
}

/* Offset of the SOFn marker, walking the marker segments. */
static size_t find_sof(const jpeg_bytes *j)
{
    for (size_t pos = 2; pos + 4 < j->size;) {
        assert_int_equal(j->data[pos], 0xff);
        int marker = j->data[pos + 1];
        if (marker >= 0xc0 && marker <= 0xc2)
            return pos;
        pos += 2 + (j->data[pos + 2] << 8 | j->data[pos + 3]);
    }
    fail_msg("no SOF");
    return 0;
}

static void test_jpeg_hostile(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "bad.jpg");
    jpeg_bytes j = encode_jpeg(64, 64, 3, JCS_RGB, 0, 0, NULL);
    size_t sof = find_sof(&j);
    static const struct { uint8_t side[2]; const char *text; } big[] = {
        {{0xff, 0xff}, "image 65535x65535 exceeds the 178956970-pixel limit"},
        {{0xea, 0x60}, "image 60000x60000 exceeds the 178956970-pixel limit"}};
    for (int i = 0; i < 2; i++) {
        jpeg_bytes copy = {malloc(j.size), j.size};
        memcpy(copy.data, j.data, j.size);
        memcpy(copy.data + sof + 5, big[i].side, 2); /* height */
        memcpy(copy.data + sof + 7, big[i].side, 2); /* width */
        write_bytes(path, copy.data, copy.size);
        expect_read_error(path, 0, SR_ERR_LIMIT, big[i].text);
        free(copy.data);
    }
    write_bytes(path, j.data, j.size / 2);
    expect_read_error(path, 0, SR_ERR_FORMAT, "truncated image");
    write_bytes(path, j.data, sof + 4); /* inside SOF */
    expect_read_error(path, 0, SR_ERR_FORMAT, "truncated image");
    expect_read_error(path, 4095, SR_ERR_FORMAT, "truncated image");
    free(j.data);

    j = encode_jpeg(48, 40, 3, JCS_RGB, 1, 0, NULL);
    write_bytes(path, j.data, j.size * 3 / 4);
    expect_read_error(path, 0, SR_ERR_FORMAT, "truncated image");
    free(j.data);

    j = encode_jpeg(16, 16, 4, JCS_CMYK, 0, 0, NULL);
    write_bytes(path, j.data, j.size);
    expect_read_error(path, 0, SR_ERR_FORMAT, "unsupported JPEG colour space");
    free(j.data);

    /* 190 scans: DC, then every AC coefficient of every component alone. */
    jpeg_scan_info scans[1 + 3 * 63] = {{3, {0, 1, 2}, 0, 0, 0, 0}};
    for (int c = 0; c < 3; c++)
        for (int k = 1; k < 64; k++)
            scans[1 + c * 63 + k - 1] = (jpeg_scan_info){1, {c}, k, k, 0, 0};
    j = encode_jpeg(16, 16, 3, JCS_RGB, 0, 1 + 3 * 63, scans);
    write_bytes(path, j.data, j.size);
    expect_read_error(path, 0, SR_ERR_LIMIT, "too many scans");
    free(j.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_decode),
        cmocka_unit_test(test_jpeg_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
