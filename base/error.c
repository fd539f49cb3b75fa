/* sr_fail and the status phrases. The message lives in the caller's
 * sr_error: the library keeps no global error state. */
#include "base/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void sr_escape(char *out, size_t size, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        const bool plain = *c >= 0x20 && *c <= 0x7e;
        if (n + (plain ? 1 : 4) >= size)
            break;
        if (plain) {
            out[n++] = (char)*c;
        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[*c >> 4];
            out[n++] = hex[*c & 15];
        }
    }
    out[n] = '\0';
}

sr_status sr_fail(sr_error *err, sr_status status, const char *fmt, ...)
{
    if (err) {
        char raw[sizeof err->message];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        sr_escape(err->message, sizeof err->message, raw);
    }
    return status;
}

void sr_error_prefix(sr_error *err, const char *raw_prefix)
{
    if (!err)
        return;
    char prefix[sizeof err->message];
    sr_escape(prefix, sizeof prefix, raw_prefix);
    const size_t cap = sizeof err->message - 1, p = strlen(prefix);
    size_t m = strlen(err->message);
    if (p + 2 >= cap)
        return;
    if (p + 2 + m > cap)
        m = cap - p - 2; /* keep the start of the message, drop its tail */
    memmove(err->message + p + 2, err->message, m);
    memcpy(err->message, prefix, p);
    err->message[p] = ':';
    err->message[p + 1] = ' ';
    err->message[p + 2 + m] = '\0';
}

static const char *const status_phrases[] = {
    [SR_OK] = "success",
    [SR_ERR_INVALID_ARGUMENT] = "invalid argument",
    [SR_ERR_IO] = "input/output error",
    [SR_ERR_FORMAT] = "malformed or unsupported file",
    [SR_ERR_UNSAFE] = "file asks to run code",
    [SR_ERR_MODEL] = "weights do not fit the architecture",
    [SR_ERR_LIMIT] = "input exceeds a limit",
    [SR_ERR_NO_MEMORY] = "out of memory",
    [SR_ERR_CANCELLED] = "cancelled",
    [SR_ERR_UNSUPPORTED] = "not supported by this build",
    [SR_ERR_BAD_STATE] = "session unusable after an earlier failure",
    [SR_ERR_DEVICE] = "device failure",
};
_Static_assert(sizeof status_phrases / sizeof *status_phrases == SR_STATUS_COUNT,
               "one phrase per status");

const char *sr_status_string(sr_status status)
{
    if ((unsigned)status >= SR_STATUS_COUNT)
        return "unknown status";
    return status_phrases[status];
}
