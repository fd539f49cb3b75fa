/* srrun with several inputs or a folder (tools/batch.c). */
#ifndef SR_TOOLS_BATCH_H
#define SR_TOOLS_BATCH_H

#include "cli.h"

/* Tells MODEL from the INPUTs among c's positionals: with two or more, the
 * first is MODEL unless it is a folder, starts as a PNG or JPEG does, or
 * is named *.png, *.jpg or *.jpeg (any case); a file that cannot be read
 * is MODEL, so that a mistyped model is an error, not a run with the
 * default one. Sets c->model (NULL: none given) and leaves the INPUTs in
 * c->inputs; when they are one file, not a folder, sets c->input: the
 * single-file run. Returns 1 for a batch, 0 for the single-file run. */
int batch_split_args(cli *c);

/* Upscales c's INPUTs, each folder walked, into the folder -o names (made
 * if missing; default: the current one), one file after another with the
 * model loaded once. Prints each output's name (not with -q), a line for
 * each file that fails and, at the end, how many were done, skipped and
 * failed. Returns the exit status: 0, 1 when any file failed or nothing
 * could start, 2 for options that need a single INPUT. */
int batch_run(const cli *c);

#endif
