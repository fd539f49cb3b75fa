/* Colour metadata and JPEG output: ICC profiles, sRGB and gAMA read from
 * PNGs and JPEGs made here with libpng and libjpeg and written back out
 * (checked with libpng and libjpeg again); an iCCP that declares a huge
 * profile is refused before inflating; sr_image_write_jpeg's pixels,
 * quality, alpha on white, and refusals. */
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
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "srrun.h"

static char tmpdir[256];

static void tpath(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", tmpdir, name);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* A minimal valid ICC profile (v2 display, no tags, D50 illuminant) of
 * `size` bytes, the extra bytes after the header a recognisable pattern. */
static uint8_t *make_icc(const char *space, uint32_t size)
{
    uint8_t *p = calloc(1, size);
    put_be32(p, size);
    put_be32(p + 8, 0x02100000);
    memcpy(p + 12, "mntr", 4);
    memcpy(p + 16, space, 4);
    memcpy(p + 20, "XYZ ", 4);
    memcpy(p + 36, "acsp", 4);
    put_be32(p + 68, 0x0000f6d6);
    put_be32(p + 72, 0x00010000);
    put_be32(p + 76, 0x0000d32d);
    put_be32(p + 128, 0); /* no tags */
    for (uint32_t i = 132; i < size; i++)
        p[i] = (uint8_t)(i * 7);
    return p;
}

static sr_image gradient(int64_t w, int64_t h, int channels)
{
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, w, h, channels, SR_PIXEL_U8, NULL), SR_OK);
    uint8_t *p = img.data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                p[(y * w + x) * channels + c] = (uint8_t)(x * 3 + y * 2 + c * 30); /* no wrap to 40x30 */
    return img;
}

/* Writes an 8-bit RGB PNG with libpng, with the colour chunks asked for. */
static void write_png_with(const char *path, const uint8_t *icc, uint32_t icc_size, int srgb,
                           int gamma)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, 4, 3, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (icc)
        png_set_iCCP(png, info, "test", 0, icc, icc_size);
    if (srgb >= 0)
        png_set_sRGB(png, info, srgb);
    if (gamma)
        png_set_gAMA_fixed(png, info, gamma);
    png_write_info(png, info);
    uint8_t row[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int y = 0; y < 3; y++)
        png_write_row(png, row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

typedef struct png_meta {
    uint8_t *icc;
    uint32_t icc_size;
    int srgb; /* -1 none */
    int gamma;
} png_meta;

/* What libpng itself finds in a file. */
static png_meta read_png_meta(const char *path)
{
    png_meta m = {NULL, 0, -1, 0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_read_info(png, info);
    png_charp name;
    int compression, intent;
    png_bytep profile;
    png_uint_32 length;
    if (png_get_iCCP(png, info, &name, &compression, &profile, &length)) {
        m.icc = malloc(length);
        memcpy(m.icc, profile, length);
        m.icc_size = length;
    }
    if (png_get_sRGB(png, info, &intent))
        m.srgb = intent;
    png_fixed_point g;
    if (png_get_gAMA_fixed(png, info, &g))
        m.gamma = (int)g;
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return m;
}

static void test_png_colour_chunks_round_trip(void **state)
{
    (void)state;
    char path[512], out[512];
    tpath(path, "icc.png");
    tpath(out, "icc_out.png");
    uint8_t *icc = make_icc("RGB ", 300);
    write_png_with(path, icc, 300, -1, 0);
    sr_image img;
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(img.meta.icc_size, 300);
    assert_memory_equal(img.meta.icc, icc, 300);
    assert_int_equal(sr_image_write_png(out, &img, &err), SR_OK);
    png_meta m = read_png_meta(out);
    assert_int_equal(m.icc_size, 300);
    assert_memory_equal(m.icc, icc, 300);
    free(m.icc);

    /* Copied onto another image, then both freed (ASan checks). */
    sr_image other = gradient(8, 6, 3);
    assert_int_equal(sr_image_copy_meta(&other, &img, NULL), SR_OK);
    assert_int_equal(sr_image_copy_meta(&other, &img, NULL), SR_OK); /* replaces */
    assert_memory_equal(other.meta.icc, icc, 300);
    sr_image_free(&img);
    assert_int_equal(sr_image_write_png(out, &other, NULL), SR_OK);
    m = read_png_meta(out);
    assert_int_equal(m.icc_size, 300);
    free(m.icc);

    /* A gray profile does not fit an RGB image: left out, not an error. */
    free(other.meta.icc);
    other.meta.icc = make_icc("GRAY", 132);
    other.meta.icc_size = 132;
    assert_int_equal(sr_image_write_png(out, &other, NULL), SR_OK);
    m = read_png_meta(out);
    assert_null(m.icc);
    /* Nor does a damaged one (wrong declared length). */
    put_be32(other.meta.icc, 999);
    memcpy(other.meta.icc + 16, "RGB ", 4);
    assert_int_equal(sr_image_write_png(out, &other, NULL), SR_OK);
    m = read_png_meta(out);
    assert_null(m.icc);
    sr_image_free(&other);

    /* sRGB with its intent, and gAMA. */
    write_png_with(path, NULL, 0, 2, 45455);
    assert_int_equal(sr_image_read(path, 0, &img, NULL), SR_OK);
    assert_null(img.meta.icc);
    assert_int_equal(img.meta.has_srgb, 1);
    assert_int_equal(img.meta.srgb_intent, 2);
    assert_int_equal(img.meta.gamma, 45455);
    assert_int_equal(sr_image_write_png(out, &img, NULL), SR_OK);
    m = read_png_meta(out);
    assert_int_equal(m.srgb, 2);
    assert_int_equal(m.gamma, 45455);
    sr_image_free(&img);
    write_png_with(path, NULL, 0, -1, 100000); /* gAMA alone */
    assert_int_equal(sr_image_read(path, 0, &img, NULL), SR_OK);
    assert_int_equal(img.meta.has_srgb, 0);
    assert_int_equal(img.meta.gamma, 100000);
    sr_image_free(&img);
    free(icc);
}

/* An iCCP whose profile header declares 64 MiB (over SR_MAX_ICC_BYTES)
 * and whose data would inflate to 256 MiB: refused after its header, the
 * image decodes without it. */
static void test_png_iccp_bomb(void **state)
{
    (void)state;
    const size_t n_zero = 1 << 20;
    uint8_t *zeros = calloc(1, n_zero);
    uint8_t *head = make_icc("RGB ", 132);
    put_be32(head, 64u << 20);
    size_t cap = 1 << 19;
    uint8_t *chunk = malloc(cap);
    memcpy(chunk, "bomb\0\0", 6);
    z_stream z = {0};
    assert_int_equal(deflateInit(&z, 9), Z_OK);
    z.next_out = chunk + 6;
    z.avail_out = (uInt)(cap - 6);
    z.next_in = head;
    z.avail_in = 132;
    assert_int_equal(deflate(&z, Z_NO_FLUSH), Z_OK);
    for (int i = 0; i < 256; i++) {
        z.next_in = zeros;
        z.avail_in = (uInt)n_zero;
        assert_int_equal(deflate(&z, i == 255 ? Z_FINISH : Z_NO_FLUSH),
                         i == 255 ? Z_STREAM_END : Z_OK);
    }
    const uint32_t n_chunk = (uint32_t)(6 + z.total_out);
    deflateEnd(&z);

    /* A small PNG from libpng, with the chunk spliced in after IHDR. */
    char path[512];
    tpath(path, "plain.png");
    write_png_with(path, NULL, 0, -1, 0);
    FILE *f = fopen(path, "rb");
    uint8_t plain[4096];
    size_t n_plain = fread(plain, 1, sizeof plain, f);
    fclose(f);
    tpath(path, "bomb.png");
    f = fopen(path, "wb");
    fwrite(plain, 1, 33, f);
    uint8_t be[8];
    put_be32(be, n_chunk);
    memcpy(be + 4, "iCCP", 4);
    fwrite(be, 1, 8, f);
    fwrite(chunk, 1, n_chunk, f);
    put_be32(be, (uint32_t)crc32(crc32(0, (const uint8_t *)"iCCP", 4), chunk, n_chunk));
    fwrite(be, 1, 4, f);
    fwrite(plain + 33, 1, n_plain - 33, f);
    fclose(f);

    sr_image img;
    sr_error err = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_null(img.meta.icc);
    assert_int_equal(((uint8_t *)img.data)[11], 12);
    sr_image_free(&img);
    free(zeros);
    free(head);
    free(chunk);
}

/* Decodes a JPEG with libjpeg: pixels and ICC profile. */
static uint8_t *decode_jpeg(const char *path, int *w, int *h, int *components, JOCTET **icc,
                            unsigned *icc_size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr e;
    d.err = jpeg_std_error(&e);
    jpeg_create_decompress(&d);
    jpeg_stdio_src(&d, f);
    jpeg_save_markers(&d, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(&d, TRUE);
    *icc = NULL;
    *icc_size = 0;
    jpeg_read_icc_profile(&d, icc, icc_size);
    jpeg_start_decompress(&d);
    *w = (int)d.output_width, *h = (int)d.output_height, *components = d.output_components;
    uint8_t *px = malloc((size_t)(*w * *h * *components));
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = px + d.output_scanline * *w * *components;
        jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    fclose(f);
    return px;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += abs((int)a[i] - (int)b[i]);
    return sum / (double)n;
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* JPEG output decodes to pixels near the image's, closer at a higher
 * quality (and larger); gray stays gray; the ICC profile goes into APP2
 * and comes back through sr_image_read. */
static void test_jpeg_write(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "out.jpg");
    sr_image img = gradient(40, 30, 3);
    img.meta.icc = make_icc("RGB ", 1000);
    img.meta.icc_size = 1000;
    double diff[2];
    long size[2];
    const int qualities[2] = {30, 95};
    for (int q = 0; q < 2; q++) {
        sr_error err = {0};
        if (sr_image_write_jpeg(path, &img, qualities[q], &err) != SR_OK)
            fail_msg("%s", err.message);
        int w, h, comps;
        JOCTET *icc;
        unsigned icc_size;
        uint8_t *px = decode_jpeg(path, &w, &h, &comps, &icc, &icc_size);
        assert_int_equal(w, 40);
        assert_int_equal(h, 30);
        assert_int_equal(comps, 3);
        assert_int_equal(icc_size, 1000);
        assert_memory_equal(icc, img.meta.icc, 1000);
        diff[q] = mean_abs_diff(px, img.data, 40 * 30 * 3);
        size[q] = file_size(path);
        free(px);
        free(icc);
    }
    if (!(diff[1] < 2.0))
        fail_msg("mean difference %.2f at quality 95", diff[1]);
    assert_true(diff[1] < diff[0]);
    assert_true(size[1] > size[0]);

    sr_image back;
    assert_int_equal(sr_image_read(path, 0, &back, NULL), SR_OK);
    assert_int_equal(back.meta.icc_size, 1000);
    assert_memory_equal(back.meta.icc, img.meta.icc, 1000);
    sr_image_free(&back);
    sr_image_free(&img);

    sr_image gray = gradient(9, 7, 1);
    gray.meta.icc = make_icc("RGB ", 132); /* does not fit gray: left out */
    gray.meta.icc_size = 132;
    assert_int_equal(sr_image_write_jpeg(path, &gray, 90, NULL), SR_OK);
    int w, h, comps;
    JOCTET *icc;
    unsigned icc_size;
    uint8_t *px = decode_jpeg(path, &w, &h, &comps, &icc, &icc_size);
    assert_int_equal(comps, 1);
    assert_null(icc);
    free(px);
    sr_image_free(&gray);
}

/* RGBA and gray+alpha are composited on white: transparent is white,
 * opaque keeps its colour. */
static void test_jpeg_alpha_on_white(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "alpha.jpg");
    for (int channels = 2; channels <= 4; channels += 2) {
        sr_image img;
        assert_int_equal(sr_image_alloc(&img, 16, 16, channels, SR_PIXEL_U8, NULL), SR_OK);
        uint8_t *p = img.data;
        for (int i = 0; i < 256; i++) {
            for (int c = 0; c < channels - 1; c++)
                p[i * channels + c] = 0; /* black */
            p[i * channels + channels - 1] = i % 16 < 8 ? 0 : 255; /* left half clear */
        }
        assert_int_equal(sr_image_write_jpeg(path, &img, 95, NULL), SR_OK);
        int w, h, comps;
        JOCTET *icc;
        unsigned icc_size;
        uint8_t *px = decode_jpeg(path, &w, &h, &comps, &icc, &icc_size);
        assert_int_equal(comps, channels - 1);
        for (int y = 0; y < 16; y++)
            for (int c = 0; c < comps; c++) {
                assert_true(px[(y * 16 + 1) * comps + c] > 245);
                assert_true(px[(y * 16 + 14) * comps + c] < 10);
            }
        free(px);
        sr_image_free(&img);
    }
}

static void test_jpeg_refusals(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "refused.jpg");
    sr_image img;
    sr_error err = {0};
    assert_int_equal(sr_image_alloc(&img, 4, 4, 3, SR_PIXEL_U16, NULL), SR_OK);
    assert_int_equal(sr_image_write_jpeg(path, &img, 90, &err), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "8-bit"));
    sr_image_free(&img);
    img = gradient(4, 4, 3);
    assert_int_equal(sr_image_write_jpeg(path, &img, 0, &err), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "quality 0"));
    assert_int_equal(sr_image_write_jpeg(path, &img, 101, &err), SR_ERR_INVALID_ARGUMENT);
    sr_image wide = img;
    wide.width = 70000; /* never read: refused on its size */
    assert_int_equal(sr_image_write_jpeg(path, &wide, 90, &err), SR_ERR_LIMIT);
    assert_non_null(strstr(err.message, "refused.jpg: a 70000x4 image is too large for JPEG"));
    assert_int_equal(sr_image_write_jpeg("/no/such/dir/x.jpg", &img, 90, &err), SR_ERR_IO);
    assert_non_null(strstr(err.message, "/no/such/dir/x.jpg: "));
    assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
    sr_image_free(&img);
}

static void *slurp_stream(FILE *f, long *size)
{
    *size = ftell(f);
    void *data = malloc((size_t)*size);
    rewind(f);
    assert_int_equal(fread(data, 1, (size_t)*size, f), (size_t)*size);
    return data;
}

/* The _stream writers put into a stream (srrun -o -) the very bytes the
 * path writers put into a file, and refuse what those refuse. */
static void test_write_to_stream(void **state)
{
    (void)state;
    sr_image img = gradient(21, 13, 3);
    char path[512];
    for (int jpeg = 0; jpeg < 2; jpeg++) {
        tpath(path, jpeg ? "stream.jpg" : "stream.png");
        FILE *f = tmpfile();
        assert_non_null(f);
        assert_int_equal(jpeg ? sr_image_write_jpeg_stream(f, &img, 80, NULL)
                              : sr_image_write_png_stream(f, &img, NULL),
                         SR_OK);
        assert_int_equal(jpeg ? sr_image_write_jpeg(path, &img, 80, NULL)
                              : sr_image_write_png(path, &img, NULL),
                         SR_OK);
        long n;
        void *got = slurp_stream(f, &n);
        fclose(f);
        FILE *g = fopen(path, "rb");
        assert_int_equal(fseek(g, 0, SEEK_END), 0);
        long m;
        void *want = slurp_stream(g, &m);
        fclose(g);
        assert_int_equal(n, m);
        assert_memory_equal(got, want, (size_t)n);
        free(got);
        free(want);
        unlink(path);
    }
    sr_error err = {0};
    assert_int_equal(sr_image_write_png_stream(NULL, &img, &err), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_image_write_jpeg_stream(stdout, &img, 0, &err), SR_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "JPEG quality 0 is not in 1..100");
    sr_image_free(&img);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/srrun-write-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_colour_chunks_round_trip),
        cmocka_unit_test(test_png_iccp_bomb),
        cmocka_unit_test(test_jpeg_write),
        cmocka_unit_test(test_jpeg_alpha_on_white),
        cmocka_unit_test(test_jpeg_refusals),
        cmocka_unit_test(test_write_to_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
