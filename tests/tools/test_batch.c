/* srrun with several inputs or a folder (tools/batch.c): what is listed,
 * where each result goes, outputs that exist, files that fail while the
 * rest go on, and results byte for byte those of single-file runs. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* wait4 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "cli_run.h"
#include "srrun.h"
#include "testutil.h"

static char basedir[128], workdir[256];

static void path_in_work(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", workdir, name);
}

static void write_file(const char *name, const void *data, size_t size)
{
    char path[512];
    path_in_work(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* The fixture `fixture` as work/name; only its first `size` bytes when
 * size is not 0 (a truncated image). */
static void copy_fixture(const char *fixture, const char *name, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, fixture);
    int64_t n;
    void *data = test_read_file(path, &n);
    assert_non_null(data);
    write_file(name, data, size ? size : (size_t)n);
    free(data);
}

static void make_folder(const char *name)
{
    char path[512];
    path_in_work(path, sizeof path, name);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int exists(const char *name)
{
    char path[512];
    struct stat st;
    path_in_work(path, sizeof path, name);
    return lstat(path, &st) == 0;
}

static uint8_t *read_work(const char *name, int64_t *size)
{
    char path[512];
    path_in_work(path, sizeof path, name);
    uint8_t *data = test_read_file(path, size);
    if (!data)
        fail_msg("%s: missing", name);
    return data;
}

static void expect_same_bytes(const char *a, const char *b)
{
    int64_t na, nb;
    uint8_t *x = read_work(a, &na), *y = read_work(b, &nb);
    if (na != nb || memcmp(x, y, (size_t)na) != 0)
        fail_msg("%s and %s differ", a, b);
    free(x);
    free(y);
}

static cli_result run_ok(const char *const *args)
{
    cli_result r = cli_run(workdir, args);
    if (r.exit_code != 0)
        fail_msg("exit %d: %s", r.exit_code, r.err);
    return r;
}

static void expect_in(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' not in '%s'", part, text);
}

static void remove_all(const char *name)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", workdir, name);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(basedir, sizeof basedir, "/tmp/srrun-batch-XXXXXX");
    if (!mkdtemp(basedir))
        return -1;
    snprintf(workdir, sizeof workdir, "%s/work", basedir);
    if (mkdir(workdir, 0755) != 0)
        return -1;
    copy_fixture("srpgan_x2.pth", "srpgan_x2.pth", 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", basedir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A folder with its subfolders: the images in name order, each under OUT
 * at its path below the folder; a text file, a FIFO and links to folders
 * (one back up, one across: links to folders are not followed, else a
 * chain of them would make exponentially many paths) noted and skipped;
 * hidden entries left out in silence. Each result is
 * the single-file run's, byte for byte. */
static void test_folder_walked_into_out(void **state)
{
    (void)state;
    make_folder("in");
    make_folder("in/sub");
    make_folder("in/sub/deeper");
    make_folder("in/.cache");
    copy_fixture("leaves_37x29.png", "in/leaves.png", 0);
    copy_fixture("kite_41x27.jpg", "in/sub/kite.jpg", 0);
    copy_fixture("path_rgba_30x21.png", "in/sub/deeper/path.png", 0);
    copy_fixture("water_gray_23x31.png", "in/b_gray.png", 0);
    copy_fixture("leaves_37x29.png", "in/.hidden.png", 0);
    copy_fixture("leaves_37x29.png", "in/.cache/thumb.png", 0);
    write_file("in/notes.txt", "hello\n", 6);
    char path[512];
    path_in_work(path, sizeof path, "in/sub/fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(symlink("..", (path_in_work(path, sizeof path, "in/sub/up"), path)), 0);
    assert_int_equal(symlink("sub/deeper", (path_in_work(path, sizeof path, "in/alias"), path)),
                     0);

    cli_result r = run_ok((const char *[]){"srpgan_x2.pth", "in", "-o", "out/new", NULL});
    assert_string_equal(r.out, "out/new/b_gray_x2.png\n"
                               "out/new/leaves_x2.png\n"
                               "out/new/sub/deeper/path_x2.png\n"
                               "out/new/sub/kite_x2.png\n");
    assert_string_equal(r.err, "srrun: note: in/alias: a link to a folder (not followed); "
                               "skipped\n"
                               "srrun: note: in/notes.txt: not a PNG or JPEG image; skipped\n"
                               "srrun: note: in/sub/fifo: not a regular file; skipped\n"
                               "srrun: note: in/sub/up: a link to a folder (not followed); "
                               "skipped\n"
                               "srrun: 4 done, 0 skipped, 0 failed\n");
    assert_false(exists("out/new/.hidden_x2.png") || exists("out/new/.cache"));

    static const char *const inputs[][2] = {
        {"in/leaves.png", "out/new/leaves_x2.png"},
        {"in/b_gray.png", "out/new/b_gray_x2.png"},
        {"in/sub/kite.jpg", "out/new/sub/kite_x2.png"},
        {"in/sub/deeper/path.png", "out/new/sub/deeper/path_x2.png"},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        run_ok((const char *[]){"-q", "-o", "single.png", "srpgan_x2.pth", inputs[i][0], NULL});
        expect_same_bytes("single.png", inputs[i][1]);
    }
    remove_all("single.png");
    remove_all("in");
    remove_all("out");
}

/* A folder that cannot be read is noted and skipped; the rest go on. Root
 * reads it all the same, so there the test has nothing to show. */
static void test_unreadable_folder_noted(void **state)
{
    (void)state;
    if (geteuid() == 0)
        skip();
    make_folder("in");
    make_folder("in/locked");
    copy_fixture("leaves_37x29.png", "in/locked/a.png", 0);
    copy_fixture("leaves_37x29.png", "in/b.png", 0);
    char path[512];
    path_in_work(path, sizeof path, "in/locked");
    assert_int_equal(chmod(path, 0), 0);
    cli_result r = run_ok((const char *[]){"srpgan_x2.pth", "in", NULL});
    assert_int_equal(chmod(path, 0755), 0);
    assert_string_equal(r.out, "b_x2.png\n");
    assert_string_equal(r.err, "srrun: note: in/locked: Permission denied; skipped\n"
                               "srrun: 1 done, 0 skipped, 0 failed\n");
    remove_all("in");
    remove_all("b_x2.png");
}

/* Walked names are shown with their control characters escaped: a file
 * named to retitle the terminal, or to start a line of its own, cannot;
 * UTF-8 stays as it is. The outputs keep the real names. */
static void test_walked_names_escaped(void **state)
{
    (void)state;
    make_folder("in");
    write_file("in/\x1b]0;owned\x07.txt", "hello\n", 6);
    write_file("in/line\nsrrun: 9 done.txt", "hello\n", 6);
    copy_fixture("leaves_37x29.png", "in/caf\xc3\xa9\xc2\x9b.png", 0);
    cli_result r = run_ok((const char *[]){"srpgan_x2.pth", "in", NULL});
    assert_string_equal(r.out, "caf\xc3\xa9\\xc2\\x9b_x2.png\n");
    assert_string_equal(r.err,
                        "srrun: note: in/\\x1b]0;owned\\x07.txt: not a PNG or JPEG image; skipped\n"
                        "srrun: note: in/line\\x0asrrun: 9 done.txt: not a PNG or JPEG image; "
                        "skipped\n"
                        "srrun: 1 done, 0 skipped, 0 failed\n");
    char path[512];
    path_in_work(path, sizeof path, "caf\xc3\xa9\xc2\x9b_x2.png");
    assert_int_equal(access(path, F_OK), 0);
    remove_all("in");
    remove_all("caf\xc3\xa9\xc2\x9b_x2.png");
}

/* An output that exists is skipped, left as it is; --overwrite redoes it. */
static void test_existing_outputs_skipped_unless_overwrite(void **state)
{
    (void)state;
    copy_fixture("leaves_37x29.png", "a.png", 0);
    copy_fixture("kite_41x27.jpg", "b.jpg", 0);
    cli_result r = run_ok((const char *[]){"srpgan_x2.pth", "a.png", "b.jpg", "-o", "out/", NULL});
    assert_string_equal(r.out, "out/a_x2.png\nout/b_x2.png\n");
    run_ok((const char *[]){"-q", "-o", "single.png", "srpgan_x2.pth", "b.jpg", NULL});
    write_file("out/b_x2.png", "old", 3);

    r = run_ok((const char *[]){"srpgan_x2.pth", "a.png", "b.jpg", "-o", "out", NULL});
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "srrun: 0 done, 2 skipped, 0 failed\n");
    int64_t n;
    free(read_work("out/b_x2.png", &n));
    assert_int_equal(n, 3);

    r = run_ok((const char *[]){"--overwrite", "srpgan_x2.pth", "a.png", "b.jpg", "-o", "out",
                                NULL});
    assert_string_equal(r.out, "out/a_x2.png\nout/b_x2.png\n");
    assert_string_equal(r.err, "srrun: 2 done, 0 skipped, 0 failed\n");
    expect_same_bytes("single.png", "out/b_x2.png");
    remove_all("out");
    remove_all("single.png");
    remove_all("a.png");
    remove_all("b.jpg");
}

/* Whether the folder holds exactly these names (no temporary beside them). */
static void expect_folder_holds(const char *name, const char *const *names, int n)
{
    char path[512];
    path_in_work(path, sizeof path, name);
    DIR *d = opendir(path);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int known = 0;
        for (int i = 0; i < n; i++)
            known |= strcmp(e->d_name, names[i]) == 0;
        if (!known)
            fail_msg("%s/%s should not be there", name, e->d_name);
        found++;
    }
    closedir(d);
    assert_int_equal(found, n);
}

/* A file that fails gets its line, in its place, and the rest go on; the
 * exit status is 1 and the summary counts it. A file named on the command
 * line is tried whatever it holds. */
static void test_failing_file_does_not_stop_the_rest(void **state)
{
    (void)state;
    copy_fixture("leaves_37x29.png", "a.png", 0);
    copy_fixture("leaves_37x29.png", "b_truncated.png", 200);
    write_file("c_text.png", "not an image\n", 13);
    copy_fixture("kite_41x27.jpg", "d.jpg", 0);
    cli_result r = cli_run(workdir, (const char *[]){"srpgan_x2.pth", "a.png", "b_truncated.png",
                                                     "c_text.png", "missing.png", "d.jpg",
                                                     "-o", "out", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "out/a_x2.png\nout/d_x2.png\n");
    expect_in(r.err, "srrun: b_truncated.png: ");
    expect_in(r.err, "\nsrrun: c_text.png: not a PNG or JPEG image\n"
                     "srrun: missing.png: No such file or directory\n"
                     "srrun: 2 done, 0 skipped, 3 failed\n");
    expect_folder_holds("out", (const char *[]){"a_x2.png", "d_x2.png"}, 2);

    /* -q: the failures and the summary only. */
    r = cli_run(workdir, (const char *[]){"-q", "--overwrite", "srpgan_x2.pth", "a.png",
                                          "missing.png", "-o", "out", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "srrun: missing.png: No such file or directory\n"
                               "srrun: 1 done, 0 skipped, 1 failed\n");
    remove_all("out");
    remove_all("a.png");
    remove_all("b_truncated.png");
    remove_all("c_text.png");
    remove_all("d.jpg");
}

/* The first of several arguments is MODEL unless it is a folder or an
 * image (by its bytes or its name): then the default model runs on all. */
static void test_model_or_input(void **state)
{
    (void)state;
    copy_fixture("leaves_37x29.png", "a.png", 0);
    copy_fixture("kite_41x27.jpg", "photo", 0); /* a JPEG by its bytes */
    cli_result r = run_ok((const char *[]){"photo", "a.png", NULL});
    assert_string_equal(r.out, "photo_x4.png\na_x4.png\n"); /* the default model: x4 */
    remove_all("photo_x4.png");
    remove_all("a_x4.png");
    /* A broken image named as one is an input that fails, not a model. */
    write_file("broken.jpg", "", 0);
    r = cli_run(workdir, (const char *[]){"-s", "2", "broken.jpg", "a.png", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "a_x2.png\n");
    expect_in(r.err, "srrun: broken.jpg: empty file\n");
    remove_all("a_x2.png");
    /* Anything else is MODEL: a missing one is an error, not the default. */
    r = cli_run(workdir, (const char *[]){"a", "b", "c", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.err, "srrun: a: No such file or directory\n");
    r = cli_run(workdir, (const char *[]){"missing.pth", "a.png", "photo", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.err, "srrun: missing.pth: No such file or directory\n");
    remove_all("broken.jpg");
    remove_all("photo");
    remove_all("a.png");
}

/* --format jpg: .jpg outputs, the single run's bytes; the outputs of two
 * inputs with one name: the second fails, naming the first. */
static void test_format_and_shared_names(void **state)
{
    (void)state;
    make_folder("x");
    make_folder("y");
    copy_fixture("leaves_37x29.png", "x/a.png", 0);
    copy_fixture("kite_41x27.jpg", "y/a.jpg", 0);
    cli_result r = cli_run(workdir, (const char *[]){"--format", "jpg", "srpgan_x2.pth",
                                                     "x/a.png", "y/a.jpg", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "a_x2.jpg\n");
    assert_string_equal(r.err, "srrun: y/a.jpg: its output a_x2.jpg is also x/a.png's; skipped\n"
                               "srrun: 1 done, 0 skipped, 1 failed\n");
    run_ok((const char *[]){"--format", "jpeg", "-o", "single.jpg", "srpgan_x2.pth", "x/a.png",
                            NULL});
    expect_same_bytes("single.jpg", "a_x2.jpg");
    /* With --overwrite, an output that is an input of the run is refused. */
    copy_fixture("kite_41x27.jpg", "x/a_x2.png", 0);
    r = cli_run(workdir, (const char *[]){"--overwrite", "-o", "x", "srpgan_x2.pth", "x", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "x/a_x2_x2.png\n");
    assert_string_equal(r.err, "srrun: x/a_x2.png: is an input of this run; the output must be "
                               "another file\n"
                               "srrun: 1 done, 0 skipped, 1 failed\n");
    remove_all("x");
    remove_all("y");
    remove_all("a_x2.jpg");
    remove_all("single.jpg");
}

/* Options for a single INPUT (exit 2), and -o naming a file (exit 1). */
static void test_batch_usage(void **state)
{
    (void)state;
    copy_fixture("leaves_37x29.png", "a.png", 0);
    make_folder("in");
    cli_result r = cli_run(workdir, (const char *[]){"--plan", "srpgan_x2.pth", "in", NULL});
    assert_int_equal(r.exit_code, 2);
    expect_in(r.err, "srrun: --plan needs a single INPUT");
    r = cli_run(workdir, (const char *[]){"-o", "-", "a.png", "a.png", NULL});
    assert_int_equal(r.exit_code, 2);
    expect_in(r.err, "srrun: -o - needs a single INPUT");
    r = cli_run(workdir, (const char *[]){"--stats", "s.json", "in", NULL});
    assert_int_equal(r.exit_code, 2);
    r = cli_run(workdir, (const char *[]){"-o", "a.png", "srpgan_x2.pth", "in", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.err, "srrun: a.png: not a folder\n");
    /* An empty folder: nothing to do, and OUT made all the same. */
    r = run_ok((const char *[]){"-o", "made/here", "srpgan_x2.pth", "in", NULL});
    assert_string_equal(r.err, "srrun: 0 done, 0 skipped, 0 failed\n");
    assert_true(exists("made/here"));
    remove_all("made");
    remove_all("in");
    remove_all("a.png");
}

/* Ctrl-C during a batch ends it by the signal, leaving the outputs done
 * so far complete and nothing else (no partial file, no temporary). */
static void test_interrupt_leaves_only_complete_outputs(void **state)
{
    (void)state;
    sr_image img;
    assert_int_equal(sr_image_alloc(&img, 64, 48, 3, SR_PIXEL_U8, NULL), SR_OK);
    test_rng rng = {11};
    for (int64_t i = 0; i < img.stride * img.height; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&rng);
    make_folder("in");
    char path[512];
    enum { N = 12 };
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "in/%02d.png", i);
        path_in_work(path, sizeof path, name);
        assert_int_equal(sr_image_write_png(path, &img, NULL), SR_OK);
    }
    sr_image_free(&img);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL); /* as a terminal's foreground job has it */
        if (chdir(workdir) != 0 || !freopen("/dev/null", "w", stdout) ||
            !freopen("/dev/null", "w", stderr))
            _exit(99);
        execl(SR_CLI_PATH, "srrun", "-t", "1", "srpgan_x2.pth", "in", "-o", "out", (char *)NULL);
        _exit(98);
    }
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0 && !exists("out/00_x2.png"))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    const int was_over = exists("out/11_x2.png"); /* then the signal comes late */
    kill(pid, SIGINT);
    waitpid(pid, &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) &&
        !(was_over && WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_msg("SIGINT during the batch: status 0x%x", status);
    path_in_work(path, sizeof path, "out");
    DIR *d = opendir(path);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (strlen(e->d_name) != 9 || strcmp(e->d_name + 2, "_x2.png") != 0)
            fail_msg("out/%s left behind", e->d_name);
        snprintf(path, sizeof path, "%s/out/%s", workdir, e->d_name);
        sr_image out = {0};
        sr_error err = {0};
        if (sr_image_read(path, NULL, &out, &err) != SR_OK) /* complete: it decodes */
            fail_msg("%s", err.message);
        assert_int_equal(out.width, 128);
        sr_image_free(&out);
    }
    closedir(d);
    remove_all("in");
    remove_all("out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_walked_into_out),
        cmocka_unit_test(test_unreadable_folder_noted),
        cmocka_unit_test(test_existing_outputs_skipped_unless_overwrite),
        cmocka_unit_test(test_failing_file_does_not_stop_the_rest),
        cmocka_unit_test(test_model_or_input),
        cmocka_unit_test(test_format_and_shared_names),
        cmocka_unit_test(test_batch_usage),
        cmocka_unit_test(test_walked_names_escaped),
        cmocka_unit_test(test_interrupt_leaves_only_complete_outputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
