/* Bicubic resampling of one channel, for the alpha that sr_session_run
 * keeps beside the network's RGB. */
#ifndef SR_RUNTIME_RESAMPLE_H
#define SR_RUNTIME_RESAMPLE_H

#include "srrun.h"

/* Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC). */
double sr_cubic_weight(double t);

/* Bytes sr_resample_alpha allocates for an output out_width wide. */
int64_t sr_resample_bytes(int64_t out_width);

/* Writes into the last channel of `out` (2 or 4 channels, any size) the
 * alpha of `in` (its last channel when it has 2 or 4; else opaque),
 * resampled bicubically: output pixel x samples the input at
 * (x + 0.5) * in_w / out_w - 0.5 from the four nearest pixels per axis,
 * the ones beyond the border repeating the edge. Values are clamped to
 * [0, 1] and rounded to the nearest level of out's type. Both images must
 * have passed sr_image_check. */
sr_status sr_resample_alpha(const sr_image *in, sr_image *out, sr_error *err);

/* The same a band of rows at a time, in order, for outputs delivered as
 * they are computed: each row is the one sr_resample_alpha makes. */
#define SR_RESAMPLE_TAPS 4
typedef struct sr_alpha_resampler {
    const sr_image *in; /* borrowed */
    int64_t out_width, out_height;
    struct sr_taps *columns;
    double *lines;
    int64_t held[SR_RESAMPLE_TAPS];
} sr_alpha_resampler;

sr_status sr_alpha_resampler_init(sr_alpha_resampler *r, const sr_image *in,
                                  int64_t out_width, int64_t out_height, sr_error *err);
/* Fills the alpha (last channel) of rows, output rows [y0, y0 +
 * rows->height), which follow the rows of the last call. */
void sr_alpha_resample_rows(sr_alpha_resampler *r, sr_image *rows, int64_t y0);
void sr_alpha_resampler_free(sr_alpha_resampler *r);

#endif
