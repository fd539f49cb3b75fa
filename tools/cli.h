/* The srrun command's options, parsed from argv (tools/cli.c). */
#ifndef SR_TOOLS_CLI_H
#define SR_TOOLS_CLI_H

#include "srrun.h"

typedef enum output_format { OUTPUT_BY_NAME, OUTPUT_PNG, OUTPUT_JPEG } output_format;

typedef struct cli {
    /* cli_parse leaves model and input NULL and the positionals ([MODEL]
     * INPUT...) in inputs; batch_split_args (batch.h) tells them apart. */
    const char *model, *input, *output; /* output "-": stdout */
    char **inputs;
    int n_inputs;
    int overwrite; /* several inputs: replace outputs that exist */
    output_format format;
    sr_model_options model_options;
    sr_image_read_options read_options;
    sr_session_options options;
    const char *stats;
    int quiet, verbose, plan_only;
    int keep_alpha, depth, quality; /* depth 0: the input's */
    int scale;                      /* 0: the model's (4 for the default) */
} cli;

/* Parses argv into c (which holds the defaults): -1 to go on and run, else
 * the exit code (0 after --help or --version, 2 after a usage message). */
int cli_parse(int argc, char **argv, cli *c);

/* Parses "300M", "2G", "1.5G", "4096K" or plain bytes; -1 if invalid or
 * under one byte. */
int64_t parse_size(const char *text);

/* Parses a precision's name (fp32, tf32, fp16, bf16); -1 if unknown. */
int parse_precision(const char *text, sr_precision *precision);

/* Parses --patch's "N", "N:M" or "none" into o's patch and patch_margin;
 * -1 if invalid (the sizes are checked against each other on loading). */
int parse_patch(const char *text, sr_model_options *o);

/* Whether c's output is JPEG: by --format, else when the output's name
 * ends in .jpg or .jpeg (any case); stdout ("-") is PNG by default. */
int cli_output_is_jpeg(const cli *c, const char *output);

#endif
