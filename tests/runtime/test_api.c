/* The public API given NULL: every function of srrun.h, each pointer
 * argument NULL in turn while the others are valid, answers what the
 * header says (SR_ERR_INVALID_ARGUMENT, or a getter's neutral value)
 * instead of dereferencing it. And models loaded from memory against
 * models loaded from their files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

/* Valid arguments, of which each call replaces one by NULL. */
typedef struct valid {
    sr_model *model;
    sr_session *session;
    sr_image in, out;
    char model_path[512], out_path[512];
} valid;

typedef struct null_case {
    const char *call;
    sr_status (*make)(valid *v); /* the call, with one argument NULL */
} null_case;

static sr_status read_path(valid *v)
{
    (void)v;
    sr_image image;
    return sr_image_read(NULL, NULL, &image, NULL);
}
static sr_status read_image(valid *v)
{
    (void)v;
    char path[512];
    snprintf(path, sizeof path, "%s/dot_1x1.png", SR_FIXTURES_DIR);
    return sr_image_read(path, NULL, NULL, NULL);
}
static sr_status info_path(valid *v)
{
    (void)v;
    sr_image image;
    return sr_image_read_info(NULL, NULL, &image, NULL);
}
static sr_status info_image(valid *v)
{
    (void)v;
    char path[512];
    snprintf(path, sizeof path, "%s/dot_1x1.png", SR_FIXTURES_DIR);
    return sr_image_read_info(path, NULL, NULL, NULL);
}
static sr_status check_path(valid *v)
{
    return sr_image_check_output(NULL, SR_IMAGE_PNG, &v->out, NULL);
}
static sr_status check_shape(valid *v)
{
    return sr_image_check_output(v->out_path, SR_IMAGE_PNG, NULL, NULL);
}
static sr_status png_stream(valid *v) { return sr_image_write_png_stream(NULL, &v->in, NULL); }
static sr_status png_stream_image(valid *v)
{
    (void)v;
    return sr_image_write_png_stream(stdout, NULL, NULL);
}
static sr_status jpeg_stream(valid *v)
{
    return sr_image_write_jpeg_stream(NULL, &v->in, 90, NULL);
}
static sr_status jpeg_stream_image(valid *v)
{
    (void)v;
    return sr_image_write_jpeg_stream(stdout, NULL, 90, NULL);
}
static sr_status png_path(valid *v) { return sr_image_write_png(NULL, &v->in, NULL); }
static sr_status png_image(valid *v) { return sr_image_write_png(v->out_path, NULL, NULL); }
static sr_status jpeg_path(valid *v) { return sr_image_write_jpeg(NULL, &v->in, 90, NULL); }
static sr_status jpeg_image(valid *v) { return sr_image_write_jpeg(v->out_path, NULL, 90, NULL); }
static sr_status alloc_image(valid *v)
{
    (void)v;
    return sr_image_alloc(NULL, 1, 1, 3, SR_PIXEL_U8, NULL);
}
static sr_status meta_dst(valid *v) { return sr_image_copy_meta(NULL, &v->in, NULL); }
static sr_status meta_src(valid *v) { return sr_image_copy_meta(&v->out, NULL, NULL); }
static sr_status load_path(valid *v)
{
    sr_model *m = v->model;
    return sr_model_load(NULL, NULL, &m, NULL);
}
static sr_status load_model(valid *v) { return sr_model_load(v->model_path, NULL, NULL, NULL); }
static sr_status load_default_model(valid *v)
{
    (void)v;
    return sr_model_load_default(4, NULL, NULL, NULL);
}
static sr_status save_model(valid *v) { return sr_model_save(NULL, v->out_path, 0, NULL); }
static sr_status save_path(valid *v) { return sr_model_save(v->model, NULL, 0, NULL); }
static sr_status new_model(valid *v)
{
    sr_session *s;
    (void)v;
    return sr_session_new(NULL, NULL, &s, NULL);
}
static sr_status new_session(valid *v) { return sr_session_new(v->model, NULL, NULL, NULL); }
static sr_status run_session(valid *v) { return sr_session_run(NULL, &v->in, &v->out); }
static sr_status run_in(valid *v) { return sr_session_run(v->session, NULL, &v->out); }
static sr_status run_out(valid *v) { return sr_session_run(v->session, &v->in, NULL); }
static sr_status plan_session(valid *v)
{
    (void)v;
    return sr_session_plan(NULL, 1, 1, NULL);
}
static sr_status plan_images_session(valid *v)
{
    return sr_session_plan_images(NULL, &v->in, &v->out, NULL);
}
static sr_status plan_images_in(valid *v)
{
    return sr_session_plan_images(v->session, NULL, &v->out, NULL);
}
static sr_status plan_images_out(valid *v)
{
    return sr_session_plan_images(v->session, &v->in, NULL, NULL);
}

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static sr_status read_memory_data(valid *v)
{
    (void)v;
    sr_image image;
    return sr_image_read_memory(NULL, 8, NULL, &image, NULL);
}
static sr_status read_memory_image(valid *v)
{
    (void)v;
    return sr_image_read_memory(png_signature, 8, NULL, NULL, NULL);
}
static sr_status info_memory_data(valid *v)
{
    (void)v;
    sr_image image;
    return sr_image_read_info_memory(NULL, 8, NULL, &image, NULL);
}
static sr_status info_memory_image(valid *v)
{
    (void)v;
    return sr_image_read_info_memory(png_signature, 8, NULL, NULL, NULL);
}
static sr_status write_memory_image(valid *v)
{
    (void)v;
    void *data;
    size_t size;
    return sr_image_write_memory(NULL, SR_IMAGE_PNG, 0, &data, &size, NULL);
}
static sr_status write_memory_data(valid *v)
{
    size_t size;
    return sr_image_write_memory(&v->in, SR_IMAGE_PNG, 0, NULL, &size, NULL);
}
static sr_status write_memory_size(valid *v)
{
    void *data;
    return sr_image_write_memory(&v->in, SR_IMAGE_PNG, 0, &data, NULL, NULL);
}
static sr_status load_memory_data(valid *v)
{
    sr_model *m = v->model;
    return sr_model_load_memory(NULL, 8, NULL, &m, NULL);
}
static sr_status load_memory_model(valid *v)
{
    (void)v;
    return sr_model_load_memory(png_signature, 8, NULL, NULL, NULL);
}

static const null_case null_cases[] = {
    {"sr_image_read_memory(data)", read_memory_data},
    {"sr_image_read_memory(image)", read_memory_image},
    {"sr_image_read_info_memory(data)", info_memory_data},
    {"sr_image_read_info_memory(image)", info_memory_image},
    {"sr_image_write_memory(image)", write_memory_image},
    {"sr_image_write_memory(data)", write_memory_data},
    {"sr_image_write_memory(size)", write_memory_size},
    {"sr_model_load_memory(data)", load_memory_data},
    {"sr_model_load_memory(model)", load_memory_model},
    {"sr_image_read(path)", read_path},
    {"sr_image_read(image)", read_image},
    {"sr_image_read_info(path)", info_path},
    {"sr_image_read_info(image)", info_image},
    {"sr_image_check_output(path)", check_path},
    {"sr_image_check_output(shape)", check_shape},
    {"sr_image_write_png_stream(file)", png_stream},
    {"sr_image_write_png_stream(image)", png_stream_image},
    {"sr_image_write_jpeg_stream(file)", jpeg_stream},
    {"sr_image_write_jpeg_stream(image)", jpeg_stream_image},
    {"sr_image_write_png(path)", png_path},
    {"sr_image_write_png(image)", png_image},
    {"sr_image_write_jpeg(path)", jpeg_path},
    {"sr_image_write_jpeg(image)", jpeg_image},
    {"sr_image_alloc(image)", alloc_image},
    {"sr_image_copy_meta(dst)", meta_dst},
    {"sr_image_copy_meta(src)", meta_src},
    {"sr_model_load(path)", load_path},
    {"sr_model_load(model)", load_model},
    {"sr_model_load_default(model)", load_default_model},
    {"sr_model_save(model)", save_model},
    {"sr_model_save(path)", save_path},
    {"sr_session_new(model)", new_model},
    {"sr_session_new(session)", new_session},
    {"sr_session_run(session)", run_session},
    {"sr_session_run(in)", run_in},
    {"sr_session_run(out)", run_out},
    {"sr_session_plan(session)", plan_session},
    {"sr_session_plan_images(session)", plan_images_session},
    {"sr_session_plan_images(in)", plan_images_in},
    {"sr_session_plan_images(out)", plan_images_out},
};

static void setup_valid(valid *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->model_path, sizeof v->model_path, "%s/srpgan_x2.pth", SR_FIXTURES_DIR);
    snprintf(v->out_path, sizeof v->out_path, "/tmp/test_api_%ld.out", (long)getpid());
    v->model = test_load_model("srpgan_x2");
    assert_int_equal(sr_session_new(v->model, NULL, &v->session, NULL), SR_OK);
    assert_int_equal(sr_image_alloc(&v->in, 2, 2, 3, SR_PIXEL_U8, NULL), SR_OK);
    assert_int_equal(sr_image_alloc(&v->out, 4, 4, 3, SR_PIXEL_U8, NULL), SR_OK);
}

static void free_valid(valid *v)
{
    unlink(v->out_path);
    sr_image_free(&v->in);
    sr_image_free(&v->out);
    sr_session_free(v->session);
    sr_model_free(v->model);
}

/* Each call with one NULL fails as an invalid argument, writes no file,
 * and leaves the valid handles working: a run afterwards succeeds. */
static void test_null_arguments_are_invalid(void **state)
{
    (void)state;
    valid v;
    setup_valid(&v);
    for (size_t i = 0; i < sizeof null_cases / sizeof *null_cases; i++) {
        const sr_status st = null_cases[i].make(&v);
        if (st != SR_ERR_INVALID_ARGUMENT)
            fail_msg("%s: status %d (%s), want invalid argument", null_cases[i].call, (int)st,
                     sr_status_string(st));
        assert_int_not_equal(access(v.out_path, F_OK), 0);
    }
    assert_int_equal(sr_session_run(v.session, &v.in, &v.out), SR_OK);
    free_valid(&v);
}

/* The getters' neutral values, and the free functions taking NULL. */
static void test_getters_and_frees_take_null(void **state)
{
    (void)state;
    sr_model_info info = {.size = sizeof info, .architecture = "x", .scale = 3};
    assert_int_equal(sr_model_get_info(NULL, &info), SR_ERR_INVALID_ARGUMENT);
    /* Its known fields zeroed, size saying where they end. */
    const sr_model_info zero = {.size = offsetof(sr_model_info, data_crc32) + sizeof(uint32_t)};
    assert_memory_equal(&info, &zero, zero.size);
    assert_int_equal(sr_model_get_info(NULL, NULL), SR_ERR_INVALID_ARGUMENT);
    assert_int_equal(sr_model_scale(NULL), 0);
    int64_t value = 7;
    assert_null(sr_model_hparam(NULL, 0, &value));
    assert_int_equal(value, 7);
    assert_null(sr_model_notices(NULL));
    assert_int_equal(sr_session_backend(NULL), SR_BACKEND_AUTO);
    assert_null(sr_session_backend_note(NULL));
    assert_string_equal(sr_session_last_error(NULL), "");
    sr_model_free(NULL);
    sr_session_free(NULL);
    sr_image_free(NULL);
    /* The calls without pointers, at the edges of their enums. */
    assert_string_equal(sr_status_string(SR_STATUS_COUNT), "unknown status");
    assert_string_equal(sr_backend_name(SR_BACKEND_COUNT), "unknown");
    assert_string_equal(sr_precision_name(SR_PRECISION_COUNT), "unknown");
    assert_non_null(sr_version());
}

/* NULL where NULL means "none" or "the default" still works. */
static void test_optional_pointers_may_be_null(void **state)
{
    (void)state;
    valid v;
    setup_valid(&v);
    sr_model *m;
    assert_int_equal(sr_model_load(v.model_path, NULL, &m, NULL), SR_OK);
    assert_string_equal(sr_model_hparam(m, 0, NULL), "scale");
    sr_session *s;
    assert_int_equal(sr_session_new(m, NULL, &s, NULL), SR_OK);
    assert_int_equal(sr_session_plan(s, 2, 2, NULL), SR_OK);
    assert_int_equal(sr_session_plan_images(s, &v.in, &v.out, NULL), SR_OK);
    sr_session_free(s);
    sr_model_free(m);
    free_valid(&v);
}

/* A model loaded from a file's bytes is the model loaded from the file:
 * the same description and, with the caller's buffer overwritten and freed
 * (it was copied), the same output bit for bit. Both formats. */
static void test_model_load_memory_equals_file(void **state)
{
    (void)state;
    static const char *const files[] = {
        SR_FIXTURES_DIR "/srpgan_x2.pth",
        SR_FIXTURES_DIR "/../../models/srpgan/srpgan_x2.bin",
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        int64_t size;
        uint8_t *bytes = test_read_file(files[i], &size);
        assert_non_null(bytes);
        sr_model *from_file, *from_memory;
        sr_error err = {0};
        if (sr_model_load(files[i], NULL, &from_file, &err) != SR_OK ||
            sr_model_load_memory(bytes, (size_t)size, NULL, &from_memory, &err) != SR_OK)
            fail_msg("%s: %s", files[i], err.message);
        memset(bytes, 0xaa, (size_t)size);
        free(bytes);
        sr_model_info a = SR_MODEL_INFO_INIT, b = SR_MODEL_INFO_INIT;
        assert_int_equal(sr_model_get_info(from_file, &a), SR_OK);
        assert_int_equal(sr_model_get_info(from_memory, &b), SR_OK);
        assert_string_equal(a.architecture, b.architecture);
        assert_string_equal(a.format, b.format);
        assert_string_equal(a.dtype, b.dtype);
        assert_int_equal(a.scale, b.scale);
        assert_int_equal(a.n_blocks, b.n_blocks);
        assert_int_equal(a.n_params, b.n_params);
        assert_int_equal(a.n_input_pixel_flops, b.n_input_pixel_flops);
        assert_int_equal(a.file_size, size);
        assert_int_equal(b.file_size, size);
        assert_int_equal(a.has_checksum, b.has_checksum);
        assert_int_equal(a.header_crc32, b.header_crc32);
        assert_int_equal(a.data_crc32, b.data_crc32);

        sr_image in, out[2];
        assert_int_equal(sr_image_alloc(&in, 5, 4, 3, SR_PIXEL_U8, NULL), SR_OK);
        for (int64_t k = 0; k < 5 * 4 * 3; k++)
            ((uint8_t *)in.data)[k] = (uint8_t)(k * 37);
        sr_model *models[2] = {from_file, from_memory};
        for (int m = 0; m < 2; m++) {
            sr_session *s;
            assert_int_equal(sr_session_new(models[m], NULL, &s, NULL), SR_OK);
            assert_int_equal(sr_image_alloc(&out[m], 10, 8, 3, SR_PIXEL_F32, NULL), SR_OK);
            assert_int_equal(sr_session_run(s, &in, &out[m]), SR_OK);
            sr_session_free(s);
        }
        assert_memory_equal(out[0].data, out[1].data, (size_t)(out[0].stride * out[0].height));
        sr_image_free(&out[0]);
        sr_image_free(&out[1]);
        sr_image_free(&in);
        sr_model_free(from_file);
        sr_model_free(from_memory);
    }
}

/* An empty buffer is an empty file; bytes that are no model say so, with
 * no path in the message. */
static void test_model_load_memory_refusals(void **state)
{
    (void)state;
    sr_model *m = (sr_model *)&m;
    sr_error err = {0};
    assert_int_equal(sr_model_load_memory(png_signature, 0, NULL, &m, &err), SR_ERR_FORMAT);
    assert_null(m);
    assert_string_equal(err.message, "empty file");
    assert_int_equal(sr_model_load_memory(png_signature, 8, NULL, &m, &err), SR_ERR_FORMAT);
    assert_null(m);
    assert_string_equal(err.message, "not a PyTorch checkpoint (unrecognised header)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments_are_invalid),
        cmocka_unit_test(test_getters_and_frees_take_null),
        cmocka_unit_test(test_optional_pointers_may_be_null),
        cmocka_unit_test(test_model_load_memory_equals_file),
        cmocka_unit_test(test_model_load_memory_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
