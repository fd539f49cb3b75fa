/* srbench: srrun's benchmark program. Runs chosen backends over chosen image
 * sizes with one model, warm-up passes then timed repeats, and measures per
 * configuration the median and least wall time of sr_session_run, the
 * plan's FLOPs and predicted peak, the peak RSS, and the per-layer seconds
 * of the median run; srbench_report.c prints them (a table on stderr, CSV
 * or JSON on stdout).
 *
 * This file owns the options, the timing loop and the one measurement of
 * the machine's sgemm rate. The network's numbers (FLOPs, plans, per-layer
 * seconds and algorithms) come from the library through include/srrun.h,
 * as the CLI gets them; sizes are parsed and printed by tools/report.c, as
 * the CLI does. The one thing beyond the public API is --conv-algorithm:
 * a CPU backend made with its convolutions' algorithm forced
 * (sr_cpu_backend_new_forcing), for a session on it (sr_session_new_on).
 *
 * Each configuration, and the sgemm measurement, runs in its own child
 * process: getrusage's peak RSS is monotone over a process, so a fresh child
 * gives each configuration its own peak; and libgomp's thread pool does not
 * survive fork, so the parent never starts it (it only loads the model,
 * which the children share). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h> /* OpenBLAS, linked for the sgemm measurement alone */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/cpu/cpu.h"
#include "bench/srbench.h"
#include "runtime/session.h"
#include "srrun.h"
#include "tools/cli.h"
#include "tools/report.h"

static const char usage_text[] =
    "usage: srbench --model FILE [options]\n"
    "Times sr_session_run for each backend and size; a table on stderr, CSV on stdout.\n"
    "  --model FILE        weights: a torch.save .pth or a model.bin (required)\n"
    "  --backends LIST     comma-separated: auto, cpu, cuda, reference (default: cpu)\n"
    "  --sizes LIST        input sizes, N (square) or WxH: 64,256,512x384 (default: 64,256)\n"
    "  --threads N         worker threads (default: all cores)\n"
    "  --repeats N         timed runs per configuration (default: 5)\n"
    "  --warmup N          untimed runs before them (default: 1)\n"
    "  --max-memory SIZE   the session's budget, as srrun takes it: 300M, 2G\n"
    "                      (default: the library's, three quarters of the machine's)\n"
    "  --conv-algorithm A  the cpu backend's convolutions by algorithm A where it can\n"
    "                      run them (the library's choice elsewhere): im2col, kn2row,\n"
    "                      winograd or winograd_split; its runs show as cpu:A\n"
    "  --precision P       what the cuda backend's matrix products read: fp32\n"
    "                      (default), tf32, fp16 or bf16; its runs show as cuda:P\n"
    "  --photo FILE        crop the inputs from the top left of this PNG or JPEG\n"
    "                      (default: random pixels, the same for every run)\n"
    "  --json              JSON on stdout, with the per-layer breakdown\n"
    "  --layers            CSV on stdout with one line per layer instead\n"
    "  --help\n"
    "Runs are warm: the model is loaded once; for each configuration a session is\n"
    "made and planned once (the plan timed apart), then the warm-up and the timed\n"
    "runs reuse it. Each configuration runs in a child process of its own, so the\n"
    "peak RSS reported is that configuration's (the loaded model included).\n";

/* Prints "srbench: WHAT 'ARG'" (or just WHAT) and returns 2. */
static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, arg ? "srbench: %s '%s'\n" : "srbench: %s\n", what, arg);
    fputs("(srbench --help for usage)\n", stderr);
    return 2;
}

static int parse_count(const char *text, int least, int *n)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < least || v > 100000)
        return -1;
    *n = (int)v;
    return 0;
}

static int parse_backends(const char *list, bench_options *o)
{
    o->n_backends = 0;
    for (const char *p = list; *p;) {
        const size_t n = strcspn(p, ",");
        int found = -1;
        for (int b = 0; b < SR_BACKEND_COUNT; b++)
            if (strlen(sr_backend_name((sr_backend)b)) == n &&
                strncmp(p, sr_backend_name((sr_backend)b), n) == 0)
                found = b;
        if (found < 0 || o->n_backends == SR_BACKEND_COUNT)
            return -1;
        o->backends[o->n_backends++] = (sr_backend)found;
        p += n + (p[n] == ',');
    }
    return o->n_backends ? 0 : -1;
}

static int parse_sizes(const char *list, bench_options *o)
{
    o->n_sizes = 0;
    for (const char *p = list; *p;) {
        char *end;
        long long w = strtoll(p, &end, 10), h = w;
        if (*end == 'x')
            h = strtoll(end + 1, &end, 10);
        if (end == p || (*end != ',' && *end != '\0') || w < 1 || h < 1 || w > 1 << 20 ||
            h > 1 << 20 || o->n_sizes == MAX_SIZES)
            return -1;
        o->widths[o->n_sizes] = w;
        o->heights[o->n_sizes++] = h;
        p = end + (*end == ',');
    }
    return o->n_sizes ? 0 : -1;
}

static int is_conv_algorithm(const char *name)
{
    for (int i = 0; i < SR_CPU_CONV_ALGORITHMS; i++)
        if (strcmp(name, sr_cpu_conv_algorithms[i]->name) == 0)
            return 1;
    return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, bench_options *o)
{
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'M'},   {"backends", required_argument, NULL, 'b'},
        {"sizes", required_argument, NULL, 's'},   {"threads", required_argument, NULL, 't'},
        {"repeats", required_argument, NULL, 'r'}, {"warmup", required_argument, NULL, 'w'},
        {"max-memory", required_argument, NULL, 'm'}, {"photo", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'J'},          {"layers", no_argument, NULL, 'L'},
        {"conv-algorithm", required_argument, NULL, 'A'},
        {"precision", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case 'M': o->model = optarg; break;
        case 'p': o->photo = optarg; break;
        case 'J': o->format = OUT_JSON; break;
        case 'L': o->format = OUT_LAYERS; break;
        case 'b':
            if (parse_backends(optarg, o) < 0)
                return usage_error("--backends needs names among auto, cpu, cuda, reference, not",
                                   optarg);
            break;
        case 's':
            if (parse_sizes(optarg, o) < 0)
                return usage_error("--sizes needs sizes like 64,256,512x384, not", optarg);
            break;
        case 't':
            if (parse_count(optarg, 1, &o->n_threads) < 0 || o->n_threads > 1024)
                return usage_error("--threads needs a number from 1 to 1024, not", optarg);
            break;
        case 'r':
            if (parse_count(optarg, 1, &o->repeats) < 0)
                return usage_error("--repeats needs a positive number, not", optarg);
            break;
        case 'w':
            if (parse_count(optarg, 0, &o->warmup) < 0)
                return usage_error("--warmup needs a number, not", optarg);
            break;
        case 'm':
            if ((o->max_memory = parse_size(optarg)) < 0)
                return usage_error("--max-memory needs a size like 300M or 2G, not", optarg);
            break;
        case 'A':
            if (!is_conv_algorithm(optarg))
                return usage_error("--conv-algorithm needs im2col, kn2row, winograd or "
                                   "winograd_split, not", optarg);
            o->conv_algorithm = optarg;
            break;
        case 'P':
            if (parse_precision(optarg, &o->precision) < 0)
                return usage_error("--precision needs fp32, tf32, fp16 or bf16, not", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs("(srbench --help for usage)\n", stderr); return 2; /* getopt said why */
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (!o->model)
        return usage_error("--model is required", NULL);
    return -1;
}

/* ---- In the children ------------------------------------------------- */

/* Reads or writes all n bytes; -1 on failure or a short pipe. */
static int transfer(int fd, void *data, size_t n, int writing)
{
    for (char *p = data; n > 0;) {
        ssize_t k = writing ? write(fd, p, n) : read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The machine's sgemm rate in GFLOP/s: square products on n_threads
 * threads, best of 3 at each size, 2 n^3 FLOPs each. The one place srbench
 * calls OpenBLAS itself rather than through the library. */
static double measure_sgemm(int n_threads)
{
    enum { MAX_N = 2048 };
    const int sizes[] = {1024, MAX_N};
    const size_t bytes = sizeof(float) * MAX_N * MAX_N;
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    double best = 0;
    for (int i = 0; a && b && c && i < MAX_N * MAX_N; i++) {
        a[i] = (float)(i % 7) * 0.25f;
        b[i] = (float)(i % 5) * 0.125f;
    }
    openblas_set_num_threads(n_threads);
    for (int s = 0; a && b && c && s < 2; s++)
        for (int r = 0; r < 3; r++) {
            const int n = sizes[s];
            const double t = seconds_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
            const double rate = 2e-9 * n * n * (double)n / (seconds_now() - t);
            best = rate > best ? rate : best;
        }
    free(a);
    free(b);
    free(c);
    return best;
}

/* The input: a top-left crop of the photo, or random 8-bit RGB. */
static int make_input(const char *photo, int64_t w, int64_t h, sr_image *in, sr_error *err)
{
    if (!photo) {
        if (sr_image_alloc(in, w, h, 3, SR_PIXEL_U8, err) != SR_OK)
            return -1;
        uint32_t x = 2463534242u; /* xorshift32: the same pixels every time */
        for (int64_t i = 0; i < w * h * 3; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            ((uint8_t *)in->data)[i] = (uint8_t)(x >> 24);
        }
        return 0;
    }
    sr_image all = {0};
    if (sr_image_read(photo, 0, &all, err) != SR_OK)
        return -1;
    int rc = -1;
    if (all.width < w || all.height < h)
        snprintf(err->message, sizeof err->message, "%s: %lldx%lld is smaller than the crop",
                 photo, (long long)all.width, (long long)all.height);
    else if (sr_image_alloc(in, w, h, all.channels, all.type, err) == SR_OK) {
        const size_t sample = all.type == SR_PIXEL_U8 ? 1 : all.type == SR_PIXEL_U16 ? 2 : 4;
        for (int64_t y = 0; y < h; y++)
            memcpy((char *)in->data + y * in->stride, (char *)all.data + y * all.stride,
                   (size_t)w * (size_t)all.channels * sample);
        rc = 0;
    }
    sr_image_free(&all); /* before the runs: the photo sets the peak only if larger */
    return rc;
}

static int compare_seconds(const void *a, const void *b)
{
    const double x = **(const double *const *)a, y = **(const double *const *)b;
    return (x > y) - (x < y);
}

/* The session: on a CPU backend with its conv algorithm forced where
 * --conv-algorithm asks, else as the options say. */
static sr_status open_session(const sr_model *model, const bench_options *o,
                              const sr_session_options *options, sr_session **session,
                              sr_error *err)
{
    if (!o->conv_algorithm || options->backend != SR_BACKEND_CPU)
        return sr_session_new(model, options, session, err);
    sr_backend_handle cpu;
    const sr_status st = sr_cpu_backend_new_forcing(o->n_threads, o->conv_algorithm, &cpu, err);
    return st != SR_OK ? st : sr_session_new_on(model, options, cpu, session, err);
}

/* One configuration, in its child: writes r and the layers of the median
 * run to fd; on failure prints one line and returns 1. */
static int measure(const sr_model *model, const bench_options *o, bench_result r, int fd)
{
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    options.backend = r.backend;
    if (r.backend == SR_BACKEND_CUDA)
        options.precision = o->precision;
    options.n_threads = o->n_threads;
    options.max_memory = o->max_memory;
    const int scale = sr_model_scale(model), n = o->repeats;
    sr_error err = {0};
    sr_image in = {0}, out = {0};
    sr_session *session = NULL;
    sr_plan_info plan = SR_PLAN_INFO_INIT;
    double *seconds = NULL, **order = NULL;
    layer_result *runs = NULL; /* n x n_layers */
    const char *why = err.message;
    if (make_input(o->photo, r.width, r.height, &in, &err) < 0 ||
        sr_image_alloc(&out, r.width * scale, r.height * scale, 3, SR_PIXEL_U8, &err) != SR_OK ||
        open_session(model, o, &options, &session, &err) != SR_OK)
        goto done;
    why = sr_session_last_error(session);
    double t = seconds_now();
    if (sr_session_plan_images(session, &in, &out, &plan) != SR_OK)
        goto done;
    r.plan_s = seconds_now() - t;
    const int n_layers = r.n_layers = plan.n_layers;
    seconds = calloc((size_t)n, sizeof *seconds);
    order = calloc((size_t)n, sizeof *order);
    runs = calloc((size_t)n * (size_t)n_layers, sizeof *runs);
    if (!seconds || !order || !runs) {
        why = "out of memory";
        goto done;
    }
    for (int i = 0; i < o->warmup; i++)
        if (sr_session_run(session, &in, &out) != SR_OK)
            goto done;
    for (int i = 0; i < n; i++) {
        t = seconds_now();
        if (sr_session_run(session, &in, &out) != SR_OK)
            goto done;
        seconds[i] = seconds_now() - t;
        order[i] = &seconds[i];
        sr_session_plan(session, r.width, r.height, &plan); /* the kept plan, this run's times */
        for (int l = 0; l < n_layers; l++) {
            layer_result *x = &runs[(size_t)i * (size_t)n_layers + (size_t)l];
            snprintf(x->name, NAME_CHARS, "%s", plan.layers[l].name);
            snprintf(x->op, NAME_CHARS, "%s", plan.layers[l].op);
            snprintf(x->algorithm, NAME_CHARS, "%s",
                     plan.layers[l].algorithm ? plan.layers[l].algorithm : "");
            x->flops = plan.layers[l].flops;
            x->seconds = plan.layers[l].seconds;
        }
    }
    qsort(order, (size_t)n, sizeof *order, compare_seconds);
    const size_t median_run = (size_t)(order[(n - 1) / 2] - seconds);
    r.median_s = 0.5 * (*order[(n - 1) / 2] + *order[n / 2]);
    r.min_s = *order[0];
    r.flops = plan.flops;
    r.whole_flops = plan.whole_flops;
    r.predicted_peak = plan.predicted_peak;
    r.max_memory = plan.max_memory;
    struct rusage ru;
    r.peak_rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : 0;
    why = transfer(fd, &r, sizeof r, 1) < 0 ||
                  transfer(fd, runs + median_run * (size_t)n_layers,
                           sizeof *runs * (size_t)n_layers, 1) < 0
              ? "cannot write to srbench"
              : NULL;
done:
    if (why)
        fprintf(stderr, "srbench: %s %lldx%lld: %s\n", sr_backend_name(r.backend),
                (long long)r.width, (long long)r.height, why);
    sr_session_free(session);
    sr_image_free(&in);
    sr_image_free(&out);
    free(seconds);
    free(order);
    free(runs);
    return why != NULL;
}

/* ---- In the parent --------------------------------------------------- */

/* Forks. In the child returns 0 with *fd the pipe's write end; in the
 * parent the child's pid with *fd the read end; -1 on failure. */
static pid_t fork_with_pipe(int *fd)
{
    int ends[2];
    if (pipe(ends) < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    close(ends[pid == 0 ? 0 : 1]);
    *fd = ends[pid == 0 ? 1 : 0];
    if (pid < 0)
        close(*fd);
    return pid;
}

/* Closes the pipe and reaps the child; 0 when it exited with status 0. */
static int finish_child(pid_t pid, int fd)
{
    int status;
    close(fd);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    bench_options o = {.repeats = 5, .warmup = 1, .format = OUT_CSV};
    parse_backends("cpu", &o);
    parse_sizes("64,256", &o);
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.n_threads == 0)
        o.n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);

    sr_error err = {0};
    sr_model *model;
    if (sr_model_load(o.model, NULL, &model, &err) != SR_OK) {
        fprintf(stderr, "srbench: %s\n", err.message);
        return 1;
    }
    sr_model_info info = SR_MODEL_INFO_INIT;
    sr_model_get_info(model, &info);
    bench_context c = {.o = &o, .scale = info.scale, .model_name = strrchr(o.model, '/')};
    c.model_name = c.model_name ? c.model_name + 1 : o.model;
    describe_machine(c.machine, sizeof c.machine);
    int fd;
    pid_t pid = fork_with_pipe(&fd);
    if (pid == 0) {
        c.sgemm = measure_sgemm(o.n_threads);
        _exit(transfer(fd, &c.sgemm, sizeof c.sgemm, 1) < 0);
    }
    int ok = pid > 0 && transfer(fd, &c.sgemm, sizeof c.sgemm, 0) == 0;
    ok &= pid > 0 && finish_child(pid, fd) == 0;
    if (!ok || !(c.sgemm > 0)) {
        fprintf(stderr, "srbench: could not measure the sgemm rate\n");
        sr_model_free(model);
        return 1;
    }
    put_header(stdout, &c, &info);

    int n_done = 0, n_failed = 0;
    for (int b = 0; b < o.n_backends; b++)
        for (int s = 0; s < o.n_sizes; s++) {
            bench_result r = {.backend = o.backends[b], .width = o.widths[s],
                              .height = o.heights[s]};
            if ((pid = fork_with_pipe(&fd)) == 0)
                _exit(measure(model, &o, r, fd));
            layer_result *layers = NULL;
            ok = pid > 0 && transfer(fd, &r, sizeof r, 0) == 0 && r.n_layers >= 0 &&
                     (layers = calloc((size_t)r.n_layers + 1, sizeof *layers)) &&
                     transfer(fd, layers, sizeof *layers * (size_t)r.n_layers, 0) == 0;
            ok &= pid > 0 && finish_child(pid, fd) == 0;
            if (ok)
                report(stdout, &c, &r, layers, n_done++ == 0);
            n_failed += !ok;
            free(layers);
        }
    if (o.format == OUT_JSON)
        printf("\n ]}\n");
    sr_model_free(model);
    return n_failed || fflush(stdout) != 0;
}
