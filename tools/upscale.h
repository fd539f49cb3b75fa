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

/* Writes the upscaled image to the file output, whole or not at all (the
 * library's writers), with SIGINT, SIGTERM and SIGHUP waiting for the
 * write to end (interrupt.h) so that no temporary is left behind. Prints
 * nothing: a failure is in err. */
sr_status write_output_file(const cli *c, const char *output, const sr_image *out,
                            sr_error *err);

#endif
