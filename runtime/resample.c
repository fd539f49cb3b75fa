/* Bicubic upscaling of an alpha channel, separate from the network (which
 * sees only colour). Keys' kernel with a = -0.5, the one Pillow's BICUBIC
 * uses; unlike Pillow, which drops the taps beyond the border and
 * renormalises, the edge pixel is repeated (as OpenCV and PyTorch do), so
 * a constant alpha stays exactly constant. Interior pixels equal Pillow's
 * up to its fixed-point rounding. */
#include "runtime/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

#define TAPS SR_RESAMPLE_TAPS

#define KEYS_A (-0.5)

double sr_cubic_weight(double t)
{
    t = fabs(t);
    if (t <= 1.0)
        return ((KEYS_A + 2.0) * t - (KEYS_A + 3.0)) * t * t + 1.0;
    if (t < 2.0)
        return ((KEYS_A * t - 5.0 * KEYS_A) * t + 8.0 * KEYS_A) * t - 4.0 * KEYS_A;
    return 0.0;
}

/* The four input indices (clamped) and weights for one output index. */
struct sr_taps {
    int64_t index[TAPS];
    double weight[TAPS];
};
typedef struct sr_taps taps;

static taps make_taps(int64_t o, int64_t in_size, int64_t out_size)
{
    const double center = ((double)o + 0.5) * (double)in_size / (double)out_size - 0.5;
    const int64_t first = (int64_t)floor(center) - 1;
    taps t;
    for (int k = 0; k < TAPS; k++) {
        const int64_t i = first + k;
        t.index[k] = i < 0 ? 0 : i >= in_size ? in_size - 1 : i;
        t.weight[k] = sr_cubic_weight(center - (double)i);
    }
    return t;
}

/* Per output column its taps; and four input rows resampled horizontally,
 * input row i in slot i % 4 (the rows one output row reads are at most
 * four consecutive indices, so they never share a slot). */
int64_t sr_resample_bytes(int64_t out_width)
{
    return out_width * (int64_t)(sizeof(taps) + TAPS * sizeof(double));
}

static double alpha_at(const sr_image *image, int64_t x, int64_t y)
{
    const int ch = image->channels;
    if (ch != 2 && ch != 4)
        return 1.0;
    const uint8_t *row = (const uint8_t *)image->data + y * image->stride;
    const int64_t i = x * ch + ch - 1;
    uint16_t u16;
    float f32;
    switch (image->type) {
    case SR_PIXEL_U8: return row[i] / 255.0;
    case SR_PIXEL_U16: memcpy(&u16, row + 2 * i, 2); return u16 / 65535.0;
    default: memcpy(&f32, row + 4 * i, 4); return f32;
    }
}

static void put_alpha(sr_image *image, int64_t x, int64_t y, double v)
{
    uint8_t *row = (uint8_t *)image->data + y * image->stride;
    const int64_t i = x * image->channels + image->channels - 1;
    v = v > 0.0 ? (v < 1.0 ? v : 1.0) : 0.0;
    if (image->type == SR_PIXEL_U8) {
        row[i] = (uint8_t)lrint(v * 255.0);
    } else if (image->type == SR_PIXEL_U16) {
        const uint16_t u16 = (uint16_t)lrint(v * 65535.0);
        memcpy(row + 2 * i, &u16, 2);
    } else {
        const float f32 = (float)v;
        memcpy(row + 4 * i, &f32, 4);
    }
}

sr_status sr_alpha_resampler_init(sr_alpha_resampler *r, const sr_image *in,
                                  int64_t out_width, int64_t out_height, sr_error *err)
{
    memset(r, 0, sizeof *r);
    if ((uint64_t)sr_resample_bytes(out_width) > SIZE_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "output %lld wide is too wide", (long long)out_width);
    r->columns = malloc((size_t)out_width * sizeof *r->columns);
    r->lines = malloc((size_t)out_width * TAPS * sizeof *r->lines);
    if (!r->columns || !r->lines) {
        sr_alpha_resampler_free(r);
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for the alpha upscale");
    }
    r->in = in;
    r->out_width = out_width;
    r->out_height = out_height;
    for (int64_t x = 0; x < out_width; x++)
        r->columns[x] = make_taps(x, in->width, out_width);
    for (int j = 0; j < TAPS; j++)
        r->held[j] = -1;
    return SR_OK;
}

void sr_alpha_resampler_free(sr_alpha_resampler *r)
{
    free(r->columns);
    free(r->lines);
    r->columns = NULL;
    r->lines = NULL;
}

void sr_alpha_resample_rows(sr_alpha_resampler *r, sr_image *rows, int64_t y0)
{
    const int64_t W = r->out_width;
    double *lines = r->lines;
    for (int64_t y = y0; y < y0 + rows->height; y++) {
        const taps t = make_taps(y, r->in->height, r->out_height);
        for (int j = 0; j < TAPS; j++) {
            const int64_t iy = t.index[j];
            double *line = lines + (iy % TAPS) * W;
            if (r->held[iy % TAPS] == iy)
                continue;
            r->held[iy % TAPS] = iy;
            for (int64_t x = 0; x < W; x++) {
                const taps *c = &r->columns[x];
                double sum = 0.0;
                for (int k = 0; k < TAPS; k++)
                    sum += c->weight[k] * alpha_at(r->in, c->index[k], iy);
                line[x] = sum;
            }
        }
        for (int64_t x = 0; x < W; x++) {
            double sum = 0.0;
            for (int j = 0; j < TAPS; j++)
                sum += t.weight[j] * lines[(t.index[j] % TAPS) * W + x];
            put_alpha(rows, x, y - y0, sum);
        }
    }
}

sr_status sr_resample_alpha(const sr_image *in, sr_image *out, sr_error *err)
{
    if (out->channels != 2 && out->channels != 4)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "an image with %d channels has no alpha",
                       out->channels);
    sr_alpha_resampler r;
    const sr_status st = sr_alpha_resampler_init(&r, in, out->width, out->height, err);
    if (st != SR_OK)
        return st;
    sr_alpha_resample_rows(&r, out, 0);
    sr_alpha_resampler_free(&r);
    return SR_OK;
}
