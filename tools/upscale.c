/* The steps of upscaling one image that the single-file run and the batch
 * share (see upscale.h). */
#define _POSIX_C_SOURCE 200809L
#include "upscale.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interrupt.h"
#include "report.h"

const char *model_file(const cli *c)
{
    const char *env = getenv("SRRUN_DEFAULT_MODEL");
    return c->model ? c->model : env && *env ? env : NULL;
}

int load_model(const cli *c, const char *model_path, sr_model **model, sr_model_info *info)
{
    sr_error err = {0};
    if ((model_path ? sr_model_load(model_path, &c->model_options, model, &err)
                    : sr_model_load_default(c->scale ? c->scale : 4, &c->model_options, model,
                                            &err)) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        return 1;
    }
    sr_model_get_info(*model, info);
    if (model_path && c->scale && info->scale != c->scale) {
        fprintf(stderr, "srrun: %s: the model upscales x%d, not x%d as --scale asks\n",
                model_path, info->scale, c->scale);
        sr_model_free(*model);
        *model = NULL;
        return 1;
    }
    if (!c->quiet)
        print_notices(model_path ? model_path : "the default model", sr_model_notices(*model));
    return 0;
}

size_t output_name(char *buf, size_t size, const char *folder, const char *input, int scale,
                   int jpeg)
{
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    const int slash = folder && *folder && folder[strlen(folder) - 1] != '/';
    const int n = snprintf(buf, size, "%s%s%.*s_x%d.%s", folder ? folder : "", slash ? "/" : "",
                           stem, base, scale, jpeg ? "jpg" : "png");
    return n < 0 ? 0 : (size_t)n;
}

sr_image output_shape(const cli *c, const sr_image *in, int scale, int jpeg)
{
    return (sr_image){
        .width = in->width * scale,
        .height = in->height * scale,
        .channels = c->keep_alpha && (in->channels == 2 || in->channels == 4) ? 4 : 3,
        .type = !jpeg && (c->depth == 16 || (c->depth == 0 && in->type == SR_PIXEL_U16))
                    ? SR_PIXEL_U16
                    : SR_PIXEL_U8,
    };
}

int run_progress(void *bar, double fraction)
{
    if (bar)
        progress_bar_update(bar, fraction);
    return interrupt_pending();
}

sr_status upscale_to_file(const cli *c, sr_session *session, const sr_image *in,
                          const sr_image *shape, const char *output)
{
    sr_image out = *shape;
    out.meta = in->meta; /* only read */
    defer_interrupts(output);
    const sr_status st = sr_session_upscale_to_file(
        session, in, &out, output, cli_output_is_jpeg(c, output) ? SR_IMAGE_JPEG : SR_IMAGE_PNG,
        c->quality ? c->quality : 90);
    allow_interrupts();
    return st;
}
