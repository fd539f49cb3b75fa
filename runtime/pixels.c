/* Pixel conversions at the edges of a run; see pixels.h for the rules. */
#include "runtime/pixels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/error.h"
#include "ops/op.h"

static int pixel_bytes(sr_pixel_type type)
{
    return type == SR_PIXEL_U8 ? 1 : type == SR_PIXEL_U16 ? 2 : 4;
}

sr_status sr_image_check(const sr_image *image, const char *what, sr_error *err)
{
    if (!image || !image->data)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s image has no pixels", what);
    return sr_image_check_layout(image, what, err);
}

sr_status sr_image_check_layout(const sr_image *image, const char *what, sr_error *err)
{
    if (!image)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no %s image", what);
    if ((unsigned)image->type >= SR_PIXEL_TYPE_COUNT)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s image has an unknown pixel type", what);
    if (image->channels < 1 || image->channels > 4)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s image has %d channels (1 to 4)",
                       what, image->channels);
    if (image->width < 1 || image->height < 1 ||
        image->width > INT64_MAX / 16 / image->height)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s image has size %lldx%lld", what,
                       (long long)image->width, (long long)image->height);
    if (image->data &&
        image->stride < image->width * image->channels * pixel_bytes(image->type))
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s image stride %lld is shorter than a row",
                       what, (long long)image->stride);
    return SR_OK;
}

/* Conversions of at least this many pixels share their rows among threads
 * (a 16000 x 16000 output took 2.6 s on one core, and on a GPU these run
 * while the device waits). */
#define PARALLEL_PIXELS (INT64_C(1) << 16)

static int threads_for(int64_t pixels, int n_threads)
{
    if (pixels < PARALLEL_PIXELS)
        return 1;
    return n_threads > 0 ? n_threads : omp_get_max_threads();
}

/* Rows may start at any byte (the stride need not be a multiple of the
 * sample size), so wider samples are copied, not dereferenced. */
static float sample(const sr_image *image, const uint8_t *row, int64_t i)
{
    uint16_t u16;
    float f32;
    switch (image->type) {
    case SR_PIXEL_U8: return row[i] / 255.0f;
    case SR_PIXEL_U16: memcpy(&u16, row + 2 * i, 2); return u16 / 65535.0f;
    default: memcpy(&f32, row + 4 * i, 4); return f32;
    }
}

/* Row y of the padded image into the tensor: pixel (x, y) of channel c
 * goes to out[c][x % f][x / f]. Called with f = 1 spelled out, so that the
 * common case compiles without the index arithmetic. */
static inline void row_to_tensor(const sr_image *image, const uint8_t *row, bool composite,
                                 int64_t f, int64_t padded_w,
                                 float *const out[3][SR_INPUT_MAX_UNSHUFFLE])
{
    const int ch = image->channels;
    const int colour = ch >= 3 ? 3 : 1;
    for (int64_t x = 0; x < padded_w; x++) {
        const int64_t sx = x < image->width ? x : sr_reflect_index(x, image->width);
        const float a = composite ? sample(image, row, sx * ch + colour) : 1.0f;
        for (int c = 0; c < 3; c++) {
            const float v = sample(image, row, sx * ch + (colour == 3 ? c : 0));
            out[c][x % f][x / f] = composite ? v * a + (1.0f - a) : v;
        }
    }
}

void sr_image_to_tensor(const sr_image *image, bool on_white, int64_t unshuffle, sr_tensor *t,
                        int n_threads)
{
    const int64_t f = unshuffle, padded_w = t->shape.w * f;
    const int64_t y0 = t->y0 * f, y1 = (t->y0 + t->shape.h) * f; /* rows of the padded image */
    const bool composite = on_white && image->channels != 1 && image->channels != 3;
#pragma omp parallel for num_threads(threads_for((y1 - y0) * padded_w, n_threads)) schedule(static)
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *row =
            (const uint8_t *)image->data + sr_reflect_index(y, image->height) * image->stride;
        float *out[3][SR_INPUT_MAX_UNSHUFFLE];
        for (int c = 0; c < 3; c++)
            for (int64_t j = 0; j < f; j++)
                out[c][j] = sr_tensor_row(t, (c * f + y % f) * f + j, y / f);
        if (f == 1)
            row_to_tensor(image, row, composite, 1, padded_w, out);
        else
            row_to_tensor(image, row, composite, f, padded_w, out);
    }
}

/* v in [0, 1]; NaN becomes 0. */
static inline float clamp01(float v) { return v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; }

/* ... in steps of 1 / levels, rounded to nearest even. */
static inline float to_levels(float v, float levels) { return rintf(clamp01(v) * levels); }

/* A channel of a row at a time, its pixel type chosen once: loops the
 * compiler can vectorise. */
void sr_tensor_to_image(const sr_tensor *t, sr_image *image, int n_threads)
{
    const int64_t W = image->width, y0 = t->y0, y1 = t->y0 + t->shape.h;
    const int ch = image->channels;
#pragma omp parallel for num_threads(threads_for((y1 - y0) * W, n_threads)) schedule(static)
    for (int64_t y = y0; y < y1; y++) {
        uint8_t *row = (uint8_t *)image->data + y * image->stride;
        for (int c = 0; c < 3; c++) {
            const float *v = sr_tensor_row(t, c, y);
            switch (image->type) {
            case SR_PIXEL_U8:
                for (int64_t x = 0; x < W; x++)
                    row[x * ch + c] = (uint8_t)to_levels(v[x], 255.0f);
                break;
            case SR_PIXEL_U16:
                for (int64_t x = 0; x < W; x++) {
                    const uint16_t u16 = (uint16_t)to_levels(v[x], 65535.0f);
                    memcpy(row + 2 * (x * ch + c), &u16, 2);
                }
                break;
            default:
                for (int64_t x = 0; x < W; x++) {
                    const float f = clamp01(v[x]);
                    memcpy(row + 4 * (x * ch + c), &f, 4);
                }
                break;
            }
        }
    }
}
