/* Where the library finds its own files (base/locate.c), and the default
 * models through sr_model_load_default: $SRRUN_MODEL_DIR first, then the
 * build tree's share/srrun next to this program, and a message naming
 * every folder looked in when none has the file (shown by a copy of this
 * program in a folder without models). */
#define _XOPEN_SOURCE 700 /* realpath, mkdtemp, setenv */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/locate.h"
#include "srrun.h"

/* The real folder of this program: linked with libsrrun.a, the library's
 * code is in it. */
/* The format the model's file was in ("pth" or "model.bin"). */
static const char *model_format(const sr_model *model)
{
    sr_model_info info = SR_MODEL_INFO_INIT;
    sr_model_get_info(model, &info);
    return info.format;
}

static void program_dir(char *dir, size_t size)
{
    char exe[4096];
    assert_non_null(realpath("/proc/self/exe", exe));
    *strrchr(exe, '/') = '\0';
    snprintf(dir, size, "%s", exe);
}

static void test_library_dir_is_the_programs(void **state)
{
    (void)state;
    char want[4096], got[4096];
    program_dir(want, sizeof want);
    assert_int_equal(sr_locate_library_dir(got, sizeof got, NULL), SR_OK);
    assert_string_equal(got, want);
    sr_error err = {0};
    assert_int_equal(sr_locate_library_dir(got, 4, &err), SR_ERR_IO);
    assert_non_null(strstr(err.message, "path too long"));
}

static void test_data_and_module_paths(void **state)
{
    (void)state;
    char dir[4096], parent[4096], want[4200];
    program_dir(dir, sizeof dir);
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';

    sr_locations data;
    assert_int_equal(sr_locate_data_dirs(&data, NULL), SR_OK);
    assert_true(data.n_paths >= 2); /* an install's lib/ and bin/ may lead to one place */
    snprintf(want, sizeof want, "%s/share/srrun", dir);
    assert_string_equal(data.paths[data.n_paths - 1], want);
    snprintf(want, sizeof want, "%s/share/srrun", parent); /* ".." taken off, not written */
    int found = 0;
    for (int i = 0; i < data.n_paths; i++)
        found |= strcmp(data.paths[i], want) == 0;
    assert_true(found);

    sr_locations module;
    assert_int_equal(sr_locate_cuda_module(&module, NULL), SR_OK);
    assert_int_equal(module.n_paths, 2);
    snprintf(want, sizeof want, "%s/libsrrun_cuda.so", dir);
    assert_string_equal(module.paths[0], want);
    assert_null(strstr(module.paths[1], "/../"));
}

/* Each test sets its own $SRRUN_MODEL_DIR. */
static int clear_model_dir(void **state)
{
    (void)state;
    unsetenv("SRRUN_MODEL_DIR");
    return 0;
}

static void test_default_models_of_the_build_tree(void **state)
{
    (void)state;
    const int scales[] = {2, 4};
    for (int i = 0; i < 2; i++) {
        sr_model *model = NULL;
        sr_error err = {0};
        if (sr_model_load_default(scales[i], NULL, &model, &err) != SR_OK)
            fail_msg("x%d: %s", scales[i], err.message);
        assert_int_equal(sr_model_scale(model), scales[i]);
        assert_string_equal(model_format(model), "model.bin");
        sr_model_free(model);
    }
    setenv("SRRUN_MODEL_DIR", "", 1); /* empty: as if not set */
    sr_model *model = NULL;
    assert_int_equal(sr_model_load_default(4, NULL, &model, NULL), SR_OK);
    sr_model_free(model);
}

static void test_other_scales_are_refused(void **state)
{
    (void)state;
    const int scales[] = {0, 1, 3, 8, -4};
    for (int i = 0; i < 5; i++) {
        sr_model *model = (sr_model *)&model; /* must be reset to NULL */
        sr_error err = {0};
        assert_int_equal(sr_model_load_default(scales[i], NULL, &model, &err),
                         SR_ERR_INVALID_ARGUMENT);
        assert_null(model);
        char want[64];
        snprintf(want, sizeof want, "no default model upscales x%d", scales[i]);
        assert_non_null(strstr(err.message, want));
    }
}

/* A temporary folder whose srpgan_x4.bin is a link to the fixture .pth. */
static void make_model_dir(char *dir, const char *link_to)
{
    strcpy(dir, "/tmp/srrun_locate_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[4200];
    snprintf(path, sizeof path, "%s/srpgan_x4.bin", dir);
    assert_int_equal(symlink(link_to, path), 0);
}

static void remove_model_dir(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/srpgan_x4.bin", dir);
    unlink(path);
    rmdir(dir);
}

static void test_model_dir_comes_first(void **state)
{
    (void)state;
    char dir[64];
    make_model_dir(dir, SR_FIXTURES_DIR "/srpgan_x4.pth");
    setenv("SRRUN_MODEL_DIR", dir, 1);
    sr_model *model = NULL;
    sr_error err = {0};
    if (sr_model_load_default(4, NULL, &model, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_string_equal(model_format(model), "pth"); /* not the shipped model.bin */
    sr_model_free(model);

    /* Without an x2 there, the build tree's. */
    assert_int_equal(sr_model_load_default(2, NULL, &model, &err), SR_OK);
    assert_string_equal(model_format(model), "model.bin");
    sr_model_free(model);
    remove_model_dir(dir);
}

static void test_a_bad_file_is_not_passed_over(void **state)
{
    (void)state;
    char dir[64];
    make_model_dir(dir, SR_FIXTURES_DIR "/dot_1x1.png");
    setenv("SRRUN_MODEL_DIR", dir, 1);
    sr_model *model = NULL;
    sr_error err = {0};
    assert_int_equal(sr_model_load_default(4, NULL, &model, &err), SR_ERR_FORMAT);
    assert_null(model);
    char want[128];
    snprintf(want, sizeof want, "%s/srpgan_x4.bin: ", dir);
    assert_non_null(strstr(err.message, want));
    remove_model_dir(dir);
}

/* A copy of this program, in a folder with no share/srrun near it, asked
 * for the default model: the message names each place it looked. */
static void test_missing_model_names_every_folder(void **state)
{
    (void)state;
    char tmp[64] = "/tmp/srrun_locate_XXXXXX", dir[4096], copy[4200], cmd[8500];
    assert_non_null(mkdtemp(tmp));
    assert_non_null(realpath(tmp, dir));
    snprintf(copy, sizeof copy, "%s/test_locate", dir);
    snprintf(cmd, sizeof cmd, "cp /proc/%d/exe %s", (int)getpid(), copy);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "SRRUN_MODEL_DIR=/nonexistent %s --load-default 2 2> %s/err.txt",
             copy, dir);
    const int status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);

    char path[4200], message[1024] = "", parent[4096], want[4200];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(message, sizeof message, f));
    fclose(f);
    const char *start =
        "no default x2 model: no srpgan_x2.bin in $SRRUN_MODEL_DIR (/nonexistent), ";
    assert_int_equal(strncmp(message, start, strlen(start)), 0);
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    snprintf(want, sizeof want, "%s/share/srrun", parent);
    assert_non_null(strstr(message, want));
    snprintf(want, sizeof want, " or %s/share/srrun\n", dir);
    assert_string_equal(message + strlen(message) - strlen(want), want);
    unlink(path);
    unlink(copy);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    /* The copy's part of test_missing_model_names_every_folder. */
    if (argc == 3 && strcmp(argv[1], "--load-default") == 0) {
        sr_model *model;
        sr_error err = {0};
        if (sr_model_load_default(atoi(argv[2]), NULL, &model, &err) == SR_OK) {
            sr_model_free(model);
            return 0;
        }
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_dir_is_the_programs),
        cmocka_unit_test(test_data_and_module_paths),
        cmocka_unit_test_setup(test_default_models_of_the_build_tree, clear_model_dir),
        cmocka_unit_test_setup(test_other_scales_are_refused, clear_model_dir),
        cmocka_unit_test_setup(test_model_dir_comes_first, clear_model_dir),
        cmocka_unit_test_setup(test_a_bad_file_is_not_passed_over, clear_model_dir),
        cmocka_unit_test(test_missing_model_names_every_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
