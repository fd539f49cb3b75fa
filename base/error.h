/* Error reporting inside the library: every failing function fills the
 * caller's sr_error (which may be NULL) with one line and returns a status.
 * Messages quote names from files (zip entries, tensor keys) and paths, so
 * every byte outside printable ASCII is written as \xNN: no control
 * character or escape sequence from a file reaches a terminal. */
#ifndef SR_BASE_ERROR_H
#define SR_BASE_ERROR_H

#include "srrun.h"

/* Formats the message into err (if any) and returns status, so that a
 * failure reads `return sr_fail(err, SR_ERR_FORMAT, "...", ...);`. */
sr_status sr_fail(sr_error *err, sr_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (e.g. the file name). */
void sr_error_prefix(sr_error *err, const char *prefix);

/* Copies text into out (size > 0 bytes, NUL-terminated) with each byte
 * outside 0x20-0x7e as \xNN; an escape that does not fit is left out
 * whole. For any other text meant for a terminal (notices). */
void sr_escape(char *out, size_t size, const char *text);

#endif
