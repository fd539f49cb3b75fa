/* Tests of formats/orient.c: EXIF orientation in JPEG (APP1) and PNG (eXIf),
 * every orientation against Pillow's exif_transpose, interlaced PNGs, and
 * malformed and hostile EXIF blocks and files. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <png.h>
#include <zlib.h>

#include "formats/image_codecs.h"
#include "srrun.h"
#include "testutil.h"
#include "image_cases.h"

/* ---- EXIF orientation ---------------------------------------------------- */

static void read_ok(const char *path, const sr_image_read_options *options, sr_image *image)
{
    sr_error err = {0};
    if (sr_image_read(path, options, image, &err) != SR_OK)
        fail_msg("%s", err.message);
}

static void expect_same_pixels(const sr_image *got, const sr_image *want)
{
    assert_int_equal(got->width, want->width);
    assert_int_equal(got->height, want->height);
    assert_int_equal(got->channels, want->channels);
    assert_int_equal(got->type, want->type);
    assert_memory_equal(got->data, want->data, (size_t)(want->height * want->stride));
}

/* Every orientation, JPEG (APP1) and PNG (eXIf), against Pillow's
 * ImageOps.exif_transpose of the same file (tests/fixtures/exif/). */
static void test_exif_orientations(void **state)
{
    (void)state;
    static const char *const exts[] = {"jpg", "png"};
    const sr_image_read_options keep = {.keep_orientation = 1};
    char path[512];
    for (int e = 0; e < 2; e++) {
        sr_image stored;
        snprintf(path, sizeof path, SR_FIXTURES_DIR "/exif/orient_1.%s", exts[e]);
        read_ok(path, NULL, &stored);
        assert_int_equal(stored.width, 9);
        assert_int_equal(stored.height, 6);
        for (int n = 1; n <= 8; n++) {
            sr_image want, got, info;
            snprintf(path, sizeof path, SR_FIXTURES_DIR "/exif/orient_%d.want.png", n);
            read_ok(path, NULL, &want);
            assert_int_equal(want.meta.orientation, 0); /* the oracle has no EXIF */
            snprintf(path, sizeof path, SR_FIXTURES_DIR "/exif/orient_%d.%s", n, exts[e]);
            read_ok(path, NULL, &got);
            expect_same_pixels(&got, &want);
            assert_int_equal(got.meta.orientation, 1);
            assert_int_equal(sr_image_read_info(path, NULL, &info, NULL), SR_OK);
            assert_null(info.data);
            assert_int_equal(info.width, got.width);
            assert_int_equal(info.height, got.height);
            assert_int_equal(info.channels, got.channels);
            assert_int_equal(info.meta.orientation, 1);
            sr_image_free(&got);

            /* Kept: the pixels as stored, and the orientation still to apply. */
            read_ok(path, &keep, &got);
            expect_same_pixels(&got, &stored);
            assert_int_equal(got.meta.orientation, n);
            assert_int_equal(sr_image_read_info(path, &keep, &info, NULL), SR_OK);
            assert_int_equal(info.width, 9);
            assert_int_equal(info.meta.orientation, n);
            sr_image_free(&got);
            sr_image_free(&want);
        }
        sr_image_free(&stored);
    }
}

/* Writes image as a PNG with an eXIf chunk of orientation n, interlaced
 * or not. */
static void write_png_exif(const char *path, const sr_image *image, int n, int interlace)
{
    static const int colour[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    uint8_t exif[26] = {'M', 'M', 0, '*', 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0,
                        (uint8_t)n};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng could not write the test image");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)image->width, (png_uint_32)image->height,
                 image->type == SR_PIXEL_U16 ? 16 : 8, colour[image->channels - 1],
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n)
        png_set_eXIf_1(png, info, sizeof exif, exif);
    png_write_info(png, info);
    if (image->type == SR_PIXEL_U16)
        png_set_swap(png); /* the test machine is little-endian */
    png_bytep *rows = malloc((size_t)image->height * sizeof *rows);
    for (int64_t y = 0; y < image->height; y++)
        rows[y] = (png_bytep)image->data + y * image->stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    assert_int_equal(fclose(f), 0);
}

/* An interlaced PNG's passes are placed pixel by pixel: at every small
 * size (empty passes included) and orientation it must read as the same
 * image written without interlacing, which reads row by row; and the
 * fixtures' pixels interlaced must read as Pillow's oracle. */
static void test_exif_interlaced(void **state)
{
    (void)state;
    char plain[512], adam7[512];
    tpath(plain, "plain.png");
    tpath(adam7, "adam7.png");
    for (int w = 1; w <= 10; w++)
        for (int h = 1; h <= 10; h++) {
            const int n = 1 + (w * 10 + h) % 8, channels = 1 + (w + h) % 4;
            sr_image image, a, b;
            assert_int_equal(sr_image_alloc(&image, w, h, channels,
                                            h % 3 ? SR_PIXEL_U8 : SR_PIXEL_U16, NULL),
                             SR_OK);
            for (int64_t i = 0; i < h * image.stride; i++)
                ((uint8_t *)image.data)[i] = (uint8_t)rnd(256);
            write_png_exif(plain, &image, n, 0);
            write_png_exif(adam7, &image, n, 1);
            read_ok(plain, NULL, &a);
            read_ok(adam7, NULL, &b);
            expect_same_pixels(&b, &a);
            assert_int_equal(a.width, n >= 5 ? h : w);
            sr_image_free(&a);
            sr_image_free(&b);
            sr_image_free(&image);
        }
    const sr_image_read_options keep = {.keep_orientation = 1};
    for (int n = 1; n <= 8; n++) {
        char path[512];
        sr_image stored, want, got;
        snprintf(path, sizeof path, SR_FIXTURES_DIR "/exif/orient_%d.png", n);
        read_ok(path, &keep, &stored);
        write_png_exif(adam7, &stored, n, 1);
        snprintf(path, sizeof path, SR_FIXTURES_DIR "/exif/orient_%d.want.png", n);
        read_ok(path, NULL, &want);
        read_ok(adam7, NULL, &got);
        expect_same_pixels(&got, &want);
        sr_image_free(&stored);
        sr_image_free(&want);
        sr_image_free(&got);
    }
}

/* Parses an EXIF block from a buffer of exactly its size, so ASan sees
 * any read past the end. */
static int orientation_of(const uint8_t *block, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, block, size);
    int n = sr_exif_orientation(copy, size);
    free(copy);
    return n;
}

/* Hostile EXIF never reads out of bounds nor follows offsets; whatever is
 * malformed means no orientation. */
static void test_exif_hostile(void **state)
{
    (void)state;
    /* A valid block: MM header, IFD0 at 8, one entry, next IFD 0. */
    const uint8_t good[26] = {'M', 'M', 0, '*', 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3,
                              0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0};
    uint8_t b[64];
    assert_int_equal(orientation_of(good, sizeof good), 6);
    assert_int_equal(orientation_of(good, 22), 6);  /* without the next-IFD link */
    assert_int_equal(orientation_of(good, 21), 0);  /* the entry cut short */
    for (size_t n = 0; n < 21; n++)
        assert_int_equal(orientation_of(good, n), 0);
    assert_int_equal(sr_exif_orientation(NULL, 26), 0);

    static const uint32_t ifd_offsets[] = {0xffffffffu, 0x80000000u, 26, 25, 24, 0};
    for (size_t i = 0; i < sizeof ifd_offsets / sizeof *ifd_offsets; i++) {
        memcpy(b, good, sizeof good);
        put_be32(b + 4, ifd_offsets[i]); /* IFD0 past the end, or on the header */
        assert_int_equal(orientation_of(b, sizeof good), 0);
    }
    memcpy(b, good, sizeof good);
    b[8] = 0xff, b[9] = 0xff; /* 65535 entries: only the one there is read */
    assert_int_equal(orientation_of(b, sizeof good), 6);
    b[8] = 0, b[9] = 0; /* no entries */
    assert_int_equal(orientation_of(b, sizeof good), 0);

    memcpy(b, good, sizeof good);
    put_be32(b + 22, 8); /* next IFD is IFD0 itself: a loop, never followed */
    assert_int_equal(orientation_of(b, sizeof good), 6);
    b[11] = 0x13; /* no orientation in the looping IFD */
    assert_int_equal(orientation_of(b, sizeof good), 0);

    static const struct { size_t at; uint8_t value; } bad[] = {
        {13, 4},  /* type LONG, not SHORT */
        {13, 0},  /* type 0 */
        {17, 2},  /* count 2 */
        {17, 0},  /* count 0 */
        {14, 1},  /* count 2^24 + 1 */
        {19, 0},  /* orientation 0 */
        {19, 9},  /* orientation 9 */
        {18, 1},  /* orientation 262 */
        {0, 'I'}, /* "IM": no byte order */
        {3, 0},   /* not TIFF's 42 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(b, good, sizeof good);
        b[bad[i].at] = bad[i].value;
        assert_int_equal(orientation_of(b, sizeof good), 0);
    }

    /* Little-endian, the tag the second of two entries. */
    const uint8_t le[38] = {'I', 'I', '*', 0, 8, 0, 0, 0, 2, 0, 0x0f, 0x01, 2, 0, 4, 0, 0, 0,
                            'a', 'b', 'c', 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0};
    assert_int_equal(orientation_of(le, sizeof le), 8);
    assert_int_equal(orientation_of(le, 33), 0);
}

/* A JPEG whose first APP1 "Exif" marker is hostile reads as stored: the
 * EXIF is ignored, never an error. The marker goes right after SOI, before
 * the fixture's own. */
static void test_exif_hostile_files(void **state)
{
    (void)state;
    int64_t size;
    uint8_t *jpg = test_read_file(SR_FIXTURES_DIR "/exif/orient_6.jpg", &size);
    assert_non_null(jpg);
    static const uint8_t app1[] = {0xff, 0xe1, 0, 16, 'E', 'x', 'i', 'f', 0, 0,
                                   'M', 'M', 0, '*', 0x7f, 0xff, 0xff, 0xff};
    uint8_t *file = malloc((size_t)size + sizeof app1);
    memcpy(file, jpg, 2);
    memcpy(file + 2, app1, sizeof app1);
    memcpy(file + 2 + sizeof app1, jpg + 2, (size_t)size - 2);
    char path[512];
    tpath(path, "hostile_exif.jpg");
    write_bytes(path, file, (size_t)size + sizeof app1);
    sr_image image;
    read_ok(path, NULL, &image);
    assert_int_equal(image.width, 9); /* the fixture's orientation 6 is not the first */
    assert_int_equal(image.meta.orientation, 0);
    sr_image_free(&image);

    /* A PNG eXIf without a byte order mark: libpng drops it. */
    sr_image stored;
    read_ok(SR_FIXTURES_DIR "/exif/orient_1.png", NULL, &stored);
    tpath(path, "bad_exif.png");
    write_png_exif(path, &stored, 6, 0);
    int64_t n;
    uint8_t *png = test_read_file(path, &n);
    for (int64_t i = 0; i + 6 < n; i++)
        if (memcmp(png + i, "eXIfMM", 6) == 0) {
            png[i + 4] = 'X';
            const uint32_t crc = (uint32_t)crc32(0, png + i, 4 + 26);
            put_be32(png + i + 4 + 26, crc);
        }
    write_bytes(path, png, (size_t)n);
    read_ok(path, NULL, &image);
    expect_same_pixels(&image, &stored);
    assert_int_equal(image.meta.orientation, 0);
    sr_image_free(&image);

    /* An eXIf chunk larger than the chunk limit (4 MiB) is skipped, never
     * allocated: libpng's own handler would allocate any declared length
     * up to 2 GiB before reading a byte. */
    const size_t big = (size_t)SR_MAX_ICC_BYTES + 1;
    uint8_t *exif = calloc(1, big);
    memcpy(exif, "MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06", 20);
    uint8_t *bigfile = malloc((size_t)n + big + 12);
    size_t at = 8 + 25; /* after IHDR */
    memcpy(bigfile, png, at);
    put_be32(bigfile + at, (uint32_t)big);
    memcpy(bigfile + at + 4, "eXIf", 4);
    memcpy(bigfile + at + 8, exif, big);
    put_be32(bigfile + at + 8 + big, (uint32_t)crc32(crc32(0, bigfile + at + 4, 4), exif, (uInt)big));
    size_t big_size = at + 12 + big;
    for (int64_t i = 0; i + 4 < n; i++) /* the rest, from IDAT on */
        if (memcmp(png + i, "IDAT", 4) == 0) {
            memcpy(bigfile + big_size, png + i - 4, (size_t)(n - i + 4));
            big_size += (size_t)(n - i + 4);
            break;
        }
    write_bytes(path, bigfile, big_size);
    read_ok(path, NULL, &image);
    expect_same_pixels(&image, &stored);
    sr_image_free(&image);
    free(bigfile);
    free(exif);
    sr_image_free(&stored);
    free(png);
    free(file);
    free(jpg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exif_orientations),
        cmocka_unit_test(test_exif_interlaced),
        cmocka_unit_test(test_exif_hostile),
        cmocka_unit_test(test_exif_hostile_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
