/* The public structs that may grow (options the caller fills, infos the
 * library fills) start with a size_t `size`: the bytes the caller's
 * compiler gave the struct. These two functions are the whole rule, so
 * that every struct follows it alike (srrun.h states it for callers). */
#ifndef SR_BASE_OPTIONS_H
#define SR_BASE_OPTIONS_H

#include <stddef.h>

#include "srrun.h"

/* base_size: where the last field of the struct as of 0.5.0 ends (when
 * it got its size field): what a size of 0 means and the least size
 * accepted. known_size: where the last field this srrun knows ends (the
 * struct's size without tail padding); base_size for a struct that has not
 * grown since.
 *
 * Copies the caller's options (theirs; NULL: the defaults) into ours,
 * zeroing ours (ours_size bytes) first, as far as both the caller's size
 * and known_size go. A size below base_size, or too large for any struct
 * (an uninitialised one), is invalid; bytes from known_size to the
 * caller's size that are not zero are fields of a newer srrun this one
 * cannot honour: SR_ERR_UNSUPPORTED. what names the struct in messages. */
sr_status sr_options_read(void *ours, size_t ours_size, size_t base_size, size_t known_size,
                          const void *theirs, const char *what, sr_error *err);

/* Writes the fields this srrun knows (known_size bytes of ours), as far as
 * the caller's struct goes (its size: at least base_size; 0 means that),
 * into it, and sets its size to where the fields written end: fields past
 * it are unknown to one of the two and left as they were. */
sr_status sr_info_write(void *theirs, const void *ours, size_t base_size, size_t known_size,
                        const char *what, sr_error *err);

#endif
