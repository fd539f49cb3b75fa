/* libFuzzer harness for the srrun command's option parser (tools/cli.c):
 * the input is argv after "srrun", one NUL-separated string per argument
 * (at most 64). cli_parse runs nothing and opens nothing; the harness checks
 * that what it accepts is in range, and that it otherwise says run, done
 * (--help, --version) or bad usage. Its messages go to stdout and stderr:
 * fuzz/run.sh runs it with -close_fd_mask=3. Seeds: fuzz/seeds/ *.argv. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

#define MAX_ARGS 64

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_ARGS + 2] = {"srrun"};
    int argc = 1;
    for (size_t i = 0; i <= size && argc <= MAX_ARGS; i += strlen(text + i) + 1)
        argv[argc++] = text + i;
    argv[argc] = NULL;

    cli c = {.options = SR_SESSION_OPTIONS_INIT, .model_options = SR_MODEL_OPTIONS_INIT};
    optind = 0; /* glibc: start over, as on a first call */
    const int rc = cli_parse(argc, argv, &c);
    check(rc == -1 || rc == 0 || rc == 2);
    if (rc == -1) {
        check(c.n_inputs >= 1 && c.inputs != NULL);
        check(c.scale == 0 || c.scale == 2 || c.scale == 4);
        check(c.depth == 0 || c.depth == 8 || c.depth == 16);
        check(c.quality == 0 || (c.quality >= 1 && c.quality <= 100));
        check(c.options.n_threads >= 0 && c.options.n_threads <= 1024);
        check(c.options.max_memory >= 0 && c.options.tile_rows >= 0);
        check(c.options.backend >= 0 && c.options.backend < SR_BACKEND_COUNT);
        check(c.options.precision >= 0 && c.options.precision < SR_PRECISION_COUNT);
        check(!(cli_output_is_jpeg(&c, c.output) && (c.keep_alpha || c.depth == 16)));
        check(!(c.output && c.stats && strcmp(c.output, "-") == 0 && strcmp(c.stats, "-") == 0));
    }
    /* --max-memory's sizes: never under one byte (0 would mean the default). */
    const int64_t bytes = parse_size(text);
    check(bytes == -1 || bytes >= 1);
    free(text);
    return 0;
}
