/* torch.save checkpoints (.pth): the zip format of torch >= 1.6 and the
 * legacy format before it. Finds the state dict (also inside a training
 * checkpoint), checks every tensor's geometry against its storage, and hands
 * the float tensors to an sr_weights, as views into the file when they are
 * packed float32 and as converted copies otherwise. */
#ifndef SR_FORMATS_PTH_H
#define SR_FORMATS_PTH_H

#include "formats/file.h"
#include "base/weights.h"

/* `file` must outlive `weights`. The check for NaN and Inf runs on at most
 * n_threads threads (0: sr_threads_for's default). Messages do not repeat
 * the file name. */
sr_status sr_pth_load(const sr_mapped_file *file, int n_threads, sr_weights *weights,
                      sr_error *err);

#endif
