/* `srrun convert MODEL OUTPUT.bin [--fp16]` and `srrun info MODEL`. Parsing,
 * messages and layout of the info listing are here; loading, saving and
 * every fact shown are the library's (sr_model_load, sr_model_save,
 * sr_model_get_info, sr_model_hparam). */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"
#include "report.h"
#include "srrun.h"
#ifdef SR_HAVE_SERVE
#include "serve.h"
#endif

static const char convert_usage[] =
    "usage: srrun convert MODEL OUTPUT.bin [--fp16] [--patch N[:M]|none] [-q]\n";
static const char info_usage[] = "usage: srrun info MODEL\n";

static int usage_error(const char *message, const char *usage)
{
    fprintf(stderr, "srrun: %s\n%sTry 'srrun --help'.\n", message, usage);
    return 2;
}

static int convert(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0, fp16 = 0, quiet = 0;
    sr_model_options options = SR_MODEL_OPTIONS_INIT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fp16") == 0)
            fp16 = 1;
        else if (strcmp(argv[i], "--patch") == 0 && i + 1 < argc) {
            if (parse_patch(argv[++i], &options) != 0)
                return usage_error("convert: --patch needs N, N:M or none", convert_usage);
        }
        else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return fputs(convert_usage, stdout), 0;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("convert: invalid option", convert_usage);
        else if (n_paths < 2)
            paths[n_paths++] = argv[i];
        else
            return usage_error("convert: too many arguments", convert_usage);
    }
    if (n_paths < 2)
        return usage_error("convert needs MODEL and OUTPUT", convert_usage);

    sr_error err = {0};
    sr_model *model;
    if (sr_model_load(paths[0], &options, &model, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        return 1;
    }
    if (!quiet)
        print_notices(paths[0], sr_model_notices(model));
    defer_interrupts(paths[1]);
    sr_status st = sr_model_save(model, paths[1], fp16, &err);
    sr_model_free(model);
    if (st != SR_OK)
        fprintf(stderr, "srrun: %s\n", err.message);
    allow_interrupts();
    if (st != SR_OK)
        return 1;
    if (!quiet)
        printf("%s\n", paths[1]);
    return 0;
}

static int info(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
        return fputs(info_usage, stdout), 0;
    if (argc != 2)
        return usage_error(argc < 2 ? "info needs MODEL" : "info: too many arguments", info_usage);
    if (argv[1][0] == '-' && argv[1][1])
        return usage_error("info: invalid option", info_usage);
    sr_error err = {0};
    sr_model *model;
    if (sr_model_load(argv[1], NULL, &model, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        return 1;
    }
    sr_model_info i = SR_MODEL_INFO_INIT;
    sr_model_get_info(model, &i);
    printf("file:          %s\n", argv[1]);
    printf("format:        %s\n", i.format);
    printf("architecture:  %s\n", i.architecture);
    /* Its hyper-parameters, indented under it, values aligned with the
     * rest's where the names allow. */
    int64_t value;
    const char *name;
    for (int k = 0; (name = sr_model_hparam(model, k, &value)) != NULL; k++) {
        const int pad = 12 - (int)strlen(name);
        printf("  %s:%*s%lld\n", name, pad > 0 ? pad : 1, "", (long long)value);
    }
    printf("parameters:    %lld\n", (long long)i.n_params);
    printf("dtype:         %s\n", i.dtype);
    printf("file size:     %lld bytes (%.2f MiB)\n", (long long)i.file_size,
           (double)i.file_size / (1024.0 * 1024.0));
    printf("flops/pixel:   %lld\n", (long long)i.n_input_pixel_flops);
    if (i.has_checksum)
        printf("checksum:      crc32 header %08x, data %08x (verified)\n",
               (unsigned)i.header_crc32, (unsigned)i.data_crc32);
    print_notices(argv[1], sr_model_notices(model));
    sr_model_free(model);
    return 0;
}

int command_is(const char *arg)
{
    return arg && (strcmp(arg, "convert") == 0 || strcmp(arg, "info") == 0 ||
                   strcmp(arg, "serve") == 0);
}

int command_run(int argc, char **argv)
{
    if (strcmp(argv[0], "serve") == 0) {
#ifdef SR_HAVE_SERVE
        return serve_main(argc, argv);
#else
        fputs("srrun: serve is not in this build: libmicrohttpd was not found when srrun was "
              "configured (install libmicrohttpd-dev and configure again)\n", stderr);
        return 1;
#endif
    }
    return strcmp(argv[0], "convert") == 0 ? convert(argc, argv) : info(argc, argv);
}
