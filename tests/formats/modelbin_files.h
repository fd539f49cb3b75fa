/* What the model.bin tests share (test_modelbin.c, test_modelbin_layout.c):
 * a temporary folder for the program's files, fixtures converted into it,
 * and files read as bytes. Header-only, after cmocka.h and testutil.h. */
#ifndef SR_TESTS_FORMATS_MODELBIN_FILES_H
#define SR_TESTS_FORMATS_MODELBIN_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "srrun.h"

static char tmpdir[64];

static inline void fixture(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", SR_FIXTURES_DIR, name);
}

static inline void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static inline sr_model *load(const char *path)
{
    sr_error err = {0};
    sr_model *m = NULL;
    if (sr_model_load(path, NULL, &m, &err) != SR_OK)
        fail_msg("%s", err.message);
    return m;
}

/* Converts a fixture .pth to a .bin in tmpdir; returns the .bin's path. */
static inline void convert(const char *pth_name, const char *bin_name, int fp16, char *bin,
                           size_t size)
{
    char pth[512];
    fixture(pth, sizeof pth, pth_name);
    tmp_path(bin, size, bin_name);
    sr_model *m = load(pth);
    sr_error err = {0};
    if (sr_model_save(m, bin, fp16, &err) != SR_OK)
        fail_msg("%s", err.message);
    sr_model_free(m);
}

/* A file's bytes. */
typedef struct image {
    uint8_t *data;
    uint64_t size;
} image;

static inline image read_image(const char *path)
{
    int64_t size;
    image im = {test_read_file(path, &size), 0};
    assert_non_null(im.data);
    im.size = (uint64_t)size;
    return im;
}

static inline uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static inline void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint8_t *entry_at(image *im, int i) { return im->data + 128 + 128 * i; }

/* cmocka's group setup and teardown: tmpdir made, then removed. */
static inline int tmpdir_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/srrun-modelbin-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int tmpdir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
