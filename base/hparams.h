/* An architecture's hyper-parameters as named integers ("scale" 4,
 * "blocks" 16, "width" 64): what a model builder derives from the weights'
 * names and shapes, what model.bin records beside the weights, and what
 * `srrun info` shows. The weights are the truth; a recorded list is only
 * checked against them. */
#ifndef SR_BASE_HPARAMS_H
#define SR_BASE_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "srrun.h"

#define SR_HPARAMS_MAX 16
#define SR_HPARAM_NAME_SIZE 24 /* with its NUL: names of 1 to 23 bytes */

typedef struct sr_hparam {
    char name[SR_HPARAM_NAME_SIZE]; /* "" in a model.bin of version 1: by position */
    int64_t value;
} sr_hparam;

typedef struct sr_hparams {
    int n;
    sr_hparam items[SR_HPARAMS_MAX];
} sr_hparams;

/* Appends (name, value); false, adding nothing, when the list is full or
 * the name is empty or longer than 23 bytes. */
bool sr_hparams_add(sr_hparams *h, const char *name, int64_t value);

/* Removes the item named `name`, if any, into *value: true if there was
 * one. For the run parameters a model.bin records beside the
 * architecture's (the patch size), which the weights cannot confirm. */
bool sr_hparams_take(sr_hparams *h, const char *name, int64_t *value);

/* Checks a file's recorded list against the one `arch` derived from the
 * file's weights: the same names with the same values, in any order.
 * Unnamed recorded values (model.bin version 1) are compared by position,
 * and those past the derived list must be 0. SR_ERR_MODEL names the first
 * difference: "header says width 32, the weights have 64". */
sr_status sr_hparams_check(const sr_hparams *recorded, const sr_hparams *derived,
                           const char *arch, sr_error *err);

#endif
