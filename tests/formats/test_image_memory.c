/* The image readers and writers in memory (sr_image_read_memory,
 * sr_image_read_info_memory, sr_image_write_memory) against their file
 * forms: the fixtures and the malformed files give the same images, the
 * same statuses and the same messages (less the path), and an image
 * encoded into memory is byte for byte the file the file writer makes. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "srrun.h"
#include "testutil.h"

#define CRASHERS_DIR SR_FIXTURES_DIR "/../crashers"

/* Decodable images of each kind: 8-bit gray, RGB, RGBA, JPEG, 16-bit,
 * EXIF-rotated, with an ICC profile. */
static const char *const good_files[] = {
    SR_FIXTURES_DIR "/dot_1x1.png",
    SR_FIXTURES_DIR "/kite_41x27.jpg",
    SR_FIXTURES_DIR "/leaves_37x29.png",
    SR_FIXTURES_DIR "/water_gray_23x31.png",
    SR_FIXTURES_DIR "/path_rgba_30x21.png",
    SR_FIXTURES_DIR "/exif/orient_6.jpg",
    SR_FIXTURES_DIR "/exif/orient_8.png",
};

/* Files each reader must refuse: empty, truncated, hostile sizes, not an
 * image. */
static const char *const bad_files[] = {
    CRASHERS_DIR "/empty.png",
    CRASHERS_DIR "/png_100000x100000.png",
    CRASHERS_DIR "/png_bad_ihdr_crc.png",
    CRASHERS_DIR "/png_truncated_idat.png",
    CRASHERS_DIR "/jpeg_65535x65535.jpg",
    CRASHERS_DIR "/jpeg_truncated_after_sos.jpg",
    CRASHERS_DIR "/text_named.png",
};

static void *read_bytes(const char *path, size_t *size)
{
    int64_t n;
    void *data = test_read_file(path, &n);
    if (!data)
        fail_msg("cannot read %s", path);
    *size = (size_t)n;
    return data;
}

static void assert_same_image(const sr_image *a, const sr_image *b, const char *path)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels ||
        a->type != b->type || a->stride != b->stride ||
        a->meta.orientation != b->meta.orientation || a->meta.icc_size != b->meta.icc_size ||
        a->meta.has_srgb != b->meta.has_srgb || a->meta.gamma != b->meta.gamma)
        fail_msg("%s: memory and file reads differ in shape or metadata", path);
    if (a->meta.icc_size && memcmp(a->meta.icc, b->meta.icc, a->meta.icc_size) != 0)
        fail_msg("%s: ICC profiles differ", path);
    if ((a->data == NULL) != (b->data == NULL))
        fail_msg("%s: one read has pixels, the other not", path);
    if (a->data && memcmp(a->data, b->data, (size_t)(a->stride * a->height)) != 0)
        fail_msg("%s: pixels differ", path);
}

static void test_memory_reads_equal_file_reads(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_files / sizeof *good_files; i++) {
        const char *path = good_files[i];
        size_t size;
        void *data = read_bytes(path, &size);
        for (int keep = 0; keep <= 1; keep++) {
            const sr_image_read_options options = {.keep_orientation = keep};
            sr_image from_file, from_memory;
            sr_error err = {0};
            if (sr_image_read(path, &options, &from_file, &err) != SR_OK)
                fail_msg("%s", err.message);
            if (sr_image_read_memory(data, size, &options, &from_memory, &err) != SR_OK)
                fail_msg("%s from memory: %s", path, err.message);
            assert_same_image(&from_memory, &from_file, path);
            sr_image_free(&from_file);
            sr_image_free(&from_memory);
            assert_int_equal(sr_image_read_info(path, &options, &from_file, NULL), SR_OK);
            assert_int_equal(sr_image_read_info_memory(data, size, &options, &from_memory, NULL),
                             SR_OK);
            assert_same_image(&from_memory, &from_file, path);
            assert_null(from_memory.data);
        }
        /* The bytes are not kept: freeing them leaves the image intact. */
        sr_image image;
        assert_int_equal(sr_image_read_memory(data, size, NULL, &image, NULL), SR_OK);
        free(data);
        assert_true(image.width > 0);
        sr_image_free(&image);
    }
}

/* The file reader's message is "<path>: <the memory reader's message>". */
static void assert_same_failure(const char *path, sr_status file_st, const sr_error *file_err,
                                sr_status memory_st, const sr_error *memory_err)
{
    if (file_st == SR_OK || memory_st != file_st)
        fail_msg("%s: file status %d, memory status %d", path, (int)file_st, (int)memory_st);
    char want[2 * sizeof file_err->message];
    snprintf(want, sizeof want, "%s: %s", path, memory_err->message);
    assert_string_equal(file_err->message, want);
}

static void test_memory_errors_equal_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
        const char *path = bad_files[i];
        size_t size;
        void *data = read_bytes(path, &size);
        sr_image image;
        sr_error file_err = {0}, memory_err = {0};
        sr_status file_st = sr_image_read(path, NULL, &image, &file_err);
        sr_status memory_st = sr_image_read_memory(data, size, NULL, &image, &memory_err);
        assert_null(image.data);
        assert_same_failure(path, file_st, &file_err, memory_st, &memory_err);
        file_st = sr_image_read_info(path, NULL, &image, &file_err);
        memory_st = sr_image_read_info_memory(data, size, NULL, &image, &memory_err);
        if (file_st != SR_OK) /* a truncated body passes the header-only read */
            assert_same_failure(path, file_st, &file_err, memory_st, &memory_err);
        else
            assert_int_equal(memory_st, SR_OK);
        free(data);
    }
}

static void test_memory_read_arguments(void **state)
{
    (void)state;
    static const uint8_t byte = 0x89;
    sr_image image = {.width = 7};
    sr_error err = {0};
    assert_int_equal(sr_image_read_memory(NULL, 10, NULL, &image, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(image.width, 0);
    assert_int_equal(sr_image_read_info_memory(NULL, 0, NULL, &image, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_read_memory(&byte, 1, NULL, NULL, &err), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_read_memory(&byte, 0, NULL, &image, &err), SR_ERR_FORMAT);
    assert_string_equal(err.message, "empty file");
    assert_int_equal(sr_image_read_memory(&byte, 1, NULL, &image, &err), SR_ERR_FORMAT);
    assert_string_equal(err.message, "not a PNG or JPEG image");
    const sr_image_read_options negative = {.max_pixels = -1};
    assert_int_equal(sr_image_read_memory(&byte, 1, &negative, &image, &err),
                     SR_ERR_INVALID_ARGUMENT);
    /* The pixel limit, from the header. */
    size_t size;
    void *data = read_bytes(SR_FIXTURES_DIR "/leaves_37x29.png", &size);
    const sr_image_read_options small = {.max_pixels = 37 * 29 - 1};
    assert_int_equal(sr_image_read_memory(data, size, &small, &image, &err), SR_ERR_LIMIT);
    assert_string_equal(err.message, "image 37x29 exceeds the 1072-pixel limit");
    free(data);
}

/* Bytes written to memory are the file's bytes; they decode back. */
static void test_write_memory_equals_file(void **state)
{
    (void)state;
    char out[256];
    snprintf(out, sizeof out, "/tmp/test_image_memory_%ld.out", (long)getpid());
    for (size_t i = 0; i < sizeof good_files / sizeof *good_files; i++) {
        sr_image image;
        assert_int_equal(sr_image_read(good_files[i], NULL, &image, NULL), SR_OK);
        for (sr_image_format format = 0; format < SR_IMAGE_FORMAT_COUNT; format++) {
            if (format == SR_IMAGE_JPEG && image.type != SR_PIXEL_U8)
                continue;
            void *data = (void *)1;
            size_t size = 1;
            sr_error err = {0};
            if (sr_image_write_memory(&image, format, 85, &data, &size, &err) != SR_OK)
                fail_msg("%s: %s", good_files[i], err.message);
            const sr_status wrote = format == SR_IMAGE_PNG
                                        ? sr_image_write_png(out, &image, &err)
                                        : sr_image_write_jpeg(out, &image, 85, &err);
            assert_int_equal(wrote, SR_OK);
            size_t file_size;
            void *file = read_bytes(out, &file_size);
            assert_int_equal(size, file_size);
            assert_memory_equal(data, file, size);
            sr_image back;
            assert_int_equal(sr_image_read_memory(data, size, NULL, &back, NULL), SR_OK);
            assert_int_equal(back.width, image.width);
            assert_int_equal(back.height, image.height);
            if (format == SR_IMAGE_PNG)
                assert_memory_equal(back.data, image.data, (size_t)(image.stride * image.height));
            sr_image_free(&back);
            free(file);
            sr_free(data);
        }
        sr_image_free(&image);
    }
    unlink(out);
}

static void test_write_memory_refusals(void **state)
{
    (void)state;
    sr_image image, wide;
    assert_int_equal(sr_image_alloc(&image, 2, 2, 3, SR_PIXEL_U8, NULL), SR_OK);
    void *data = (void *)1;
    size_t size = 1;
    sr_error err = {0};
    assert_int_equal(sr_image_write_memory(&image, SR_IMAGE_JPEG, 0, &data, &size, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "JPEG quality 0 is not in 1..100");
    assert_null(data);
    assert_int_equal(size, 0);
    assert_int_equal(sr_image_write_memory(&image, SR_IMAGE_FORMAT_COUNT, 90, &data, &size,
                                           NULL),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_write_memory(NULL, SR_IMAGE_PNG, 0, &data, &size, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_write_memory(&image, SR_IMAGE_PNG, 0, NULL, &size, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_write_memory(&image, SR_IMAGE_PNG, 0, &data, NULL, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    /* The same limits as the file writers: JPEG sides up to 65500. */
    assert_int_equal(sr_image_alloc(&wide, 65501, 1, 1, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_image_write_memory(&wide, SR_IMAGE_JPEG, 90, &data, &size, &err),
                     SR_ERR_LIMIT);
    assert_null(data);
    sr_image_free(&wide);
    sr_image_free(&image);
    sr_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_reads_equal_file_reads),
        cmocka_unit_test(test_memory_errors_equal_file_errors),
        cmocka_unit_test(test_memory_read_arguments),
        cmocka_unit_test(test_write_memory_equals_file),
        cmocka_unit_test(test_write_memory_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
