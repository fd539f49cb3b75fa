/* pixel_rate: how fast srrun turns images into the network's input and its
 * output into images (runtime/pixels.c), which on a GPU is host time the
 * device waits through. A 4000 x 4000 RGB image each way, 8-bit, memory
 * touched beforehand; the median of 7 runs, on all cores
 * (OMP_NUM_THREADS=1: one). build/bench/pixel_rate [SIZE] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/pixels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const int64_t n = argc > 1 ? atoll(argv[1]) : 4000;
    if (n < 1 || n > 40000) {
        fprintf(stderr, "usage: pixel_rate [SIZE from 1 to 40000]\n");
        return 2;
    }
    sr_image image;
    if (sr_image_alloc(&image, n, n, 3, SR_PIXEL_U8, NULL) != SR_OK)
        return 1;
    for (int64_t i = 0; i < 3 * n * n; i++)
        ((unsigned char *)image.data)[i] = (unsigned char)(i * 7);
    const sr_shape shape = {3, n, n};
    sr_tensor t = sr_tensor_whole(shape, calloc((size_t)sr_shape_numel(shape), sizeof(float)));
    if (!t.data)
        return 1;
    enum { RUNS = 7 };
    double in[RUNS], out[RUNS];
    for (int r = 0; r < RUNS; r++) {
        const double t0 = now();
        sr_image_to_tensor(&image, true, 1, &t, 0);
        const double t1 = now();
        sr_tensor_to_image(&t, &image, 0);
        in[r] = t1 - t0;
        out[r] = now() - t1;
    }
    qsort(in, RUNS, sizeof *in, by_value);
    qsort(out, RUNS, sizeof *out, by_value);
    const double mpix = 1e-6 * (double)(n * n);
    printf("%lldx%lld 8-bit RGB: to the input %.4f s (%.0f Mpixel/s), from the output "
           "%.4f s (%.0f Mpixel/s)\n",
           (long long)n, (long long)n, in[RUNS / 2], mpix / in[RUNS / 2], out[RUNS / 2],
           mpix / out[RUNS / 2]);
    free(t.data);
    sr_image_free(&image);
    return 0;
}
