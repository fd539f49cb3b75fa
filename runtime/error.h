/* Error reporting inside the library: every failing function fills the
 * caller's sr_error (which may be NULL) with one line and returns a status. */
#ifndef SR_RUNTIME_ERROR_H
#define SR_RUNTIME_ERROR_H

#include "srrun.h"

/* Formats the message into err (if any) and returns status, so that a
 * failure reads `return sr_fail(err, SR_ERR_FORMAT, "...", ...);`. */
sr_status sr_fail(sr_error *err, sr_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (e.g. the file name). */
void sr_error_prefix(sr_error *err, const char *prefix);

#endif
