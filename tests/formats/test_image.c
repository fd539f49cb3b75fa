/* Tests of formats/image.c: sniffing, files and allocation; write/read
 * round trips; failed writes that must leave no file behind; header-only
 * reads and output checks. The codecs' own tests are test_png.c,
 * test_jpeg.c and test_orient.c. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <png.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "srrun.h"
#include "testutil.h"
#include "image_cases.h"

static int count_files(void)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* ---- Front end: sniffing, files, allocation ---------------------------- */

static void test_read_files(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "text.png");
    const char *text = "this is a text file and no image at all\n";
    write_bytes(path, text, strlen(text));
    expect_read_error(path, 0, SR_ERR_FORMAT, "not a PNG or JPEG image");
    tpath(path, "empty.png");
    write_bytes(path, "", 0);
    expect_read_error(path, 0, SR_ERR_FORMAT, "empty file");
    tpath(path, "absent.png");
    expect_read_error(path, 0, SR_ERR_IO, "No such file or directory");
    expect_read_error(tmpdir, 0, SR_ERR_IO, "Is a directory");
    expect_read_error(path, -1, SR_ERR_INVALID_ARGUMENT, "bad image read request");
}

static void test_alloc(void **state)
{
    (void)state;
    sr_image image;
    sr_error err = {0};
    assert_int_equal(sr_image_alloc(&image, 5, 3, 3, SR_PIXEL_U16, &err), SR_OK);
    assert_int_equal(image.stride, 30);
    for (int i = 0; i < 90; i++)
        assert_int_equal(((uint8_t *)image.data)[i], 0);
    sr_image_free(&image);
    assert_null(image.data);
    assert_int_equal(image.width, 0);
    sr_image_free(&image); /* twice is harmless */
    assert_int_equal(sr_image_alloc(&image, INT64_MAX / 2, 3, 4, SR_PIXEL_F32, &err),
                     SR_ERR_LIMIT);
    assert_null(image.data);
    assert_int_equal(sr_image_alloc(&image, INT64_C(1) << 31, INT64_C(1) << 31, 4,
                                    SR_PIXEL_F32, &err), SR_ERR_LIMIT);
    assert_int_equal(sr_image_alloc(&image, 0, 3, 3, SR_PIXEL_U8, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_alloc(&image, 3, 3, 5, SR_PIXEL_U8, &err),
                     SR_ERR_INVALID_ARGUMENT);
}

/* ---- Writing ------------------------------------------------------------- */

static void fill_random(sr_image *image)
{
    size_t n = (size_t)(image->stride * image->height);
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)image->data)[i] = (uint8_t)rnd(256);
}

static void test_write_round_trip(void **state)
{
    (void)state;
    static const int sizes[][2] = {{1, 1}, {3, 5}, {17, 9}, {1, 13}};
    char path[512];
    tpath(path, "round.png");
    int before = count_files();
    for (int t = 0; t < 2; t++)
        for (int channels = 1; channels <= 4; channels++)
            for (int s = 0; s < 4; s++) {
                sr_image out, in;
                sr_error err = {0};
                sr_pixel_type type = t ? SR_PIXEL_U16 : SR_PIXEL_U8;
                assert_int_equal(sr_image_alloc(&out, sizes[s][0], sizes[s][1],
                                                channels, type, &err), SR_OK);
                fill_random(&out);
                if (sr_image_write_png(path, &out, &err) != SR_OK)
                    fail_msg("%s", err.message);
                assert_int_equal(sr_image_read(path, 0, &in, &err), SR_OK);
                assert_int_equal(in.width, out.width);
                assert_int_equal(in.height, out.height);
                assert_int_equal(in.channels, channels);
                assert_int_equal(in.type, type);
                assert_memory_equal(in.data, out.data, (size_t)(out.stride * out.height));
                sr_image_free(&in);
                sr_image_free(&out);
            }
    assert_int_equal(count_files(), before + 1); /* no temporaries left */
    unlink(path);
}

/* Rows `stride` bytes apart, with padding the writer must skip. */
static void test_write_padded_stride(void **state)
{
    (void)state;
    enum { W = 7, H = 5, STRIDE = W * 3 + 5 };
    uint8_t pixels[STRIDE * H];
    for (int i = 0; i < STRIDE * H; i++)
        pixels[i] = (uint8_t)(i % STRIDE < W * 3 ? 1 + rnd(255) : 0);
    sr_image out = {W, H, 3, SR_PIXEL_U8, STRIDE, pixels, {0}}, in;
    char path[512];
    tpath(path, "padded.png");
    assert_int_equal(sr_image_write_png(path, &out, NULL), SR_OK);
    assert_int_equal(sr_image_read(path, 0, &in, NULL), SR_OK);
    assert_int_equal(in.stride, W * 3);
    for (int y = 0; y < H; y++)
        assert_memory_equal((uint8_t *)in.data + y * W * 3, pixels + y * STRIDE, W * 3);
    sr_image_free(&in);
    out.stride = W * 3 - 1;
    assert_int_equal(sr_image_write_png(path, &out, NULL), SR_ERR_INVALID_ARGUMENT);
    unlink(path);
}

static void test_write_failures(void **state)
{
    (void)state;
    char path[512];
    sr_image image;
    sr_error err = {0};
    int before = count_files();
    assert_int_equal(sr_image_alloc(&image, 256, 256, 3, SR_PIXEL_U8, &err), SR_OK);
    fill_random(&image);

    tpath(path, "no-such-folder/out.png");
    assert_int_equal(sr_image_write_png(path, &image, &err), SR_ERR_IO);
    assert_non_null(strstr(err.message, "No such file or directory"));
    assert_int_equal(access(path, F_OK), -1);

    tpath(path, "float.png");
    sr_image f32;
    assert_int_equal(sr_image_alloc(&f32, 2, 2, 3, SR_PIXEL_F32, &err), SR_OK);
    assert_int_equal(sr_image_write_png(path, &f32, &err), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(access(path, F_OK), -1);
    sr_image_free(&f32);
    assert_int_equal(count_files(), before);

    /* A write that fails midway (file size limit) keeps the old file. */
    tpath(path, "existing.png");
    write_bytes(path, "old", 3);
    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 4096;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    sr_status status = sr_image_write_png(path, &image, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    assert_int_equal(status, SR_ERR_IO);
    assert_non_null(strstr(err.message, "File too large"));
    char old[8] = {0};
    FILE *file = fopen(path, "rb");
    assert_int_equal(fread(old, 1, sizeof old, file), 3);
    fclose(file);
    assert_string_equal(old, "old");
    assert_int_equal(count_files(), before + 1);

    /* And a write that succeeds replaces it. */
    assert_int_equal(sr_image_write_png(path, &image, &err), SR_OK);
    sr_image in;
    assert_int_equal(sr_image_read(path, 0, &in, &err), SR_OK);
    assert_memory_equal(in.data, image.data, 256 * 256 * 3);
    sr_image_free(&in);
    sr_image_free(&image);
    assert_int_equal(count_files(), before + 1);
    unlink(path);
}

/* ---- Header-only reads and output limits --------------------------------- */

/* Ends a PNG with the head of an IDAT chunk but none of its data. */
static void put_idat_head(buffer *b)
{
    uint8_t head[8] = {0, 0, 0x10, 0, 'I', 'D', 'A', 'T'};
    put(b, head, sizeof head);
}

/* sr_image_read_info reads the header only: a PNG that ends where its
 * pixels start has a shape, and only the full read fails. */
static void test_read_info(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "header_only.png");
    buffer *b = calloc(1, sizeof *b);
    put_ihdr(b, 13377, 13377, 16, PNG_COLOR_TYPE_RGB_ALPHA);
    put_idat_head(b);
    write_bytes(path, b->data, b->n);
    sr_image info = {.data = &info};
    sr_error err = {0};
    assert_int_equal(sr_image_read_info(path, NULL, &info, &err), SR_OK);
    assert_int_equal(info.width, 13377);
    assert_int_equal(info.height, 13377);
    assert_int_equal(info.channels, 4);
    assert_int_equal(info.type, SR_PIXEL_U16);
    assert_null(info.data);
    assert_null(info.meta.icc);
    put_ihdr(b, 64, 64, 8, PNG_COLOR_TYPE_RGB);
    put_idat_head(b);
    write_bytes(path, b->data, b->n);
    assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_OK);
    expect_read_error(path, 0, SR_ERR_FORMAT, "header_only.png: truncated image");

    /* A palette with tRNS is RGBA once read; gray 2-bit is 8-bit gray. */
    put_ihdr(b, 3, 2, 2, PNG_COLOR_TYPE_PALETTE);
    const uint8_t plte[6] = {1, 2, 3, 4, 5, 6}, trns[1] = {7};
    put_chunk(b, "PLTE", plte, sizeof plte);
    put_chunk(b, "tRNS", trns, sizeof trns);
    put_idat_head(b);
    write_bytes(path, b->data, b->n);
    assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_OK);
    assert_int_equal(info.channels, 4);
    assert_int_equal(info.type, SR_PIXEL_U8);
    put_ihdr(b, 3, 2, 2, PNG_COLOR_TYPE_GRAY);
    put_idat_head(b);
    write_bytes(path, b->data, b->n);
    assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_OK);
    assert_int_equal(info.channels, 1);

    /* Limits and errors are the full read's. */
    const sr_image_read_options small = {.max_pixels = 5};
    assert_int_equal(sr_image_read_info(path, &small, &info, &err), SR_ERR_LIMIT);
    assert_non_null(strstr(err.message, "header_only.png: image 3x2 exceeds the 5-pixel limit"));
    const sr_image_read_options negative = {.max_pixels = -1};
    assert_int_equal(sr_image_read_info(path, &negative, &info, NULL), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_read_info(path, NULL, NULL, NULL), SR_ERR_INVALID_ARGUMENT);
    tpath(path, "absent.png");
    assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_ERR_IO);
    free(b);
}

static void test_check_output(void **state)
{
    (void)state;
    sr_error err = {0};
    sr_image shape = {.width = 65600, .height = 4, .channels = 3, .type = SR_PIXEL_U8};
    assert_int_equal(sr_image_check_output("out.jpg", SR_IMAGE_JPEG, &shape, &err), SR_ERR_LIMIT);
    assert_string_equal(err.message, "out.jpg: a 65600x4 image is too large for JPEG "
                                     "(at most 65500 pixels a side)");
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, NULL), SR_OK);
    shape.width = 4, shape.height = 65501;
    assert_int_equal(sr_image_check_output("out.jpg", SR_IMAGE_JPEG, &shape, NULL), SR_ERR_LIMIT);
    shape.height = 65500;
    assert_int_equal(sr_image_check_output("out.jpg", SR_IMAGE_JPEG, &shape, NULL), SR_OK);
    shape.type = SR_PIXEL_U16;
    assert_int_equal(sr_image_check_output("out.jpg", SR_IMAGE_JPEG, &shape, &err),
                     SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "out.jpg: JPEG output needs 8-bit pixels");
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, NULL), SR_OK);
    shape.type = SR_PIXEL_F32;
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    shape = (sr_image){.width = INT64_C(1) << 31, .height = 1, .channels = 4,
                       .type = SR_PIXEL_U16};
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, &err),
                     SR_ERR_LIMIT);
    assert_non_null(strstr(err.message, "too large for PNG"));
    shape.width = INT64_C(0x7fffffff), shape.height = INT64_C(0x7fffffff);
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, &err),
                     SR_ERR_LIMIT); /* 2^65 bytes */
    assert_non_null(strstr(err.message, "too large to hold in memory"));
    shape.channels = 1, shape.type = SR_PIXEL_U8; /* 2^62 bytes: let the memory plan judge */
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, NULL), SR_OK);
    shape.channels = 5;
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_PNG, &shape, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_check_output("out.png", SR_IMAGE_FORMAT_COUNT, &shape, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_check_output(NULL, SR_IMAGE_PNG, &shape, NULL),
                     SR_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_files),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_padded_stride),
        cmocka_unit_test(test_write_failures),
        cmocka_unit_test(test_read_info),
        cmocka_unit_test(test_check_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
