/* The srrun command's options: the help text, parsing and checking argv
 * into a cli, and the sizes --max-memory takes. Nothing here runs or opens
 * anything, so the option fuzzer (fuzz/fuzz_cli.c) can call it alone. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_text[] =
    "usage: srrun [options] [MODEL] INPUT...\n"
    "       srrun convert MODEL OUTPUT.bin [--fp16] [--patch N[:M]|none]\n"
    "       srrun info MODEL\n"
    "       srrun serve [MODEL...] [options]   (see srrun serve --help)\n"
    "\n"
    "Upscales INPUT (PNG or JPEG) with the super-resolution network in MODEL,\n"
    "a file written by torch.save(generator.state_dict(), path). Without MODEL\n"
    "the shipped default model for --scale is used (SRPGAN trained on photos).\n"
    "\n"
    "Several INPUTs, or a folder, are upscaled in one run, the model loaded once.\n"
    "A folder is walked with its subfolders, in name order, for PNG and JPEG\n"
    "files (by their first bytes; other files are skipped with a note, hidden\n"
    "ones, named .*, in silence). Each result goes to OUT/<its path below the\n"
    "folder>/<name>_x<scale>.png (.jpg with --format jpeg); an output that\n"
    "exists is skipped. A file that fails is told and the rest go on; the exit\n"
    "status is then 1. With two or more arguments the first is MODEL, unless it\n"
    "is a folder or an image: a PNG or JPEG by its first bytes, or a file named\n"
    "*.png, *.jpg or *.jpeg.\n"
    "\n"
    "convert writes MODEL (a .pth or a model.bin) as srrun's own model.bin,\n"
    "which loads faster and is checksummed; --fp16 stores float16 weights\n"
    "(half the size), --patch N[:M] records the patches to run by (none: drops\n"
    "them). info shows what a model file holds.\n"
    "\n"
    "options:\n"
    "  -s, --scale 2|4      upscale factor of the default model (default: 4); with\n"
    "                       MODEL, checks that MODEL has it\n"
    "  -o, --output FILE    output PNG, or JPEG when FILE ends in .jpg or .jpeg\n"
    "                       (default: INPUT's name + _x<scale>.png, in the\n"
    "                       current folder); - writes to stdout. With several\n"
    "                       INPUTs or a folder: the folder OUT (default: the\n"
    "                       current one), made if missing\n"
    "      --format png|jpeg  the output's format, whatever its name (default:\n"
    "                       by the name; PNG for -o - and for several INPUTs);\n"
    "                       jpg is jpeg\n"
    "      --overwrite      several INPUTs: redo outputs that exist\n"
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
    "  -t, --threads N      worker threads, loading too (default: all cores)\n"
    "      --strict         refuse model files with tensors the network does not use\n"
    "      --patch N[:M]    run the network on NxN patches of INPUT, each with M\n"
    "                       pixels of context (default 0) that are cut off, not\n"
    "                       on the whole image; none: on the whole image\n"
    "                       (default: as MODEL says; the default models run on\n"
    "                       the 96x96 patches they were trained on, margin 8)\n"
    "  -m, --max-memory SIZE  most memory the whole run may take, e.g. 300M or 2G\n"
    "                       (default: three quarters of the machine's memory; with\n"
    "                       a GPU, device memory: nine tenths of what is free)\n"
    "      --tile-rows N    compute in bands of N rows (default: as high as fits)\n"
    "      --scratch DIR    where tensors that do not fit the memory may be spilled\n"
    "                       to a file with no name (default: $TMPDIR or /var/tmp,\n"
    "                       not if a tmpfs)\n"
    "      --no-scratch     never spill: recompute instead\n"
    "      --plan           print the plan for INPUT (bands, memory) and stop\n"
    "      --stats FILE     write timings, memory and the plan as JSON (- for stdout)\n"
    "  -q, --quiet          print nothing but errors (no progress bar)\n"
    "  -v, --verbose        also print the model, sizes and timing\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "srrun: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'srrun --help'.\n");
    return 2;
}

int parse_precision(const char *text, sr_precision *precision)
{
    for (int p = 0; p < SR_PRECISION_COUNT; p++)
        if (strcmp(text, sr_precision_name((sr_precision)p)) == 0) {
            *precision = (sr_precision)p;
            return 0;
        }
    return -1;
}

int64_t parse_size(const char *text)
{
    char *end;
    const double v = strtod(text, &end);
    double unit = 1;
    switch (*end) {
    case 'k': case 'K': unit = 1024.0; end++; break;
    case 'm': case 'M': unit = 1024.0 * 1024; end++; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    /* Under one byte (0.5, 1e-300) would truncate to 0, which means the default. */
    if (end == text || *end != '\0' || !(v * unit >= 1) || v * unit > 9e18)
        return -1;
    return (int64_t)(v * unit);
}

/* The output is JPEG when its name ends in .jpg or .jpeg (any case). */
static int is_jpeg_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

int parse_patch(const char *text, sr_model_options *o)
{
    if (strcmp(text, "none") == 0) {
        o->patch = -1;
        o->patch_margin = 0;
        return 0;
    }
    char *end;
    const long long n = strtoll(text, &end, 10);
    long long m = 0;
    if (end != text && *end == ':') {
        const char *margin = end + 1;
        m = strtoll(margin, &end, 10);
        if (end == margin)
            return -1;
    }
    if (end == text || *end != '\0' || n < 1 || m < 0 || *text == '-' || *text == '+')
        return -1;
    o->patch = n;
    o->patch_margin = m;
    return 0;
}

int cli_output_is_jpeg(const cli *c, const char *output)
{
    return c->format == OUTPUT_JPEG ||
           (c->format == OUTPUT_BY_NAME && output && strcmp(output, "-") != 0 &&
            is_jpeg_name(output));
}

int cli_parse(int argc, char **argv, cli *c)
{
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'}, {"backend", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {"strict", no_argument, NULL, 'S'},
        {"no-exif-rotate", no_argument, NULL, 'E'},
        {"max-memory", required_argument, NULL, 'm'}, {"tile-rows", required_argument, NULL, 'T'},
        {"plan", no_argument, NULL, 'P'},         {"stats", required_argument, NULL, 'J'},
        {"scale", required_argument, NULL, 's'},
        {"alpha", required_argument, NULL, 'A'},  {"depth", required_argument, NULL, 'D'},
        {"quality", required_argument, NULL, 'Q'}, {"precision", required_argument, NULL, 'R'},
        {"format", required_argument, NULL, 'F'}, {"overwrite", no_argument, NULL, 'W'},
        {"scratch", required_argument, NULL, 'X'}, {"no-scratch", no_argument, NULL, 'N'},
        {"patch", required_argument, NULL, 'Z'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "o:b:t:m:s:qvhV", longs, NULL)) != -1) {
        switch (opt) {
        case 'o': c->output = optarg; break;
        case 'q': c->quiet = 1; break;
        case 'S': c->model_options.strict = 1; break;
        case 'E': c->read_options.keep_orientation = 1; break;
        case 'Z':
            if (parse_patch(optarg, &c->model_options) != 0)
                return usage_error("--patch needs N, N:M (sizes in pixels) or none, not '%s'",
                                   optarg);
            break;
        case 'P': c->plan_only = 1; break;
        case 'J': c->stats = optarg; break;
        case 'X':
            if (optarg[0] == '\0')
                return usage_error("--scratch needs a directory%s", "");
            c->options.scratch_dir = optarg;
            break;
        case 'N': c->options.scratch_dir = ""; break;
        case 's':
            if (strcmp(optarg, "2") != 0 && strcmp(optarg, "4") != 0)
                return usage_error("--scale needs 2 or 4, not '%s'", optarg);
            c->scale = atoi(optarg);
            break;
        case 'm':
            c->options.max_memory = parse_size(optarg);
            if (c->options.max_memory < 0)
                return usage_error("--max-memory needs a size of at least one byte, like 300M "
                                   "or 2G, not '%s'", optarg);
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
        case 'W': c->overwrite = 1; break;
        case 'F':
            if (strcmp(optarg, "png") != 0 && strcmp(optarg, "jpeg") != 0 &&
                strcmp(optarg, "jpg") != 0)
                return usage_error("--format needs png or jpeg, not '%s'", optarg);
            c->format = strcmp(optarg, "png") == 0 ? OUTPUT_PNG : OUTPUT_JPEG;
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
        case 'V': printf("srrun %s\n", sr_version()); return 0;
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
        case 'R':
            if (parse_precision(optarg, &c->options.precision) < 0)
                return usage_error("unknown precision '%s' (fp32, tf32, fp16 or bf16)", optarg);
            break;
        case 't': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > 1024)
                return usage_error("--threads needs a number from 1 to 1024, not '%s'", optarg);
            c->options.n_threads = c->model_options.n_threads = (int)n; /* loading too */
            break;
        }
        default: return usage_error("%s", "invalid option");
        }
    }
    if (optind == argc)
        return usage_error("%s", "no input image given");
    c->inputs = argv + optind;
    c->n_inputs = argc - optind;
    if (cli_output_is_jpeg(c, c->output) && c->keep_alpha)
        return usage_error("%s", "--alpha keep needs a PNG output (JPEG has no alpha)");
    if (cli_output_is_jpeg(c, c->output) && c->depth == 16)
        return usage_error("%s", "--depth 16 needs a PNG output (JPEG is 8-bit)");
    if (c->output && strcmp(c->output, "-") == 0 && c->stats && strcmp(c->stats, "-") == 0)
        return usage_error("%s", "-o - and --stats - cannot both write to stdout");
    return -1;
}
