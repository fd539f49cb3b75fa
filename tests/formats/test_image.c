/* Tests of formats/image.c, png.c and jpeg.c: PNGs of every colour type
 * and depth written with libpng and JPEGs written with libjpeg, decoded by
 * sr_image_read and compared exactly (JPEG against libjpeg's own decode of
 * the same bytes); write/read round trips; malformed and hostile files;
 * failed writes that must leave no file behind. */
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
#include <jpeglib.h>
#include <png.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/image_codecs.h"
#include "srrun.h"
#include "testutil.h"

static char tmpdir[256];
static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32) % below;
}

static void tpath(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

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

/* Reads path, expecting failure with status and a message containing text. */
static void expect_read_error(const char *path, int64_t max_pixels,
                              sr_status status, const char *text)
{
    sr_error err = {0};
    sr_image image = {.width = 1, .data = &image};
    const sr_image_read_options options = {.max_pixels = max_pixels};
    assert_int_equal(sr_image_read(path, &options, &image, &err), status);
    assert_null(image.data);
    if (!strstr(err.message, text))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, text);
    assert_null(strchr(err.message, '\n'));
}

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

typedef struct buffer {
    uint8_t data[1 << 16];
    size_t n;
} buffer;

static void put(buffer *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->data);
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void put_chunk(buffer *b, const char *type, const void *data, uint32_t n)
{
    uint8_t word[4];
    put_be32(word, n);
    put(b, word, 4);
    size_t start = b->n;
    put(b, type, 4);
    put(b, data, n);
    put_be32(word, (uint32_t)crc32(0, b->data + start, (uInt)(n + 4)));
    put(b, word, 4);
}

static void put_ihdr(buffer *b, uint32_t w, uint32_t h, int depth, int colour)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)colour;
    b->n = 0;
    put(b, sig, 8);
    put_chunk(b, "IHDR", ihdr, 13);
}

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

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sr_test_image.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d)
        return -1;
    char path[512];
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            tpath(path, e->d_name);
            unlink(path);
        }
    closedir(d);
    return rmdir(tmpdir);
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
        cmocka_unit_test(test_jpeg_decode),
        cmocka_unit_test(test_jpeg_hostile),
        cmocka_unit_test(test_read_files),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_padded_stride),
        cmocka_unit_test(test_write_failures),
        cmocka_unit_test(test_exif_orientations),
        cmocka_unit_test(test_exif_interlaced),
        cmocka_unit_test(test_exif_hostile),
        cmocka_unit_test(test_exif_hostile_files),
        cmocka_unit_test(test_read_info),
        cmocka_unit_test(test_check_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
