/* srrun, the command-line tool: a thin client of include/srrun.h. It owns
 * the output names and the user-facing messages (options are parsed in
 * cli.c); everything else, finding the default model included, is the
 * library's. This file runs one INPUT; several, or a folder, are
 * batch.c's, and the steps both take are upscale.c's. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include "batch.h"
#include "cli.h"
#include "report.h"
#include "commands.h"
#include "upscale.h"
#include "srrun.h"

static int fail(const char *message)
{
    fprintf(stderr, "srrun: %s\n", message);
    return 1;
}

static int64_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : 0;
}

/* Whether path and other name one file (another spelling, a link, a hard
 * link), both existing. */
static int same_file(const char *path, const char *other)
{
    struct stat a, b;
    return other && stat(path, &a) == 0 && stat(other, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Refuses to write (what: "the output" or "--stats") to path when it is a
 * file the run reads, or other, the other file it writes (other_is says
 * which): the run would destroy its input, or its own result. model_path
 * is NULL for the library's default model, whose file the library finds. */
static int clobbers(const cli *c, const char *model_path, const char *path, const char *what,
                    const char *other, const char *other_is)
{
    if (strcmp(path, "-") == 0)
        return 0;
    const char *is = same_file(path, c->input)     ? "the input image"
                     : same_file(path, model_path) ? "the model"
                     : same_file(path, other)      ? other_is
                                                   : NULL;
    if (is)
        fprintf(stderr, "srrun: %s: is %s; %s must be another file\n", path, is, what);
    return is != NULL;
}

/* --stats FILE, opened before any work so that a path that cannot be
 * written fails the run at once. Not truncated until the stats are written:
 * a failed run leaves an old file as it was and removes a new one. */
typedef struct stats_file {
    FILE *file;
    int created;
} stats_file;

static int open_stats(const char *path, stats_file *s)
{
    s->file = NULL;
    s->created = 0;
    if (strcmp(path, "-") == 0) {
        s->file = stdout;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    s->created = fd >= 0;
    if (fd < 0 && errno == EEXIST)
        fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !(s->file = fdopen(fd, "w"))) {
        const int e = errno;
        if (fd >= 0)
            close(fd);
        if (s->created)
            unlink(path);
        fprintf(stderr, "srrun: %s: cannot write stats: %s\n", path, strerror(e));
        return 1;
    }
    return 0;
}

/* Closes the stats file, removing it when the run failed (rc != 0) and it
 * was new; returns rc, or 1 when closing fails. */
static int close_stats(stats_file *s, const char *path, int rc)
{
    if (!s->file)
        return rc;
    if (s->file == stdout)
        return fflush(stdout) != 0 ? 1 : rc;
    if (fclose(s->file) != 0 && rc == 0) {
        fprintf(stderr, "srrun: %s: cannot write stats: %s\n", path, strerror(errno));
        rc = 1;
    }
    if (rc != 0 && s->created)
        unlink(path);
    return rc;
}

static int write_stats(const cli *c, FILE *f, const sr_session *session, const sr_model_info *info,
                       const sr_plan_info *plan, const char *output, const run_times *times)
{
    sr_session_options used = c->options;
    used.backend = sr_session_backend(session);
    if (used.backend != SR_BACKEND_CUDA)
        used.precision = SR_PRECISION_FP32;
    struct stat st;
    if (f != stdout && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
        ftruncate(fileno(f), 0) != 0) {
        fprintf(stderr, "srrun: %s: cannot write stats: %s\n", c->stats, strerror(errno));
        return 1;
    }
    write_stats_json(f, info, plan, &used, c->input, output, times, peak_rss_bytes());
    return fflush(f) != 0;
}

/* Writes the upscaled image to stdout. */
static int write_stdout(const cli *c, const char *output, const sr_image *out)
{
    sr_error err = {0};
    const sr_status st = cli_output_is_jpeg(c, output)
                             ? sr_image_write_jpeg_stream(stdout, out, c->quality ? c->quality : 90,
                                                          &err)
                             : sr_image_write_png_stream(stdout, out, &err);
    if (st != SR_OK)
        fprintf(stderr, "srrun: stdout: %s\n", err.message);
    return st != SR_OK;
}

static int upscale(const cli *c, const char *model_path, FILE *stats)
{
    sr_error err = {0};
    run_times times = {0};
    const double start = seconds_now();
    sr_model *model;
    sr_model_info info = SR_MODEL_INFO_INIT;
    if (load_model(c, model_path, &model, &info) != 0)
        return 1;
    times.load = seconds_now() - start;

    sr_image in = {0}, out = {0};
    sr_session *session = NULL;
    sr_plan_info plan = SR_PLAN_INFO_INIT;
    char output[4096];
    int rc = 1;
    if (c->output)
        snprintf(output, sizeof output, "%s", c->output);
    else
        output_name(output, sizeof output, NULL, c->input, info.scale, cli_output_is_jpeg(c, NULL));
    if (!c->output && !c->plan_only &&
        clobbers(c, model_path, output, "the output", c->stats, "the --stats file"))
        goto done;
    /* The header is enough to check the output and plan: the pixels are
     * decoded only once the plan has counted their memory. */
    if (sr_image_read_info(c->input, &c->read_options, &in, &err) != SR_OK) {
        fail(err.message);
        goto done;
    }
    const int jpeg = cli_output_is_jpeg(c, output);
    const sr_image shape = output_shape(c, &in, info.scale, jpeg);
    /* Every limit of the output, before any work. */
    if (sr_image_check_output(output, jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG, &shape, &err) !=
        SR_OK) {
        fail(err.message);
        goto done;
    }

    progress_bar bar;
    sr_session_options options = c->options;
    const int with_bar = !c->quiet && !c->plan_only && isatty(2);
    if (with_bar)
        progress_bar_start(&bar, stderr);
    options.progress = run_progress;
    options.progress_user = with_bar ? &bar : NULL;
    double t = seconds_now();
    if (sr_session_new(model, &options, &session, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        goto done;
    }
    if (c->verbose && sr_session_backend_note(session))
        fprintf(stderr, "srrun: %s; running on the CPU%s\n", sr_session_backend_note(session),
                c->options.precision != SR_PRECISION_FP32 ? " in fp32" : "");
    /* A file is written as the run computes its rows; stdout gets the
     * image whole. */
    const int to_file = strcmp(output, "-") != 0;
    if ((to_file ? sr_session_plan_rows(session, &in, &shape, &plan)
                 : sr_session_plan_images(session, &in, &shape, &plan)) != SR_OK) {
        fprintf(stderr, "srrun: %s: %s\n", c->input, sr_session_last_error(session));
        goto done;
    }
    times.plan = seconds_now() - t;
    if (c->plan_only) {
        print_plan(stdout, &info, &plan, plan.max_memory, sr_session_backend(session));
        rc = 0;
        goto done;
    }
    t = seconds_now();
    sr_image_read_options planned = c->read_options; /* the file may have changed */
    planned.max_pixels = in.width * in.height;
    if (sr_image_read(c->input, &planned, &in, &err) != SR_OK) {
        fail(err.message);
        goto done;
    }
    times.decode = seconds_now() - t;
    if (!to_file &&
        (sr_image_alloc(&out, shape.width, shape.height, shape.channels, shape.type, &err) !=
             SR_OK ||
         sr_image_copy_meta(&out, &in, &err) != SR_OK)) {
        fprintf(stderr, "srrun: %s: %s\n", c->input, err.message);
        goto done;
    }
    t = seconds_now();
    sr_status st = to_file ? upscale_to_file(c, session, &in, &shape, output)
                           : sr_session_run(session, &in, &out);
    if (with_bar)
        progress_bar_finish(&bar);
    if (st != SR_OK) {
        /* A file's own failure names it; the run's names the input. */
        const char *message = sr_session_last_error(session);
        if (to_file && strncmp(message, output, strlen(output)) == 0)
            fail(message);
        else
            fprintf(stderr, "srrun: %s: %s\n", c->input, message);
        goto done;
    }
    times.run = seconds_now() - t; /* a file's encoding included */
    t = seconds_now();
    if (!to_file && write_stdout(c, output, &out) != 0)
        goto done;
    times.encode = seconds_now() - t;
    times.total = seconds_now() - start;
    sr_session_plan(session, in.width, in.height, &plan); /* now with timings */
    if (c->verbose) {
        char peak[16], predicted[16];
        format_size(peak, sizeof peak, peak_rss_bytes());
        format_size(predicted, sizeof predicted, plan.predicted_peak);
        fprintf(stderr,
                "srrun: %s x%d, %d blocks, %lld parameters\n"
                "srrun: %s %lldx%lld -> %s %lldx%lld\n"
                "srrun: network %.3f s on %s, %.1f GFLOP, %.1f GFLOP/s; total %.3f s\n"
                "srrun: peak memory %s (predicted %s), %d stages\n",
                info.architecture, info.scale, info.n_blocks, (long long)info.n_params,
                c->input, (long long)in.width, (long long)in.height, output,
                (long long)shape.width, (long long)shape.height, times.run,
                sr_backend_name(sr_session_backend(session)), 1e-9 * (double)plan.whole_flops,
                1e-9 * (double)plan.whole_flops / times.run,
                times.total, peak, predicted, plan.n_stages);
        if (sr_session_backend(session) == SR_BACKEND_CUDA) /* the plan was the device's */
            fprintf(stderr,
                    "srrun: GEMMs read %s; the prediction is of device memory, the peak the "
                    "host's\n",
                    sr_precision_name(c->options.precision));
    } else if (!c->quiet && !(c->stats && strcmp(c->stats, "-") == 0) &&
               strcmp(output, "-") != 0) {
        printf("%s\n", output);
    }
    rc = stats ? write_stats(c, stats, session, &info, &plan, output, &times) : 0;
done:
    sr_session_free(session);
    sr_image_free(&in);
    sr_image_free(&out);
    sr_model_free(model);
    return rc;
}

/* What can refuse the run comes before any work: the model to use, an
 * output that would destroy a file the run reads, image data meant for a
 * terminal, a --stats file that cannot be written. */
static int run(const cli *c)
{
    const char *model_path = model_file(c);
    const int to_stdout = c->output && strcmp(c->output, "-") == 0;
    if (to_stdout && !c->plan_only && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "srrun: not writing image data to a terminal; redirect stdout or give "
                        "-o FILE\n");
        return 1;
    }
    stats_file stats = {NULL, 0};
    const int with_stats = c->stats && !c->plan_only;
    if (with_stats &&
        (clobbers(c, model_path, c->stats, "--stats", c->output, "the output") ||
         open_stats(c->stats, &stats) != 0))
        return 1;
    if (c->output && !c->plan_only &&
        clobbers(c, model_path, c->output, "the output", c->stats, "the --stats file"))
        return close_stats(&stats, c->stats, 1);
    return close_stats(&stats, c->stats, upscale(c, model_path, stats.file));
}

int main(int argc, char **argv)
{
    if (argc > 1 && command_is(argv[1]))
        return command_run(argc - 1, argv + 1);
    cli c = {.options = SR_SESSION_OPTIONS_INIT, .model_options = SR_MODEL_OPTIONS_INIT};
    int rc = cli_parse(argc, argv, &c);
    if (rc >= 0)
        return rc;
    return batch_split_args(&c) ? batch_run(&c) : run(&c);
}
