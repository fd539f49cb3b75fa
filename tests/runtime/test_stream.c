/* sr_session_upscale_to_file: the file's bytes are those of sr_session_run
 * followed by sr_image_write_png or _jpeg (the input's ICC profile
 * carried, RGBA kept, JPEG at both chroma settings); a run cancelled
 * midway leaves no file and no temporary, and an old file untouched; a
 * shape no format holds or a path that cannot be written fails naming the
 * path, before any work, and a disk that fills while the rows are encoded
 * names it too. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

static char workdir[256];

static void work_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", workdir, name);
}

static sr_image read_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, name);
    sr_error err = {0};
    sr_image img = {0};
    if (sr_image_read(path, 0, &img, &err) != SR_OK)
        fail_msg("%s", err.message);
    return img;
}

static uint8_t *read_bytes(const char *path, int64_t *size)
{
    uint8_t *data = test_read_file(path, size);
    if (!data)
        fail_msg("%s: cannot read", path);
    return data;
}

/* The names in the work folder; fails on any but `allowed` (may be NULL). */
static void expect_only(const char *allowed)
{
    DIR *d = opendir(workdir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && (!allowed || strcmp(e->d_name, allowed) != 0))
            fail_msg("%s left in the work folder", e->d_name);
    closedir(d);
}

/* Streamed file == whole run + whole writer, byte for byte. */
static void check_same_file(sr_session *session, const sr_image *in, int channels,
                            sr_image_format format, int quality)
{
    char streamed[512], whole[512];
    work_path(streamed, sizeof streamed, "streamed");
    work_path(whole, sizeof whole, "whole");
    sr_image out;
    assert_int_equal(sr_image_alloc(&out, in->width * 2, in->height * 2, channels, SR_PIXEL_U8,
                                    NULL),
                     SR_OK);
    assert_int_equal(sr_image_copy_meta(&out, in, NULL), SR_OK);
    assert_int_equal(sr_session_run(session, in, &out), SR_OK);
    sr_error err = {0};
    if ((format == SR_IMAGE_PNG ? sr_image_write_png(whole, &out, &err)
                                : sr_image_write_jpeg(whole, &out, quality, &err)) != SR_OK)
        fail_msg("%s", err.message);
    sr_image shape = {.width = out.width, .height = out.height, .channels = channels,
                      .type = SR_PIXEL_U8, .meta = in->meta};
    if (sr_session_upscale_to_file(session, in, &shape, streamed, format, quality) != SR_OK)
        fail_msg("%s", sr_session_last_error(session));
    int64_t a_size, b_size;
    uint8_t *a = read_bytes(streamed, &a_size), *b = read_bytes(whole, &b_size);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a, b, (size_t)a_size);
    free(a);
    free(b);
    unlink(streamed);
    unlink(whole);
    sr_image_free(&out);
}

static void test_same_bytes_as_whole(void **state)
{
    (void)state;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.tile_rows = 8;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image rgba = read_fixture("path_rgba_30x21.png");
    check_same_file(session, &rgba, 3, SR_IMAGE_PNG, 0);
    check_same_file(session, &rgba, 4, SR_IMAGE_PNG, 0);
    sr_image_free(&rgba);
    sr_image leaves = read_fixture("leaves_37x29.png");
    /* An ICC profile, as a JPEG or PNG input would bring (header only). */
    leaves.meta.icc = calloc(1, 132);
    leaves.meta.icc_size = 132;
    memcpy(leaves.meta.icc, "\0\0\0\x84", 4);
    memcpy(leaves.meta.icc + 12, "mntrRGB XYZ ", 12);
    memcpy(leaves.meta.icc + 36, "acsp", 4);
    check_same_file(session, &leaves, 3, SR_IMAGE_PNG, 0);
    check_same_file(session, &leaves, 3, SR_IMAGE_JPEG, 90);
    check_same_file(session, &leaves, 3, SR_IMAGE_JPEG, 75);
    sr_image_free(&leaves);
    expect_only(NULL);
    sr_session_free(session);
    sr_model_free(model);
}

static int stop_at_third(void *user, double fraction)
{
    (void)fraction;
    return ++*(int *)user == 3;
}

/* Cancelled after some rows were encoded: no file at a new path, an old
 * file's bytes as they were, and nothing else in the folder. */
static void test_cancel_leaves_nothing(void **state)
{
    (void)state;
    int calls = 0;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.tile_rows = 4;
    opt.progress = stop_at_third;
    opt.progress_user = &calls;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image in = read_fixture("leaves_37x29.png");
    const sr_image shape = {.width = 74, .height = 58, .channels = 3, .type = SR_PIXEL_U8};
    char path[512];
    work_path(path, sizeof path, "new.png");
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_PNG, 0),
                     SR_ERR_CANCELLED);
    assert_string_equal(sr_session_last_error(session), "cancelled");
    expect_only(NULL);

    work_path(path, sizeof path, "old.jpg");
    FILE *f = fopen(path, "wb");
    fputs("an old file", f);
    fclose(f);
    calls = 0;
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_JPEG, 90),
                     SR_ERR_CANCELLED);
    int64_t size;
    char *old = (char *)read_bytes(path, &size);
    assert_int_equal(size, 11);
    assert_memory_equal(old, "an old file", 11);
    free(old);
    expect_only("old.jpg");

    calls = -1000; /* never 3: runs through and replaces it */
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_JPEG, 90),
                     SR_OK);
    sr_image back = {0};
    assert_int_equal(sr_image_read(path, NULL, &back, NULL), SR_OK);
    assert_int_equal(back.width, 74);
    sr_image_free(&back);
    unlink(path);
    sr_image_free(&in);
    sr_session_free(session);
    sr_model_free(model);
}

/* Refusals name the path and come before any work or file. */
static void test_refusals(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    sr_image in = read_fixture("leaves_13x11.png");
    sr_image shape = {.width = 26, .height = 22, .channels = 3, .type = SR_PIXEL_U16};
    char path[512];
    work_path(path, sizeof path, "out.jpg");
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_JPEG, 90),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(strncmp(sr_session_last_error(session), path, strlen(path)), 0);
    assert_non_null(strstr(sr_session_last_error(session), "8-bit"));
    shape.type = SR_PIXEL_U8;
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_JPEG, 0),
                     SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, NULL, SR_IMAGE_PNG, 0),
                     SR_ERR_INVALID_ARGUMENT);
    work_path(path, sizeof path, "no/such/folder.png");
    assert_int_equal(sr_session_upscale_to_file(session, &in, &shape, path, SR_IMAGE_PNG, 0),
                     SR_ERR_IO);
    assert_int_equal(strncmp(sr_session_last_error(session), path, strlen(path)), 0);
    expect_only(NULL);
    /* A disk full while the rows are encoded: the file's failure, named
     * by the file, not the run's. */
    sr_image_free(&in);
    in = read_fixture("leaves_37x29.png");
    shape = (sr_image){.width = 74, .height = 58, .channels = 3, .type = SR_PIXEL_U16};
    assert_int_equal(
        sr_session_upscale_to_file(session, &in, &shape, "/dev/full", SR_IMAGE_PNG, 0),
        SR_ERR_IO);
    assert_string_equal(sr_session_last_error(session), "/dev/full: No space left on device");
    sr_image_free(&in);
    sr_session_free(session);
    sr_model_free(model);
}

static int setup(void **state)
{
    (void)state;
    snprintf(workdir, sizeof workdir, "/tmp/sr_test_stream_XXXXXX");
    return mkdtemp(workdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(workdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_whole),
        cmocka_unit_test(test_cancel_leaves_nothing),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
