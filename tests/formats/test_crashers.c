/* Every file in tests/crashers/ (malformed models and images, made by
 * make_crashers.py) opened through the public API: sr_model_load for .pth,
 * sr_image_read for images, and their _memory forms on the file's bytes.
 * Each must fail with its expected status and a message naming the file
 * and the problem (from memory: the same status and message, less the
 * file's name), leave no model or pixels
 * behind, and run nothing: the __reduce__ payload would create a marker
 * file. A file in the folder without a row here fails the suite, so a new
 * crasher cannot be forgotten. */
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
#include <unistd.h>

#include "srrun.h"
#include "testutil.h"

#define CRASHERS_DIR SR_FIXTURES_DIR "/../crashers"
/* What make_crashers.py's os.system payload would create. */
#define MARKER "/tmp/srrun_pwned"

typedef struct crasher {
    const char *file;
    sr_status status;
    const char *message; /* a substring of the error message */
} crasher;

static const crasher crashers[] = {
    /* Model files. */
    {"empty.pth", SR_ERR_FORMAT, "empty file"},
    {"random_4k.pth", SR_ERR_FORMAT, "not a PyTorch checkpoint (unrecognised header)"},
    {"gzip_wrapped.pth", SR_ERR_FORMAT, "gzip file, not a PyTorch checkpoint"},
    {"zip_truncated_eocd.pth", SR_ERR_FORMAT,
     "truncated zip: end-of-central-directory not found"},
    {"zip_entry_past_eof.pth", SR_ERR_FORMAT, "extends past end of file"},
    {"reduce_posix_system.pth", SR_ERR_UNSAFE, "global 'posix.system' is not allowed"},
    {"pickled_module_conv2d.pth", SR_ERR_UNSAFE,
     "file holds a pickled model class; save state_dict"},
    {"torchscript.pth", SR_ERR_UNSUPPORTED, "TorchScript archive"},
    {"pickle_nested_too_deep.pth", SR_ERR_FORMAT, "pickle nested too deep (limit 256)"},
    {"storage_size_mismatch.pth", SR_ERR_FORMAT,
     "storage '0' size mismatch: 64 bytes, expected 1944"},
    {"weight_nan.pth", SR_ERR_FORMAT, "tensor 'block4.bias' holds NaN or Inf"},
    {"weight_wrong_shape.pth", SR_ERR_MODEL,
     "block4.weight: expected [3,2,9,9], file has [3,2,7,7]"},
    /* Bombs: a few KB each, once gigabytes; now refused at a limit within
     * tens of MB (make_crashers.py's hostile_models). */
    {"pickle_bomb_32mb.pth", SR_ERR_LIMIT,
     "entry 'archive/data.pkl' is 33554435 bytes, over the limit of 8388608"},
    {"pickle_bomb_stack.pth", SR_ERR_LIMIT,
     "pickle has more than 131072 items on its stack (limit; byte 131074)"},
    {"pickle_bomb_values.pth", SR_ERR_LIMIT, "pickle has more than 524288 values (limit;"},
    {"pickle_bomb_shared_items.pth", SR_ERR_LIMIT,
     "pickle has more than 524288 items in its tuples, lists and dicts (limit;"},
    {"pickle_bomb_strings.pth", SR_ERR_LIMIT, "pickle has more than 4194304 bytes of strings"},
    {"pickle_bomb_memo_index.pth", SR_ERR_LIMIT,
     "pickle memo index 6291456 is beyond the 1 values built so far"},
    {"zip_c1_entry_name.pth", SR_ERR_FORMAT,
     "entries outside archive folder ('x\\xc2\\x9b[2Jevil.pkl')"},
    /* Images. */
    {"empty.png", SR_ERR_FORMAT, "empty file"},
    {"text_named.png", SR_ERR_FORMAT, "not a PNG or JPEG image"},
    {"png_truncated_idat.png", SR_ERR_FORMAT, "truncated image"},
    {"png_100000x100000.png", SR_ERR_LIMIT,
     "image 100000x100000 exceeds the 178956970-pixel limit"},
    {"png_bad_ihdr_crc.png", SR_ERR_FORMAT, "CRC error"},
    {"jpeg_truncated_after_sos.jpg", SR_ERR_FORMAT, "truncated image"},
    {"jpeg_65535x65535.jpg", SR_ERR_LIMIT,
     "image 65535x65535 exceeds the 178956970-pixel limit"},
};

static int is_model(const char *file)
{
    const char *dot = strrchr(file, '.');
    return dot && strcmp(dot, ".pth") == 0;
}

/* Reads the crasher from its path, or from its bytes in memory. */
static sr_status load(const crasher *c, const char *path, int from_memory, sr_error *err)
{
    int64_t size = 0;
    void *bytes = from_memory ? test_read_file(path, &size) : NULL;
    if (from_memory && !bytes)
        fail_msg("cannot read %s", path);
    sr_status status;
    if (is_model(c->file)) {
        sr_model *model = (sr_model *)err; /* must be reset to NULL */
        status = from_memory ? sr_model_load_memory(bytes, (size_t)size, NULL, &model, err)
                             : sr_model_load(path, NULL, &model, err);
        if (status == SR_OK)
            sr_model_free(model);
        else
            assert_null(model);
    } else {
        sr_image image = {.data = err}; /* must be zeroed */
        status = from_memory ? sr_image_read_memory(bytes, (size_t)size, NULL, &image, err)
                             : sr_image_read(path, 0, &image, err);
        if (status == SR_OK)
            sr_image_free(&image);
        else
            assert_null(image.data);
    }
    free(bytes);
    return status;
}

/* The file's failure, and the same from memory with the message less the
 * path. */
static void check(const crasher *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CRASHERS_DIR, c->file);
    sr_error err = {{0}}, memory_err = {{0}};
    const sr_status status = load(c, path, 0, &err);
    if (status != c->status || !strstr(err.message, c->message) ||
        strncmp(err.message, path, strlen(path)) != 0)
        fail_msg("%s: got %s \"%s\"; expected %s and \"%s: ...%s...\"", c->file,
                 sr_status_string(status), err.message, sr_status_string(c->status),
                 path, c->message);
    const sr_status memory_status = load(c, path, 1, &memory_err);
    if (memory_status != status || strcmp(err.message + strlen(path) + 2, memory_err.message) != 0)
        fail_msg("%s from memory: got %s \"%s\"", c->file, sr_status_string(memory_status),
                 memory_err.message);
    /* Nothing from the file reaches a terminal unescaped. */
    for (const char *m = err.message; *m; m++)
        if (*m < 0x20 || *m > 0x7e)
            fail_msg("%s: byte 0x%02x in the message", c->file, (unsigned char)*m);
}

static void test_each_crasher(void **state)
{
    (void)state;
    unlink(MARKER);
    for (size_t i = 0; i < sizeof crashers / sizeof *crashers; i++)
        check(&crashers[i]);
    assert_int_not_equal(access(MARKER, F_OK), 0);
}

/* Every file in the folder, but the script that makes them, has a row. */
static void test_every_file_has_a_row(void **state)
{
    (void)state;
    DIR *dir = opendir(CRASHERS_DIR);
    assert_non_null(dir);
    int n_files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "make_crashers.py") == 0)
            continue;
        n_files++;
        size_t i = 0;
        while (i < sizeof crashers / sizeof *crashers &&
               strcmp(crashers[i].file, e->d_name) != 0)
            i++;
        if (i == sizeof crashers / sizeof *crashers)
            fail_msg("tests/crashers/%s has no row in test_crashers.c", e->d_name);
    }
    closedir(dir);
    assert_int_equal(n_files, sizeof crashers / sizeof *crashers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_crasher),
        cmocka_unit_test(test_every_file_has_a_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
