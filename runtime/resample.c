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

#define KEYS_A (-0.5)
#define TAPS 4

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
typedef struct taps {
    int64_t index[TAPS];
    double weight[TAPS];
} taps;

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

sr_status sr_resample_alpha(const sr_image *in, sr_image *out, sr_error *err)
{
    if (out->channels != 2 && out->channels != 4)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "an image with %d channels has no alpha",
                       out->channels);
    if ((uint64_t)sr_resample_bytes(out->width) > SIZE_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "output %lld wide is too wide",
                       (long long)out->width);
    taps *columns = malloc((size_t)out->width * sizeof *columns);
    double *lines = malloc((size_t)out->width * TAPS * sizeof *lines);
    if (!columns || !lines) {
        free(columns);
        free(lines);
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for the alpha upscale");
    }
    for (int64_t x = 0; x < out->width; x++)
        columns[x] = make_taps(x, in->width, out->width);
    int64_t held[TAPS] = {-1, -1, -1, -1}; /* the input row in each slot */
    for (int64_t y = 0; y < out->height; y++) {
        const taps rows = make_taps(y, in->height, out->height);
        for (int j = 0; j < TAPS; j++) {
            const int64_t iy = rows.index[j];
            double *line = lines + (iy % TAPS) * out->width;
            if (held[iy % TAPS] == iy)
                continue;
            held[iy % TAPS] = iy;
            for (int64_t x = 0; x < out->width; x++) {
                const taps *c = &columns[x];
                double sum = 0.0;
                for (int k = 0; k < TAPS; k++)
                    sum += c->weight[k] * alpha_at(in, c->index[k], iy);
                line[x] = sum;
            }
        }
        for (int64_t x = 0; x < out->width; x++) {
            double sum = 0.0;
            for (int j = 0; j < TAPS; j++)
                sum += rows.weight[j] * lines[(rows.index[j] % TAPS) * out->width + x];
            put_alpha(out, x, y, sum);
        }
    }
    free(columns);
    free(lines);
    return SR_OK;
}
