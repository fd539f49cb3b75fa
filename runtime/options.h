/* The public structs that may grow (options the caller fills, infos the
 * library fills) start with a size_t `size`: the bytes the caller's
 * compiler gave the struct. These two functions are the whole rule, so
 * that every struct follows it alike (srrun.h states it for callers). */
#ifndef SR_RUNTIME_OPTIONS_H
#define SR_RUNTIME_OPTIONS_H

#include <stddef.h>

#include "srrun.h"

/* Copies the caller's options (theirs; NULL: the defaults) into ours,
 * ours_size bytes, zeroing what the caller's struct does not cover. A
 * size of 0 means base_size, the struct as it was when it got its size
 * field (0.5.0), so a zeroed struct is the defaults. A size below
 * base_size, or too large for any struct (an uninitialised one), is
 * invalid; bytes beyond ours_size that are not zero are
 * fields of a newer srrun this one cannot honour: SR_ERR_UNSUPPORTED.
 * what names the struct in messages. */
sr_status sr_options_read(void *ours, size_t ours_size, size_t base_size, const void *theirs,
                          const char *what, sr_error *err);

/* Writes ours (ours_size bytes) into the caller's struct as far as its
 * size (0: base_size) covers, zeroes what lies beyond ours, and sets its
 * size to the bytes written: fields past it are unknown to this library. */
sr_status sr_info_write(void *theirs, const void *ours, size_t ours_size, size_t base_size,
                        const char *what, sr_error *err);

#endif
