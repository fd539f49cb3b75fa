/* sr_session_run with the outputs users ask for: RGBA (the alpha kept and
 * upscaled beside the network's RGB, which sees the colour as stored) and
 * 16-bit; and the memory those images take counted in the plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/resample.h"
#include "srrun.h"
#include "testutil.h"

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

/* Keeping alpha: the RGB equals a plain run on the input's colour with
 * the alpha dropped (not composited), bit for bit; the alpha equals the
 * bicubic upscale. At 8 and 16 bits. */
static void test_rgba_output(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    sr_image in = read_fixture("path_rgba_30x21.png");
    assert_int_equal(in.channels, 4);
    int translucent = 0;
    for (int64_t i = 0; i < in.width * in.height; i++)
        translucent += ((uint8_t *)in.data)[i * 4 + 3] < 255;
    assert_true(translucent > 0); /* else the test proves nothing */

    sr_image colour;
    assert_int_equal(sr_image_alloc(&colour, in.width, in.height, 3, SR_PIXEL_U8, NULL), SR_OK);
    for (int64_t i = 0; i < in.width * in.height; i++)
        memcpy((uint8_t *)colour.data + i * 3, (uint8_t *)in.data + i * 4, 3);
    const int64_t W = in.width * 2, H = in.height * 2;
    for (int t = 0; t < 2; t++) {
        const sr_pixel_type type = t ? SR_PIXEL_U16 : SR_PIXEL_U8;
        const int bytes = t ? 2 : 1;
        sr_image rgba, rgb, alpha;
        assert_int_equal(sr_image_alloc(&rgba, W, H, 4, type, NULL), SR_OK);
        assert_int_equal(sr_image_alloc(&rgb, W, H, 3, type, NULL), SR_OK);
        assert_int_equal(sr_image_alloc(&alpha, W, H, 4, type, NULL), SR_OK);
        if (sr_session_run(session, &in, &rgba) != SR_OK)
            fail_msg("%s", sr_session_last_error(session));
        assert_int_equal(sr_session_run(session, &colour, &rgb), SR_OK);
        assert_int_equal(sr_resample_alpha(&in, &alpha, NULL), SR_OK);
        for (int64_t i = 0; i < W * H; i++) {
            const uint8_t *p = (uint8_t *)rgba.data + i * 4 * bytes;
            assert_memory_equal(p, (uint8_t *)rgb.data + i * 3 * bytes, (size_t)(3 * bytes));
            assert_memory_equal(p + 3 * bytes, (uint8_t *)alpha.data + (i * 4 + 3) * bytes,
                                (size_t)bytes);
        }
        sr_image_free(&rgba);
        sr_image_free(&rgb);
        sr_image_free(&alpha);
    }
    sr_image_free(&colour);
    sr_image_free(&in);
    sr_session_free(session);
    sr_model_free(model);
}

/* The fixed memory counts the images as they are: 8-bit RGB in and out by
 * default; an RGBA input and a 16-bit RGBA output (with the alpha
 * upscale's tables) add exactly their extra bytes. Descriptions without
 * pixels plan, and sr_session_plan then counts images of those kinds. */
static void test_memory_counts_the_images(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    const int64_t w = 30, h = 21, W = 60, H = 42;
    sr_plan_info rgb8 = SR_PLAN_INFO_INIT, rgba16 = SR_PLAN_INFO_INIT;
    sr_plan_info again = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan(session, w, h, &rgb8), SR_OK);
    const sr_image in = {.width = w, .height = h, .channels = 4, .type = SR_PIXEL_U8};
    const sr_image out = {.width = W, .height = H, .channels = 4, .type = SR_PIXEL_U16};
    assert_int_equal(sr_session_plan_images(session, &in, &out, &rgba16), SR_OK);
    assert_int_equal(rgba16.fixed_bytes - rgb8.fixed_bytes,
                     w * h * (4 - 3) + W * H * (8 - 3) + sr_resample_bytes(W));
    assert_int_equal(sr_session_plan(session, w, h, &again), SR_OK);
    assert_int_equal(again.fixed_bytes, rgba16.fixed_bytes); /* kept */
    const sr_image bad = {.width = W, .height = H, .channels = 2, .type = SR_PIXEL_U8};
    assert_int_equal(sr_session_plan_images(session, &in, &bad, NULL), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(sr_session_last_error(session), "3 or 4 channels"));
    sr_session_free(session);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgba_output),
        cmocka_unit_test(test_memory_counts_the_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
