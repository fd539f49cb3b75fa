/* The srrun command's options, parsed from argv (tools/cli.c). */
#ifndef SR_TOOLS_CLI_H
#define SR_TOOLS_CLI_H

#include "srrun.h"

typedef struct cli {
    const char *model, *input, *output;
    sr_model_options model_options;
    sr_session_options options;
    const char *stats;
    int quiet, verbose, plan_only;
    int keep_alpha, depth, quality; /* depth 0: the input's */
    int scale;                      /* 0: the model's (4 for the default) */
} cli;

/* Parses argv into c (which holds the defaults): -1 to go on and run, else
 * the exit code (0 after --help or --version, 2 after a usage message). */
int cli_parse(int argc, char **argv, cli *c);

/* Parses "300M", "2G", "1.5G", "4096K" or plain bytes; -1 if invalid. */
int64_t parse_size(const char *text);

/* The output is JPEG when its name ends in .jpg or .jpeg (any case). */
int cli_is_jpeg_name(const char *path);

#endif
