/* sr_session_run_rows: every output row delivered once, in order, equal
 * bit for bit to sr_session_run's image (RGB, RGBA with the alpha kept,
 * 16-bit and float, an unshuffling network that crops its padding); a
 * sink that fails stops the run with its status and message; a cancelled
 * run stops delivering; and sr_session_plan_rows counts the rows instead
 * of the output image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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

/* Checks each delivery against the whole run's image, and that they
 * cover its rows in order. */
typedef struct collect {
    const sr_image *want;
    int64_t next_row;
    int calls;
    int fail_at;        /* the call that fails (from 1), or 0 */
    const char *message; /* written by the failing call, or NULL */
} collect;

static sr_status check_rows(void *user, const sr_image *rows, int64_t y0, sr_error *err)
{
    collect *c = user;
    c->calls++;
    assert_int_equal(err->message[0], '\0');
    assert_int_equal(y0, c->next_row);
    assert_true(rows->height >= 1 && y0 + rows->height <= c->want->height);
    assert_int_equal(rows->width, c->want->width);
    assert_int_equal(rows->channels, c->want->channels);
    assert_int_equal(rows->type, c->want->type);
    assert_null(rows->meta.icc);
    const size_t row_bytes = (size_t)(c->want->stride);
    for (int64_t y = 0; y < rows->height; y++)
        assert_memory_equal((const uint8_t *)rows->data + y * rows->stride,
                            (const uint8_t *)c->want->data + (y0 + y) * c->want->stride,
                            row_bytes);
    c->next_row += rows->height;
    if (c->calls == c->fail_at) {
        if (c->message)
            snprintf(err->message, sizeof err->message, "%s", c->message);
        return SR_ERR_IO;
    }
    return SR_OK;
}

/* The output of in streamed through run_rows equals sr_session_run's. */
static void check_streamed(sr_session *session, const sr_image *in, int channels,
                           sr_pixel_type type, int scale)
{
    sr_image want;
    assert_int_equal(
        sr_image_alloc(&want, in->width * scale, in->height * scale, channels, type, NULL),
        SR_OK);
    if (sr_session_run(session, in, &want) != SR_OK)
        fail_msg("%s", sr_session_last_error(session));
    const sr_image shape = {.width = want.width, .height = want.height, .channels = channels,
                            .type = type};
    collect c = {.want = &want};
    if (sr_session_run_rows(session, in, &shape, check_rows, &c) != SR_OK)
        fail_msg("%s", sr_session_last_error(session));
    assert_int_equal(c.next_row, want.height);
    assert_true(c.calls >= 2); /* bands, not one delivery */
    sr_image_free(&want);
}

static void test_rows_equal_run(void **state)
{
    (void)state;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.tile_rows = 8; /* several bands, so several deliveries */
    opt.n_threads = 2;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image rgba = read_fixture("path_rgba_30x21.png");
    check_streamed(session, &rgba, 3, SR_PIXEL_U8, 2);
    check_streamed(session, &rgba, 4, SR_PIXEL_U8, 2);
    check_streamed(session, &rgba, 4, SR_PIXEL_U16, 2);
    check_streamed(session, &rgba, 3, SR_PIXEL_F32, 2);
    sr_image_free(&rgba);
    sr_session_free(session);
    sr_model_free(model);

    /* RRDBNet x1 unshuffles by 4: 13x11 is padded to 16x12 and the
     * output's padding rows and columns are dropped. */
    model = test_load_model("rrdbnet_x1");
    opt.tile_rows = 1;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image leaves = read_fixture("leaves_13x11.png");
    check_streamed(session, &leaves, 3, SR_PIXEL_U8, 1);
    sr_image_free(&leaves);
    sr_session_free(session);
    sr_model_free(model);
}

/* A sink's failure ends the run with its status and its message (or one
 * naming the status), and the session runs again afterwards. */
static void test_sink_failure(void **state)
{
    (void)state;
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.tile_rows = 4;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, &opt, &session, NULL), SR_OK);
    sr_image in = read_fixture("leaves_37x29.png");
    sr_image want;
    assert_int_equal(sr_image_alloc(&want, 74, 58, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_session_run(session, &in, &want), SR_OK);
    const sr_image shape = {.width = 74, .height = 58, .channels = 3, .type = SR_PIXEL_U8};

    collect c = {.want = &want, .fail_at = 3, .message = "disk gone"};
    assert_int_equal(sr_session_run_rows(session, &in, &shape, check_rows, &c), SR_ERR_IO);
    assert_int_equal(c.calls, 3); /* none after the failure */
    assert_string_equal(sr_session_last_error(session), "disk gone");

    c = (collect){.want = &want, .fail_at = 1};
    assert_int_equal(sr_session_run_rows(session, &in, &shape, check_rows, &c), SR_ERR_IO);
    assert_non_null(strstr(sr_session_last_error(session), "refused"));

    c = (collect){.want = &want};
    assert_int_equal(sr_session_run_rows(session, &in, &shape, check_rows, &c), SR_OK);
    assert_int_equal(c.next_row, 58);
    assert_string_equal(sr_session_last_error(session), "");

    assert_int_equal(sr_session_run_rows(session, &in, &shape, NULL, NULL),
                     SR_ERR_INVALID_ARGUMENT);
    const sr_image wrong = {.width = 70, .height = 58, .channels = 3, .type = SR_PIXEL_U8};
    assert_int_equal(sr_session_run_rows(session, &in, &wrong, check_rows, &c),
                     SR_ERR_INVALID_ARGUMENT);
    sr_image_free(&want);
    sr_image_free(&in);
    sr_session_free(session);
    sr_model_free(model);
}

static int stop_at_third(void *user, double fraction)
{
    (void)fraction;
    return ++*(int *)user == 3;
}

/* Cancelled: SR_ERR_CANCELLED, the rows delivered so far a prefix of the
 * output, and no delivery after the cancelling band. */
static void test_cancel(void **state)
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
    sr_image want;
    assert_int_equal(sr_image_alloc(&want, 74, 58, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_session_run(session, &in, &want), SR_ERR_CANCELLED);
    calls = 1000; /* never 3 again: the reference run completes */
    assert_int_equal(sr_session_run(session, &in, &want), SR_OK);
    calls = 0;
    const sr_image shape = {.width = 74, .height = 58, .channels = 3, .type = SR_PIXEL_U8};
    collect c = {.want = &want};
    assert_int_equal(sr_session_run_rows(session, &in, &shape, check_rows, &c),
                     SR_ERR_CANCELLED);
    assert_true(c.next_row < 58);
    sr_image_free(&want);
    sr_image_free(&in);
    sr_session_free(session);
    sr_model_free(model);
}

/* A streamed plan counts the rows of a delivery and an encoder, not the
 * output: 2000x2000 at x2 (a 4000x4000 RGB output, 48 MB) plans over 40 MB
 * leaner; sr_session_plan then counts the same until a whole-output plan. */
static void test_plan_counts_rows(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *session;
    assert_int_equal(sr_session_new(model, NULL, &session, NULL), SR_OK);
    const sr_image in = {.width = 2000, .height = 2000, .channels = 3, .type = SR_PIXEL_U8};
    const sr_image out = {.width = 4000, .height = 4000, .channels = 3, .type = SR_PIXEL_U8};
    sr_plan_info whole = SR_PLAN_INFO_INIT, rows = SR_PLAN_INFO_INIT;
    sr_plan_info again = SR_PLAN_INFO_INIT;
    assert_int_equal(sr_session_plan_images(session, &in, &out, &whole), SR_OK);
    assert_int_equal(sr_session_plan_rows(session, &in, &out, &rows), SR_OK);
    assert_true(whole.fixed_bytes - rows.fixed_bytes > (INT64_C(40) << 20));
    assert_true(whole.fixed_bytes - rows.fixed_bytes < 4000 * 4000 * 3);
    assert_int_equal(sr_session_plan(session, 2000, 2000, &again), SR_OK);
    assert_int_equal(again.fixed_bytes, rows.fixed_bytes);
    assert_int_equal(sr_session_plan_images(session, &in, &out, &again), SR_OK);
    assert_int_equal(again.fixed_bytes, whole.fixed_bytes);
    sr_session_free(session);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_equal_run),
        cmocka_unit_test(test_sink_failure),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_plan_counts_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
