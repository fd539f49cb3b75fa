/* Tests of formats/png.c: PNGs of every colour type and depth written with
 * libpng, decoded by sr_image_read and compared exactly; malformed and
 * hostile PNGs built by hand (decompression bombs, truncated files). */
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

#include "srrun.h"
#include "testutil.h"
#include "image_cases.h"

/* ---- PNGs written with libpng ------------------------------------------ */

typedef struct png_case {
    int width, height, colour, depth, interlace;
    int trns;   /* add a tRNS chunk */
    int extras; /* add gAMA, cHRM, tEXt, zTXt, which must change nothing */
} png_case;

static int png_channels(int colour)
{
    switch (colour) {
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;
    }
}

/* Packs samples into a PNG row: big-endian 16-bit, MSB-first sub-byte. */
static void pack_row(uint8_t *row, const uint32_t *samples, int n, int depth)
{
    memset(row, 0, ((size_t)n * depth + 7) / 8);
    for (int i = 0; i < n; i++) {
        uint32_t v = samples[i];
        if (depth == 16) {
            row[2 * i] = (uint8_t)(v >> 8);
            row[2 * i + 1] = (uint8_t)v;
        } else {
            int bit = i * depth;
            row[bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
        }
    }
}

static void write_png(const char *path, const png_case *t, uint8_t **rows,
                      const png_color *palette, int n_palette,
                      const uint8_t *trans, int n_trans, png_color_16 *trans_colour)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng could not write the test image");
    png_init_io(png, f);
    png_set_IHDR(png, info, t->width, t->height, t->depth, t->colour, t->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_palette)
        png_set_PLTE(png, info, palette, n_palette);
    if (n_trans || trans_colour)
        png_set_tRNS(png, info, trans, n_trans, trans_colour);
    if (t->extras) {
        png_set_gAMA(png, info, 0.2);
        png_set_cHRM(png, info, 0.3, 0.3, 0.6, 0.3, 0.3, 0.6, 0.15, 0.05);
        png_text text[2] = {
            {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "Title", .text = "t"},
            {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "Comment",
             .text = "a compressed comment a compressed comment"}};
        png_set_text(png, info, text, 2);
    }
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
}

/* Writes a random image of case t and checks sr_image_read's pixels. */
static void check_png(const png_case *t)
{
    const int ci = png_channels(t->colour), w = t->width, h = t->height;
    const int is_palette = t->colour == PNG_COLOR_TYPE_PALETTE;
    const uint32_t max = (1u << t->depth) - 1;
    int n_palette = 0, n_trans = 0;
    png_color palette[256];
    uint8_t trans[256];
    if (is_palette) {
        n_palette = t->depth == 8 ? 200 : (int)max + (t->depth > 1 ? 0 : 1);
        for (int i = 0; i < n_palette; i++)
            palette[i] = (png_color){(png_byte)rnd(256), (png_byte)rnd(256),
                                     (png_byte)rnd(256)};
        n_trans = t->trns ? n_palette / 2 + 1 : 0;
        for (int i = 0; i < n_trans; i++)
            trans[i] = (uint8_t)rnd(256);
    }
    const size_t n = (size_t)w * h * ci;
    uint32_t *samples = malloc(n * sizeof *samples);
    uint8_t *raw = malloc((size_t)h * (w * ci * 2 + 1));
    uint8_t **rows = malloc((size_t)h * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        samples[i] = rnd(is_palette ? (uint32_t)n_palette : max + 1);
    samples[0] = is_palette ? (uint32_t)n_palette - 1 : max; /* never all zero */
    for (int y = 0; y < h; y++) {
        rows[y] = raw + (size_t)y * (w * ci * 2 + 1);
        pack_row(rows[y], samples + (size_t)y * w * ci, w * ci, t->depth);
    }
    /* A colour key equal to the first pixel, so some alpha is 0. */
    png_color_16 key = {0};
    if (t->trns && !is_palette) {
        key.gray = key.red = (png_uint_16)samples[0];
        key.green = ci == 3 ? (png_uint_16)samples[1] : 0;
        key.blue = ci == 3 ? (png_uint_16)samples[2] : 0;
    }
    char path[512];
    tpath(path, "case.png");
    write_png(path, t, rows, palette, n_palette, trans, n_trans,
              t->trns && !is_palette ? &key : NULL);

    const int co = is_palette ? 3 + (t->trns != 0) : ci + (t->trns != 0);
    const int bytes = t->depth == 16 ? 2 : 1;
    uint8_t *expect = calloc((size_t)w * h * co, bytes);
    int nonzero = 0;
    for (size_t p = 0; p < (size_t)w * h; p++) {
        uint32_t out[5] = {0}; /* [ci] is written even without tRNS */
        const uint32_t *s = samples + p * ci;
        if (is_palette) {
            out[0] = palette[s[0]].red;
            out[1] = palette[s[0]].green;
            out[2] = palette[s[0]].blue;
            out[3] = s[0] < (uint32_t)n_trans ? trans[s[0]] : 255;
        } else {
            for (int c = 0; c < ci; c++)
                out[c] = t->depth < 8 ? s[c] * 255 / max : s[c];
            int keyed = ci == 1 ? s[0] == key.gray
                                : s[0] == key.red && s[1] == key.green && s[2] == key.blue;
            out[ci] = keyed ? 0 : (t->depth == 16 ? 65535 : 255);
        }
        for (int c = 0; c < co; c++) {
            nonzero |= out[c] != 0;
            if (bytes == 2)
                ((uint16_t *)expect)[p * co + c] = (uint16_t)out[c];
            else
                expect[p * co + c] = (uint8_t)out[c];
        }
    }
    assert_true(nonzero);

    sr_error err = {0};
    sr_image image;
    if (sr_image_read(path, 0, &image, &err) != SR_OK)
        fail_msg("read failed: %s", err.message);
    assert_int_equal(image.width, w);
    assert_int_equal(image.height, h);
    assert_int_equal(image.channels, co);
    assert_int_equal(image.type, bytes == 2 ? SR_PIXEL_U16 : SR_PIXEL_U8);
    assert_int_equal(image.stride, (int64_t)w * co * bytes);
    assert_memory_equal(image.data, expect, (size_t)w * h * co * bytes);
    sr_image_free(&image);
    free(expect);
    free(rows);
    free(raw);
    free(samples);
}

static void test_png_gray(void **state)
{
    (void)state;
    static const int depths[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++)
        check_png(&(png_case){13, 7, PNG_COLOR_TYPE_GRAY, depths[i], 0, 0, 0});
    check_png(&(png_case){13, 7, PNG_COLOR_TYPE_GRAY, 2, 0, 1, 0});
    check_png(&(png_case){13, 7, PNG_COLOR_TYPE_GRAY, 8, 0, 1, 0});
    check_png(&(png_case){13, 7, PNG_COLOR_TYPE_GRAY, 16, 0, 1, 0});
    check_png(&(png_case){21, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0, 0});
    check_png(&(png_case){21, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 0, 0});
}

static void test_png_colour(void **state)
{
    (void)state;
    for (int depth = 8; depth <= 16; depth += 8) {
        check_png(&(png_case){19, 11, PNG_COLOR_TYPE_RGB, depth, 0, 0, 0});
        check_png(&(png_case){19, 11, PNG_COLOR_TYPE_RGB, depth, 0, 1, 0});
        check_png(&(png_case){19, 11, PNG_COLOR_TYPE_RGB_ALPHA, depth, 0, 0, 0});
    }
    check_png(&(png_case){1, 1, PNG_COLOR_TYPE_RGB, 8, 0, 0, 0});
    check_png(&(png_case){64, 3, PNG_COLOR_TYPE_RGB, 8, 0, 0, 1});
}

static void test_png_palette(void **state)
{
    (void)state;
    static const int depths[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        check_png(&(png_case){15, 9, PNG_COLOR_TYPE_PALETTE, depths[i], 0, 0, 0});
        check_png(&(png_case){15, 9, PNG_COLOR_TYPE_PALETTE, depths[i], 0, 1, 0});
    }
}

static void test_png_interlaced(void **state)
{
    (void)state;
    const int A = PNG_INTERLACE_ADAM7;
    check_png(&(png_case){1, 1, PNG_COLOR_TYPE_GRAY, 1, A, 0, 0});
    check_png(&(png_case){3, 5, PNG_COLOR_TYPE_GRAY, 4, A, 0, 0});
    check_png(&(png_case){33, 17, PNG_COLOR_TYPE_RGB, 8, A, 0, 0});
    check_png(&(png_case){9, 9, PNG_COLOR_TYPE_RGB_ALPHA, 16, A, 0, 0});
    check_png(&(png_case){10, 3, PNG_COLOR_TYPE_PALETTE, 2, A, 1, 0});
}


/* ---- PNGs built by hand, for what libpng refuses to write -------------- */

/* IDAT for raw scanlines (each starting with its filter byte), then IEND. */
static void put_pixels(buffer *b, const uint8_t *raw, size_t n)
{
    uint8_t z[4096];
    uLongf nz = sizeof z;
    assert_int_equal(compress(z, &nz, raw, n), Z_OK);
    put_chunk(b, "IDAT", z, (uint32_t)nz);
    put_chunk(b, "IEND", "", 0);
}

static void test_png_hostile(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "bad.png");
    buffer *b = calloc(1, sizeof *b);

    put_ihdr(b, 100000, 100000, 8, PNG_COLOR_TYPE_RGB);
    assert_int_equal(b->n, 33); /* nothing but the header */
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_LIMIT,
                      "image 100000x100000 exceeds the 178956970-pixel limit");
    put_ihdr(b, 0xffffffffu, 0xffffffffu, 8, PNG_COLOR_TYPE_RGB);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_LIMIT, "4294967295x4294967295 exceeds");
    put_ihdr(b, 0, 5, 8, PNG_COLOR_TYPE_RGB);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT, "image 0x5 has no pixels");

    uint8_t raw[4 * 5] = {0};
    for (int y = 0; y < 4; y++)
        for (int x = 1; x < 5; x++)
            raw[y * 5 + x] = (uint8_t)(x + y * 4);
    put_ihdr(b, 4, 4, 8, PNG_COLOR_TYPE_GRAY);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    sr_image image;
    assert_int_equal(sr_image_read(path, 0, &image, NULL), SR_OK);
    assert_int_equal(((uint8_t *)image.data)[15], 16);
    sr_image_free(&image);
    expect_read_error(path, 15, SR_ERR_LIMIT, "image 4x4 exceeds the 15-pixel limit");

    b->data[29] ^= 1; /* IHDR's CRC */
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT, "IHDR: CRC error");

    put_ihdr(b, 4, 4, 3, PNG_COLOR_TYPE_GRAY);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT, "invalid PNG bit depth 3 for colour type 0");
    put_ihdr(b, 4, 4, 4, PNG_COLOR_TYPE_RGB);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT, "invalid PNG bit depth 4 for colour type 2");
    put_ihdr(b, 4, 4, 8, 5);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT, "invalid PNG colour type 5");

    /* Indices 1..16 against a 16-entry palette: 16 is out of range. */
    put_ihdr(b, 4, 4, 8, PNG_COLOR_TYPE_PALETTE);
    uint8_t plte[16 * 3];
    for (int i = 0; i < 48; i++)
        plte[i] = (uint8_t)(i * 5);
    put_chunk(b, "PLTE", plte, sizeof plte);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    expect_read_error(path, 0, SR_ERR_FORMAT,
                      "palette index 16 out of range (PLTE has 16 entries)");
    raw[19] = 0;
    put_ihdr(b, 4, 4, 8, PNG_COLOR_TYPE_PALETTE);
    put_chunk(b, "PLTE", plte, sizeof plte);
    put_pixels(b, raw, sizeof raw);
    write_bytes(path, b->data, b->n);
    assert_int_equal(sr_image_read(path, 0, &image, NULL), SR_OK);
    assert_int_equal(image.channels, 3);
    assert_memory_equal((uint8_t *)image.data + 3 * 14, plte + 3 * 15, 3);
    sr_image_free(&image);
    free(b);
}

/* A zTXt and an iCCP chunk that would each inflate to 256 MiB must be
 * skipped, not inflated: the image still decodes, quickly. */
static void test_png_bomb_chunks(void **state)
{
    (void)state;
    const size_t zeros_size = 1 << 20;
    uint8_t *zeros = calloc(1, zeros_size);
    uint8_t *bomb = malloc(1 << 19);
    z_stream z = {0};
    assert_int_equal(deflateInit(&z, 9), Z_OK);
    memcpy(bomb, "Comment\0\0", 9);
    z.next_out = bomb + 9;
    z.avail_out = (1 << 19) - 9;
    for (int i = 0; i < 256; i++) {
        z.next_in = zeros;
        z.avail_in = (uInt)zeros_size;
        assert_int_equal(deflate(&z, i == 255 ? Z_FINISH : Z_NO_FLUSH),
                         i == 255 ? Z_STREAM_END : Z_OK);
    }
    uint32_t n_bomb = (uint32_t)(9 + z.total_out);
    deflateEnd(&z);

    buffer *b = calloc(1, sizeof *b);
    uint8_t *file = malloc(2 * n_bomb + 1024);
    put_ihdr(b, 4, 4, 8, PNG_COLOR_TYPE_GRAY);
    size_t n = b->n;
    memcpy(file, b->data, n);
    for (int k = 0; k < 2; k++) { /* zTXt then iCCP: "name\0", method 0, zlib */
        uint8_t head[8];
        put_be32(head, n_bomb);
        memcpy(head + 4, k ? "iCCP" : "zTXt", 4);
        memcpy(file + n, head, 8);
        memcpy(file + n + 8, bomb, n_bomb);
        put_be32(file + n + 8 + n_bomb,
                 (uint32_t)crc32(crc32(0, head + 4, 4), bomb, n_bomb));
        n += 12 + n_bomb;
    }
    uint8_t raw[4 * 5];
    for (int i = 0; i < 20; i++)
        raw[i] = i % 5 ? (uint8_t)(i * 9) : 0;
    b->n = 0;
    put_pixels(b, raw, sizeof raw);
    memcpy(file + n, b->data, b->n);
    n += b->n;

    char path[512];
    tpath(path, "bomb.png");
    write_bytes(path, file, n);
    sr_image image;
    sr_error err = {0};
    if (sr_image_read(path, 0, &image, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(((uint8_t *)image.data)[15], 19 * 9);
    sr_image_free(&image);
    free(file);
    free(b);
    free(bomb);
    free(zeros);
}

static void test_png_truncated(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "trunc.png");
    uint8_t *raw = malloc(64 * 64 * 3), *rows[64];
    for (int i = 0; i < 64 * 64 * 3; i++)
        raw[i] = (uint8_t)rnd(256);
    for (int y = 0; y < 64; y++)
        rows[y] = raw + y * 64 * 3;
    write_png(path, &(png_case){64, 64, PNG_COLOR_TYPE_RGB, 8, 0, 0, 0}, rows,
              NULL, 0, NULL, 0, NULL);
    FILE *f = fopen(path, "rb");
    uint8_t *data = malloc(1 << 16);
    size_t n = fread(data, 1, 1 << 16, f);
    fclose(f);
    assert_true(n > 12000 && n < (1 << 16));
    write_bytes(path, data, n / 2); /* the one IDAT is most of the file */
    expect_read_error(path, 0, SR_ERR_FORMAT, "truncated image");
    write_bytes(path, data, 20);
    expect_read_error(path, 0, SR_ERR_FORMAT, "truncated image");
    free(data);
    free(raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_gray),
        cmocka_unit_test(test_png_colour),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_interlaced),
        cmocka_unit_test(test_png_hostile),
        cmocka_unit_test(test_png_bomb_chunks),
        cmocka_unit_test(test_png_truncated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
