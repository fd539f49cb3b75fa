/* The row writer (formats/image_writer.h): an image written in bands of
 * any height is byte for byte the one the whole-image writers make (they
 * use it too), PNG and JPEG, every channel count, 16-bit, with an ICC
 * profile; rows that do not continue the image, a finish before the last
 * row and a stream that fails are refused, and the writer then refuses
 * everything. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "formats/image_writer.h"
#include "srrun.h"
#include "testutil.h"

static sr_image noise(int64_t w, int64_t h, int channels, sr_pixel_type type, uint64_t seed)
{
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, w, h, channels, type, NULL), SR_OK);
    test_rng rng = {seed};
    for (int64_t i = 0; i < img.stride * img.height; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)(test_rng_next(&rng) >> 60) * 17; /* compressible */
    return img;
}

/* A profile libpng and libjpeg take: a 132-byte header naming the space. */
static void give_icc(sr_image *img)
{
    uint8_t *p = calloc(1, 132);
    const uint8_t size[4] = {0, 0, 0, 132};
    memcpy(p, size, 4);
    p[8] = 2;
    p[9] = 0x10;
    memcpy(p + 12, "mntr", 4);
    memcpy(p + 16, img->channels >= 3 ? "RGB " : "GRAY", 4);
    memcpy(p + 20, "XYZ ", 4);
    memcpy(p + 36, "acsp", 4);
    img->meta.icc = p;
    img->meta.icc_size = 132;
}

/* The image written through a writer in bands of band rows, into memory. */
static uint8_t *write_in_bands(const sr_image *img, sr_image_format format, int quality,
                               int64_t band, size_t *size)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, size);
    sr_image_writer *w;
    sr_error err = {0};
    if (sr_image_writer_new(f, format, img, quality, &w, &err) != SR_OK)
        fail_msg("%s", err.message);
    for (int64_t y = 0; y < img->height; y += band) {
        sr_image rows = *img;
        rows.data = (uint8_t *)img->data + y * img->stride;
        rows.height = y + band < img->height ? band : img->height - y;
        if (sr_image_writer_rows(w, &rows, &err) != SR_OK)
            fail_msg("%s", err.message);
    }
    assert_int_equal(sr_image_writer_finish(w, &err), SR_OK);
    sr_image_writer_free(w);
    fclose(f);
    return (uint8_t *)buf;
}

static void test_bands_equal_whole(void **state)
{
    (void)state;
    const int64_t bands[] = {1, 7, 16, 1000};
    for (int format = 0; format < SR_IMAGE_FORMAT_COUNT; format++)
        for (int channels = 1; channels <= 4; channels++)
            for (int t = 0; t < (format == SR_IMAGE_PNG ? 2 : 1); t++)
                for (int q = 0; q < (format == SR_IMAGE_JPEG ? 2 : 1); q++) {
                    const int quality = q ? 75 : 90; /* 4:2:0 and 4:4:4 */
                    sr_image img = noise(37, 29, channels, t ? SR_PIXEL_U16 : SR_PIXEL_U8,
                                         (uint64_t)(channels * 10 + t + 1));
                    give_icc(&img);
                    void *whole;
                    size_t whole_size;
                    assert_int_equal(sr_image_write_memory(&img, (sr_image_format)format,
                                                           quality, &whole, &whole_size, NULL),
                                     SR_OK);
                    for (size_t b = 0; b < sizeof bands / sizeof *bands; b++) {
                        size_t size;
                        uint8_t *streamed = write_in_bands(&img, (sr_image_format)format,
                                                           quality, bands[b], &size);
                        assert_int_equal(size, whole_size);
                        assert_memory_equal(streamed, whole, size);
                        free(streamed);
                    }
                    sr_free(whole);
                    sr_image_free(&img);
                }
}

static void test_refusals(void **state)
{
    (void)state;
    sr_image img = noise(20, 10, 3, SR_PIXEL_U8, 5);
    char *buf = NULL;
    size_t size;
    FILE *f = open_memstream(&buf, &size);
    sr_image_writer *w;
    sr_error err = {0};
    const sr_image f32 = {.width = 20, .height = 10, .channels = 3, .type = SR_PIXEL_F32};
    assert_int_equal(sr_image_writer_new(f, SR_IMAGE_PNG, &f32, 0, &w, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_null(w);
    assert_int_equal(sr_image_writer_new(f, SR_IMAGE_JPEG, &img, 101, &w, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "quality 101"));

    assert_int_equal(sr_image_writer_new(f, SR_IMAGE_PNG, &img, 0, &w, &err), SR_OK);
    sr_image rows = img;
    rows.height = 6;
    assert_int_equal(sr_image_writer_rows(w, &rows, &err), SR_OK);
    assert_int_equal(sr_image_writer_finish(w, &err), SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "6 of the image's 10 rows written");
    rows.height = 5; /* one too many */
    assert_int_equal(sr_image_writer_rows(w, &rows, &err), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "do not continue the 20x10 image"));
    rows.height = 4;
    rows.channels = 4;
    assert_int_equal(sr_image_writer_rows(w, &rows, &err), SR_ERR_INVALID_ARGUMENT);
    rows.channels = 3;
    assert_int_equal(sr_image_writer_rows(w, &rows, &err), SR_OK);
    assert_int_equal(sr_image_writer_finish(w, &err), SR_OK);
    assert_int_equal(sr_image_writer_rows(w, &rows, &err), SR_ERR_INVALID_ARGUMENT);
    sr_image_writer_free(w);
    fclose(f);
    free(buf);
    sr_image_free(&img);
}

/* A stream that refuses bytes (a full disk) fails the writer with
 * SR_ERR_IO where the encoder meets it, and the writer then stays failed. */
static void test_stream_failure(void **state)
{
    (void)state;
    FILE *full = fopen("/dev/full", "wb");
    if (!full)
        skip();
    setvbuf(full, NULL, _IONBF, 0); /* every write reaches the device */
    for (int format = 0; format < SR_IMAGE_FORMAT_COUNT; format++) {
        sr_image img = noise(300, 200, 3, SR_PIXEL_U8, 9);
        sr_image_writer *w = NULL;
        sr_error err = {0};
        sr_status st = sr_image_writer_new(full, (sr_image_format)format, &img, 90, &w, &err);
        for (int64_t y = 0; st == SR_OK && y < img.height; y += 10) {
            sr_image rows = img;
            rows.data = (uint8_t *)img.data + y * img.stride;
            rows.height = 10;
            st = sr_image_writer_rows(w, &rows, &err);
        }
        if (st == SR_OK)
            st = sr_image_writer_finish(w, &err);
        assert_int_equal(st, SR_ERR_IO);
        assert_true(err.message[0] != '\0');
        if (w)
            assert_int_equal(sr_image_writer_finish(w, &err), SR_ERR_INVALID_ARGUMENT);
        sr_image_writer_free(w);
        sr_image_free(&img);
    }
    fclose(full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bands_equal_whole),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_stream_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
