/* Patch geometry; see patches.h for the rule. */
#include "runtime/patches.h"

/* Patches along an axis of n pixels: their length and how many. */
static void axis(int64_t size, int64_t margin, int64_t n, int64_t *length, int64_t *count)
{
    if (size == 0 || n <= size) {
        *length = n;
        *count = 1;
        return;
    }
    const int64_t core = size - 2 * margin;
    *length = size;
    *count = (n - 2 * margin + core - 1) / core;
}

sr_patches sr_patches_make(int64_t size, int64_t margin, int64_t width, int64_t height)
{
    sr_patches p = {.width = width, .height = height};
    axis(size, margin, width, &p.patch_w, &p.n_across);
    axis(size, margin, height, &p.patch_h, &p.n_down);
    return p;
}

/* Where patch k of count starts on an axis of n pixels, patches length long. */
static int64_t start(int64_t k, int64_t count, int64_t length, int64_t n)
{
    return count == 1 ? 0 : (k * (n - length) * 2 + count - 1) / (2 * (count - 1));
}

/* Patch k's start and core along an axis: its core ends halfway through
 * its overlap with the next. */
static void place(int64_t k, int64_t count, int64_t length, int64_t n, int64_t *at,
                  int64_t *core0, int64_t *core1)
{
    *at = start(k, count, length, n);
    *core0 = k == 0 ? 0 : (*at + start(k - 1, count, length, n) + length) / 2;
    *core1 = k == count - 1 ? n : (start(k + 1, count, length, n) + *at + length) / 2;
}

sr_patch sr_patches_at(const sr_patches *p, int64_t i)
{
    sr_patch w;
    place(i % p->n_across, p->n_across, p->patch_w, p->width, &w.x, &w.core_x0, &w.core_x1);
    place(i / p->n_across, p->n_down, p->patch_h, p->height, &w.y, &w.core_y0, &w.core_y1);
    return w;
}
