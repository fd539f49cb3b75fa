/* What the image tests (tests/formats/test_image.c, test_png.c, test_jpeg.c,
 * test_orient.c) share: a seeded generator, a temporary directory with its
 * cmocka setup and teardown, files written and read back expecting an error,
 * and PNGs built by hand chunk by chunk.
 * Header-only, after cmocka.h and testutil.h. */
#ifndef SR_TESTS_FORMATS_IMAGE_CASES_H
#define SR_TESTS_FORMATS_IMAGE_CASES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "srrun.h"

static char tmpdir[256];
static uint64_t rng = 0x9e3779b97f4a7c15u;

static inline uint32_t rnd(uint32_t below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32) % below;
}

static inline void tpath(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", tmpdir, name);
}

static inline void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}


/* Reads path, expecting failure with status and a message containing text. */
static inline void expect_read_error(const char *path, int64_t max_pixels,
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

/* ---- PNGs built by hand, for what libpng refuses to write -------------- */

typedef struct buffer {
    uint8_t data[1 << 16];
    size_t n;
} buffer;

static inline void put(buffer *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->data);
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline void put_chunk(buffer *b, const char *type, const void *data, uint32_t n)
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

static inline void put_ihdr(buffer *b, uint32_t w, uint32_t h, int depth, int colour)
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

/* cmocka group setup and teardown: a fresh temporary directory, emptied
 * and removed at the end. */
static inline int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sr_test_image.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int teardown(void **state)
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

#endif
