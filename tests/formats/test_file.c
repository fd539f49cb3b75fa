/* formats/file.c: model files read whole (a file truncated under a loaded
 * model harms nothing), FIFOs refused rather than waited on, and outputs
 * written whole or not at all: the mode a new file gets from the umask and
 * a replaced one keeps, symbolic links written through, FIFOs written into,
 * names as long as a name can be, and nothing left behind by a writer
 * killed in the middle. */
#define _GNU_SOURCE /* O_TMPFILE */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "formats/file.h"
#include "srrun.h"
#include "testutil.h"

static char tmpdir[128];

static void tpath(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", tmpdir, name);
}

static void put_file(const char *name, const void *data, size_t size)
{
    char path[512];
    tpath(path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static char *get_file(const char *name)
{
    char path[512];
    tpath(path, name);
    int64_t size;
    char *data = test_read_file(path, &size);
    assert_non_null(data);
    data = realloc(data, (size_t)size + 1);
    data[size] = '\0';
    return data;
}

static void remove_file(const char *name)
{
    char path[512];
    tpath(path, name);
    assert_int_equal(unlink(path), 0);
}

/* The names in tmpdir, sorted and joined by spaces. */
static void list_dir(char *out, size_t size)
{
    struct dirent **names;
    const int n = scandir(tmpdir, &names, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
            snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? " " : "",
                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

static sr_status write_text(FILE *file, void *user, sr_error *err)
{
    (void)err;
    fputs(user, file);
    return SR_OK;
}

static void write_ok(const char *name, const char *text)
{
    char path[512];
    tpath(path, name);
    sr_error err = {0};
    if (sr_file_write_atomic(path, write_text, (void *)text, &err) != SR_OK)
        fail_msg("%s: %s", name, err.message);
}

static mode_t mode_of(const char *name)
{
    char path[512];
    tpath(path, name);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sr_test_file.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs the x2 fixture network on the leaves fixture on the CPU. */
static sr_image upscale(const sr_model *model)
{
    char path[512];
    snprintf(path, sizeof path, "%s/leaves_37x29.png", SR_FIXTURES_DIR);
    sr_image in, out;
    sr_error err = {0};
    assert_int_equal(sr_image_read(path, 0, &in, &err), SR_OK);
    assert_int_equal(sr_image_alloc(&out, in.width * 2, in.height * 2, 3, SR_PIXEL_U8, &err), SR_OK);
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    options.backend = SR_BACKEND_CPU;
    options.n_threads = 1;
    sr_session *session;
    if (sr_session_new(model, &options, &session, &err) != SR_OK)
        fail_msg("%s", err.message);
    if (sr_session_run(session, &in, &out) != SR_OK)
        fail_msg("%s", sr_session_last_error(session));
    sr_session_free(session);
    sr_image_free(&in);
    return out;
}

/* A training script saving the model file again while srrun holds it: the
 * loaded model keeps working (its weights are not a mapping of the file,
 * which would end the process with SIGBUS), both for a .pth, whose float32
 * tensors are used in place, and for a model.bin. */
static void test_model_outlives_its_file(void **state)
{
    (void)state;
    char fixture[512], pth[512], bin[512];
    snprintf(fixture, sizeof fixture, "%s/srpgan_x2.pth", SR_FIXTURES_DIR);
    int64_t size;
    void *bytes = test_read_file(fixture, &size);
    assert_non_null(bytes);
    put_file("model.pth", bytes, (size_t)size);
    free(bytes);
    tpath(pth, "model.pth");
    tpath(bin, "model.bin");
    sr_error err = {0};
    sr_model *model;
    assert_int_equal(sr_model_load(pth, NULL, &model, &err), SR_OK);
    assert_int_equal(sr_model_save(model, bin, 0, &err), SR_OK);
    sr_image want = upscale(model);
    sr_model_free(model);

    const char *const paths[] = {pth, bin};
    for (int i = 0; i < 2; i++) {
        if (sr_model_load(paths[i], NULL, &model, &err) != SR_OK)
            fail_msg("%s", err.message);
        assert_int_equal(truncate(paths[i], 0), 0);
        sr_image got = upscale(model);
        assert_memory_equal(got.data, want.data, (size_t)(want.stride * want.height));
        sr_image_free(&got);
        sr_model_free(model);
    }
    sr_image_free(&want);
    remove_file("model.pth");
    remove_file("model.bin");
}

/* A FIFO as the model or the image: refused at once, not waited on (the
 * alarm ends the test if it would wait). */
static void test_fifo_is_not_read(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "fifo.pth");
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    sr_error err = {0};
    sr_model *model;
    assert_int_equal(sr_model_load(path, NULL, &model, &err), SR_ERR_IO);
    char want[600];
    snprintf(want, sizeof want, "%s: not a regular file", path);
    assert_string_equal(err.message, want);
    sr_image img;
    assert_int_equal(sr_image_read(path, 0, &img, &err), SR_ERR_IO);
    assert_string_equal(err.message, want);
    assert_int_equal(sr_model_load("/dev/null", NULL, &model, &err), SR_ERR_IO);
    assert_string_equal(err.message, "/dev/null: not a regular file");
    alarm(0);
    remove_file("fifo.pth");
}

/* A new output's mode is 0666 less the umask; a replaced file keeps its
 * mode (all twelve bits the owner may set). */
static void test_output_mode(void **state)
{
    (void)state;
    const mode_t old_mask = umask(027);
    write_ok("a", "new");
    assert_int_equal(mode_of("a") & 07777, 0640);
    umask(0);
    write_ok("b", "new");
    assert_int_equal(mode_of("b") & 07777, 0666);
    assert_int_equal(chmod(tmpdir, 0700), 0); /* b's 0666 is seen by nobody else */
    char path[512];
    tpath(path, "b");
    assert_int_equal(chmod(path, 0604), 0);
    umask(077);
    write_ok("b", "replaced");
    assert_int_equal(mode_of("b") & 07777, 0604);
    if (geteuid() == 0) { /* root gives the new file the old one's owner */
        assert_int_equal(chown(path, 1234, 5678), 0);
        write_ok("b", "replaced by root");
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_uid == 1234 && st.st_gid == 5678 && (st.st_mode & 07777) == 0604);
    }
    write_ok("b", "replaced");
    char *text = get_file("b");
    assert_string_equal(text, "replaced");
    free(text);
    umask(old_mask);
    char names[256];
    list_dir(names, sizeof names);
    assert_string_equal(names, "a b");
    remove_file("a");
    remove_file("b");
}

/* A symbolic link is written through: its target replaced, the link kept
 * (also when it is relative and points into another folder); a link to
 * nothing and a folder are refused. */
static void test_output_through_symlink(void **state)
{
    (void)state;
    char path[512], target[512];
    tpath(path, "sub");
    assert_int_equal(mkdir(path, 0755), 0);
    put_file("sub/real.png", "old", 3);
    tpath(path, "link.png");
    assert_int_equal(symlink("sub/real.png", path), 0);
    write_ok("link.png", "new");
    assert_true(S_ISLNK(mode_of("link.png")));
    char *text = get_file("sub/real.png");
    assert_string_equal(text, "new");
    free(text);

    tpath(path, "nowhere.png");
    assert_int_equal(symlink("missing/x.png", path), 0);
    sr_error err = {0};
    assert_int_equal(sr_file_write_atomic(path, write_text, "x", &err), SR_ERR_IO);
    assert_string_equal(err.message, "symbolic link to nothing");
    tpath(path, "sub");
    assert_int_equal(sr_file_write_atomic(path, write_text, "x", &err), SR_ERR_IO);
    assert_string_equal(err.message, "Is a directory");

    char names[256];
    list_dir(names, sizeof names);
    assert_string_equal(names, "link.png nowhere.png sub");
    remove_file("link.png");
    remove_file("nowhere.png");
    remove_file("sub/real.png");
    tpath(target, "sub");
    assert_int_equal(rmdir(target), 0);
}

/* A FIFO (like a character device such as /dev/null) is written into, not
 * replaced by a file. */
static void test_output_into_fifo(void **state)
{
    (void)state;
    char path[512];
    tpath(path, "fifo.png");
    assert_int_equal(mkfifo(path, 0600), 0);
    /* Read and write ends in one: the writer's open does not wait. */
    const int fd = open(path, O_RDWR | O_NONBLOCK);
    assert_true(fd >= 0);
    write_ok("fifo.png", "through the pipe");
    assert_true(S_ISFIFO(mode_of("fifo.png")));
    char buf[64] = {0};
    assert_int_equal(read(fd, buf, sizeof buf - 1), 16);
    assert_string_equal(buf, "through the pipe");
    close(fd);
    remove_file("fifo.png");
}

/* An output whose name is as long as a name can be (255 bytes) is written
 * and replaced: the temporary beside it has a short name of its own. */
static void test_output_with_the_longest_name(void **state)
{
    (void)state;
    char name[256];
    memset(name, 'n', 251);
    memcpy(name + 251, ".png", 5);
    write_ok(name, "new");
    write_ok(name, "replaced");
    char *text = get_file(name);
    assert_string_equal(text, "replaced");
    free(text);
    char names[512];
    list_dir(names, sizeof names);
    assert_string_equal(names, name);
    remove_file(name);
}

static sr_status write_then_die(FILE *file, void *user, sr_error *err)
{
    (void)user, (void)err;
    for (int i = 0; i < 1000; i++)
        fputs("partial output ", file);
    fflush(file);
    raise(SIGKILL);
    return SR_OK;
}

/* A writer killed in the middle (SIGKILL: no handler runs) leaves neither
 * a temporary nor a partial output, and an old file intact: the temporary
 * has no name until it is complete. */
static void test_killed_writer_leaves_nothing(void **state)
{
    (void)state;
    const int probe = open(tmpdir, O_TMPFILE | O_WRONLY, 0600);
    if (probe < 0) {
        print_message("no O_TMPFILE in %s (%s): a named temporary would be left\n", tmpdir,
                      strerror(errno));
        skip();
    }
    close(probe);
    put_file("old.png", "old", 3);
    const char *const names[] = {"old.png", "new.png"};
    for (int i = 0; i < 2; i++) {
        char path[512];
        tpath(path, names[i]);
        const pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            sr_file_write_atomic(path, write_then_die, NULL, NULL);
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        char list[256];
        list_dir(list, sizeof list);
        assert_string_equal(list, "old.png");
        char *text = get_file("old.png");
        assert_string_equal(text, "old");
        free(text);
    }
    remove_file("old.png");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_outlives_its_file),
        cmocka_unit_test(test_fifo_is_not_read),
        cmocka_unit_test(test_output_mode),
        cmocka_unit_test(test_output_through_symlink),
        cmocka_unit_test(test_output_into_fifo),
        cmocka_unit_test(test_output_with_the_longest_name),
        cmocka_unit_test(test_killed_writer_leaves_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
