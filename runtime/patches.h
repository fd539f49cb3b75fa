/* Patches: running the network on fixed-size pieces of the image rather
 * than on all of it, for models whose InstanceNorm statistics were learnt
 * on training crops (the default models: a crop's zero-padded borders make
 * features that the statistics rely on, so a whole photo is normalised
 * unlike anything the model was trained on; docs/design.md, "Patches").
 *
 * Along each axis of n pixels, with patch size P and margin M: an axis
 * no longer than P is one patch, the whole axis; a longer one has the
 * fewest patches, K = ceil((n - 2M) / (P - 2M)), spread evenly from one
 * end to the other (patch k starts at round(k (n - P) / (K - 1))). Where
 * two overlap (by 2M or more), the first's core ends halfway, so that
 * every core pixel has M pixels of context on each side inside its patch,
 * or the image's border. Every patch has the same shape, so one plan
 * serves them all; each contributes only its core.
 */
#ifndef SR_RUNTIME_PATCHES_H
#define SR_RUNTIME_PATCHES_H

#include <stdint.h>

typedef struct sr_patches {
    int64_t width, height;       /* of the image, input pixels */
    int64_t patch_w, patch_h;    /* of every patch: the size planned */
    int64_t n_across, n_down;
} sr_patches;

/* One patch and its core, in input pixels: [x, x + patch_w) and
 * [core_x0, core_x1) along x, the same along y. */
typedef struct sr_patch {
    int64_t x, y;
    int64_t core_x0, core_x1, core_y0, core_y1;
} sr_patch;

/* The patches of a width x height image for patch size `size` and
 * `margin` (size 0: the whole image, one patch); size > 2 margin. */
sr_patches sr_patches_make(int64_t size, int64_t margin, int64_t width, int64_t height);

static inline int64_t sr_patches_count(const sr_patches *p) { return p->n_across * p->n_down; }

/* Patch i, row-major (all of a row of patches, then the next). */
sr_patch sr_patches_at(const sr_patches *p, int64_t i);

#endif
