/* The steps of upscaling one image that the single-file run (srrun.c) and
 * the batch (batch.c) share, so that an image upscaled in a batch is the
 * one upscaled alone, byte for byte. */
#ifndef SR_TOOLS_UPSCALE_H
#define SR_TOOLS_UPSCALE_H

#include <stddef.h>

#include "cli.h"
#include "srrun.h"

/* MODEL, else $SRRUN_DEFAULT_MODEL; NULL: the library's default model
 * (sr_model_load_default). */
const char *model_file(const cli *c);

/* Loads model_path (NULL: the default model for --scale), checks that it
 * has the scale --scale asks for and prints its notices (not with -q).
 * Returns 0, or 1 after printing why not. */
int load_model(const cli *c, const char *model_path, sr_model **model, sr_model_info *info);

/* Writes to buf (as snprintf: returns the length the whole name needs)
 * INPUT's file name without folder and extension + "_x<scale>.png" (or
 * .jpg), after folder + "/" when folder is not NULL. */
size_t output_name(char *buf, size_t size, const char *folder, const char *input, int scale,
                   int jpeg);

/* The output's shape for input `in` (its header is enough): RGBA only
 * when --alpha keep asks and the input has alpha; 16-bit when --depth 16
 * asks or when the input is, unless the output is JPEG. */
sr_image output_shape(const cli *c, const sr_image *in, int scale, int jpeg);

/* The sessions' progress callback: the bar (user; NULL: none) moved on,
 * and the run stopped once an interrupt is pending (interrupt.h). */
int run_progress(void *bar, double fraction);

/* Upscales in (decoded) straight into the file output, its rows encoded as
 * the run computes them (sr_session_upscale_to_file; shape from
 * output_shape, with in's metadata written), whole or not at all. SIGINT,
 * SIGTERM and SIGHUP stop the run at its next band, through run_progress,
 * so that no partial file or temporary is left (interrupt.h). Prints
 * nothing: a failure is sr_session_last_error's. */
sr_status upscale_to_file(const cli *c, sr_session *session, const sr_image *in,
                          const sr_image *shape, const char *output);

#endif
