/* Conversions between images as users hold them and the network's tensors:
 * the input rule (alpha composited on white or ignored, gray replicated to RGB) and the
 * output rule (clamp to [0, 1], round to the nearest level). */
#ifndef SR_RUNTIME_PIXELS_H
#define SR_RUNTIME_PIXELS_H

#include <stdbool.h>

#include "base/tensor.h"
#include "srrun.h"

/* Checks an image's fields; `what` names it in the message. */
sr_status sr_image_check(const sr_image *image, const char *what, sr_error *err);
/* The same without requiring pixels (data may be NULL; the stride is then
 * not checked either): for images described but not yet allocated. */
sr_status sr_image_check_layout(const sr_image *image, const char *what, sr_error *err);

/* Both conversions share large images' rows among n_threads threads (0:
 * all cores). */

/* Fills the rows t holds (t->y0 on; t allocated by the caller) of the
 * network's input for the image: 3 x H x W, or with unshuffle f > 1 the
 * image padded by reflection at the bottom and right to a multiple of f
 * and space-to-depth by f, 3 f^2 x ceil(H / f) x ceil(W / f) (ops/op.h,
 * sr_input_params). Its alpha, if any, is composited on white when
 * on_white, else ignored (the colour goes in as stored). */
void sr_image_to_tensor(const sr_image *image, bool on_white, int64_t unshuffle, sr_tensor *t,
                        int n_threads);

/* Writes the rows a 3-channel tensor holds (a band or the whole image)
 * into the same rows of an RGB or RGBA image (channels 0-2; alpha is left
 * alone). The tensor may be wider than the image: the columns past its
 * width are dropped (an unshuffled input's padding). */
void sr_tensor_to_image(const sr_tensor *t, sr_image *image, int n_threads);

#endif
