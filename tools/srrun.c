/* srrun, the command-line tool: a thin client of include/srrun.h. It owns
 * argument parsing, the default model and output names, and the user-facing
 * messages; everything else is the library's. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/resource.h>

#include "reexec.h"
#include "report.h"
#include "commands.h"
#include "srrun.h"

static const char usage_text[] =
    "usage: srrun [options] [MODEL] INPUT\n"
    "       srrun convert MODEL OUTPUT.bin [--fp16]\n"
    "       srrun info MODEL\n"
    "\n"
    "Upscales INPUT (PNG or JPEG) with the super-resolution network in MODEL,\n"
    "a file written by torch.save(generator.state_dict(), path). Without MODEL\n"
    "the shipped default model for --scale is used (SRPGAN trained on photos).\n"
    "\n"
    "convert writes MODEL (a .pth or a model.bin) as srrun's own model.bin,\n"
    "which loads faster and is checksummed; --fp16 stores float16 weights\n"
    "(half the size). info shows what a model file holds.\n"
    "\n"
    "options:\n"
    "  -s, --scale 2|4      upscale factor of the default model (default: 4); with\n"
    "                       MODEL, checks that MODEL has it\n"
    "  -o, --output FILE    output PNG, or JPEG when FILE ends in .jpg or .jpeg\n"
    "                       (default: INPUT's name + _x<scale>.png, in the\n"
    "                       current folder)\n"
    "      --alpha MODE     white: composite alpha on white (default); keep: write RGBA,\n"
    "                       the alpha upscaled bicubically beside the network's RGB\n"
    "      --depth 8|16     bits per sample of a PNG output (default: the input's)\n"
    "      --quality N      JPEG quality, 1 to 100 (default: 90)\n"
    "      --no-exif-rotate keep INPUT's pixels as stored (default: turned upright by\n"
    "                       its EXIF orientation, as photo viewers show it)\n"
    "  -b, --backend NAME   auto, cpu, cuda or reference (default: auto, a GPU when\n"
    "                       one is usable, else the CPU)\n"
    "      --precision P    what a GPU's matrix products read: fp32 (default), or\n"
    "                       tf32, fp16 or bf16 on its tensor cores (sums in fp32)\n"
    "  -t, --threads N      worker threads (default: all cores)\n"
    "      --strict         refuse model files with tensors the network does not use\n"
    "  -m, --max-memory SIZE  most memory the whole run may take, e.g. 300M or 2G\n"
    "                       (default: three quarters of the machine's memory; with\n"
    "                       a GPU, device memory: nine tenths of what is free)\n"
    "      --tile-rows N    compute in bands of N rows (default: as high as fits)\n"
    "      --plan           print the plan for INPUT (bands, memory) and stop\n"
    "      --stats FILE     write timings, memory and the plan as JSON (- for stdout)\n"
    "  -q, --quiet          print nothing but errors (no progress bar)\n"
    "  -v, --verbose        also print the model, sizes and timing\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n";

typedef struct cli {
    const char *model, *input, *output;
    sr_model_options model_options;
    sr_session_options options;
    const char *stats;
    int quiet, verbose, plan_only;
    int keep_alpha, depth, quality; /* depth 0: the input's */
    sr_image_read_options read_options;
    int scale;                      /* 0: the model's (4 for the default) */
} cli;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "srrun: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'srrun --help'.\n");
    return 2;
}

static int fail(const char *message)
{
    fprintf(stderr, "srrun: %s\n", message);
    return 1;
}

/* $SRRUN_DEFAULT_MODEL, else srpgan_x<scale>.bin in the first folder of
 * SR_DEFAULT_MODEL_DIRS that has it: the installed copy, then the source
 * tree's. */
static const char *default_model(int scale)
{
    static char path[4096];
    const char *env = getenv("SRRUN_DEFAULT_MODEL");
    if (env && *env)
        return env;
    const char *list = SR_DEFAULT_MODEL_DIRS;
    while (*list) {
        int n = (int)strcspn(list, ":");
        if (snprintf(path, sizeof path, "%.*s/srpgan_x%d.bin", n, list, scale) < (int)sizeof path &&
            access(path, R_OK) == 0)
            return path;
        list += n + (list[n] == ':');
    }
    return NULL;
}

/* The output is JPEG when its name ends in .jpg or .jpeg (any case). */
static int is_jpeg_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

/* INPUT's file name without folder and extension, + "_x<scale>.png". */
static void default_output(char *buf, size_t size, const char *input, int scale)
{
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, size, "%.*s_x%d.png", stem, base, scale);
}

static int parse(int argc, char **argv, cli *c)
{
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'}, {"backend", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {"strict", no_argument, NULL, 'S'},
        {"max-memory", required_argument, NULL, 'm'}, {"tile-rows", required_argument, NULL, 'T'},
        {"plan", no_argument, NULL, 'P'},         {"stats", required_argument, NULL, 'J'},
        {"scale", required_argument, NULL, 's'},
        {"alpha", required_argument, NULL, 'A'},  {"depth", required_argument, NULL, 'D'},
        {"quality", required_argument, NULL, 'Q'}, {"precision", required_argument, NULL, 'R'},
        {"no-exif-rotate", no_argument, NULL, 'E'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "o:b:t:m:s:qvhV", longs, NULL)) != -1) {
        switch (opt) {
        case 'o': c->output = optarg; break;
        case 'q': c->quiet = 1; break;
        case 'S': c->model_options.strict = 1; break;
        case 'P': c->plan_only = 1; break;
        case 'J': c->stats = optarg; break;
        case 'E': c->read_options.keep_orientation = 1; break;
        case 's':
            if (strcmp(optarg, "2") != 0 && strcmp(optarg, "4") != 0)
                return usage_error("--scale needs 2 or 4, not '%s'", optarg);
            c->scale = atoi(optarg);
            break;
        case 'm':
            c->options.max_memory = parse_size(optarg);
            if (c->options.max_memory < 0)
                return usage_error("--max-memory needs a size like 300M or 2G, not '%s'", optarg);
            break;
        case 'T': {
            char *end;
            long long n = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1)
                return usage_error("--tile-rows needs a positive number, not '%s'", optarg);
            c->options.tile_rows = n;
            break;
        }
        case 'A':
            if (strcmp(optarg, "white") != 0 && strcmp(optarg, "keep") != 0)
                return usage_error("--alpha needs white or keep, not '%s'", optarg);
            c->keep_alpha = strcmp(optarg, "keep") == 0;
            break;
        case 'D':
            if (strcmp(optarg, "8") != 0 && strcmp(optarg, "16") != 0)
                return usage_error("--depth needs 8 or 16, not '%s'", optarg);
            c->depth = atoi(optarg);
            break;
        case 'Q': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > 100)
                return usage_error("--quality needs a number from 1 to 100, not '%s'", optarg);
            c->quality = (int)n;
            break;
        }
        case 'v': c->verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("srrun %s\n", sr_version_string()); return 0;
        case 'b': {
            int found = 0;
            for (int b = 0; b < SR_BACKEND_COUNT; b++)
                if (strcmp(optarg, sr_backend_name((sr_backend)b)) == 0) {
                    c->options.backend = (sr_backend)b;
                    found = 1;
                }
            if (!found)
                return usage_error("unknown backend '%s' (auto, cpu, cuda or reference)", optarg);
            break;
        }
        case 'R': {
            int found = 0;
            for (int p = 0; p < SR_PRECISION_COUNT; p++)
                if (strcmp(optarg, sr_precision_name((sr_precision)p)) == 0) {
                    c->options.precision = (sr_precision)p;
                    found = 1;
                }
            if (!found)
                return usage_error("unknown precision '%s' (fp32, tf32, fp16 or bf16)", optarg);
            break;
        }
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > 1024)
                return usage_error("--threads needs a number from 1 to 1024, not '%s'", optarg);
            c->options.n_threads = (int)n;
            break;
        }
        default: return usage_error("%s", "invalid option");
        }
    }
    int n_args = argc - optind;
    if (n_args < 1 || n_args > 2)
        return usage_error("%s", n_args ? "too many arguments" : "no input image given");
    c->model = n_args == 2 ? argv[optind] : NULL;
    c->input = argv[argc - 1];
    if (c->output && is_jpeg_name(c->output) && c->keep_alpha)
        return usage_error("%s", "--alpha keep needs a PNG output (JPEG has no alpha)");
    if (c->output && is_jpeg_name(c->output) && c->depth == 16)
        return usage_error("%s", "--depth 16 needs a PNG output (JPEG is 8-bit)");
    return -1;
}

static void print_notices(const char *model_path, const char *notices)
{
    for (const char *p = notices; p && *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(stderr, "srrun: note: %s: %.*s\n", model_path, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static int64_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : 0;
}

static int write_stats(const cli *c, const sr_session *session, const sr_model_info *info,
                       const sr_plan_info *plan, const char *output, const run_times *times)
{
    sr_session_options used = c->options;
    used.backend = sr_session_backend(session);
    if (used.backend != SR_BACKEND_CUDA)
        used.precision = SR_PRECISION_FP32;
    FILE *f = strcmp(c->stats, "-") == 0 ? stdout : fopen(c->stats, "w");
    if (!f) {
        fprintf(stderr, "srrun: %s: cannot write stats\n", c->stats);
        return 1;
    }
    write_stats_json(f, info, plan, &used, c->input, output, times, peak_rss_bytes());
    return f == stdout ? fflush(f) != 0 : fclose(f) != 0;
}

static int run(const cli *c)
{
    sr_error err = {0};
    const char *model_path = c->model ? c->model : default_model(c->scale ? c->scale : 4);
    if (!model_path) {
        fprintf(stderr, "srrun: no MODEL given and the default x%d model is not installed\n",
                c->scale ? c->scale : 4);
        return 1;
    }

    run_times times = {0};
    const double start = seconds_now();
    sr_model *model;
    if (sr_model_load(model_path, &c->model_options, &model, &err) != SR_OK)
        return fail(err.message);
    const sr_model_info info = sr_model_get_info(model);
    if (c->scale && info.scale != c->scale) {
        fprintf(stderr, "srrun: %s: the model upscales x%d, not x%d as --scale asks\n",
                model_path, info.scale, c->scale);
        sr_model_free(model);
        return 1;
    }
    if (!c->quiet)
        print_notices(model_path, sr_model_notices(model));
    times.load = seconds_now() - start;

    sr_image in = {0}, out = {0};
    sr_session *session = NULL;
    sr_plan_info plan;
    char output[4096];
    int rc = 1;
    /* The header is enough to check the output and plan: the pixels are
     * decoded only once the plan has counted their memory. */
    if (sr_image_read_info(c->input, &c->read_options, &in, &err) != SR_OK) {
        fail(err.message);
        goto done;
    }
    if (c->output)
        snprintf(output, sizeof output, "%s", c->output);
    else
        default_output(output, sizeof output, c->input, info.scale);
    /* RGBA only when asked and the input has alpha; 16-bit when asked or
     * when the input is, unless the output is JPEG. */
    const int jpeg = is_jpeg_name(output);
    const sr_image shape = {
        .width = in.width * info.scale,
        .height = in.height * info.scale,
        .channels = c->keep_alpha && (in.channels == 2 || in.channels == 4) ? 4 : 3,
        .type = !jpeg && (c->depth == 16 || (c->depth == 0 && in.type == SR_PIXEL_U16))
                    ? SR_PIXEL_U16
                    : SR_PIXEL_U8,
    };
    /* Every limit of the output, before any work. */
    if (sr_image_check_output(output, jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG, &shape, &err) !=
        SR_OK) {
        fail(err.message);
        goto done;
    }

    progress_bar bar;
    sr_session_options options = c->options;
    if (!c->quiet && !c->plan_only && isatty(2)) {
        progress_bar_start(&bar, stderr);
        options.progress = progress_bar_update;
        options.progress_user = &bar;
    }
    double t = seconds_now();
    if (sr_session_new(model, &options, &session, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        goto done;
    }
    if (c->verbose && sr_session_backend_note(session))
        fprintf(stderr, "srrun: %s; running on the CPU%s\n", sr_session_backend_note(session),
                c->options.precision != SR_PRECISION_FP32 ? " in fp32" : "");
    if (sr_session_plan_images(session, &in, &shape, &plan) != SR_OK) {
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
    if (sr_image_alloc(&out, shape.width, shape.height, shape.channels, shape.type, &err) !=
            SR_OK ||
        sr_image_copy_meta(&out, &in, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s: %s\n", c->input, err.message);
        goto done;
    }
    t = seconds_now();
    sr_status st = sr_session_run(session, &in, &out);
    if (options.progress)
        progress_bar_finish(&bar);
    if (st != SR_OK) {
        fprintf(stderr, "srrun: %s: %s\n", c->input, sr_session_last_error(session));
        goto done;
    }
    times.run = seconds_now() - t;
    t = seconds_now();
    if ((jpeg ? sr_image_write_jpeg(output, &out, c->quality ? c->quality : 90, &err)
              : sr_image_write_png(output, &out, &err)) != SR_OK) {
        fail(err.message);
        goto done;
    }
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
                (long long)out.width, (long long)out.height, times.run,
                sr_backend_name(sr_session_backend(session)), 1e-9 * (double)plan.whole_flops,
                1e-9 * (double)plan.whole_flops / times.run,
                times.total, peak, predicted, plan.n_stages);
        if (sr_session_backend(session) == SR_BACKEND_CUDA) /* the plan was the device's */
            fprintf(stderr,
                    "srrun: GEMMs read %s; the prediction is of device memory, the peak the "
                    "host's\n",
                    sr_precision_name(c->options.precision));
    } else if (!c->quiet && !(c->stats && strcmp(c->stats, "-") == 0)) {
        printf("%s\n", output);
    }
    rc = c->stats ? write_stats(c, session, &info, &plan, output, &times) : 0;
done:
    sr_session_free(session);
    sr_image_free(&in);
    sr_image_free(&out);
    sr_model_free(model);
    return rc;
}

int main(int argc, char **argv)
{
    sr_tool_reexec_for_blas(argv);
    if (argc > 1 && command_is(argv[1]))
        return command_run(argc - 1, argv + 1);
    cli c = {.options = sr_session_options_default()};
    int rc = parse(argc, argv, &c);
    return rc >= 0 ? rc : run(&c);
}
