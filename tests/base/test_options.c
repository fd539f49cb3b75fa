/* The rule for structs that grow (base/options.c, "Structs that grow"
 * in srrun.h), through each public call that reads or fills one: size 0
 * and all zero are the defaults; a struct from a "newer srrun" (larger,
 * with a field beyond what the library knows) is accepted while that
 * field is zero and refused with SR_ERR_UNSUPPORTED when it is set; a
 * size smaller than any srrun's is invalid; an info struct is filled as
 * far as its size goes, the rest zeroed, its size set to what was
 * written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

#define IMAGE SR_FIXTURES_DIR "/leaves_37x29.png"
#define MODEL SR_FIXTURES_DIR "/srpgan_x2.pth"

/* What a program built against a later srrun passes: the struct with a
 * field appended. */
typedef struct newer_read_options {
    sr_image_read_options known;
    int64_t added;
} newer_read_options;

typedef struct newer_session_options {
    sr_session_options known;
    int64_t added;
} newer_session_options;

typedef struct newer_model_options {
    sr_model_options known;
    int64_t added;
} newer_model_options;

static void test_zero_and_null_options_are_the_defaults(void **state)
{
    (void)state;
    sr_image a, b;
    const sr_image_read_options zero = {0};
    assert_int_equal(sr_image_read(IMAGE, NULL, &a, NULL), SR_OK);
    assert_int_equal(sr_image_read(IMAGE, &zero, &b, NULL), SR_OK);
    assert_int_equal(a.width, b.width);
    sr_image_free(&a);
    sr_image_free(&b);
    /* size 0 reads the 0.5.0 fields: a limit set without a size counts. */
    const sr_image_read_options limited = {.max_pixels = 10};
    assert_int_equal(sr_image_read(IMAGE, &limited, &a, NULL), SR_ERR_LIMIT);
    const sr_image_read_options sized = {.size = sizeof sized, .max_pixels = 10};
    assert_int_equal(sr_image_read(IMAGE, &sized, &a, NULL), SR_ERR_LIMIT);

    sr_model *model;
    const sr_model_options model_zero = {0};
    assert_int_equal(sr_model_load(MODEL, &model_zero, &model, NULL), SR_OK);
    sr_session *s;
    const sr_session_options session_zero = {0};
    assert_int_equal(sr_session_new(model, &session_zero, &s, NULL), SR_OK);
    assert_int_not_equal(sr_session_backend(s), SR_BACKEND_AUTO);
    sr_session_free(s);
    const sr_session_options init = SR_SESSION_OPTIONS_INIT;
    assert_int_equal(init.size, sizeof init);
    assert_int_equal(init.backend, SR_BACKEND_AUTO);
    assert_int_equal(init.n_threads, 0);
    assert_int_equal(sr_session_new(model, &init, &s, NULL), SR_OK);
    sr_session_free(s);
    sr_model_free(model);
}

static void test_newer_options_are_refused_only_when_their_new_field_is_set(void **state)
{
    (void)state;
    sr_error err = {0};
    sr_image image;
    newer_read_options read = {.known = {.size = sizeof read}};
    assert_int_equal(sr_image_read(IMAGE, &read.known, &image, &err), SR_OK);
    sr_image_free(&image);
    read.added = 1;
    assert_int_equal(sr_image_read(IMAGE, &read.known, &image, &err), SR_ERR_UNSUPPORTED);
    assert_null(image.data);
    char want[256];
    snprintf(want, sizeof want, "image read options set a field that srrun %s does not know",
             sr_version());
    assert_non_null(strstr(err.message, want));
    assert_int_equal(sr_image_read_info(IMAGE, &read.known, &image, NULL), SR_ERR_UNSUPPORTED);

    int64_t size;
    void *bytes = test_read_file(MODEL, &size);
    assert_non_null(bytes);
    sr_model *model;
    newer_model_options model_options = {.known = {.size = sizeof model_options}, .added = 7};
    assert_int_equal(sr_model_load_memory(bytes, (size_t)size, &model_options.known, &model, &err),
                     SR_ERR_UNSUPPORTED);
    assert_null(model);
    assert_non_null(strstr(err.message, "model options set a field that srrun"));
    model_options.added = 0;
    assert_int_equal(sr_model_load_memory(bytes, (size_t)size, &model_options.known, &model, &err),
                     SR_OK);
    free(bytes);

    sr_session *s;
    newer_session_options session = {.known = {.size = sizeof session, .n_threads = 1}};
    assert_int_equal(sr_session_new(model, &session.known, &s, &err), SR_OK);
    sr_session_free(s);
    session.added = -1;
    assert_int_equal(sr_session_new(model, &session.known, &s, &err), SR_ERR_UNSUPPORTED);
    assert_null(s);
    sr_model_free(model);
}

/* Since 0.10.0 a model's loading may be held to n_threads (the CLI's -t
 * sets it); a negative count is refused, named. */
static void test_model_load_threads(void **state)
{
    (void)state;
    sr_error err = {0};
    sr_model *model;
    sr_model_options options = SR_MODEL_OPTIONS_INIT;
    options.n_threads = 1;
    assert_int_equal(sr_model_load(MODEL, &options, &model, &err), SR_OK);
    sr_model_free(model);
    options.n_threads = -1;
    assert_int_equal(sr_model_load(MODEL, &options, &model, &err), SR_ERR_INVALID_ARGUMENT);
    assert_null(model);
    assert_non_null(strstr(err.message, "model options: -1 threads"));
}

static void test_sizes_below_any_srrun_are_invalid(void **state)
{
    (void)state;
    sr_error err = {0};
    sr_image image;
    const sr_image_read_options tiny = {.size = sizeof(size_t)};
    assert_int_equal(sr_image_read(IMAGE, &tiny, &image, &err), SR_ERR_INVALID_ARGUMENT);
    char want[128];
    snprintf(want, sizeof want, "image read options of %zu bytes: no srrun has them smaller",
             sizeof(size_t));
    assert_non_null(strstr(err.message, want));
    sr_model *model = test_load_model("srpgan_x2");
    sr_session *s;
    const sr_session_options small = {.size = offsetof(sr_session_options, max_memory)};
    assert_int_equal(sr_session_new(model, &small, &s, NULL), SR_ERR_INVALID_ARGUMENT);
    sr_model_info info = {.size = 1};
    assert_int_equal(sr_model_get_info(model, &info), SR_ERR_INVALID_ARGUMENT);
    /* An uninitialised size, refused before anything beyond the struct is
     * read or written. */
    const sr_session_options garbage = {.size = 0x7ffd5e2a1c40};
    assert_int_equal(sr_session_new(model, &garbage, &s, &err), SR_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "size is not set (initialise the struct)"));
    info.size = (size_t)-1;
    assert_int_equal(sr_model_get_info(model, &info), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(info.size, (size_t)-1);
    sr_model_free(model);
}

/* An info struct from a later srrun: filled as far as this library knows,
 * the rest left alone, its size saying where the library's fields end. */
static void test_infos_are_filled_as_far_as_their_size(void **state)
{
    (void)state;
    sr_model *model = test_load_model("srpgan_x2");
    struct {
        sr_model_info known;
        int64_t added;
    } newer;
    memset(&newer, 0xff, sizeof newer);
    newer.known.size = sizeof newer;
    assert_int_equal(sr_model_get_info(model, &newer.known), SR_OK);
    assert_int_equal(newer.known.size, offsetof(sr_model_info, data_crc32) + sizeof(uint32_t));
    assert_int_equal(newer.known.scale, 2);
    assert_string_equal(newer.known.architecture, "srpgan");
    assert_int_equal(newer.added, -1); /* not written: unknown here */
    /* Zeroed: the 0.5.0 layout. */
    sr_model_info zero = {0};
    assert_int_equal(sr_model_get_info(model, &zero), SR_OK);
    assert_int_equal(zero.scale, 2);

    sr_session *s;
    assert_int_equal(sr_session_new(model, NULL, &s, NULL), SR_OK);
    struct {
        sr_plan_info known;
        int64_t added;
    } plan;
    memset(&plan, 0xff, sizeof plan);
    plan.known.size = sizeof plan;
    assert_int_equal(sr_session_plan(s, 9, 7, &plan.known), SR_OK);
    assert_int_equal(plan.known.size, offsetof(sr_plan_info, patch_height) + sizeof(int64_t));
    assert_int_equal(plan.added, -1);
    assert_int_equal(plan.known.n_patches, 1); /* a .pth model runs on the whole image */
    assert_int_equal(plan.known.patch_width, 9);
    assert_int_equal(plan.known.patch_height, 7);
    assert_int_equal(plan.known.scratch_bytes, 0);
    /* A 0.6.0 caller's struct, without the fields 0.7.0 added: those are
     * not written. */
    sr_plan_info old;
    memset(&old, 0xff, sizeof old);
    old.size = offsetof(sr_plan_info, layer_size) + sizeof(size_t);
    assert_int_equal(sr_session_plan(s, 9, 7, &old), SR_OK);
    assert_int_equal(old.size, offsetof(sr_plan_info, layer_size) + sizeof(size_t));
    assert_int_equal(old.scratch_bytes, -1);
    assert_int_equal(old.width, 9);
    assert_int_equal(plan.known.width, 9);
    assert_int_equal(plan.known.stage_size, sizeof(sr_stage_info));
    assert_int_equal(plan.known.layer_size, sizeof(sr_layer_info));
    assert_true(plan.known.n_stages > 0 && plan.known.n_layers > 0);
    assert_ptr_equal(SR_PLAN_STAGE(&plan.known, plan.known.n_stages - 1),
                     &plan.known.stages[plan.known.n_stages - 1]);
    assert_ptr_equal(SR_PLAN_LAYER(&plan.known, 1), &plan.known.layers[1]);
    assert_string_equal(SR_PLAN_LAYER(&plan.known, 0)->name, plan.known.layers[0].name);
    sr_plan_info invalid = {.size = 4};
    assert_int_equal(sr_session_plan(s, 9, 7, &invalid), SR_ERR_INVALID_ARGUMENT);
    sr_session_free(s);
    sr_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_and_null_options_are_the_defaults),
        cmocka_unit_test(test_newer_options_are_refused_only_when_their_new_field_is_set),
        cmocka_unit_test(test_model_load_threads),
        cmocka_unit_test(test_sizes_below_any_srrun_are_invalid),
        cmocka_unit_test(test_infos_are_filled_as_far_as_their_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
